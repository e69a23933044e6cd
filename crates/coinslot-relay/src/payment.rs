//! What a write costs and how it is paid.
//!
//! **Paying with the event.** Add a tag `["cashu", "<cashuB… or cashuA… token>"]` to the
//! event before signing it. The relay redeems the token against its mint, credits its net
//! value to the author's balance, then takes the kind's price from that balance, so an
//! overpayment is never lost: it stays as prepaid balance for later posts (a large token on
//! one post is a deposit). The tag stays in the stored event (the signature covers it), but
//! its proofs are spent by then.
//!
//! Clients often send one event to many relays, so any of them could take a bearer token
//! first. The payment request therefore asks for proofs locked (NUT-11 P2PK) to the mint's
//! key: such a token is worth nothing to another relay. Unlocked tokens are accepted too,
//! unless [`Cashier::require_lock`] is set.
//!
//! **Paying from a balance.** Events without a tag are paid from the author's balance when
//! the connection is NIP-42 authenticated as the author, so nobody can spend your balance by
//! re-publishing your old events.
//!
//! **Refusals** are `OK false` with the NIP-01 machine-readable prefix
//! `restricted: payment-required: <price> <unit> for this kind; <why>. <creqA…>`: the last
//! word is a NUT-18 payment request naming the amount, the unit and the mint. A malformed
//! tag is `invalid:`; an event already stored is `duplicate:` and costs nothing.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::Arc;

use coinslot_layer::nut24::payment_request;
use coinslot_layer::Price;
use coinslot_mint::cashu::mint_url::MintUrl;
use coinslot_mint::cashu::nuts::{CurrencyUnit, Token};
use coinslot_mint::{Error, Mint, Payment, Purchase};
use coinslot_mint::{Event as MintEvent, PaidWith};
use nostr_sdk::prelude::*;
use serde::{Deserialize, Serialize};

/// The tag that carries a token.
pub const CASHU_TAG: &str = "cashu";

/// Prices of writes, per event kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Prices {
    /// The unit prices are in (one the mint issues).
    pub unit: String,
    /// The price of kinds not listed in `kinds`.
    pub default: u64,
    /// Price per kind (`0`: free).
    pub kinds: BTreeMap<u16, u64>,
}

impl Default for Prices {
    fn default() -> Self {
        Self {
            unit: "sat".into(),
            default: 1,
            // Deletions never cost anything; the mint's announcements (37400, 38172) and
            // the mint-over-nostr traffic (27401 requests, 27402 results) are free so
            // the relay can carry its own mint, and a wallet can top up through it.
            kinds: BTreeMap::from([(5, 0), (27401, 0), (27402, 0), (37400, 0), (38172, 0)]),
        }
    }
}

impl Prices {
    /// The price of writing an event of `kind`.
    pub fn of(&self, kind: Kind) -> u64 {
        self.kinds
            .get(&kind.as_u16())
            .copied()
            .unwrap_or(self.default)
    }

    /// The unit.
    pub fn currency_unit(&self) -> CurrencyUnit {
        CurrencyUnit::from_str(&self.unit)
            .unwrap_or(CurrencyUnit::Custom(self.unit.as_str().into()))
    }
}

/// An accepted write: what it cost and the author's balance after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Charged {
    /// The price taken.
    pub price: u64,
    /// Value the attached token brought in (net of input fees), if any.
    pub deposited: u64,
    /// The author's balance after the write.
    pub balance: u64,
}

/// A refused write: the `OK` message (with its machine-readable prefix).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused(pub String);

/// Takes payment for events on behalf of the relay.
#[derive(Debug, Clone)]
pub struct Cashier {
    mint: Mint,
    mint_url: MintUrl,
    prices: Prices,
    require_lock: bool,
}

impl Cashier {
    /// A cashier redeeming against `mint` (reachable at `mint_url`) at `prices`.
    pub fn new(mint: Mint, mint_url: MintUrl, prices: Prices) -> Self {
        Self {
            mint,
            mint_url,
            prices,
            require_lock: false,
        }
    }

    /// Accept only tokens locked (NUT-11) to the mint's key.
    pub fn require_lock(mut self, require: bool) -> Self {
        self.require_lock = require;
        self
    }

    /// Where clients reach the mint (named in payment requests).
    pub fn mint_url(&self) -> &MintUrl {
        &self.mint_url
    }

    /// Gives `amount` back to `author`'s balance (a paid write of `kind` the store then
    /// refused).
    pub async fn refund(&self, author: &PublicKey, kind: Kind, amount: u64) -> Result<(), Error> {
        if amount == 0 {
            return Ok(());
        }
        let unit = self.prices.currency_unit();
        self.mint
            .credit_account(&account_id(author), &unit, amount, None)
            .await?;
        self.mint.record(MintEvent::Refunded {
            unit,
            amount,
            failed: true,
            route: Some(kind_route(kind)),
        });
        Ok(())
    }

