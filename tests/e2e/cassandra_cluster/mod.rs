//! The three-node Cassandra cluster and the faults between its nodes
//! (src/fault/cluster.rs). Needs `scripts/stack up --only cassandra-cluster`:
//! nodes c1-c3 in namespaces dwc1-dwc3, reached through the cluster's proxies.
//!
//! A session here is pinned to one node: every address the driver learns is mapped
//! to that node's proxy, so that node coordinates every request. The cluster runs
//! with the dynamic snitch off and the test table without speculative retry, so a
//! read at ONE coordinated by a replica reads that replica (tracing checks it).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use dualwrite::fault::cluster::{self, ClusterNemesis, ClusterState, NodeFault, NodeId, Partition};
use scylla::client::execution_profile::ExecutionProfile;
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::errors::{DbError, ExecutionError, RequestAttemptError, TranslationError};
use scylla::policies::address_translator::{AddressTranslator, UntranslatedPeer};
use scylla::policies::retry::FallthroughRetryPolicy;
use scylla::statement::{Consistency, Statement};

use super::common::{bin, repo};

mod readers;
mod runs;

/// One cluster test at a time: each faults the whole cluster.
fn lock() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

fn state_dir() -> PathBuf {
    std::env::var_os("DUALWRITE_STATE")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(".stack"))
}

fn node(i: u8) -> NodeId {
    NodeId::new(i).unwrap()
}

