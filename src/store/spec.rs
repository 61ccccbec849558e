//! The store registry: one [`StoreSpec`] per store says what it is — its servers and
//! their proxies, which sides it can hold, which patterns it performs and the
//! options it honours for each, its own fault kinds — and how to connect to it.
//! Validation, `dualwrite list`, `bench`, the tests and the stack's proxy list all
//! read it, so a new store is its folder plus one entry in [`REGISTRY`].

use futures::future::BoxFuture;
use std::fmt;

use super::{Store, StoreContext};
use crate::pattern::PatternKind;
use crate::scenario::{Scenario, Side};

pub struct StoreSpec {
    pub name: &'static str,
    /// One line for `dualwrite list`.
    pub about: &'static str,
    /// The servers this store can be; the first is the default.
    pub servers: &'static [ServerSpec],
    /// Whether it can hold the primary side (the orders) and the secondary side.
    pub holds_primary: bool,
    pub holds_secondary: bool,
    /// How each pattern runs with this store as the primary (or only) store.
    pub patterns: &'static [(PatternKind, Support)],
    /// Options this store honours when it holds the secondary side of a pattern
    /// written by the engine (`naive`) or a relay.
    pub secondary_options: &'static [&'static str],
    /// The secondary side is an append-only log (a Kafka topic): a replay is a
    /// second record whatever its key, so `relay.idempotent` does not apply.
    pub secondary_appends: bool,
    /// Fault kinds this store injects itself, beside the network faults.
    pub fault_kinds: &'static [&'static str],
    /// What a reader (`[readers]`) can ask of a side of this store.
    pub reads: Option<ReadSupport>,
    /// The connection keys of `[target]` / `[target.<side>]` it takes
    /// (`scenario::validate::connection`), and one line on how it logs in.
    pub connection_options: &'static [&'static str],
    pub connection_note: &'static str,
    /// What a run creates in this store and drops after the check, for the sides
    /// it serves (`dualwrite plan`); the store's own set-up uses the same names.
    pub footprint: fn(&Scenario, &str, &[Side]) -> Footprint,
    /// How `dualwrite bench` measures it.
    pub bench: BenchSpec,
    pub connect: Connect,
}

/// What a run creates in a store and drops after its check.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Footprint {
    /// In order, each with what it is (`table dw_x_orders (key order_id, on-demand)`).
    pub creates: Vec<String>,
    /// What `drop_namespace` removes when none of it existed before the run.
    pub drops: Vec<String>,
}

/// Connects to a store for one run (its connections are in the context).
pub type Connect = fn(StoreContext) -> BoxFuture<'static, anyhow::Result<Box<dyn Store>>>;

/// Whether a pattern runs on a store, and if so how and with which options.
pub enum Support {
    /// How the store performs it, and the pattern options honoured here beyond the
    /// pattern engine's own (see [`crate::pattern::engine_options`]).
    Yes {
        how: &'static str,
        options: &'static [&'static str],
    },
    /// Why not, and what to use instead.
    No(&'static str),
}

/// What a read of one side can ask of a store: each option of `[readers.primary]`
/// / `[readers.secondary]` is honoured here or rejected at validation.
pub struct ReadSupport {
    /// How a side is read (one point read per side), for `dualwrite list`.
    pub how: &'static str,
    /// `consistency` words honoured; empty: the store reads one way only.
    pub consistency: &'static [&'static str],
    /// Of those, the ones a read through a secondary index cannot have (the
    /// secondary side keyed by fresh event ids is read through one).
    pub not_through_index: &'static [&'static str],
    /// Read concern levels honoured, per server (a server not listed honours none).
    pub read_concern: &'static [(&'static str, &'static [&'static str])],
    /// Read preferences honoured.
    pub read_preference: &'static [&'static str],
    /// The servers on which a side's reads can be sent to a chosen node
    /// (`[readers.<side>] coordinator`): the ones with several nodes.
    pub coordinator_servers: &'static [&'static str],
}

/// What `dualwrite bench` uses for a store.
pub struct BenchSpec {
    /// The local server to measure (the one with every pattern's capability).
    pub server: &'static str,
    /// Records per side for the checker-cost figure: enough that a scan takes
    /// seconds, within what the server writes in about a minute here.
    pub checker_records: u64,
}

pub struct ServerSpec {
    pub name: &'static str,
    /// Proxies are named `<prefix>_<side>` (scripts/PORTS.md).
    pub proxy_prefix: &'static str,
    /// Managed by `scripts/stack` (process faults can kill and restart it).
    pub local: Option<LocalServer>,
}

pub struct LocalServer {
    /// The name `scripts/stack up --only` takes to (re)start it.
    pub component: &'static str,
    /// Keeps its data in memory only: killing it loses every table.
    pub in_memory: bool,
}

pub static REGISTRY: &[&StoreSpec] = &[
    &super::dynamodb::SPEC,
    &super::cassandra::SPEC,
    &super::mongodb::SPEC,
    &super::kafka::SPEC,
    &super::memory::SPEC,
];

/// The spec of a store by name.
pub fn find(name: &str) -> Option<&'static StoreSpec> {
    REGISTRY.iter().copied().find(|s| s.name == name)
}

