//! [`PayingClient`]: sends a request; on `402` pays it from the wallet and sends it again.

use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::sync::Arc;

use cdk::mint_url::MintUrl;
use cdk::nuts::nut10::Kind;
use cdk::nuts::nut18::PaymentRequest;
use cdk::nuts::{CurrencyUnit, PublicKey, SpendingConditions};
use cdk::wallet::SendOptions;
use cdk::Amount;
use http::{HeaderValue, StatusCode};
use parking_lot::Mutex;

use crate::budget::{Budget, Reservation};
use crate::wallets::Wallets;
use crate::Error;

/// `X-Cashu`: the payment request on a `402`, the token on a paid request, change or a
/// refund on the response.
pub const X_CASHU: &str = "x-cashu";
/// `X-Cashu-Session`: a prepaid session's credential.
pub const X_CASHU_SESSION: &str = "x-cashu-session";

/// What a request paid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payment {
    /// The mint the ecash came from.
    pub mint: MintUrl,
    /// Its unit.
    pub unit: CurrencyUnit,
    /// What the server asked.
    pub price: u64,
    /// Input fees on top (the mint's, paid by the sender).
    pub fee: u64,
    /// Change or a refund that came back and was received.
    pub returned: u64,
}

impl Payment {
    /// What the request cost in the end: price + fee − returned.
    pub fn cost(&self) -> u64 {
        (self.price + self.fee).saturating_sub(self.returned)
    }
}

/// A response, and what it cost if it was paid for.
#[derive(Debug)]
pub struct Paid {
    /// The final response (never a `402` that was paid).
    pub response: reqwest::Response,
    /// The payment made, if the server asked for one.
    pub payment: Option<Payment>,
    /// Paid from a prepaid session's balance (no token sent).
    pub via_session: bool,
}

/// An HTTP client that pays `402 Payment Required` (NUT-24) by itself.
#[derive(Debug, Clone)]
pub struct PayingClient {
    http: reqwest::Client,
    wallets: Wallets,
    budget: Arc<Mutex<Budget>>,
    trusted: Arc<HashSet<MintUrl>>,
    /// Deposit for prepaid sessions, when the client opens them.
    session_deposit: Option<u64>,
    sessions: Arc<Mutex<HashMap<String, Session>>>,
    nip60: Option<Arc<crate::Nip60>>,
    binding: crate::Binding,
}

/// A prepaid session the client holds with one origin.
#[derive(Debug, Clone)]
struct Session {
    path: String,
    credential: String,
    reservation: Reservation,
    mint: MintUrl,
    unit: CurrencyUnit,
}

impl PayingClient {
    /// A client paying from `wallets` within `budget`, only with ecash of `trusted` mints
    /// (a payment request naming only other mints is refused).
    pub fn new(
        http: reqwest::Client,
        wallets: Wallets,
        budget: Budget,
        trusted: impl IntoIterator<Item = MintUrl>,
    ) -> Self {
        Self {
            http,
            wallets,
            budget: Arc::new(Mutex::new(budget)),
            trusted: Arc::new(trusted.into_iter().collect()),
            session_deposit: None,
            sessions: Arc::new(Mutex::new(HashMap::new())),
            nip60: None,
            binding: crate::Binding::default(),
        }
    }

    /// Keeps the wallet's proofs on the user's relays too (NIP-60): after every payment,
    /// change, refund or session, the token events there are rolled over.
    pub fn with_nip60(mut self, nip60: Arc<crate::Nip60>) -> Self {
        self.nip60 = Some(nip60);
        self
    }

    /// The binding to pay with when a `402` offers both NUT-24 and the `Payment` scheme.
    pub fn prefer(mut self, binding: crate::Binding) -> Self {
        self.binding = binding;
        self
    }

    /// Whether ecash of `mint` may be spent.
    pub(crate) fn is_trusted(&self, mint: &MintUrl) -> bool {
        self.trusted.contains(mint)
    }

    /// The HTTP client underneath.
    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Gives `amount` back to the budget a reservation took.
    pub(crate) fn release(&self, reservation: &Reservation, amount: u64) {
        self.budget.lock().release(reservation, amount);
    }