/// `cluster::reset`, waiting (like [`nemesis`]) while another process holds the lock.
async fn reset() -> Vec<String> {
    let t0 = Instant::now();
    loop {
        let said = cluster::reset(&state_dir()).await.expect("reset");
        let busy = said.iter().any(|l| l.contains("not reset: in use"));
        if !busy || t0.elapsed() > Duration::from_secs(30) {
            return said;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The cluster's nemesis. Another process's `dualwrite reset` (tests/e2e/reliability.rs)
/// holds the cluster's lock for the few milliseconds of its look at the cluster: wait
/// for it rather than fail.
fn nemesis() -> ClusterNemesis {
    let t0 = Instant::now();
    loop {
        match ClusterNemesis::load(&state_dir()) {
            Ok(n) => return n,
            Err(e)
                if e.to_string().contains("in use") && t0.elapsed() < Duration::from_secs(30) =>
            {
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => panic!("{e:#}"),
        }
    }
}

/// Maps every node address to one proxy: that node coordinates everything.
#[derive(Debug)]
struct PinTo(SocketAddr);

#[async_trait]
impl AddressTranslator for PinTo {
    async fn translate_address(
        &self,
        _peer: &UntranslatedPeer,
    ) -> Result<SocketAddr, TranslationError> {
        Ok(self.0)
    }
}

/// A session whose coordinator is node `i`, through its `primary` proxy.
async fn pinned(state: &ClusterState, i: u8) -> Session {
    let proxy = state
        .proxy("primary", node(i))
        .expect("cluster proxy")
        .listen;
    let profile = ExecutionProfile::builder()
        .request_timeout(Some(Duration::from_secs(5)))
        .consistency(Consistency::One)
        // The test decides what to retry: a failed ALL must stay failed.
        .retry_policy(Arc::new(FallthroughRetryPolicy::new()))
        .build();
    SessionBuilder::new()
        .known_node_addr(proxy)
        .address_translator(Arc::new(PinTo(proxy)))
        .fetch_schema_metadata(false)
        .connection_timeout(Duration::from_secs(3))
        .default_execution_profile_handle(profile.into_handle())
        .build()
        .await
        .unwrap_or_else(|e| panic!("session through {proxy} to node c{i}: {e}"))
}

fn at(cql: &str, level: Consistency) -> Statement {
    let mut s = Statement::new(cql);
    s.set_consistency(level);
    s
}

async fn write(s: &Session, ks: &str, id: i32, level: Consistency) -> Result<(), ExecutionError> {
    let cql = format!("INSERT INTO {ks}.rows (id, v) VALUES (?, 'x')");
    s.query_unpaged(at(&cql, level), (id,)).await.map(|_| ())
}

/// Whether row `id` is there, read at ONE through the session's node.
async fn present(s: &Session, ks: &str, id: i32) -> bool {
    let cql = format!("SELECT id FROM {ks}.rows WHERE id = ?");
    let r = s
        .query_unpaged(at(&cql, Consistency::One), (id,))
        .await
        .unwrap_or_else(|e| panic!("read of {id} at ONE: {e}"));
    r.into_rows_result()
        .unwrap()
        .maybe_first_row::<(i32,)>()
        .unwrap()
        .is_some()
}

fn unavailable(e: &ExecutionError) -> bool {
    matches!(
        e,
        ExecutionError::LastAttemptError(RequestAttemptError::DbError(
            DbError::Unavailable { .. },
            _
        ))
    )
}

/// Polls `f` every 500 ms until it holds; panics with `what` after `limit`.
async fn within<F, Fut>(limit: Duration, what: &str, mut f: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let t0 = Instant::now();
    loop {
        if f().await {
            return t0.elapsed();
        }
        assert!(t0.elapsed() < limit, "not within {limit:?}: {what}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// A keyspace with replication factor 3 (every node holds every row) and a table
/// without speculative retry (a read at ONE asks exactly one replica).
async fn keyspace(s: &Session, state: &ClusterState, label: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let ks = format!("e2e_{label}_{}_{nanos}", std::process::id());
    let ddl = [
        format!(
            "CREATE KEYSPACE {ks} WITH replication = {{'class': 'NetworkTopologyStrategy', '{}': 3}}",
            state.datacenter
        ),
        format!(
            "CREATE TABLE {ks}.rows (id int PRIMARY KEY, v text) WITH speculative_retry = 'NONE'"
        ),
    ];
    for cql in ddl {
        let mut st = at(&cql, Consistency::All);
        st.set_request_timeout(Some(Duration::from_secs(30)));
        s.query_unpaged(st, ()).await.expect(&cql);
    }
    // A write right after CREATE TABLE can fail on a node that lacks the table yet.
    s.await_schema_agreement().await.expect("schema agreement");
    ks
}

async fn drop_keyspace(s: &Session, ks: &str) {
    let mut st = Statement::new(format!("DROP KEYSPACE IF EXISTS {ks}"));
    st.set_request_timeout(Some(Duration::from_secs(30)));
    let _ = s.query_unpaged(st, ()).await;
}

/// Every node sees every other: an ALL write through each coordinator succeeds.
async fn all_up(sessions: &[&Session], ks: &str) {
    for (i, s) in sessions.iter().enumerate() {
        within(Duration::from_secs(90), "ALL writes succeed", || async {
            write(s, ks, -1 - i as i32, Consistency::All).await.is_ok()
        })
        .await;
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn nft_tables(netns: &str) -> String {
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", netns, "nft", "list", "tables"])
        .output()
        .expect("ip netns exec");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Node 3 cut off from nodes 1 and 2: QUORUM through node 1 succeeds, ALL fails,
/// node 3 does not have the row; after healing, hints bring it to node 3.
#[test]
fn a_cut_replica_misses_quorum_writes_until_hints_deliver_them() {
    let _guard = lock();
    rt().block_on(async {
        reset().await;
        let nemesis = nemesis();
        let state = nemesis.state().clone();
        let (s1, s3) = (pinned(&state, 1).await, pinned(&state, 3).await);
        let ks = keyspace(&s1, &state, "cut").await;
        all_up(&[&s1, &s3], &ks).await;

        // Replication factor 3 works: a row written at ALL is on node 3.
        write(&s1, &ks, 0, Consistency::All)
            .await
            .expect("ALL before the cut");
        assert!(
            present(&s3, &ks, 0).await,
            "node 3 holds a row written at ALL"
        );

        let cut = nemesis
            .apply(&NodeFault::Partition(Partition::isolate(node(3), &state)))
            .await
            .expect("partition");
        eprintln!("partition of c3 in force after {:?}", cut.took);
        let t_cut = Instant::now();

        write(&s1, &ks, 1, Consistency::Quorum)
            .await
            .expect("QUORUM through node 1 with node 3 cut off");
        let all = write(&s1, &ks, 2, Consistency::All).await;
        assert!(all.is_err(), "ALL cannot succeed with a replica cut off");
        eprintln!("ALL right after the cut: {}", all.unwrap_err());
        // Node 3 cannot have it: no packet from node 1 or 2 reaches it.
        assert!(
            !present(&s3, &ks, 1).await,
            "node 3 has a row written after the cut"
        );

        // Once node 1 marks node 3 down, ALL is refused up front (Unavailable).
        let mut id = 100;
        within(
            Duration::from_secs(60),
            "ALL refused as Unavailable",
            || {
                id += 1;
                let (s1, ks) = (&s1, &ks);
                async move {
                    matches!(write(s1, ks, id, Consistency::All).await, Err(e) if unavailable(&e))
                }
            },
        )
        .await;
        eprintln!(
            "node 1 marked node 3 down within {:?} of the cut",
            t_cut.elapsed()
        );
        assert!(!present(&s3, &ks, 1).await, "node 3 still lacks the row");

        let healed = nemesis.heal(cut).await.expect("heal");
        eprintln!("partition healed in {healed:?}");
        let waited = within(
            Duration::from_secs(120),
            "hints deliver the row to node 3",
            || present(&s3, &ks, 1),
        )
        .await;
        eprintln!("row on node 3 {waited:?} after healing");

        // The read was node 3's own: every traced step ran on node 3.
        let node3 = state.node(node(3)).unwrap().addr;
        let mut traced = at(
            &format!("SELECT id FROM {ks}.rows WHERE id = 1"),
            Consistency::One,
        );
        traced.set_tracing(true);
        let r = s3.query_unpaged(traced, ()).await.expect("traced read");
        let info = s3
            .get_tracing_info(&r.tracing_id().expect("tracing id"))
            .await
            .expect("tracing info");
        assert!(!info.events.is_empty(), "{info:?}");
        for e in &info.events {
            assert_eq!(e.source, Some(node3.into()), "{e:?}");
        }
        drop_keyspace(&s1, &ks).await;
    });
}

/// A run killed mid-fault leaves rules in the namespaces, a delayer and a stopped JVM;
/// `dualwrite reset` (another process, as after `kill -9` of a run: it reads only the
/// state file, the namespaces and /proc) removes every rule, stops the delayer and
/// resumes the node.
#[test]
fn reset_after_a_crash_leaves_no_rule_and_no_stopped_node() {
    let _guard = lock();
    rt().block_on(async {
        reset().await;
        let nemesis = nemesis();
        let state = nemesis.state().clone();
        let cut = nemesis
            .apply(&NodeFault::Partition(Partition::isolate(node(2), &state)))
            .await
            .expect("partition");
        let loss = nemesis
            .apply(&NodeFault::Loss {
                nodes: vec![node(1)],
                percent: 50,
            })
            .await
            .expect("loss");
        let delay = nemesis
            .apply(&NodeFault::Delay {
                nodes: vec![node(3)],
                delay_ms: 50,
            })
            .await
            .expect("delay");
        let pause = nemesis
            .apply(&NodeFault::Pause(node(3)))
            .await
            .expect("pause");
        let paused = cluster::node_pid(state.node(node(3)).unwrap()).unwrap();
        assert_eq!(cluster::proc_state(paused), Some('T'));
        for n in &state.nodes {
            assert!(
                nft_tables(&n.netns).contains("inet dualwrite"),
                "{}",
                n.netns
            );
        }
        // The crash: the faults are never healed, and the lock goes with the process.
        std::mem::forget((cut, loss, delay, pause));
        drop(nemesis);

        let out = std::process::Command::new(bin())
            .arg("reset")
            .env("DUALWRITE_STATE", state_dir())
            .output()
            .expect("dualwrite reset");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{out:?}");
        assert!(stdout.contains("resumed paused cassandra-c3"), "{stdout}");
        assert!(stdout.contains("stopped delayer"), "{stdout}");
        for n in &state.nodes {
            assert_eq!(nft_tables(&n.netns).trim(), "", "rules left in {}", n.netns);
            let pid = cluster::node_pid(n).expect("node runs");
            assert_ne!(cluster::proc_state(pid), Some('T'), "{} stopped", n.id);
        }
        // Nothing left to fix.
        assert_eq!(reset().await, Vec::<String>::new());
    });
}

/// A delay of 100 ms at node 3 holds each packet between node 3 and the others once:
/// an ALL write through node 1 waits for node 3's answer, so a round trip costs at
/// least 200 ms more. Healing removes the rules and stops the delayer.
#[test]
fn a_delay_between_nodes_slows_all_writes_and_heals_cleanly() {
    let _guard = lock();
    rt().block_on(async {
        reset().await;
        let nemesis = nemesis();
        let state = nemesis.state().clone();
        let s1 = pinned(&state, 1).await;
        let s3 = pinned(&state, 3).await;
        let ks = keyspace(&s1, &state, "delay").await;
        all_up(&[&s1, &s3], &ks).await;

        let delay = nemesis
            .apply(&NodeFault::Delay {
                nodes: vec![node(3)],
                delay_ms: 100,
            })
            .await
            .expect("delay");
        eprintln!("delay in force after {:?}", delay.took);
        let mut slowest_fast = Duration::ZERO;
        for id in 0..5 {
            let t = Instant::now();
            write(&s1, &ks, id, Consistency::All)
                .await
                .expect("ALL under delay");
            let took = t.elapsed();
            assert!(took >= Duration::from_millis(200), "ALL took {took:?}");
            slowest_fast = slowest_fast.max(took);
        }
        eprintln!("ALL writes under a 100 ms delay at c3: slowest {slowest_fast:?}");
        nemesis.heal(delay).await.expect("heal");
        let ns3 = &state.node(node(3)).unwrap().netns;
        assert_eq!(nft_tables(ns3).trim(), "", "rules left in {ns3}");
        assert!(
            !std::fs::read_dir(state_dir().join("pids"))
                .unwrap()
                .flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with("nfq-delay-")),
            "a delayer's pid file is left"
        );
        assert_eq!(nemesis.reset().await.unwrap(), Vec::<String>::new());
        drop_keyspace(&s1, &ks).await;
    });
}

/// A killed node is gone when apply returns and answers again when heal returns.
#[test]
fn a_killed_node_is_restarted_by_heal() {
    let _guard = lock();
    rt().block_on(async {
        reset().await;
        let nemesis = nemesis();
        let state = nemesis.state().clone();
        let c3 = state.node(node(3)).unwrap().clone();
        let before = cluster::node_pid(&c3).unwrap();
        let kill = nemesis
            .apply(&NodeFault::Kill(node(3)))
            .await
            .expect("kill");
        eprintln!("c3 killed in {:?}", kill.took);
        assert!(cluster::node_pid(&c3).is_err(), "c3 still runs");
        let healed = nemesis.heal(kill).await.expect("restart");
        eprintln!("c3 restarted and answering in {healed:?}");
        let after = cluster::node_pid(&c3).expect("c3 runs again");
        assert_ne!(before, after);
        let s3 = pinned(&state, 3).await;
        s3.query_unpaged("SELECT release_version FROM system.local", ())
            .await
            .expect("c3 answers CQL");
    });
}
