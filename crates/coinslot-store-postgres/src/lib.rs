//! # coinslot-store-postgres
//!
//! A [`MintStore`] on PostgreSQL, for several `coinslotd` instances sharing one database.
//! It passes the same conformance suite as the sled and in-memory stores.
//!
//! ```no_run
//! # async fn demo() -> Result<(), coinslot_mint::StoreError> {
//! use coinslot_store_postgres::{PostgresOptions, PostgresStore};
//!
//! let store = PostgresStore::connect(
//!     "postgres://coinslot@db.internal/coinslot",
//!     PostgresOptions::default(),
//! )
//! .await?;
//! # Ok(()) }
//! ```
//!
//! **Double spends across instances.** A commit is one transaction. Spent `Y`s and signed
//! `B_`s are primary keys inserted with `ON CONFLICT DO NOTHING … RETURNING`: of two
//! transactions inserting the same key, the second waits on the first's index entry and,
//! once it commits, inserts nothing, so it sees that the proof is spent and rolls back
//! everything it wrote. No row is read and then updated (no lost-update window) and no
//! table is locked: unrelated spends never wait for each other. A quote moves to `ISSUED`
//! with `UPDATE … WHERE state = 'PAID'`, which the row lock makes single-winner too.
//!
//! **Durability.** Commits return after PostgreSQL's `COMMIT` (with the server's default
//! `synchronous_commit = on`, after the WAL is flushed). Account debits run with
//! `synchronous_commit = off`: they are ordered with every other write, and a crash may
//! forget the newest ones, in the customer's favour, as the [`MintStore`] contract allows.
//!
//! **Other instances' changes** reach this one's NUT-17 subscribers: a commit notifies
//! (`pg_notify`, delivered only if it commits) the `Y`s it spent and the quote it issued,
//! and a quote marked paid is notified too; every store `LISTEN`s on its schema's channel
//! and hands the other instances' changes to the mint ([`MintStore::shared_events`]).
//!
//! **Supply counters** are append-only rows (one per commit) summed on read and folded into
//! one row per keyset every minute, so commits of one keyset do not queue on one row lock.
//!
//! Migrations are embedded (`migrations/`, run by refinery) and run at connect under a
//! PostgreSQL advisory lock, so instances starting together do not race.

use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use coinslot_mint::accounting::CREDIT_LOOKUP_PREFIX;
use coinslot_mint::cashu::nuts::{BlindSignature, CurrencyUnit, Id, MintQuoteState, PublicKey};
use coinslot_mint::store::{
    point_key, supply_delta, AccountRecord, AccountTotal, AccountWrite, AnswerRecord, Commit,
    EarningsRecord, KeysetRecord, MintQuoteRecord, PassRecord, PassWrite, QuoteTotal, ReceiptGuard,
    ReceiptRecord, ReceiptWrite, SettingRecord, SharedEvent, Supply,
};
use coinslot_mint::{MintStore, StoreError};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio::sync::broadcast;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{AsyncMessage, Row};
use tokio_postgres_rustls::MakeRustlsConnect;

pub mod tls;

pub use tls::{RootCerts, SslMode, TlsSettings};

mod embedded {
    refinery::embed_migrations!("migrations");
}

/// Held (as a session advisory lock) while migrations run.
const MIGRATION_LOCK: i64 = 0x636f_696e_736c_6f74; // "coinslot"

/// How to connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostgresOptions {
    /// Schema holding the tables (created if missing); `None`: the server's default
    /// (`public`). Lets several mints, or test runs, share one database.
    pub schema: Option<String>,
    /// Connections in the pool.
    pub max_connections: usize,
    /// How long a request waits for a connection (or for connecting) before it fails: the
    /// database is down or overloaded.
    pub acquire_timeout: Duration,
    /// CA certificates (PEM) the server's certificate must chain to, beside or instead of
    /// the URL's `sslrootcert`.
    pub ca_file: Option<std::path::PathBuf>,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        Self {
            schema: None,
            max_connections: 16,
            acquire_timeout: Duration::from_secs(5),
            ca_file: None,
        }
    }
}

/// The PostgreSQL store. Cheap to clone: clones share the pool.
#[derive(Clone)]
pub struct PostgresStore {
    pool: Pool,
    /// This store's id in notifications, so it ignores its own.
    instance: String,
    /// The NOTIFY channel of this schema.
    channel: String,
    shared: broadcast::Sender<SharedEvent>,
    _tasks: Arc<Tasks>,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("pool", &self.pool.status())
            .finish_non_exhaustive()
    }
}

/// Background tasks (supply folding, the LISTEN connection), stopped with the last clone
/// of the store.
struct Tasks(Vec<tokio::task::JoinHandle<()>>);