    /// The price table.
    pub fn prices(&self) -> &Prices {
        &self.prices
    }

    /// The balance of `author`.
    pub async fn balance(&self, author: &PublicKey) -> Result<u64, Error> {
        Ok(self
            .mint
            .account(&account_id(author))
            .await?
            .map(|account| account.balance)
            .unwrap_or(0))
    }

    /// Charges for `event`, from its `cashu` tag or, when the connection is authenticated
    /// as its author (`authed`), from the author's balance.
    pub async fn charge(
        &self,
        event: &Event,
        authed: Option<&PublicKey>,
    ) -> Result<Charged, Refused> {
        let price = self.prices.of(event.kind);
        let unit = self.prices.currency_unit();
        let account = account_id(&event.pubkey);
        let mut deposited = 0;
        if let Some(token) = token_tag(event) {
            deposited = self.deposit(token, &account, price).await?;
        } else if price > 0 && authed != Some(&event.pubkey) {
            return Err(self.payment_required(
                price,
                "attach a [\"cashu\", \"<token>\"] tag, or AUTH (NIP-42) to pay from a prepaid balance",
            ));
        }
        if price == 0 {
            let balance = self.balance(&event.pubkey).await.unwrap_or(deposited);
            return Ok(Charged {
                price,
                deposited,
                balance,
            });
        }
        match self.mint.debit_account(&account, &unit, price).await {
            Ok(balance) => {
                self.mint.record(MintEvent::Paid {
                    unit,
                    amount: price,
                    fee: 0,
                    with: PaidWith::Session,
                    route: Some(kind_route(event.kind)),
                });
                Ok(Charged {
                    price,
                    deposited,
                    balance,
                })
            }
            Err(Error::AccountNotFound) => {
                Err(self.payment_required(price, "no prepaid balance for this pubkey"))
            }
            Err(Error::InsufficientBalance { balance }) => {
                Err(self
                    .payment_required(price, &format!("the prepaid balance is {balance} {unit}")))
            }
            Err(err) => {
                let Refused(mut message) = internal(&err);
                if deposited > 0 {
                    message.push_str(&format!(
                        "; the token's {deposited} {unit} are in your balance"
                    ));
                }
                Err(Refused(message))
            }
        }
    }

    /// Redeems `token` into `account`; returns the value credited.
    async fn deposit(&self, token: &str, account: &str, price: u64) -> Result<u64, Refused> {
        let token = Token::from_str(token.trim())
            .map_err(|e| Refused(format!("invalid: the cashu tag is not a Cashu token: {e}")))?;
        let proofs = token.proofs(&self.mint.keysets().keysets).map_err(|e| {
            self.payment_required(
                price,
                &format!("the token is not from this relay's mint: {e}"),
            )
        })?;
        let payment = Payment {
            unit: self.prices.currency_unit(),
            buys: Purchase::Deposit {
                account: account.to_string(),
                min: price,
            },
            require_lock: self.require_lock,
            receipt: None,
        };
        match self.mint.redeem(proofs, payment).await {
            Ok(redeemed) => Ok(redeemed.kept),
            Err(err) if err.is_internal() => Err(internal(&err)),
            Err(err) => Err(self.payment_required(
                price,
                &format!("the token was refused: {err} (code {})", err.code()),
            )),
        }
    }

    fn payment_required(&self, price: u64, why: &str) -> Refused {
        let request = payment_request(
            &Price::new(price, self.prices.currency_unit()),
            std::slice::from_ref(&self.mint_url),
            Some(&self.mint.pubkey()),
        );
        Refused(format!(
            "restricted: payment-required: {price} {} for this kind; {why}. {request}",
            self.prices.unit
        ))
    }
}

fn internal(err: &Error) -> Refused {
    tracing::error!(target: "coinslot::relay", error = %err, "cannot take payment");
    Refused("error: the relay cannot take payments right now; nothing was charged".into())
}

/// The earnings ledger's name for writes of `kind`.
fn kind_route(kind: Kind) -> Arc<str> {
    Arc::from(format!("kind {}", kind.as_u16()))
}

/// The prepaid account of a nostr pubkey.
pub fn account_id(author: &PublicKey) -> String {
    format!("nostr:{}", author.to_hex())
}

/// The token in an event's first `cashu` tag.
pub fn token_tag(event: &Event) -> Option<&str> {
    event.tags.iter().find_map(|tag| match tag.as_slice() {
        [name, token, ..] if name == CASHU_TAG => Some(token.as_str()),
        _ => None,
    })
}
