//! A small async client for Toxiproxy's HTTP API.
//!
//! Why not the `toxiproxy_rust` crate: it is a blocking client (needs
//! `spawn_blocking` inside tokio), has no `reset_peer`, panics on transport errors
//! while creating a toxic and ignores HTTP error statuses. Every call here has a
//! bounded timeout and returns an error naming the endpoint instead.

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// Every dualwrite toxic is named with this prefix, so leftovers of a crashed run
/// can be found and removed without touching anyone else's toxics.
pub const TOXIC_PREFIX: &str = "dualwrite-";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Toxic {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub stream: String,
    pub toxicity: f32,
    pub attributes: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct ProxyInfo {
    pub name: String,
    pub listen: String,
    pub upstream: String,
    pub enabled: bool,
    #[serde(default)]
    pub toxics: Vec<Toxic>,
}

#[derive(Clone)]
pub struct Toxiproxy {
    base: String,
    http: reqwest::Client,
}

impl Toxiproxy {
    pub fn new(base: &str) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(3))
            .connect_timeout(Duration::from_secs(1))
            .no_proxy()
            .build()
            .expect("a plain HTTP client always builds");
        Self {
            base: base.trim_end_matches('/').to_string(),
            http,
        }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub async fn version(&self) -> anyhow::Result<String> {
        let r = self
            .http
            .get(format!("{}/version", self.base))
            .send()
            .await
            .with_context(|| {
                format!(
                    "Toxiproxy API at {} is unreachable (start it: scripts/stack up)",
                    self.base
                )
            })?;
        let r = check(r, "GET /version").await?;
        Ok(r.text().await?.trim().to_string())
    }

    pub async fn proxies(&self) -> anyhow::Result<BTreeMap<String, ProxyInfo>> {
        let r = self
            .http
            .get(format!("{}/proxies", self.base))
            .send()
            .await
            .with_context(|| self.unreachable())?;
        Ok(check(r, "GET /proxies").await?.json().await?)
    }

    pub async fn proxy(&self, name: &str) -> anyhow::Result<ProxyInfo> {
        let r = self
            .http
            .get(format!("{}/proxies/{name}", self.base))
            .send()
            .await
            .with_context(|| self.unreachable())?;
        if r.status() == reqwest::StatusCode::NOT_FOUND {
            bail!(
                "Toxiproxy at {} has no proxy named `{name}` (the local stack creates it: scripts/stack up; see scripts/PORTS.md)",
                self.base
            );
        }
        Ok(check(r, "GET /proxies/{name}").await?.json().await?)
    }

    pub async fn set_enabled(&self, name: &str, enabled: bool) -> anyhow::Result<()> {
        let r = self
            .http
            .post(format!("{}/proxies/{name}", self.base))
            .json(&serde_json::json!({ "enabled": enabled }))
            .send()
            .await
            .with_context(|| self.unreachable())?;
        check(r, "POST /proxies/{name}").await?;
        Ok(())
    }

    pub async fn add_toxic(&self, proxy: &str, toxic: &Toxic) -> anyhow::Result<()> {
        let r = self
            .http
            .post(format!("{}/proxies/{proxy}/toxics", self.base))
            .json(toxic)
            .send()
            .await
            .with_context(|| self.unreachable())?;
        check(r, "POST /proxies/{proxy}/toxics").await?;
        Ok(())
    }

    pub async fn remove_toxic(&self, proxy: &str, toxic: &str) -> anyhow::Result<()> {
        let r = self
            .http
            .delete(format!("{}/proxies/{proxy}/toxics/{toxic}", self.base))
            .send()
            .await
            .with_context(|| self.unreachable())?;
        if r.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(()); // already gone: the goal is reached
        }
        check(r, "DELETE toxic").await?;
        Ok(())
    }

    fn unreachable(&self) -> String {
        format!(
            "Toxiproxy API at {} is unreachable (start it: scripts/stack up)",
            self.base
        )
    }
}

async fn check(r: reqwest::Response, what: &str) -> anyhow::Result<reqwest::Response> {
    if r.status().is_success() {
        return Ok(r);
    }
    let status = r.status();
    let body = r.text().await.unwrap_or_default();
    bail!("Toxiproxy {what} answered {status}: {}", body.trim())
}