    /// Publishes the wallet's state at `mint` to NIP-60, if on; a relay failure is logged,
    /// not fatal (the proofs are safe locally and the next change publishes them again).
    pub(crate) async fn sync_nip60(&self, mint: &MintUrl, unit: &CurrencyUnit) {
        if let Some(nip60) = &self.nip60 {
            if let Err(err) = nip60.publish(&self.wallets, mint, unit).await {
                tracing::warn!(error = %err, "could not update the NIP-60 wallet");
            }
        }
    }

    /// Opens a prepaid session (depositing `deposit`, or the price if more) with a server
    /// that offers them, instead of paying each request with a token; later requests to
    /// that origin are paid from the session. [`PayingClient::close_sessions`] takes the
    /// rest back.
    pub fn with_sessions(mut self, deposit: u64) -> Self {
        self.session_deposit = Some(deposit);
        self
    }

    /// The wallets it pays from.
    pub fn wallets(&self) -> &Wallets {
        &self.wallets
    }

    /// The spends of the last hour (see [`Budget::with_history`]).
    pub fn spending_history(&self) -> Vec<crate::budget::SpendRecord> {
        self.budget.lock().history()
    }

    /// What was spent in `unit` in the last hour.
    pub fn spent_last_hour(&self, unit: &CurrencyUnit) -> u64 {
        self.budget.lock().spent_last_hour(unit)
    }

    /// Sends `request`; if the server answers `402` with a payment request this client can
    /// and may pay, pays it and sends the request again with the token. The body must be
    /// replayable (not a stream).
    pub async fn execute(&self, mut request: reqwest::Request) -> Result<Paid, Error> {
        // Say what it can pay (the scheme's `Accept-Payment`), unless the caller did.
        if self.binding == crate::Binding::Payment {
            request
                .headers_mut()
                .entry(crate::paymentauth::ACCEPT_PAYMENT_HEADER)
                .or_insert(http::HeaderValue::from_static(
                    crate::paymentauth::ACCEPT_PAYMENT,
                ));
        }
        let origin = origin(request.url());
        let host = request.url().host_str().unwrap_or_default().to_string();
        if let Some(paid) = self.try_session(&request, &origin).await? {
            return Ok(paid);
        }
        let again = request.try_clone().ok_or(Error::BodyNotReplayable)?;
        let response = self.http.execute(request).await?;
        if response.status() != StatusCode::PAYMENT_REQUIRED {
            return Ok(Paid {
                response,
                payment: None,
                via_session: false,
            });
        }
        let headers = response.headers().clone();
        let challenge = crate::paymentauth::find_challenge(&headers);
        let nut24 = headers.contains_key(X_CASHU);
        if let Some(challenge) = challenge {
            if self.binding == crate::Binding::Payment || !nut24 {
                return self.pay_challenge(again, challenge, &host).await;
            }
        }
        let offer = self.offer(&headers, &host)?;
        let session_path = match self.session_deposit {
            Some(_) => response
                .json::<serde_json::Value>()
                .await
                .ok()
                .and_then(|body| body["session"].as_str().map(str::to_string)),
            None => None,
        };
        if let (Some(deposit), Some(path)) = (self.session_deposit, session_path) {
            let opened = self
                .open_session(&origin, &path, &offer, deposit.max(offer.amount), &host)
                .await;
            match opened {
                Ok(()) => {
                    if let Some(paid) = self.try_session(&again, &origin).await? {
                        return Ok(paid);
                    }
                }
                // A deposit the budget or the wallet cannot cover: pay this request alone.
                Err(Error::OverBudget(_) | Error::InsufficientFunds { .. }) => {
                    tracing::info!(origin, "cannot fund a session; paying per request");
                }
                Err(err) => return Err(err),
            }
        }
        self.pay_and_send(again, offer, &host).await
    }

    /// Sends `request` on the session held with `origin`, if any. `None`: no session, or it
    /// is used up or gone (then it is closed and forgotten), so pay another way.
    async fn try_session(
        &self,
        request: &reqwest::Request,
        origin: &str,
    ) -> Result<Option<Paid>, Error> {
        let Some(session) = self.sessions.lock().get(origin).cloned() else {
            return Ok(None);
        };
        let mut on_session = request.try_clone().ok_or(Error::BodyNotReplayable)?;
        let value = HeaderValue::from_str(&session.credential).map_err(|_| {
            Error::BadRequest("the session credential is not a header value".into())
        })?;
        on_session.headers_mut().insert(X_CASHU_SESSION, value);
        let response = self.http.execute(on_session).await?;
        match response.status() {
            StatusCode::PAYMENT_REQUIRED | StatusCode::UNAUTHORIZED => {
                tracing::info!(origin, "session used up or gone; closing it");
                self.close_session(origin).await;
                Ok(None)
            }
            _ => Ok(Some(Paid {
                response,
                payment: None,
                via_session: true,
            })),
        }
    }