impl Drop for Tasks {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

/// `Y`s per notification: PostgreSQL caps a payload at 8000 bytes.
const YS_PER_NOTIFICATION: usize = 100;

/// How often supply rows are folded.
const COMPACT_EVERY: Duration = Duration::from_secs(60);

impl PostgresStore {
    /// Connects to `url` (`postgres://user:password@host:port/database` or a libpq
    /// key=value string), creates the schema if needed and runs the migrations. Must run
    /// inside a tokio runtime. TLS follows libpq's `sslmode` and `sslrootcert` in the URL
    /// (see [`tls`]); the default, `prefer`, encrypts when the server offers it.
    pub async fn connect(url: &str, options: PostgresOptions) -> Result<Self, StoreError> {
        let (url, tls) = TlsSettings::split(url)?;
        let tls = tls.with_ca_file(options.ca_file.as_deref())?;
        let connector = tls.connector()?;
        let mut config = tokio_postgres::Config::from_str(&url)
            .map_err(|e| backend(format!("database URL: {e}")))?;
        config.ssl_mode(tls.mode.negotiation());
        config.connect_timeout(options.acquire_timeout);
        if let Some(schema) = &options.schema {
            let valid = !schema.is_empty()
                && schema
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                return Err(backend(format!(
                    "schema `{schema}`: use letters, digits and underscores only"
                )));
            }
            config.options(format!("-c search_path={schema}"));
        }
        let channel = format!("coinslot_{}", options.schema.as_deref().unwrap_or("public"));
        let listen_config = config.clone();
        let manager = Manager::from_config(
            config,
            connector.clone(),
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(options.max_connections.max(1))
            .wait_timeout(Some(options.acquire_timeout))
            .create_timeout(Some(options.acquire_timeout))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| backend(format!("connection pool: {e}")))?;
        let mut client = pool
            .get()
            .await
            .map_err(|e| backend(format!("cannot connect to PostgreSQL: {}", with_causes(&e))))?;
        if let Some(schema) = &options.schema {
            let created = client
                .batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\""))
                .await;
            // Two instances creating it at once: one of them sees a unique violation.
            if let Err(e) = created {
                if e.code() != Some(&SqlState::UNIQUE_VIOLATION) {
                    return Err(backend(format!("cannot create schema `{schema}`: {e}")));
                }
            }
        }
        client
            .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(db)?;
        let migrated = embedded::migrations::runner()
            .run_async(&mut **client)
            .await
            .map_err(|e| backend(format!("migrations: {e}")));
        client
            .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(db)?;
        migrated?;
        drop(client);
        let compactor = tokio::spawn({
            let pool = pool.clone();
            async move {
                let mut tick = tokio::time::interval(COMPACT_EVERY);
                loop {
                    tick.tick().await;
                    if let Err(e) = compact_supply(&pool).await {
                        tracing::warn!(target: "coinslot::store", error = %e, "cannot fold supply rows");
                    }
                }
            }
        });
        let instance = format!("{:016x}", rand::random::<u64>());
        let (shared, _) = broadcast::channel(4096);
        let listener = tokio::spawn(listen(
            listen_config,
            connector,
            channel.clone(),
            instance.clone(),
            shared.clone(),
        ));
        Ok(Self {
            pool,
            instance,
            channel,
            shared,
            _tasks: Arc::new(Tasks(vec![compactor, listener])),
        })
    }

    /// The notifications telling other instances what a commit changed: spent `Y`s in
    /// chunks, and the quote it issued.
    fn notifications(&self, commit: &Commit<'_>) -> Vec<String> {
        let mut payloads: Vec<String> = commit
            .spend
            .chunks(YS_PER_NOTIFICATION)
            .map(|chunk| {
                let ys: Vec<String> = chunk.iter().map(|p| p.y.to_hex()).collect();
                serde_json::json!({ "from": self.instance, "spent": ys }).to_string()
            })
            .collect();
        if let Some(id) = commit.issue_quote {
            payloads.push(self.quote_notification(id));
        }
        payloads
    }

    fn quote_notification(&self, id: &str) -> String {
        serde_json::json!({ "from": self.instance, "quote": id }).to_string()
    }

    fn setting_notification(&self, name: &str) -> String {
        serde_json::json!({ "from": self.instance, "setting": name }).to_string()
    }

    /// Runs SQL statements as they are (administration: e.g. dropping a test schema).
    pub async fn execute_unprepared(&self, sql: &str) -> Result<(), StoreError> {
        self.client().await?.batch_execute(sql).await.map_err(db)
    }

    /// Whether this store's connections to the server are encrypted (TLS).
    pub async fn encrypted(&self) -> Result<bool, StoreError> {
        let rows = self
            .query(
                "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                &[],
            )
            .await?;
        Ok(rows
            .first()
            .map(|row| get(row, "ssl"))
            .transpose()?
            .unwrap_or(false))
    }

    /// Bytes on disk of each table of this store, indexes and TOAST included, largest first.
    pub async fn table_bytes(&self) -> Result<Vec<(String, u64)>, StoreError> {
        self.query(
            "SELECT c.relname::text AS name, pg_total_relation_size(c.oid) AS bytes \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = current_schema() AND c.relkind = 'r' ORDER BY bytes DESC",
            &[],
        )
        .await?
        .iter()
        .map(|row| Ok((get(row, "name")?, uint(get(row, "bytes")?)?)))
        .collect()
    }

    /// Closes the pool: connections in use close when they come back.
    pub fn close(&self) {
        self.pool.close();
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool
            .get()
            .await
            .map_err(|e| backend(format!("PostgreSQL unavailable: {e}")))
    }

    /// Runs one query on a pooled connection, as a prepared (and cached) statement.
    async fn query(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, StoreError> {
        let client = self.client().await?;
        let statement = client.prepare_cached(sql).await.map_err(db)?;
        client.query(&statement, params).await.map_err(db)
    }
}

/// Folds all supply rows into one per keyset, in one statement. Rows inserted meanwhile
/// are not touched; two folds at once each move only the rows they deleted.
async fn compact_supply(pool: &Pool) -> Result<(), StoreError> {
    let client = pool
        .get()
        .await
        .map_err(|e| backend(format!("PostgreSQL unavailable: {e}")))?;
    client
        .batch_execute(
            "WITH moved AS (DELETE FROM supply_deltas RETURNING keyset_id, issued, redeemed) \
             INSERT INTO supply_deltas (keyset_id, issued, redeemed) \
             SELECT keyset_id, sum(issued)::bigint, sum(redeemed)::bigint FROM moved \
             GROUP BY keyset_id",
        )
        .await
        .map_err(db)
}

