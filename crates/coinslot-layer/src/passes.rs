//! Time passes as records: checked, bought (a payment redeemed into minutes of a pass),
//! revoked, and watched for the [`PassHook`]. [`Passes`] is the public handle; the pass
//! mode and the paying modes (a token or a credential on a pass scope's route) buy through
//! it.
//!
//! The pass is a JWT (HS256, key derived from the mint's seed) naming the pass id and its
//! scope. Its expiry lives in the mint's store, written by the same commit that spends the
//! payment: extensions add up under concurrency, a pass survives a restart, and a
//! revocation ([`Passes::revoke`], the admin API) is durable. The JWT's own `exp` is the
//! expiry when it was issued, for the client's information; the store decides.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use coinslot_mint::activity::{Event, PaidWith};
use coinslot_mint::cashu::nuts::{CurrencyUnit, Proof};
use coinslot_mint::{
    receipt_key, Error, ErrorCode, PassPurchase, PassRecord, Payment, Purchase, ReceiptGuard,
    ReceiptWrite,
};
use http::{Method, StatusCode};

use crate::body::BodySeen;
use crate::hooks::{PassEvent, PassEventKind};
use crate::proofs::{parse_token, receipt_fn};
use crate::receipt::{ReceiptData, ReceiptKind, RunHandle, RunRecord, RunState};
use crate::settings::Ctx;
use crate::settle::{Payer, Ticket};
use crate::wire::errors::{attach_token, Rejection, Reply};
use crate::wire::nut24;
use crate::{PassScope, ValidPass};

/// Why a pass does not open a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PassError {
    /// Not a pass of this server (bad signature, not a JWT, wrong audience).
    Invalid(String),
    /// It ran out at this Unix time.
    Expired(u64),
    /// The operator revoked it.
    Revoked,
    /// It opens another scope.
    OutOfScope {
        /// The pass's scope.
        has: String,
        /// The scope asked for.
        wanted: String,
    },
    /// Signed by this server, but the store does not know it.
    Unknown,
    /// The store could not be read.
    Storage(String),
}

impl std::error::Error for PassError {}

impl std::fmt::Display for PassError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PassError::Invalid(why) => write!(f, "invalid pass: {why}"),
            PassError::Expired(at) => write!(f, "the pass expired at {at} (Unix time)"),
            PassError::Revoked => f.write_str("the pass was revoked"),
            PassError::OutOfScope { has, wanted } => {
                write!(f, "the pass is for scope {has}, not {wanted}")
            }
            PassError::Unknown => f.write_str("unknown pass"),
            PassError::Storage(why) => write!(f, "the pass could not be checked: {why}"),
        }
    }
}

/// What a purchase gives back.
#[derive(Debug, Clone)]
pub struct Bought {
    /// The pass credential (for `X-Cashu-Pass`, or a proxy's password).
    pub credential: String,
    /// The pass now.
    pub pass: ValidPass,
    /// Minutes this purchase added.
    pub minutes: u64,
    /// Whether it extended an existing pass.
    pub extended: bool,
    /// Change: what the token held beyond whole minutes.
    pub change: Vec<Proof>,
    /// Unit of the change.
    pub unit: CurrencyUnit,
    /// A retry of a purchase made before with the same token (nothing spent this time).
    pub repeat: bool,
}

impl Bought {
    /// The ticket of the request this purchase opens: the pass for the handler, its
    /// credential for the client, and the purchase's receipt (with the change) when the
    /// request came with it.
    pub(crate) fn ticket(
        &self,
        ctx: &Ctx,
        record: Option<Arc<RunHandle>>,
        success_headers: http::HeaderMap,
        seen: Arc<BodySeen>,
        content_length: Option<u64>,
    ) -> Ticket {
        let mut headers = http::HeaderMap::new();
        nut24::attach_pass(&mut headers, &self.pass, Some(&self.credential));
        // With a receipt the settlement gives the change back; without (a pass bought
        // before, at the pass endpoint) it goes here.
        if record.is_none() && !self.change.is_empty() {
            let token =
                crate::wire::errors::token(&ctx.settings.mint_url, &self.unit, self.change.clone());
            if let Ok(value) = http::HeaderValue::from_str(&token) {
                headers.insert(nut24::X_CASHU, value);
            }
        }
        Ticket {
            paid: None,
            pass: Some(self.pass.clone()),
            unit: self.unit.clone(),
            kept: 0,
            metered: false,
            payer: Payer::Pass,
            key_account: None,
            record,
            retry: crate::Retry::Stored,
            headers,
            success_headers,
            seen,
            content_length,
            route: None,
        }
    }
}