    /// Deposits `deposit` at `origin` + `path` and keeps the session credential.
    async fn open_session(
        &self,
        origin: &str,
        path: &str,
        offer: &Offer,
        deposit: u64,
        host: &str,
    ) -> Result<(), Error> {
        let spent = self.spend(offer, deposit, host).await?;
        let url = format!("{origin}{path}");
        let sent = self
            .http
            .post(&url)
            .header(X_CASHU, spent.token.as_str())
            .send()
            .await;
        let credential = match &sent {
            Ok(response) if response.status() == StatusCode::OK => response
                .headers()
                .get(X_CASHU_SESSION)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
            _ => None,
        };
        let Some(credential) = credential else {
            self.reclaim(
                &spent.wallet,
                spent.operation,
                &spent.reservation,
                deposit + spent.fee,
            )
            .await;
            return Err(Error::Refused(match sent {
                Ok(response) => format!("{url} answered {} to a deposit", response.status()),
                Err(err) => format!("{url}: {err}"),
            }));
        };
        tracing::info!(origin, deposit, unit = %offer.unit, "opened a prepaid session");
        self.sessions.lock().insert(
            origin.to_string(),
            Session {
                path: path.to_string(),
                credential,
                reservation: spent.reservation,
                mint: offer.mint.clone(),
                unit: offer.unit.clone(),
            },
        );
        self.sync_nip60(&offer.mint, &offer.unit).await;
        Ok(())
    }

    /// Closes every session this client holds; the balances come back into the wallet.
    /// Returns what came back.
    pub async fn close_sessions(&self) -> u64 {
        let origins: Vec<String> = self.sessions.lock().keys().cloned().collect();
        let mut total = 0;
        for origin in origins {
            total += self.close_session(&origin).await;
        }
        total
    }

    async fn close_session(&self, origin: &str) -> u64 {
        let Some(session) = self.sessions.lock().remove(origin) else {
            return 0;
        };
        let response = self
            .http
            .delete(format!("{origin}{}", session.path))
            .header(X_CASHU_SESSION, session.credential.as_str())
            .send()
            .await;
        let back = match response {
            Ok(response) => self.take_returned(&response).await,
            Err(err) => {
                tracing::warn!(origin, error = %err, "could not close the session");
                0
            }
        };
        self.budget.lock().release(&session.reservation, back);
        self.sync_nip60(&session.mint, &session.unit).await;
        back
    }

    /// GET `url`, paying if asked.
    pub async fn get(&self, url: &str) -> Result<Paid, Error> {
        let request = self.http.get(url).build()?;
        self.execute(request).await
    }