impl StoreSpec {
    pub fn server(&self, name: &str) -> Option<&'static ServerSpec> {
        self.servers.iter().find(|s| s.name == name)
    }

    pub fn default_server(&self) -> &'static ServerSpec {
        &self.servers[0]
    }

    pub fn support(&self, kind: PatternKind) -> &'static Support {
        self.patterns
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, s)| s)
            .unwrap_or(&Support::No(
                "not listed for this store (`dualwrite list` shows what each store runs)",
            ))
    }

    /// Names of the local servers of every store (`process-kill` targets).
    pub fn local_servers() -> impl Iterator<Item = (&'static StoreSpec, &'static ServerSpec)> {
        REGISTRY.iter().flat_map(|spec| {
            spec.servers
                .iter()
                .filter(|s| s.local.is_some())
                .map(move |s| (*spec, s))
        })
    }
}

impl ServerSpec {
    /// The Toxiproxy proxies of this server, one per connection (on the Cassandra
    /// cluster one per connection and node: `cassandra/cluster.rs`).
    pub fn proxy_names(&self) -> Vec<String> {
        if self.name == super::cassandra::CLUSTER_SERVER {
            return crate::scenario::Side::ALL
                .iter()
                .flat_map(|side| super::cassandra::cluster_proxies(*side))
                .collect();
        }
        crate::scenario::Side::ALL
            .iter()
            .map(|side| format!("{}_{side}", self.proxy_prefix))
            .collect()
    }
}

impl fmt::Debug for StoreSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

/// A store, as scenarios and results name it.
#[derive(Clone, Copy)]
pub struct StoreKind(pub &'static StoreSpec);

impl StoreKind {
    pub fn parse(name: &str) -> Option<Self> {
        find(name).map(StoreKind)
    }

    pub fn name(self) -> &'static str {
        self.0.name
    }

    pub fn spec(self) -> &'static StoreSpec {
        self.0
    }
}

impl PartialEq for StoreKind {
    fn eq(&self, other: &Self) -> bool {
        self.0.name == other.0.name
    }
}

impl Eq for StoreKind {}

impl fmt::Debug for StoreKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.name)
    }
}

impl fmt::Display for StoreKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.name)
    }
}

impl serde::Serialize for StoreKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn repo_file(path: &str) -> String {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
        std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }

    /// `| name | 127.0.0.1:PORT | upstream |` rows of scripts/PORTS.md: name -> port.
    fn ports_md() -> BTreeMap<String, u16> {
        repo_file("scripts/PORTS.md")
            .lines()
            .filter_map(|l| {
                let cells: Vec<&str> = l.split('|').map(str::trim).collect();
                let listen = cells.get(2)?.strip_prefix("127.0.0.1:")?;
                Some((cells.get(1)?.to_string(), listen.parse().ok()?))
            })
            .collect()
    }

    /// Every proxy of every local server exists in the stack scripts and in
    /// scripts/PORTS.md; every proxy docker/toxiproxy.json makes is a registry
    /// proxy on the port PORTS.md gives it. So the registry, the stack and the docs
    /// cannot drift apart.
    #[test]
    fn the_stack_the_port_table_and_docker_agree_with_the_registry() {
        let mut stack = repo_file("scripts/stack");
        for entry in
            std::fs::read_dir(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/lib"))
                .unwrap()
        {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "sh") {
                stack.push_str(&std::fs::read_to_string(path).unwrap());
            }
        }
        let ports = ports_md();
        let mut registry = Vec::new();
        for spec in REGISTRY {
            for server in spec.servers {
                registry.extend(server.proxy_names());
                if server.local.is_none() {
                    continue;
                }
                // A store that cannot hold the primary side has no primary proxy.
                let needed = server
                    .proxy_names()
                    .into_iter()
                    .filter(|p| spec.holds_primary || !p.ends_with("_primary"));
                for proxy in needed {
                    // The cluster's script makes its proxies in a loop over nodes.
                    let per_node = proxy
                        .rsplit_once("_n")
                        .and_then(|(stem, _)| stem.rsplit_once('_'))
                        .map(|(prefix, _)| format!("{prefix}_${{side}}_n"));
                    assert!(
                        stack.contains(&proxy) || per_node.is_some_and(|p| stack.contains(&p)),
                        "{} server {}: proxy {proxy} is not made by scripts/stack",
                        spec.name,
                        server.name
                    );
                    assert!(
                        ports.contains_key(&proxy),
                        "{} server {}: proxy {proxy} is not in scripts/PORTS.md",
                        spec.name,
                        server.name
                    );
                }
            }
        }
        let docker: Vec<serde_json::Value> =
            serde_json::from_str(&repo_file("docker/toxiproxy.json")).unwrap();
        assert!(!docker.is_empty());
        for proxy in docker {
            let name = proxy["name"].as_str().unwrap();
            assert!(
                registry.iter().any(|r| r == name),
                "docker proxy {name} is in no store's registry entry"
            );
            let port: u16 = proxy["listen"]
                .as_str()
                .unwrap()
                .rsplit(':')
                .next()
                .unwrap()
                .parse()
                .unwrap();
            assert_eq!(
                ports.get(name),
                Some(&port),
                "docker proxy {name}: port differs from scripts/PORTS.md"
            );
        }
    }

    #[test]
    fn every_store_names_its_servers_and_every_pattern() {
        for spec in REGISTRY {
            assert!(!spec.servers.is_empty(), "{}", spec.name);
            assert_eq!(find(spec.name).map(|s| s.name), Some(spec.name));
            for kind in PatternKind::ALL {
                assert!(
                    spec.patterns.iter().any(|(k, _)| *k == kind),
                    "{} does not say whether it runs `{kind}`",
                    spec.name
                );
            }
        }
    }
}