/// A purchase refused: the HTTP status, Cashu error code and words to answer with. The
/// token was not spent unless the code says so (`11001`), or a refund is attached (a failed
/// purchase hook).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PassRefusal {
    /// HTTP status (400, 401, 402, 502, 503).
    pub status: StatusCode,
    /// Cashu error code.
    pub code: ErrorCode,
    /// What went wrong.
    pub detail: String,
    /// The payment given back, when it was taken before the refusal.
    pub refund: Option<(CurrencyUnit, Vec<Proof>)>,
}

impl From<Rejection> for PassRefusal {
    fn from(r: Rejection) -> Self {
        Self {
            status: r.status,
            code: r.code,
            detail: r.detail,
            refund: None,
        }
    }
}

impl PassRefusal {
    /// The refusal as a response (with the refund in `X-Cashu`, if any).
    pub(crate) fn into_response<B>(self, ctx: &Ctx) -> Reply<B> {
        let mut response = Rejection::new(self.status, self.code, self.detail).into_response();
        if let Some((unit, proofs)) = self.refund {
            attach_token(&mut response, &ctx.settings.mint_url, &unit, proofs);
        }
        response
    }
}

impl std::fmt::Display for PassRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.detail, self.code)
    }
}

fn refusal_of(err: &Error) -> PassRefusal {
    match err {
        Error::PassRevoked => PassRefusal {
            status: StatusCode::UNAUTHORIZED,
            code: err.error_code(),
            detail: "the pass was revoked: buy a new one (the token was not spent)".into(),
            refund: None,
        },
        err => Rejection::mint(err).into(),
    }
}

/// A purchase made, or found made before.
pub(crate) enum Sale {
    /// The pass, and (for a purchase made with a request on the scope's routes) the run it
    /// pays for.
    Bought(Bought, Option<Arc<RunHandle>>),
    /// The token bought a pass with a request before: that request's receipt answers.
    Retry([u8; 32]),
}

/// A payment taken for a pass, on its way to the buyer.
struct Purchased<'a> {
    key: [u8; 32],
    pid: String,
    unit: CurrencyUnit,
    minutes: u64,
    change: Vec<Proof>,
    fee: u64,
    extended: bool,
    first: bool,
    run: Option<&'a RunHandle>,
}

/// The passes of a paywall: check them, sell them, revoke them. From
/// [`PaywallLayer::passes`](crate::PaywallLayer::passes); cheap to clone.
#[derive(Clone)]
pub struct Passes {
    pub(crate) ctx: Ctx,
}

impl std::fmt::Debug for Passes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Passes")
            .field("scopes", &self.ctx.settings.passes)
            .finish_non_exhaustive()
    }
}

fn now() -> u64 {
    coinslot_mint::unix_now()
}

impl Passes {
    /// The scopes passes are sold for.
    pub fn scopes(&self) -> &[PassScope] {
        &self.ctx.settings.passes
    }

    /// The scope called `name`.
    pub fn scope(&self, name: &str) -> Option<&PassScope> {
        self.ctx.settings.passes.iter().find(|s| s.name() == name)
    }

    /// The scope a request with `method` on `path` belongs to.
    pub fn scope_of(&self, method: &Method, path: &str) -> Option<&PassScope> {
        self.ctx.settings.pass_scope(method, path)
    }

    /// Checks a pass credential: signed here, known, not revoked, not expired, and for
    /// `scope` when one is given.
    pub async fn verify(
        &self,
        credential: &str,
        scope: Option<&str>,
    ) -> Result<ValidPass, PassError> {
        let claims = self
            .ctx
            .shared
            .pass_keys
            .verify(credential)
            .map_err(PassError::Invalid)?;
        if let Some(wanted) = scope.filter(|wanted| *wanted != claims.scope) {
            return Err(PassError::OutOfScope {
                has: claims.scope,
                wanted: wanted.to_string(),
            });
        }
        let record = self
            .ctx
            .mint()
            .pass(&claims.pid)
            .await
            .map_err(|e| PassError::Storage(e.to_string()))?
            .ok_or(PassError::Unknown)?;
        if record.revoked {
            return Err(PassError::Revoked);
        }
        if record.expires_at <= now() {
            return Err(PassError::Expired(record.expires_at));
        }
        Ok(ValidPass::from(record))
    }

