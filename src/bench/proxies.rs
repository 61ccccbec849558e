//! `bench --own-proxies`: the stores' runs go through Toxiproxy proxies of the
//! bench's own (`bench<pid>_<proxy>`, same upstream as the stack's proxy, a port
//! Toxiproxy picks), created before the stores and deleted after them, so the
//! bench is not refused while a test holds the stack's default proxies (a run
//! locks its proxies: src/fault/lock.rs). The servers are still shared: their
//! load moves absolute figures, not the ratios measured side by side.

use anyhow::Context;
use std::sync::OnceLock;
use std::time::Duration;

use crate::fault::toxiproxy::Toxiproxy;
use crate::scenario::{Side, StoreKind};

/// Set once by [`OwnProxies::create`]: the prefix and the stores it covers.
static OWN: OnceLock<(String, Vec<&'static str>)> = OnceLock::new();

/// The default Toxiproxy API (the scenarios' default `[target] toxiproxy`).
const API: &str = "http://127.0.0.1:8474";

/// The default proxy of a side of a store's bench server (scripts/PORTS.md).
fn default_proxy(store: StoreKind, side: Side) -> anyhow::Result<String> {
    let server = store
        .spec()
        .server(store.spec().bench.server)
        .with_context(|| format!("{store} has no server {}", store.spec().bench.server))?;
    Ok(format!("{}_{side}", server.proxy_prefix))
}

/// The `[target.<side>]` tables naming the bench's own proxies for `store`, or
/// nothing when the bench uses the stack's (no --own-proxies, or not this store).
pub fn sides_text(store: StoreKind) -> String {
    let Some((prefix, stores)) = OWN.get() else {
        return String::new();
    };
    if !stores.contains(&store.name()) {
        return String::new();
    }
    sides(prefix, store)
}

fn sides(prefix: &str, store: StoreKind) -> String {
    Side::ALL
        .iter()
        .filter_map(|side| {
            let proxy = default_proxy(store, *side).ok()?;
            Some(format!("[target.{side}]\nproxy = \"{prefix}_{proxy}\"\n"))
        })
        .collect()
}

pub struct OwnProxies {
    http: reqwest::Client,
    names: Vec<String>,
}

impl OwnProxies {
    /// One proxy per side of each store, copying the upstream of the stack's.
    pub async fn create(stores: &[StoreKind]) -> anyhow::Result<Self> {
        let prefix = format!("bench{}", std::process::id());
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(3))
            .no_proxy()
            .build()?;
        let mut own = Self {
            http,
            names: Vec::new(),
        };
        let toxiproxy = Toxiproxy::new(API);
        for store in stores {
            for side in Side::ALL {
                let default = default_proxy(*store, side)?;
                let upstream = toxiproxy.proxy(&default).await?.upstream;
                let name = format!("{prefix}_{default}");
                let body = serde_json::json!({
                    "name": name,
                    "listen": "127.0.0.1:0",
                    "upstream": upstream,
                    "enabled": true,
                });
                let r = own
                    .http
                    .post(format!("{API}/proxies"))
                    .json(&body)
                    .send()
                    .await
                    .with_context(|| format!("cannot create proxy {name} at {API}"))?;
                if !r.status().is_success() {
                    let status = r.status();
                    own.remove().await;
                    anyhow::bail!(
                        "Toxiproxy refused proxy {name}: {status} {}",
                        r.text().await.unwrap_or_default()
                    );
                }
                own.names.push(name);
            }
        }
        let names = stores.iter().map(|s| s.name()).collect();
        OWN.set((prefix, names))
            .map_err(|_| anyhow::anyhow!("own proxies created twice"))?;
        Ok(own)
    }

    /// Deletes every proxy created (a proxy already gone is not an error).
    pub async fn remove(&mut self) {
        for name in self.names.drain(..) {
            let r = self
                .http
                .delete(format!("{API}/proxies/{name}"))
                .send()
                .await;
            match r {
                Ok(r) if r.status().is_success() || r.status().as_u16() == 404 => {}
                Ok(r) => eprintln!("warning: could not delete proxy {name}: {}", r.status()),
                Err(e) => eprintln!("warning: could not delete proxy {name}: {e}"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_side_names_the_bench_proxy_of_the_bench_server() {
        let text = sides("bench7", StoreKind::parse("mongodb").unwrap());
        assert_eq!(
            text,
            "[target.primary]\nproxy = \"bench7_mongoeco_primary\"\n[target.secondary]\nproxy = \"bench7_mongoeco_secondary\"\n[target.relay]\nproxy = \"bench7_mongoeco_relay\"\n"
        );
        // Nothing without --own-proxies.
        assert_eq!(sides_text(StoreKind::parse("dynamodb").unwrap()), "");
    }

    #[test]
    fn a_scenario_with_the_bench_proxies_validates() {
        for name in ["dynamodb", "cassandra", "mongodb"] {
            let store = StoreKind::parse(name).unwrap();
            let text = super::super::scenario_text(store, "naive", 10.0, "ops = 1", 16, "")
                .replacen(
                    "[pattern]",
                    &format!("{}[pattern]", sides("bench7", store)),
                    1,
                );
            let scenario = super::super::parse(&text).unwrap_or_else(|e| panic!("{e:#}\n{text}"));
            let want = |side: &str| {
                let server = store.spec().server(store.spec().bench.server).unwrap();
                format!("bench7_{}_{side}", server.proxy_prefix)
            };
            let proxy = |e: &crate::scenario::SideEndpoint| match e {
                crate::scenario::SideEndpoint::Proxy(p) => p.clone(),
                other => panic!("{name}: {other:?}"),
            };
            assert_eq!(proxy(&scenario.target.primary.endpoint), want("primary"));
            assert_eq!(
                proxy(&scenario.target.secondary.endpoint),
                want("secondary")
            );
            assert_eq!(proxy(&scenario.target.relay), want("relay"));
        }
    }
}