    /// The payment a `402` asks for, checked against what this client may pay.
    pub(crate) fn offer(&self, headers: &http::HeaderMap, host: &str) -> Result<Offer, Error> {
        let header = headers
            .get(X_CASHU)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| Error::BadRequest("402 without an X-Cashu payment request".into()))?;
        let request = decode_request(header)?;
        let amount = request
            .amount
            .map(u64::from)
            .ok_or_else(|| Error::BadRequest("the payment request has no amount".into()))?;
        let unit = request.unit.clone().unwrap_or(CurrencyUnit::Sat);
        let mint = request
            .mints
            .iter()
            .find(|m| self.trusted.contains(*m))
            .cloned()
            .ok_or_else(|| {
                Error::UntrustedMint(request.mints.iter().map(|m| m.to_string()).collect())
            })?;
        let lock = match &request.nut10 {
            None => None,
            Some(lock) if lock.kind == Kind::P2PK => Some(
                PublicKey::from_str(&lock.data)
                    .map_err(|e| Error::BadRequest(format!("P2PK lock key: {e}")))?,
            ),
            Some(lock) => {
                return Err(Error::BadRequest(format!(
                    "unsupported lock {:?} in the payment request",
                    lock.kind
                )))
            }
        };
        tracing::debug!(host, amount, unit = %unit, mint = %mint, "402: payment asked");
        Ok(Offer {
            mint,
            unit,
            amount,
            lock,
        })
    }

    /// Takes `amount` (plus input fees) out of the wallet as a token, within the budget.
    pub(crate) async fn spend(
        &self,
        offer: &Offer,
        amount: u64,
        host: &str,
    ) -> Result<Spent, Error> {
        let wallet = self.wallets.wallet(&offer.mint, &offer.unit)?;
        let options = SendOptions {
            include_fee: true,
            conditions: offer
                .lock
                .map(|key| SpendingConditions::new_p2pk(key, None)),
            ..SendOptions::default()
        };
        let prepared = wallet
            .prepare_send(Amount::from(amount), options)
            .await
            .map_err(|e| Error::from_wallet(e, amount, &offer.unit))?;
        let fee = u64::from(prepared.fee());
        // The budget is checked with the fee included, before any ecash leaves the wallet.
        let reserved = self.budget.lock().reserve(host, &offer.unit, amount + fee);
        let reservation = match reserved {
            Ok(reservation) => reservation,
            Err(over) => {
                if let Err(err) = prepared.cancel().await {
                    tracing::warn!(error = %err, "could not cancel a prepared payment");
                }
                return Err(Error::OverBudget(over));
            }
        };
        let operation = prepared.operation_id();
        match prepared.confirm(None).await {
            Ok(token) => Ok(Spent {
                token: token.to_string(),
                fee,
                reservation,
                operation,
                wallet,
            }),
            Err(err) => {
                self.budget.lock().release(&reservation, amount + fee);
                Err(err.into())
            }
        }
    }

    async fn pay_and_send(
        &self,
        mut request: reqwest::Request,
        offer: Offer,
        host: &str,
    ) -> Result<Paid, Error> {
        let Spent {
            token,
            fee,
            reservation,
            operation,
            wallet,
        } = self.spend(&offer, offer.amount, host).await?;
        let value = HeaderValue::from_str(&token)
            .map_err(|_| Error::Wallet("the token is not a valid header value".into()))?;
        request.headers_mut().insert(X_CASHU, value);
        // A connection lost after the token left may have been paid: the server answers
        // the same token again from its receipt, so it is retried once as it was.
        let retry = request.try_clone();
        let sent = match self.http.execute(request).await {
            Ok(response) => Ok(response),
            Err(first) => match retry {
                Some(retry) => self.http.execute(retry).await.map_err(|_| first),
                None => Err(first),
            },
        };
        let response = match sent {
            Ok(response) => response,
            Err(err) => {
                self.reclaim(&wallet, operation, &reservation, offer.amount + fee)
                    .await;
                return Err(err.into());
            }
        };
        if response.status() == StatusCode::PAYMENT_REQUIRED {
            // Refused after all (e.g. another mint's keyset): the token is ours again if
            // the server did not spend it.
            self.reclaim(&wallet, operation, &reservation, offer.amount + fee)
                .await;
            return Err(Error::Refused(format!(
                "{host} answered 402 again to a payment of {} {}",
                offer.amount, offer.unit
            )));
        }
        let returned = self.take_returned(&response).await;
        if returned > 0 {
            self.budget.lock().release(&reservation, returned);
        }
        self.sync_nip60(&offer.mint, &offer.unit).await;
        let payment = Payment {
            mint: offer.mint,
            unit: offer.unit,
            price: offer.amount,
            fee,
            returned,
        };
        tracing::info!(host, unit = %payment.unit, cost = payment.cost(), status = %response.status(), "paid request");
        Ok(Paid {
            response,
            payment: Some(payment),
            via_session: false,
        })
    }

    /// Receives the change or refund a response carries in `X-Cashu`; 0 if none (or if
    /// it could not be received, which is logged: the server may have sent a bad token).
    pub(crate) async fn take_returned(&self, response: &reqwest::Response) -> u64 {
        let Some(token) = response
            .headers()
            .get(X_CASHU)
            .and_then(|v| v.to_str().ok())
            .filter(|v| v.starts_with("cashu"))
        else {
            return 0;
        };
        match self.wallets.receive(token).await {
            Ok((_, _, amount)) => amount,
            Err(err) => {
                tracing::warn!(error = %err, "could not receive the change or refund");
                0
            }
        }
    }

    /// Takes back a sent token the server did not spend, and its share of the budget.
    pub(crate) async fn reclaim(
        &self,
        wallet: &cdk::wallet::Wallet,
        operation: uuid::Uuid,
        reservation: &Reservation,
        amount: u64,
    ) {
        match wallet.revoke_send(operation).await {
            Ok(back) => {
                self.budget
                    .lock()
                    .release(reservation, u64::from(back).min(amount));
                tracing::info!(amount = u64::from(back), "reclaimed an unspent payment");
            }
            Err(err) => {
                tracing::warn!(error = %err, "could not reclaim the payment (spent by the server?)")
            }
        }
    }
}