    /// Revokes a pass by id, durably; the record after (`None`: no such pass).
    pub async fn revoke(&self, id: &str) -> Result<Option<PassRecord>, Error> {
        let revoked = self.ctx.mint().revoke_pass(id).await?;
        if revoked.is_some() {
            tracing::info!(pass = %id, "pass revoked");
        }
        Ok(revoked)
    }

    /// Buys time on a pass of `scope` with `token`: a new pass, or more time on the one
    /// `extend` names. A retry with the same token gives the same pass back, once paid.
    pub async fn buy(
        &self,
        token: &str,
        scope: &PassScope,
        extend: Option<&str>,
        client_key: Option<String>,
    ) -> Result<Bought, PassRefusal> {
        match self.sell(token, scope, extend, client_key, None).await? {
            Sale::Bought(bought, _) => Ok(bought),
            // Bought with a request before: the pass is the same, whatever the request.
            Sale::Retry(key) => self.again(&key, token, scope).await,
        }
    }

    /// A purchase: `run` is the request it pays for, when it came with one (its receipt
    /// then answers the token's retries).
    pub(crate) async fn sell(
        &self,
        token: &str,
        scope: &PassScope,
        extend: Option<&str>,
        client_key: Option<String>,
        run: Option<RunRecord>,
    ) -> Result<Sale, PassRefusal> {
        let ctx = &self.ctx;
        let settings = &ctx.settings;
        let (proofs, unit) = parse_token(ctx, token)?;
        if unit != scope.price().unit {
            return Err(Rejection::cashu(
                ErrorCode::UnitMismatch,
                format!(
                    "wrong unit: passes for {} are sold in {}, the token is in {unit}",
                    scope.name(),
                    scope.price().unit
                ),
            )
            .into());
        }
        let pid = match extend {
            Some(credential) => {
                let claims = ctx.shared.pass_keys.verify(credential).map_err(|e| {
                    PassRefusal::from(Rejection::unauthorized(format!(
                        "invalid pass: {e}; the token was not spent"
                    )))
                })?;
                if claims.scope != scope.name() {
                    return Err(Rejection::bad_request(format!(
                        "the pass is for scope {}, not {}",
                        claims.scope,
                        scope.name()
                    ))
                    .into());
                }
                claims.pid
            }
            None => crate::wire::jwt::new_id(),
        };
        let key = receipt_key(&proofs);
        let with_run = run.is_some();
        let template = ReceiptData {
            session: Some(pid.clone()),
            run,
            ..ReceiptData::new(ReceiptKind::Pass, unit.to_string())
        };
        let price = scope.price().amount.max(1);
        let payment = Payment {
            unit: unit.clone(),
            buys: Purchase::Pass(PassPurchase {
                id: pid.clone(),
                scope: scope.name().to_string(),
                price_per_minute: price,
                minute_secs: settings.pass_minute.as_secs().max(1),
                client_key,
            }),
            require_lock: settings.require_lock,
            receipt: Some((key, receipt_fn(template.clone()))),
        };
        let created_at = now();
        let redeemed = match ctx.mint().redeem(proofs, payment).await {
            Ok(redeemed) => redeemed,
            Err(Error::TokenAlreadySpent) => {
                let earlier = ctx
                    .mint()
                    .receipt(&key)
                    .await
                    .map_err(|e| refusal_of(&e))?
                    .and_then(|record| ReceiptData::decode(&record.data));
                return match earlier {
                    Some(data) if data.kind == ReceiptKind::Pass && data.run.is_some() => {
                        Ok(Sale::Retry(key))
                    }
                    _ => self
                        .again(&key, token, scope)
                        .await
                        .map(|b| Sale::Bought(b, None)),
                };
            }
            Err(err) => return Err(refusal_of(&err)),
        };
        ctx.mint().record(Event::Paid {
            unit: unit.clone(),
            amount: redeemed.kept,
            fee: redeemed.fee,
            with: PaidWith::Token,
            route: scope.price().label.clone(),
        });
        let data = ReceiptData {
            change: redeemed.change.clone(),
            fee: redeemed.fee,
            ..template
        };
        let handle = with_run.then(|| {
            RunHandle::new(
                ctx.mint().clone(),
                key,
                created_at,
                1,
                data,
                settings.run_lease,
            )
        });
        let purchased = Purchased {
            key,
            pid,
            unit,
            minutes: redeemed.minutes,
            change: redeemed.change,
            fee: redeemed.fee,
            extended: extend.is_some(),
            first: true,
            run: handle.as_deref(),
        };
        let bought = self.deliver(scope, purchased).await?;
        Ok(Sale::Bought(bought, handle))
    }