/// `err` with its causes: a pool's "backend error" alone does not say the certificate was
/// refused.
fn with_causes(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut cause = err.source();
    while let Some(inner) = cause {
        let more = inner.to_string();
        if !text.contains(&more) {
            text = format!("{text}: {more}");
        }
        cause = inner.source();
    }
    text
}

fn backend(message: impl Into<String>) -> StoreError {
    StoreError::Backend(message.into())
}

fn db(e: tokio_postgres::Error) -> StoreError {
    match e.as_db_error() {
        Some(err) => backend(format!("PostgreSQL: {}", err.message())),
        None => backend(format!("PostgreSQL: {e}")),
    }
}

fn int(value: u64) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| backend(format!("{value} does not fit a BIGINT")))
}

fn uint(value: i64) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| StoreError::Corrupt(format!("negative amount {value}")))
}

fn json<T: serde::Serialize>(value: &T) -> Result<serde_json::Value, StoreError> {
    serde_json::to_value(value).map_err(|e| backend(format!("encoding: {e}")))
}

fn from_json<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> Result<T, StoreError> {
    serde_json::from_value(value).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn get<'a, T: tokio_postgres::types::FromSql<'a>>(
    row: &'a Row,
    column: &str,
) -> Result<T, StoreError> {
    row.try_get(column)
        .map_err(|e| StoreError::Corrupt(format!("column {column}: {e}")))
}

fn state_name(state: MintQuoteState) -> &'static str {
    match state {
        MintQuoteState::Unpaid => "UNPAID",
        MintQuoteState::Paid => "PAID",
        MintQuoteState::Issued => "ISSUED",
    }
}

fn parse_state(name: &str) -> Result<MintQuoteState, StoreError> {
    match name {
        "UNPAID" => Ok(MintQuoteState::Unpaid),
        "PAID" => Ok(MintQuoteState::Paid),
        "ISSUED" => Ok(MintQuoteState::Issued),
        other => Err(StoreError::Corrupt(format!("quote state {other}"))),
    }
}

fn parse_unit(name: &str) -> CurrencyUnit {
    CurrencyUnit::from_str(name).unwrap_or_else(|_| CurrencyUnit::custom(name))
}

/// A quote row: the record, with the state columns as the truth.
fn quote_from_row(row: &Row) -> Result<MintQuoteRecord, StoreError> {
    let mut quote: MintQuoteRecord = from_json(get(row, "record")?)?;
    quote.state = parse_state(get(row, "state")?)?;
    quote.updated_at = uint(get(row, "updated_at")?)?;
    Ok(quote)
}

fn account_from_row(row: &Row) -> Result<AccountRecord, StoreError> {
    Ok(AccountRecord {
        unit: parse_unit(get(row, "unit")?),
        balance: uint(get(row, "balance")?)?,
        created_at: uint(get(row, "created_at")?)?,
    })
}

/// The first of `points` that is repeated in it or missing from `inserted`: the one that
/// made an insert of all of them fail.
fn first_refused(points: &[PublicKey], inserted: &HashSet<Vec<u8>>) -> String {
    let mut seen = HashSet::new();
    points
        .iter()
        .find(|point| {
            let key = point_key(point).to_vec();
            !seen.insert(key.clone()) || !inserted.contains(&key)
        })
        .map(|point| point.to_hex())
        .unwrap_or_default()
}

type Tx<'a> = deadpool_postgres::Transaction<'a>;

/// Runs an `INSERT … ON CONFLICT DO NOTHING RETURNING <key>` and returns the keys it
/// inserted; fewer than given means some were there already, or repeated, and the caller
/// rolls back.
async fn inserted_keys(
    tx: &Tx<'_>,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<HashSet<Vec<u8>>, StoreError> {
    let statement = tx.prepare_cached(sql).await.map_err(db)?;
    let rows = tx.query(&statement, params).await.map_err(db)?;
    rows.iter().map(|row| get(row, "key")).collect()
}

async fn one(
    tx: &Tx<'_>,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Option<Row>, StoreError> {
    let statement = tx.prepare_cached(sql).await.map_err(db)?;
    tx.query_opt(&statement, params).await.map_err(db)
}

async fn run(tx: &Tx<'_>, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64, StoreError> {
    let statement = tx.prepare_cached(sql).await.map_err(db)?;
    tx.execute(&statement, params).await.map_err(db)
}

const PASS_COLUMNS: &str = "id, scope, unit, expires_at, revoked, created_at, client_key";

fn pass_from_row(row: &Row) -> Result<PassRecord, StoreError> {
    Ok(PassRecord {
        id: get(row, "id")?,
        scope: get(row, "scope")?,
        unit: parse_unit(get(row, "unit")?),
        expires_at: uint(get(row, "expires_at")?)?,
        revoked: get(row, "revoked")?,
        created_at: uint(get(row, "created_at")?)?,
        client_key: get(row, "client_key")?,
    })
}