pub(crate) struct Spent {
    pub token: String,
    pub fee: u64,
    pub reservation: Reservation,
    pub operation: uuid::Uuid,
    pub wallet: cdk::wallet::Wallet,
}

/// The client as a tower [`Service`](tower_service::Service) over `http` types, so it composes with tower
/// middleware (timeouts, rate limits, retries) and code written against `http::Request`.
/// The answer is the final response (after paying if asked); what it cost is in its
/// extensions as a [`Payment`].
impl<B> tower_service::Service<http::Request<B>> for PayingClient
where
    B: Into<reqwest::Body>,
{
    type Response = http::Response<reqwest::Body>;
    type Error = Error;
    type Future =
        std::pin::Pin<Box<dyn std::future::Future<Output = Result<Self::Response, Error>> + Send>>;

    fn poll_ready(
        &mut self,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let client = self.clone();
        let request = reqwest::Request::try_from(request);
        Box::pin(async move {
            let paid = client.execute(request?).await?;
            let mut response = http::Response::from(paid.response);
            if let Some(payment) = paid.payment {
                response.extensions_mut().insert(payment);
            }
            Ok(response)
        })
    }
}

/// `scheme://host[:port]` of a URL: what a session belongs to.
fn origin(url: &reqwest::Url) -> String {
    url.origin().ascii_serialization()
}

pub(crate) struct Offer {
    pub mint: MintUrl,
    pub unit: CurrencyUnit,
    pub amount: u64,
    pub lock: Option<PublicKey>,
}

/// A NUT-18 (`creqA…`) or NUT-26 (`creqb1…`) payment request.
pub fn decode_request(text: &str) -> Result<PaymentRequest, Error> {
    let text = text.trim();
    // `get`, not `[..5]`: the fifth byte may fall inside a multi-byte character.
    let bech32 = text.len() > 5
        && text
            .get(..5)
            .is_some_and(|p| p.eq_ignore_ascii_case("creqb"));
    let decoded = if bech32 {
        PaymentRequest::from_bech32_string(text).map_err(|e| e.to_string())
    } else {
        PaymentRequest::from_str(text).map_err(|e| e.to_string())
    };
    decoded.map_err(|e| Error::BadRequest(format!("cannot decode the payment request: {e}")))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// Found by the `payment_request` fuzz target: a multi-byte character across the
    /// fifth byte made the prefix check panic.
    #[test]
    fn a_request_with_a_multibyte_character_early_is_refused_not_a_panic() {
        let text = "creq\u{150}\u{379}paDdmNGEyYjMI5YXVjc2F0YW2BeBZXhhbXBsZS5j";
        assert!(matches!(decode_request(text), Err(Error::BadRequest(_))));
        assert!(decode_request("creq\u{e9}").is_err());
    }

    #[test]
    fn both_payment_request_encodings_decode() {
        let mint: MintUrl = "http://127.0.0.1:3338".parse().unwrap();
        let request = PaymentRequest::builder()
            .amount(Amount::from(21u64))
            .unit(CurrencyUnit::Sat)
            .single_use(true)
            .mints(vec![mint.clone()])
            .build();
        let creq_a = request.to_string();
        let creq_b = request.to_bech32_string().unwrap();
        assert!(creq_a.starts_with("creqA"));
        for text in [creq_a, creq_b.clone(), creq_b.to_lowercase()] {
            let decoded = decode_request(&text).unwrap();
            assert_eq!(decoded.amount, Some(Amount::from(21u64)));
            assert_eq!(decoded.mints, vec![mint.clone()]);
        }
        assert!(matches!(
            decode_request("creqAnot-base64"),
            Err(Error::BadRequest(_))
        ));
        assert!(matches!(
            decode_request("cashuB"),
            Err(Error::BadRequest(_))
        ));
    }
}
