//! Pass lifecycle hooks from the config: a command to run and/or a URL to POST, on every
//! pass purchase, extension, expiry and revocation (`[passes.hooks]`).
//!
//! The command gets `<event> <pass id> <scope> <client key or ->` as its last arguments and
//! the same in `COINSLOT_PASS_EVENT`, `_ID`, `_SCOPE`, `_CLIENT_KEY`, `_EXPIRES`; it succeeds
//! by exiting 0. The webhook gets the event as JSON and succeeds with a 2xx. Both must
//! tolerate repeats (events are delivered at least once). A failing purchase hook refunds
//! the purchase.

use std::time::Duration;

use coinslot::{PassEvent, PassHook};
use futures::future::BoxFuture;

use crate::config::PassHooksConfig;

/// The configured hooks.
#[derive(Debug, Clone)]
pub struct ConfiguredHooks {
    command: Vec<String>,
    webhook: Option<String>,
    timeout: Duration,
    http: reqwest::Client,
}

impl ConfiguredHooks {
    /// The hooks `config` names, or `None` when it names none.
    pub fn new(config: &PassHooksConfig) -> Option<Self> {
        if config.command.is_empty() && config.webhook.is_none() {
            return None;
        }
        Some(Self {
            command: config.command.clone(),
            webhook: config.webhook.clone(),
            timeout: Duration::from_secs(config.timeout_secs.max(1)),
            http: reqwest::Client::new(),
        })
    }

    async fn run_command(&self, event: &PassEvent) -> Result<(), String> {
        let Some((program, args)) = self.command.split_first() else {
            return Ok(());
        };
        let key = event.client_key.clone().unwrap_or_else(|| "-".into());
        let child = tokio::process::Command::new(program)
            .args(args)
            .args([event.event.as_str(), &event.id, &event.scope, &key])
            .env("COINSLOT_PASS_EVENT", event.event.as_str())
            .env("COINSLOT_PASS_ID", &event.id)
            .env("COINSLOT_PASS_SCOPE", &event.scope)
            .env("COINSLOT_PASS_CLIENT_KEY", &key)
            .env("COINSLOT_PASS_EXPIRES", event.expires_at.to_string())
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output();
        match tokio::time::timeout(self.timeout, child).await {
            Err(_) => Err(format!("{program} took longer than {:?}", self.timeout)),
            Ok(Err(e)) => Err(format!("cannot run {program}: {e}")),
            Ok(Ok(out)) if out.status.success() => Ok(()),
            Ok(Ok(out)) => {
                let stderr = String::from_utf8_lossy(&out.stderr);
                Err(format!(
                    "{program} failed ({}): {}",
                    out.status,
                    stderr.trim().chars().take(200).collect::<String>()
                ))
            }
        }
    }

    async fn post(&self, event: &PassEvent) -> Result<(), String> {
        let Some(url) = &self.webhook else {
            return Ok(());
        };
        let answer = self
            .http
            .post(url)
            .timeout(self.timeout)
            .json(event)
            .send()
            .await
            .map_err(|e| format!("webhook: {e}"))?;
        if answer.status().is_success() {
            Ok(())
        } else {
            Err(format!("webhook answered {}", answer.status()))
        }
    }
}

impl PassHook for ConfiguredHooks {
    fn call(&self, event: PassEvent) -> BoxFuture<'static, Result<(), String>> {
        let hooks = self.clone();
        Box::pin(async move {
            tracing::info!(event = event.event.as_str(), pass = %event.id, scope = %event.scope, "pass hook");
            hooks.run_command(&event).await?;
            hooks.post(&event).await
        })
    }
}