/// Buys or extends a pass inside the commit's transaction. A new pass is one insert; an
/// existing one is locked, checked and updated, so concurrent extensions add up.
async fn apply_pass(tx: &Tx<'_>, write: &PassWrite<'_>) -> Result<(), StoreError> {
    let fresh = write.apply(None)?;
    let inserted = one(
        tx,
        "INSERT INTO passes (id, scope, unit, expires_at, revoked, created_at, client_key) \
         VALUES ($1, $2, $3, $4, FALSE, $5, $6) ON CONFLICT (id) DO NOTHING RETURNING id",
        &[
            &fresh.id,
            &fresh.scope,
            &fresh.unit.to_string(),
            &int(fresh.expires_at)?,
            &int(fresh.created_at)?,
            &fresh.client_key,
        ],
    )
    .await?;
    if inserted.is_some() {
        return Ok(());
    }
    let sql = format!("SELECT {PASS_COLUMNS} FROM passes WHERE id = $1 FOR UPDATE");
    let stored = one(tx, &sql, &[&write.id])
        .await?
        .map(|row| pass_from_row(&row))
        .transpose()?;
    let pass = write.apply(stored)?;
    run(
        tx,
        "UPDATE passes SET expires_at = $2, client_key = $3 WHERE id = $1",
        &[&pass.id, &int(pass.expires_at)?, &pass.client_key],
    )
    .await?;
    Ok(())
}

/// Writes a receipt as its guard allows; [`StoreError::ReceiptChanged`] (and the caller
/// rolls back) when the guard fails. Of two transactions writing one key, the second waits
/// on the first's row (or index entry) and then sees its version.
async fn write_receipt(tx: &Tx<'_>, write: &ReceiptWrite<'_>) -> Result<(), StoreError> {
    let key = write.key.to_vec();
    let (created_at, data) = (int(write.created_at)?, write.data.to_vec());
    let written = match write.guard {
        ReceiptGuard::Any => {
            run(
                tx,
                "INSERT INTO receipts (key, created_at, data, version) VALUES ($1, $2, $3, 1) \
             ON CONFLICT (key) DO UPDATE SET data = EXCLUDED.data, \
             version = receipts.version + 1",
                &[&key, &created_at, &data],
            )
            .await?
        }
        ReceiptGuard::Absent | ReceiptGuard::OfInputs => {
            run(
                tx,
                "INSERT INTO receipts (key, created_at, data, version) VALUES ($1, $2, $3, 1) \
             ON CONFLICT (key) DO NOTHING",
                &[&key, &created_at, &data],
            )
            .await?
        }
        ReceiptGuard::Version(version) => {
            run(
                tx,
                "UPDATE receipts SET data = $2, version = version + 1 \
             WHERE key = $1 AND version = $3",
                &[&key, &data, &int(version)?],
            )
            .await?
        }
    };
    if written == 0 {
        return Err(StoreError::ReceiptChanged);
    }
    Ok(())
}

/// Takes `amount` from an account inside a transaction; fails like the store's own debit.
async fn debit(tx: &Tx<'_>, id: &str, unit: &CurrencyUnit, amount: u64) -> Result<u64, StoreError> {
    let debited = one(
        tx,
        "UPDATE accounts SET balance = balance - $3 \
         WHERE id = $1 AND unit = $2 AND balance >= $3 RETURNING balance",
        &[&id, &unit.to_string(), &int(amount)?],
    )
    .await?;
    let Some(row) = debited else {
        let found = one(
            tx,
            "SELECT unit, balance, created_at FROM accounts WHERE id = $1",
            &[&id],
        )
        .await?;
        let account = found
            .as_ref()
            .map(account_from_row)
            .transpose()?
            .ok_or(StoreError::AccountNotFound)?;
        // Names the rule that failed (unit or balance), as every store does.
        account.debited(unit, amount)?;
        return Err(backend("the debit raced with another write; try again"));
    };
    uint(get(&row, "balance")?)
}

