//! A real LNbits (PyPI `lnbits`, in a venv under `~/.cache/coinslot`) on a loopback port,
//! funded by its `FakeWallet` source: wallets on it pay each other as LNbits' internal
//! payments, which it settles itself, so no Lightning node is needed.
//!
//! The first start makes the super user (LNbits' first-install call) so tests can credit a
//! payer wallet (`PUT /users/api/v1/balance`).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use serde_json::{json, Value};

/// A running LNbits.
pub struct RealLnbits {
    /// Base URL (`http://127.0.0.1:port`).
    pub url: String,
    http: reqwest::Client,
    /// The super user's access token.
    token: String,
    process: tokio::process::Child,
    data: tempfile::TempDir,
}

impl Drop for RealLnbits {
    fn drop(&mut self) {
        // `kill_on_drop` ends only the process started; its children would live on.
        if let Some(pid) = self.process.id() {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", "--", &format!("-{pid}")])
                .stderr(std::process::Stdio::null())
                .status();
        }
    }
}

/// A wallet on it.
#[derive(Debug, Clone)]
pub struct LnbitsWallet {
    /// Wallet id.
    pub id: String,
    /// The key that can spend.
    pub admin_key: String,
    /// The receive-only key ("Invoice/read key").
    pub invoice_key: String,
}

const START_DEADLINE: Duration = Duration::from_secs(120);

impl RealLnbits {
    /// Installs LNbits if needed, starts it on a free port and sets up its super user.
    pub async fn start() -> anyhow::Result<RealLnbits> {
        let requirements = crate::interop::dir("lnbits").join("requirements.txt");
        let bin =
            tokio::task::spawn_blocking(move || crate::interop::venv("lnbits-venv", &requirements))
                .await?;
        // LNbits serves its static files from the relative path `lnbits/static`: it must run
        // from the directory holding the package.
        let packages = site_packages(&bin)?;
        let port = crate::free_port();
        let data = tempfile::tempdir()?;
        let log = std::fs::File::create(data.path().join("lnbits.log"))?;
        let process = tokio::process::Command::new(bin.join("lnbits"))
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .current_dir(&packages)
            .env("LNBITS_DATA_FOLDER", data.path())
            .env("LNBITS_BACKEND_WALLET_CLASS", "FakeWallet")
            .env("LNBITS_EXTENSIONS_DEFAULT_INSTALL", "")
            .stdout(log.try_clone()?)
            .stderr(log)
            // LNbits forks a server process of its own: the whole group goes at drop.
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .context("LNbits does not start")?;
        let mut lnbits = RealLnbits {
            url: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
            token: String::new(),
            process,
            data,
        };
        lnbits.wait_up().await?;
        let answer = lnbits
            .json(
                lnbits
                    .http
                    .put(lnbits.at("/api/v1/auth/first_install"))
                    .json(&json!({
                        "username": "coinslot",
                        "password": "coinslot-test",
                        "password_repeat": "coinslot-test",
                    })),
            )
            .await
            .context("first install")?;
        lnbits.token = answer["access_token"]
            .as_str()
            .context("no access token")?
            .to_string();
        Ok(lnbits)
    }

    fn at(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    async fn wait_up(&mut self) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + START_DEADLINE;
        loop {
            if let Some(status) = self.process.try_wait()? {
                bail!("LNbits exited ({status}):\n{}", self.log_tail());
            }
            let health = self.http.get(self.at("/api/v1/health")).send().await;
            if health.is_ok_and(|r| r.status().is_success()) {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                bail!(
                    "LNbits did not answer in {START_DEADLINE:?}:\n{}",
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// The end of LNbits' log.
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.data.path().join("lnbits.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    async fn json(&self, request: reqwest::RequestBuilder) -> anyhow::Result<Value> {
        let response = request.send().await?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            bail!("LNbits answered {status}: {body}");
        }
        Ok(body)
    }

    /// A new account with one wallet.
    pub async fn wallet(&self, name: &str) -> anyhow::Result<LnbitsWallet> {
        let wallet = self
            .json(
                self.http
                    .post(self.at("/api/v1/account"))
                    .json(&json!({ "name": name })),
            )
            .await?;
        let field = |key: &str| -> anyhow::Result<String> {
            Ok(wallet[key]
                .as_str()
                .with_context(|| format!("no {key} in {wallet}"))?
                .to_string())
        };
        Ok(LnbitsWallet {
            id: field("id")?,
            admin_key: field("adminkey")?,
            invoice_key: field("inkey")?,
        })
    }

    /// Credits `sats` to `wallet` (the super user's balance change).
    pub async fn fund(&self, wallet: &LnbitsWallet, sats: u64) -> anyhow::Result<()> {
        self.json(
            self.http
                .put(self.at("/users/api/v1/balance"))
                .bearer_auth(&self.token)
                .json(&json!({ "id": wallet.id, "amount": sats })),
        )
        .await?;
        Ok(())
    }

    /// Pays `bolt11` from `wallet` (an internal payment when the invoice is this LNbits').
    pub async fn pay(&self, wallet: &LnbitsWallet, bolt11: &str) -> anyhow::Result<Value> {
        self.json(
            self.http
                .post(self.at("/api/v1/payments"))
                .header("X-Api-Key", &wallet.admin_key)
                .json(&json!({ "out": true, "bolt11": bolt11 })),
        )
        .await
    }

    /// Tries to pay `bolt11` with `key` (whichever wallet it opens): LNbits' answer status.
    pub async fn try_pay_with(&self, key: &str, bolt11: &str) -> anyhow::Result<u16> {
        let response = self
            .http
            .post(self.at("/api/v1/payments"))
            .header("X-Api-Key", key)
            .json(&json!({ "out": true, "bolt11": bolt11 }))
            .send()
            .await?;
        Ok(response.status().as_u16())
    }

    /// The wallet's balance in msat.
    pub async fn balance_msat(&self, wallet: &LnbitsWallet) -> anyhow::Result<i64> {
        let answer = self
            .json(
                self.http
                    .get(self.at("/api/v1/wallet"))
                    .header("X-Api-Key", &wallet.invoice_key),
            )
            .await?;
        answer["balance"].as_i64().context("no balance")
    }

    /// The wallet's own record of the payment `hash`, or `None`.
    pub async fn payment(
        &self,
        wallet: &LnbitsWallet,
        hash: &str,
    ) -> anyhow::Result<Option<Value>> {
        let response = self
            .http
            .get(self.at(&format!("/api/v1/payments/{hash}")))
            .header("X-Api-Key", &wallet.invoice_key)
            .send()
            .await?;
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let body: Value = response.json().await?;
        Ok(body.get("details").cloned())
    }
}

/// The venv's `site-packages` (where the `lnbits` package is).
fn site_packages(bin: &std::path::Path) -> anyhow::Result<PathBuf> {
    let lib = bin.parent().context("venv")?.join("lib");
    for entry in std::fs::read_dir(&lib)? {
        let dir = entry?.path().join("site-packages");
        if dir.join("lnbits").is_dir() {
            return Ok(dir);
        }
    }
    bail!("no lnbits package under {}", lib.display())
}