    /// A retry of a purchase that went through: the same pass and change again (or the
    /// refund, if it failed).
    async fn again(
        &self,
        key: &[u8; 32],
        token: &str,
        scope: &PassScope,
    ) -> Result<Bought, PassRefusal> {
        let ctx = &self.ctx;
        let data = ctx
            .mint()
            .receipt(key)
            .await
            .map_err(|e| refusal_of(&e))?
            .and_then(|record| ReceiptData::decode(&record.data))
            .filter(|data| data.kind == ReceiptKind::Pass)
            .ok_or_else(|| PassRefusal::from(Rejection::spent("token already spent")))?;
        let unit = data
            .unit()
            .ok_or_else(|| PassRefusal::from(Rejection::spent("token already spent")))?;
        if data.refund.is_some() {
            return Err(PassRefusal {
                status: StatusCode::BAD_GATEWAY,
                code: ErrorCode::Generic,
                detail:
                    "this purchase failed and was refunded; the refund is in the X-Cashu header"
                        .into(),
                refund: Some((unit, data.given_back())),
            });
        }
        let (proofs, _) = parse_token(ctx, token)?;
        let total: u64 = proofs.iter().map(|p| u64::from(p.amount)).sum();
        let back: u64 = data.change.iter().map(|p| u64::from(p.amount)).sum();
        let kept = total.saturating_sub(data.fee).saturating_sub(back);
        let minutes = kept / scope.price().amount.max(1);
        let purchased = Purchased {
            key: *key,
            pid: data.session.clone().unwrap_or_default(),
            unit,
            minutes,
            change: data.change,
            fee: data.fee,
            extended: false,
            first: false,
            run: None,
        };
        self.deliver(scope, purchased).await
    }

    /// After the payment: the hook, then the credential. A failed hook refunds a first
    /// purchase (a pass answered once may have been used since).
    async fn deliver(&self, scope: &PassScope, p: Purchased<'_>) -> Result<Bought, PassRefusal> {
        let ctx = &self.ctx;
        let record = ctx
            .mint()
            .pass(&p.pid)
            .await
            .map_err(|e| refusal_of(&e))?
            .ok_or_else(|| refusal_of(&Error::Storage("the pass just bought is missing".into())))?;
        // Also on a retry (the first answer may have been cut off before the hook ran; hooks
        // tolerate repeats), but only the first attempt is refunded when it fails.
        if let Some(hook) = &ctx.settings.pass_hook {
            let event = PassEvent {
                event: if p.extended {
                    PassEventKind::Extension
                } else {
                    PassEventKind::Purchase
                },
                id: record.id.clone(),
                scope: record.scope.clone(),
                expires_at: record.expires_at,
                client_key: record.client_key.clone(),
            };
            if let Err(why) = hook.call(event).await {
                if !p.extended && p.first {
                    let owed = p.minutes * scope.price().amount.max(1) + p.fee;
                    return Err(self
                        .refund(&record, p, owed, &why, scope.price().label.clone())
                        .await);
                }
                // An extension (the pass was set up before) or a retry: the time stands.
                tracing::warn!(pass = %record.id, error = %why, "pass hook failed; the pass stands");
            }
        }
        let credential = ctx
            .shared
            .pass_keys
            .issue(&p.pid, scope.name(), now(), record.expires_at)
            .map_err(|e| refusal_of(&Error::Storage(format!("cannot sign the pass: {e}"))))?;
        tracing::info!(scope = %scope.name(), minutes = p.minutes, extended = p.extended, "pass bought");
        Ok(Bought {
            credential,
            pass: ValidPass::from(record),
            minutes: p.minutes,
            extended: p.extended,
            change: p.change,
            unit: p.unit,
            repeat: !p.first,
        })
    }