impl PostgresStore {
    /// One commit, in one transaction: every check is a write that fails (and rolls
    /// everything back) when its rule does not hold.
    async fn apply(&self, commit: &Commit<'_>) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db)?;
        if commit.lazy {
            // Ordered with every other write in the WAL, but not waited for.
            tx.batch_execute("SET LOCAL synchronous_commit TO OFF")
                .await
                .map_err(db)?;
        }
        if !commit.spend.is_empty() {
            let ys: Vec<PublicKey> = commit.spend.iter().map(|p| p.y).collect();
            let keys: Vec<Vec<u8>> = ys.iter().map(|y| point_key(y).to_vec()).collect();
            let inserted = inserted_keys(
                &tx,
                "INSERT INTO spent (y) SELECT * FROM UNNEST($1::bytea[]) \
                 ON CONFLICT DO NOTHING RETURNING y AS key",
                &[&keys],
            )
            .await?;
            if inserted.len() != ys.len() {
                return Err(StoreError::AlreadySpent(first_refused(&ys, &inserted)));
            }
        }
        if !commit.issue.is_empty() {
            let bs: Vec<PublicKey> = commit.issue.iter().map(|s| s.blinded).collect();
            let keys: Vec<Vec<u8>> = bs.iter().map(|b| point_key(b).to_vec()).collect();
            let signatures = commit
                .issue
                .iter()
                .map(|s| json(&s.signature))
                .collect::<Result<Vec<_>, _>>()?;
            let inserted = inserted_keys(
                &tx,
                "INSERT INTO signatures (b, signature) \
                 SELECT * FROM UNNEST($1::bytea[], $2::jsonb[]) \
                 ON CONFLICT DO NOTHING RETURNING b AS key",
                &[&keys, &signatures],
            )
            .await?;
            if inserted.len() != bs.len() {
                return Err(StoreError::AlreadySigned(first_refused(&bs, &inserted)));
            }
        }
        if let Some(id) = commit.issue_quote {
            let issued = run(
                &tx,
                "UPDATE mint_quotes SET state = 'ISSUED' WHERE id = $1 AND state = 'PAID'",
                &[&id],
            )
            .await?;
            if issued == 0 {
                let found = one(&tx, "SELECT state FROM mint_quotes WHERE id = $1", &[&id]).await?;
                let state = found
                    .map(|row| get::<String>(&row, "state").and_then(|s| parse_state(&s)))
                    .transpose()?;
                return Err(match state {
                    None => StoreError::QuoteNotFound,
                    Some(MintQuoteState::Issued) => StoreError::QuoteAlreadyIssued,
                    Some(_) => StoreError::QuoteNotPaid,
                });
            }
        }
        match commit.account {
            Some(AccountWrite::Credit { id, unit, amount }) => {
                let credited = one(
                    &tx,
                    "INSERT INTO accounts (id, unit, balance, created_at) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (id) DO UPDATE SET balance = accounts.balance + EXCLUDED.balance \
                     WHERE accounts.unit = EXCLUDED.unit RETURNING balance",
                    &[
                        &id,
                        &unit.to_string(),
                        &int(amount)?,
                        &int(coinslot_mint::unix_now())?,
                    ],
                )
                .await;
                let credited = match credited {
                    Err(StoreError::Backend(why)) if why.contains("out of range") => {
                        return Err(backend("account balance overflows"))
                    }
                    other => other?,
                };
                if credited.is_none() {
                    let found = one(&tx, "SELECT unit FROM accounts WHERE id = $1", &[&id]).await?;
                    let unit = found
                        .map(|row| get::<String>(&row, "unit"))
                        .transpose()?
                        .unwrap_or_default();
                    return Err(StoreError::AccountUnitMismatch(unit));
                }
            }
            Some(AccountWrite::Close { id, balance }) => {
                let closed = run(
                    &tx,
                    "DELETE FROM accounts WHERE id = $1 AND balance = $2",
                    &[&id, &int(balance)?],
                )
                .await?;
                if closed == 0 {
                    let found =
                        one(&tx, "SELECT balance FROM accounts WHERE id = $1", &[&id]).await?;
                    return Err(match found {
                        None => StoreError::AccountNotFound,
                        Some(_) => StoreError::BalanceChanged,
                    });
                }
            }
            Some(AccountWrite::Debit { id, unit, amount }) => {
                debit(&tx, id, unit, amount).await?;
            }
            None => {}
        }
        if let Some(write) = commit.pass {
            apply_pass(&tx, &write).await?;
        }
        if let Some(receipt) = commit.receipt {
            write_receipt(&tx, &receipt).await?;
        }
        if let Some(answer) = commit.answer {
            run(
                &tx,
                "INSERT INTO answers (key, expires_at, data) VALUES ($1, $2, $3) \
                 ON CONFLICT (key) DO UPDATE \
                 SET expires_at = EXCLUDED.expires_at, data = EXCLUDED.data",
                &[
                    &answer.key.to_vec(),
                    &int(answer.expires_at)?,
                    &answer.data.to_vec(),
                ],
            )
            .await?;
        }
        let delta = supply_delta(commit);
        if !delta.is_empty() {
            let mut ids = Vec::with_capacity(delta.len());
            let mut issued = Vec::with_capacity(delta.len());
            let mut redeemed = Vec::with_capacity(delta.len());
            for (id, supply) in delta {
                ids.push(id.to_string());
                issued.push(int(supply.issued)?);
                redeemed.push(int(supply.redeemed)?);
            }
            run(
                &tx,
                "INSERT INTO supply_deltas (keyset_id, issued, redeemed) \
                 SELECT * FROM UNNEST($1::text[], $2::bigint[], $3::bigint[])",
                &[&ids, &issued, &redeemed],
            )
            .await?;
        }
        // Delivered to listeners when (and only if) the transaction commits.
        let payloads = self.notifications(commit);
        if !payloads.is_empty() {
            run(
                &tx,
                "SELECT pg_notify($1, p) FROM UNNEST($2::text[]) AS p",
                &[&self.channel, &payloads],
            )
            .await?;
        }
        tx.commit().await.map_err(db)
    }
}

/// Holds a connection that `LISTEN`s on `channel` and turns other instances' notifications
/// into [`SharedEvent`]s, reconnecting with backoff. What is notified while it is down is
/// missed: websocket clients see it on their next check.
async fn listen(
    config: tokio_postgres::Config,
    connector: MakeRustlsConnect,
    channel: String,
    instance: String,
    shared: broadcast::Sender<SharedEvent>,
) {
    let mut retry = Duration::from_secs(1);
    loop {
        match config.connect(connector.clone()).await {
            Ok((client, mut connection)) => {
                let (notified, mut notifications) = tokio::sync::mpsc::unbounded_channel();
                let driver = tokio::spawn(async move {
                    while let Some(message) =
                        std::future::poll_fn(|cx| connection.poll_message(cx)).await
                    {
                        match message {
                            Ok(AsyncMessage::Notification(n)) => {
                                let _ = notified.send(n.payload().to_string());
                            }
                            Ok(_) => {}
                            Err(_) => break,
                        }
                    }
                });
                if client
                    .batch_execute(&format!("LISTEN \"{channel}\""))
                    .await
                    .is_ok()
                {
                    retry = Duration::from_secs(1);
                    while let Some(payload) = notifications.recv().await {
                        if let Some(event) = parse_notification(&payload, &instance) {
                            let _ = shared.send(event);
                        }
                    }
                }
                driver.abort();
            }
            Err(e) => {
                tracing::warn!(target: "coinslot::store", error = %e, retry_in = ?retry, "cannot listen for other instances");
            }
        }
        tokio::time::sleep(retry).await;
        retry = (retry * 2).min(Duration::from_secs(30));
    }
}