    /// Undoes a purchase whose hook failed: the pass is revoked, its price and fee go back
    /// (with the change), recorded in the receipt so a retry gets the refund again.
    async fn refund(
        &self,
        record: &PassRecord,
        p: Purchased<'_>,
        owed: u64,
        why: &str,
        route: Option<std::sync::Arc<str>>,
    ) -> PassRefusal {
        let unit = &p.unit;
        let mint = self.ctx.mint();
        tracing::warn!(pass = %record.id, error = %why, "pass purchase hook failed; refunding");
        if let Err(err) = mint.revoke_pass(&record.id).await {
            tracing::error!(error = %err, pass = %record.id, "could not revoke a refunded pass");
        }
        let refund = match mint.make_proofs(unit, owed).await {
            Ok(proofs) => proofs,
            Err(err) => {
                tracing::error!(error = %err, amount = owed, "could not make a pass refund");
                Vec::new()
            }
        };
        let made = refund.clone();
        let written = match p.run {
            Some(run) => run
                .update(
                    |data| {
                        data.refund = Some(made);
                        if let Some(run) = data.run.as_mut() {
                            run.state = RunState::Failed;
                        }
                    },
                    &refund,
                    None,
                    None,
                )
                .await
                .map(|_| ()),
            None => self.record_refund(&p.key, made, &refund).await,
        };
        if let Err(err) = written {
            // Not recorded, so not handed out: a retry finds the purchase and refunds then.
            tracing::error!(error = %err, "could not record a pass refund");
            return PassRefusal::from(Rejection::new(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::Generic,
                format!("the service could not set up the pass ({why}) and the refund could not be recorded just now: repeat the purchase in a minute to get it"),
            ));
        }
        self.ctx.mint().record(Event::Refunded {
            unit: unit.clone(),
            amount: owed,
            failed: true,
            route,
        });
        let mut back = p.change;
        back.extend(refund);
        PassRefusal {
            status: StatusCode::BAD_GATEWAY,
            code: ErrorCode::Generic,
            detail: format!("the service could not set up the pass ({why}); the payment is refunded in the X-Cashu header"),
            refund: Some((unit.clone(), back)),
        }
    }

    async fn record_refund(
        &self,
        key: &[u8; 32],
        refund: Vec<Proof>,
        made: &[Proof],
    ) -> Result<(), Error> {
        let mint = self.ctx.mint();
        let receipt = mint
            .receipt(key)
            .await?
            .ok_or_else(|| Error::Storage("the purchase's receipt is missing".into()))?;
        let mut data = ReceiptData::decode(&receipt.data)
            .ok_or_else(|| Error::Storage("the purchase's receipt does not decode".into()))?;
        data.refund = Some(refund);
        let encoded = data.encode();
        let write = ReceiptWrite {
            key,
            created_at: receipt.created_at,
            data: &encoded,
            guard: ReceiptGuard::Version(receipt.version),
        };
        mint.update_receipt(write, made).await
    }

    /// Starts a task that reports expiries and revocations to the hook every `every`
    /// (nothing without a hook). Passes that ran out in the hour before it starts are
    /// reported once more, in case a restart hid their expiry.
    /// The task ends when the mint is dropped.
    pub fn spawn_watcher(&self, every: Duration) -> Option<tokio::task::JoinHandle<()>> {
        let hook = self.ctx.settings.pass_hook.clone()?;
        // Weak: the watcher ends with the mint instead of keeping it (and its store) open.
        let weak = self.ctx.mint().downgrade();
        Some(tokio::spawn(async move {
            // What each pass looked like at the last look: (expires_at, revoked).
            let mut known: HashMap<String, (u64, bool)> = HashMap::new();
            let mut last = now().saturating_sub(3600);
            let mut first_look = true;
            loop {
                let Some(mint) = weak.upgrade() else {
                    return;
                };
                let at = now();
                match mint.passes(last.min(at.saturating_sub(86_400))).await {
                    Ok(passes) => {
                        for pass in passes {
                            let before = known.get(&pass.id).copied();
                            let kind = if pass.revoked {
                                // Unknown at the first look (revoked before a restart): skip.
                                let newly = before.map_or(!first_look, |(_, revoked)| !revoked);
                                newly.then_some(PassEventKind::Revocation)
                            } else {
                                let ran_out = pass.expires_at <= at && pass.expires_at > last;
                                ran_out.then_some(PassEventKind::Expiry)
                            };
                            known.insert(pass.id.clone(), (pass.expires_at, pass.revoked));
                            if let Some(kind) = kind {
                                let event = PassEvent {
                                    event: kind,
                                    id: pass.id,
                                    scope: pass.scope,
                                    expires_at: pass.expires_at,
                                    client_key: pass.client_key,
                                };
                                if let Err(why) = hook.call(event).await {
                                    tracing::warn!(error = %why, event = kind.as_str(), "pass hook failed");
                                }
                            }
                        }
                        known.retain(|_, (expires_at, _)| *expires_at + 86_400 > at);
                        last = at;
                        first_look = false;
                    }
                    Err(err) => tracing::warn!(error = %err, "could not list passes for the hook"),
                }
                drop(mint);
                tokio::time::sleep(every).await;
            }
        }))
    }
}