/// A notification from another instance as an event; `None` for our own or a malformed one.
fn parse_notification(payload: &str, instance: &str) -> Option<SharedEvent> {
    let value: serde_json::Value = serde_json::from_str(payload).ok()?;
    if value.get("from")?.as_str()? == instance {
        return None;
    }
    if let Some(id) = value.get("quote").and_then(|q| q.as_str()) {
        return Some(SharedEvent::Quote(id.to_string()));
    }
    if let Some(name) = value.get("setting").and_then(|s| s.as_str()) {
        return Some(SharedEvent::Setting(name.to_string()));
    }
    let ys = value
        .get("spent")?
        .as_array()?
        .iter()
        .filter_map(|y| y.as_str().and_then(|y| PublicKey::from_hex(y).ok()))
        .collect();
    Some(SharedEvent::Spent(ys))
}

#[async_trait::async_trait]
impl MintStore for PostgresStore {
    async fn keysets(&self) -> Result<Vec<KeysetRecord>, StoreError> {
        self.query("SELECT record FROM keysets", &[])
            .await?
            .iter()
            .map(|row| from_json(get(row, "record")?))
            .collect()
    }

    async fn put_keysets(&self, keysets: &[KeysetRecord]) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db)?;
        for keyset in keysets {
            run(
                &tx,
                "INSERT INTO keysets (id, record) VALUES ($1, $2) \
                 ON CONFLICT (id) DO UPDATE SET record = EXCLUDED.record",
                &[&keyset.id.to_string(), &json(keyset)?],
            )
            .await?;
        }
        tx.commit().await.map_err(db)
    }

    async fn add_mint_quote(&self, quote: &MintQuoteRecord) -> Result<(), StoreError> {
        let client = self.client().await?;
        let added = client
            .execute(
                "INSERT INTO mint_quotes (id, lookup_id, state, updated_at, record) \
                 VALUES ($1, $2, $3, $4, $5)",
                &[
                    &quote.id,
                    &quote.lookup_id,
                    &state_name(quote.state),
                    &int(quote.updated_at)?,
                    &json(quote)?,
                ],
            )
            .await;
        match added {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                let on_lookup = e
                    .as_db_error()
                    .and_then(|d| d.constraint())
                    .is_some_and(|c| c.contains("lookup"));
                Err(StoreError::Duplicate(if on_lookup {
                    format!("quote lookup id {}", quote.lookup_id)
                } else {
                    format!("quote {}", quote.id)
                }))
            }
            Err(e) => Err(db(e)),
        }
    }

    async fn mint_quote(&self, id: &str) -> Result<Option<MintQuoteRecord>, StoreError> {
        self.query(
            "SELECT state, updated_at, record FROM mint_quotes WHERE id = $1",
            &[&id],
        )
        .await?
        .first()
        .map(quote_from_row)
        .transpose()
    }

    async fn mint_quote_by_lookup_id(
        &self,
        lookup_id: &str,
    ) -> Result<Option<MintQuoteRecord>, StoreError> {
        self.query(
            "SELECT state, updated_at, record FROM mint_quotes WHERE lookup_id = $1",
            &[&lookup_id],
        )
        .await?
        .first()
        .map(quote_from_row)
        .transpose()
    }

    async fn mark_mint_quote_paid(
        &self,
        id: &str,
        now: u64,
    ) -> Result<Option<MintQuoteRecord>, StoreError> {
        // Only a quote that changed is notified, in the same statement.
        self.query(
            "WITH paid AS (UPDATE mint_quotes SET state = 'PAID', updated_at = $2 \
             WHERE id = $1 AND state = 'UNPAID' RETURNING id) \
             SELECT pg_notify($3, $4) FROM paid",
            &[&id, &int(now)?, &self.channel, &self.quote_notification(id)],
        )
        .await?;
        self.mint_quote(id).await
    }

    async fn spent(&self, ys: &[PublicKey]) -> Result<Vec<bool>, StoreError> {
        let keys: Vec<Vec<u8>> = ys.iter().map(|y| point_key(y).to_vec()).collect();
        let found = self
            .query("SELECT y FROM spent WHERE y = ANY($1)", &[&keys])
            .await?
            .iter()
            .map(|row| get::<Vec<u8>>(row, "y"))
            .collect::<Result<HashSet<_>, _>>()?;
        Ok(keys.iter().map(|key| found.contains(key)).collect())
    }

    async fn blind_signatures(
        &self,
        blinded: &[PublicKey],
    ) -> Result<Vec<Option<BlindSignature>>, StoreError> {
        let keys: Vec<Vec<u8>> = blinded.iter().map(|b| point_key(b).to_vec()).collect();
        let rows = self
            .query(
                "SELECT b, signature FROM signatures WHERE b = ANY($1)",
                &[&keys],
            )
            .await?;
        let mut found = HashMap::with_capacity(rows.len());
        for row in &rows {
            let signature: BlindSignature = from_json(get(row, "signature")?)?;
            found.insert(get::<Vec<u8>>(row, "b")?, signature);
        }
        Ok(keys.iter().map(|key| found.get(key).cloned()).collect())
    }

    async fn commit(&self, commit: Commit<'_>) -> Result<(), StoreError> {
        self.apply(&commit).await
    }

    fn shared(&self) -> bool {
        true
    }

    async fn receipt(&self, key: &[u8; 32]) -> Result<Option<ReceiptRecord>, StoreError> {
        self.query(
            "SELECT created_at, version, data FROM receipts WHERE key = $1",
            &[&key.to_vec()],
        )
        .await?
        .first()
        .map(|row| {
            Ok(ReceiptRecord {
                created_at: uint(get(row, "created_at")?)?,
                version: uint(get(row, "version")?)?,
                data: get(row, "data")?,
            })
        })
        .transpose()
    }

    async fn answer(&self, key: &[u8; 32]) -> Result<Option<AnswerRecord>, StoreError> {
        self.query(
            "SELECT expires_at, data FROM answers WHERE key = $1",
            &[&key.to_vec()],
        )
        .await?
        .first()
        .map(|row| {
            Ok(AnswerRecord {
                expires_at: uint(get(row, "expires_at")?)?,
                data: get(row, "data")?,
            })
        })
        .transpose()
    }

    async fn prune_answers(&self, expired_before: u64) -> Result<u64, StoreError> {
        let client = self.client().await?;
        client
            .execute(
                "DELETE FROM answers WHERE expires_at < $1",
                &[&int(expired_before)?],
            )
            .await
            .map_err(db)
    }

    async fn prune_receipts(&self, created_before: u64) -> Result<u64, StoreError> {
        let client = self.client().await?;
        client
            .execute(
                "DELETE FROM receipts WHERE created_at < $1",
                &[&int(created_before)?],
            )
            .await
            .map_err(db)
    }

    async fn pass(&self, id: &str) -> Result<Option<PassRecord>, StoreError> {
        let sql = format!("SELECT {PASS_COLUMNS} FROM passes WHERE id = $1");
        self.query(&sql, &[&id])
            .await?
            .first()
            .map(pass_from_row)
            .transpose()
    }

    async fn revoke_pass(&self, id: &str) -> Result<Option<PassRecord>, StoreError> {
        let sql =
            format!("UPDATE passes SET revoked = TRUE WHERE id = $1 RETURNING {PASS_COLUMNS}");
        self.query(&sql, &[&id])
            .await?
            .first()
            .map(pass_from_row)
            .transpose()
    }

    async fn passes(&self, expires_after: u64) -> Result<Vec<PassRecord>, StoreError> {
        let sql = format!("SELECT {PASS_COLUMNS} FROM passes WHERE expires_at > $1");
        self.query(&sql, &[&int(expires_after)?])
            .await?
            .iter()
            .map(pass_from_row)
            .collect()
    }

    async fn account(&self, id: &str) -> Result<Option<AccountRecord>, StoreError> {
        self.query(
            "SELECT unit, balance, created_at FROM accounts WHERE id = $1",
            &[&id],
        )
        .await?
        .first()
        .map(account_from_row)
        .transpose()
    }

    async fn debit_account(
        &self,
        id: &str,
        unit: &CurrencyUnit,
        amount: u64,
    ) -> Result<u64, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db)?;
        // Ordered with every other write, but not waited for: see the crate docs.
        tx.batch_execute("SET LOCAL synchronous_commit TO OFF")
            .await
            .map_err(db)?;
        let balance = debit(&tx, id, unit, amount).await?;
        tx.commit().await.map_err(db)?;
        Ok(balance)
    }

    async fn supply(&self) -> Result<Vec<(Id, Supply)>, StoreError> {
        self.query(
            "SELECT keyset_id, sum(issued)::bigint AS issued, sum(redeemed)::bigint AS redeemed \
             FROM supply_deltas GROUP BY keyset_id",
            &[],
        )
        .await?
        .iter()
        .map(|row| {
            let id: String = get(row, "keyset_id")?;
            let id = Id::from_str(&id).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            Ok((
                id,
                Supply {
                    issued: uint(get(row, "issued")?)?,
                    redeemed: uint(get(row, "redeemed")?)?,
                },
            ))
        })
        .collect()
    }

    fn shared_events(&self) -> Option<broadcast::Receiver<SharedEvent>> {
        Some(self.shared.subscribe())
    }

    async fn account_totals(&self) -> Result<Vec<AccountTotal>, StoreError> {
        self.query(
            "SELECT unit, count(*) AS accounts, sum(balance)::bigint AS balance \
             FROM accounts GROUP BY unit ORDER BY unit COLLATE \"C\"",
            &[],
        )
        .await?
        .iter()
        .map(|row| {
            Ok(AccountTotal {
                unit: parse_unit(get(row, "unit")?),
                accounts: uint(get(row, "accounts")?)?,
                balance: uint(get(row, "balance")?)?,
            })
        })
        .collect()
    }

    async fn unpaid_quotes(&self, created_since: u64) -> Result<Vec<MintQuoteRecord>, StoreError> {
        self.query(
            "SELECT state, updated_at, record FROM mint_quotes \
             WHERE state = 'UNPAID' AND (record->>'created_at')::bigint >= $1",
            &[&int(created_since)?],
        )
        .await?
        .iter()
        .map(quote_from_row)
        .collect()
    }

    async fn setting(&self, name: &str) -> Result<Option<SettingRecord>, StoreError> {
        self.query(
            "SELECT version, updated_at, value FROM settings WHERE name = $1",
            &[&name],
        )
        .await?
        .first()
        .map(|row| {
            Ok(SettingRecord {
                version: uint(get(row, "version")?)?,
                updated_at: uint(get(row, "updated_at")?)?,
                value: get(row, "value")?,
            })
        })
        .transpose()
    }

    async fn put_setting(&self, name: &str, value: &[u8], now: u64) -> Result<u64, StoreError> {
        // One statement: the row's lock orders concurrent writers, and the notification
        // goes out only if it commits.
        let rows = self
            .query(
                "WITH written AS (INSERT INTO settings (name, version, updated_at, value) \
                 VALUES ($1, 1, $2, $3) ON CONFLICT (name) DO UPDATE \
                 SET version = settings.version + 1, updated_at = EXCLUDED.updated_at, \
                 value = EXCLUDED.value RETURNING version) \
                 SELECT version, pg_notify($4, $5) FROM written",
                &[
                    &name,
                    &int(now)?,
                    &value,
                    &self.channel,
                    &self.setting_notification(name),
                ],
            )
            .await?;
        let row = rows
            .first()
            .ok_or_else(|| backend("the setting was not written"))?;
        uint(get(row, "version")?)
    }

    async fn add_earnings(&self, rows: &[EarningsRecord]) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        let ints = |field: fn(&EarningsRecord) -> u64| -> Result<Vec<i64>, StoreError> {
            rows.iter().map(|row| int(field(row))).collect()
        };
        let units: Vec<&str> = rows.iter().map(|row| row.unit.as_str()).collect();
        let routes: Vec<&str> = rows.iter().map(|row| row.route.as_str()).collect();
        // One statement adds every row; grouped and sorted so rows repeated in `rows` add
        // up, and two instances adding at once lock their rows in the same order.
        self.query(
            "INSERT INTO earnings (hour, unit, route, requests, failed, earned, refunded) \
             SELECT hour, unit, route, sum(requests)::bigint, sum(failed)::bigint, \
             sum(earned)::bigint, sum(refunded)::bigint \
             FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], \
             $6::bigint[], $7::bigint[]) AS new(hour, unit, route, requests, failed, earned, refunded) \
             GROUP BY hour, unit, route ORDER BY hour, unit, route \
             ON CONFLICT (hour, unit, route) DO UPDATE SET \
             requests = earnings.requests + EXCLUDED.requests, \
             failed = earnings.failed + EXCLUDED.failed, \
             earned = earnings.earned + EXCLUDED.earned, \
             refunded = earnings.refunded + EXCLUDED.refunded",
            &[
                &ints(|row| row.hour)?,
                &units,
                &routes,
                &ints(|row| row.requests)?,
                &ints(|row| row.failed)?,
                &ints(|row| row.earned)?,
                &ints(|row| row.refunded)?,
            ],
        )
        .await?;
        Ok(())
    }

    async fn earnings(&self, since: u64) -> Result<Vec<EarningsRecord>, StoreError> {
        self.query(
            "SELECT hour, unit, route, requests, failed, earned, refunded FROM earnings \
             WHERE hour >= $1 ORDER BY hour, unit COLLATE \"C\", route COLLATE \"C\"",
            &[&int(since)?],
        )
        .await?
        .iter()
        .map(|row| {
            Ok(EarningsRecord {
                hour: uint(get(row, "hour")?)?,
                unit: get(row, "unit")?,
                route: get(row, "route")?,
                requests: uint(get(row, "requests")?)?,
                failed: uint(get(row, "failed")?)?,
                earned: uint(get(row, "earned")?)?,
                refunded: uint(get(row, "refunded")?)?,
            })
        })
        .collect()
    }

    async fn health(&self) -> Result<(), StoreError> {
        // A connection from the pool that answers a statement: a dead one is dropped and
        // the next is made fresh, so a database back up is ready again at the next probe.
        self.client()
            .await?
            .simple_query("SELECT 1")
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn minted_quotes(&self) -> Result<Vec<QuoteTotal>, StoreError> {
        let credit = format!("{CREDIT_LOOKUP_PREFIX}%");
        self.query(
            "SELECT unit, count(*) AS quotes, sum(amount)::bigint AS amount, \
             coalesce(sum(amount) FILTER (WHERE credit), 0)::bigint AS credit \
             FROM (SELECT record->>'unit' AS unit, (record->>'amount')::bigint AS amount, \
             lookup_id LIKE $1 AS credit FROM mint_quotes WHERE state = 'ISSUED') AS minted \
             GROUP BY unit ORDER BY unit COLLATE \"C\"",
            &[&credit],
        )
        .await?
        .iter()
        .map(|row| {
            Ok(QuoteTotal {
                unit: parse_unit(get(row, "unit")?),
                quotes: uint(get(row, "quotes")?)?,
                amount: uint(get(row, "amount")?)?,
                credit: uint(get(row, "credit")?)?,
            })
        })
        .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notifications_from_others_become_events_and_our_own_are_ignored() {
        let y = coinslot_mint::cashu::nuts::SecretKey::generate().public_key();
        let spent = serde_json::json!({"from": "b", "spent": [y.to_hex(), "not a point"]});
        assert_eq!(
            parse_notification(&spent.to_string(), "a"),
            Some(SharedEvent::Spent(vec![y]))
        );
        assert_eq!(parse_notification(&spent.to_string(), "b"), None);
        let quote = serde_json::json!({"from": "b", "quote": "q1"}).to_string();
        assert_eq!(
            parse_notification(&quote, "a"),
            Some(SharedEvent::Quote("q1".into()))
        );
        let setting = serde_json::json!({"from": "b", "setting": "prices"}).to_string();
        assert_eq!(
            parse_notification(&setting, "a"),
            Some(SharedEvent::Setting("prices".into()))
        );
        assert_eq!(parse_notification(&setting, "b"), None);
        assert_eq!(parse_notification("garbage", "a"), None);
    }
}
