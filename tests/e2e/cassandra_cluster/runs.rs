//! Runs on the three-node cluster through the binary: each replica-level scenario
//! of scenarios/ (cassandra-cluster-*.toml) with its counts explained by its
//! history and by the per-replica reads; the per-replica reads proven on
//! divergence planted on a single replica; and `dualwrite reset` after a
//! `kill -9` of a run in the middle of a partition.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use dualwrite::fault::cluster::{self, Partition};
use dualwrite::history::{History, HistoryEntry, OpSummary, Outcome, SideOutcome};
use dualwrite::replicas::{ReplicaCheck, agree, snapshot};
use dualwrite::result::{FaultWindow, ReplicaSnapshot, ReplicaView, RunResult};
use dualwrite::store::Record;

use super::{lock, nemesis, nft_tables, node, reset, rt, state_dir, within};
use crate::common::*;

pub(super) fn scenario(name: &str) -> PathBuf {
    repo().join("scenarios").join(format!("{name}.toml"))
}

/// The applied window of a fault kind.
pub(super) fn window<'a>(r: &'a RunResult, kind: &str) -> &'a FaultWindow {
    r.faults
        .iter()
        .find(|w| w.kind == kind && w.start_s.is_some())
        .unwrap_or_else(|| panic!("no applied {kind} window: {:?}", r.faults))
}

fn view<'a>(snap: &'a ReplicaSnapshot, node: &str) -> &'a ReplicaView {
    snap.replicas
        .iter()
        .find(|v| v.node == node)
        .unwrap_or_else(|| panic!("no view of {node}: {snap:?}"))
}

fn ok(e: &HistoryEntry) -> bool {
    e.outcome == Outcome::Ok
}

/// Acknowledged operations that started at least `margin` after `from_s` (the
/// window's apply was sent then, and was in force within milliseconds).
fn acked_after(run: &Run, from_s: f64, margin: f64) -> u64 {
    let from_us = ((from_s + margin) * 1e6) as u64;
    run.count(|e| ok(e) && e.start_us >= from_us)
}

/// Every replica readable at check time, reading its own node (traced), and
/// holding what the others hold.
fn whole_and_proven_at_check(run: &Run) {
    let rep = run.result.replicas.as_ref().expect("replicas block");
    let check = rep.check.as_ref().expect("check-time reads");
    for v in &check.replicas {
        assert!(v.error.is_none(), "{} unreadable at check: {v:?}", v.node);
        let t = v.trace.as_ref().expect("a traced read");
        assert!(
            t.proven,
            "{}: the read did not stay on the node: {t:?}",
            v.node
        );
    }
    assert_eq!(rep.final_read, "ALL");
}

/// Naive at ONE through c1 with c3 cut off: c3 lacks every acknowledged order
/// written after the cut (on c3 alone they are lost acknowledgements) while the
/// final read at ALL finds nothing missing; after the healing the replicas agree.
#[test]
fn naive_at_one_leaves_a_cut_replica_behind_until_hints_deliver() {
    let _guard = lock();
    let s = Scratch::new();
    let run = s.run(&scenario("cassandra-cluster-naive-one-partition"));
    let c = run.checker();
    // Both writes of each operation were acknowledged at ONE by c1 (c3 out of the
    // way): at ALL nothing is missing whatever the outcome.
    assert_eq!(
        (c.orphans, c.ghosts, c.lost_acks),
        (0, 0, 0),
        "{}",
        run.explain()
    );
    assert_eq!(run.code, 0, "{}", run.explain());
    let w = window(&run.result, "partition");
    assert!(
        w.planned_end_s > run.result.workload.load_s,
        "the cut lasts past the load"
    );
    let rep = run.result.replicas.as_ref().expect("replicas block");
    let end = rep.load_end.as_ref().expect("load-end reads");
    assert!(
        end.faults_in_force
            .iter()
            .any(|l| l.contains("partition@c3")),
        "{end:?}"
    );
    assert!(!end.agree);
    // No packet of c1 reaches c3 after the cut: every order acknowledged after it
    // is missing on c3, on both sides.
    let after_cut = acked_after(&run, w.start_s.unwrap(), 1.0);
    assert!(
        after_cut > 0,
        "nothing acknowledged after the cut: {}",
        run.explain()
    );
    let c3 = view(end, "c3");
    assert!(
        c3.error.is_none(),
        "c3 is cut from the nodes, not from clients: {c3:?}"
    );
    assert!(
        c3.lost_acks >= after_cut,
        "c3 {c3:?} vs {after_cut} acked after the cut"
    );
    assert!(
        c3.missing_primary >= after_cut && c3.missing_secondary >= after_cut,
        "{c3:?}"
    );
    assert!(c3.scanned_primary < run.result.workload.ops.total, "{c3:?}");
    // The hints arrive after the healing: the replicas agree within the settle
    // period, and each holds everything at check time.
    let agreed = rep.agreed_after_ms.expect("replicas agreed while settling");
    eprintln!(
        "c3 lacked {} orders at the load's end; agreed {agreed} ms after the healing",
        c3.missing_primary
    );
    let check = rep.check.as_ref().unwrap();
    assert!(check.agree);
    for v in &check.replicas {
        assert_eq!(
            (v.missing_primary, v.missing_secondary, v.lost_acks),
            (0, 0, 0),
            "{v:?}"
        );
    }
    whole_and_proven_at_check(&run);
}

/// The checks common to both coordinator-kill scenarios: the final read finds
/// every batch whole or absent; `fail` means never sent; c3 unreadable while dead.
fn coordinator_kill_is_whole_at_all(run: &Run) {
    let c = run.checker();
    assert_eq!((c.orphans, c.ghosts), (0, 0), "{}", run.explain());
    // Acknowledged at QUORUM: on two replicas, never lost.
    assert_eq!(c.lost_acks, 0, "{}", run.explain());
    // A batch in flight when c3 died is `unknown`: landed whole or not at all.
    let u = &c.ambiguous_unknown;
    assert_eq!((u.primary_only, u.secondary_only), (0, 0), "{u:?}");
    assert_eq!(u.none + u.both, run.result.workload.ops.unknown);
    // Sent while c3 was dead: the pinned coordinator refused before sending.
    let f = &c.ambiguous_fail;
    assert_eq!(f.none, run.result.workload.ops.fail, "{f:?}");
    assert!(
        run.result.workload.ops.fail > 0,
        "no batch met the dead coordinator"
    );
    assert_eq!(run.code, 0, "{}", run.explain());
    let rep = run.result.replicas.as_ref().expect("replicas block");
    let end = rep.load_end.as_ref().expect("load-end reads");
    assert!(
        end.faults_in_force
            .iter()
            .any(|l| l.contains("node-kill@c3")),
        "{end:?}"
    );
    assert!(
        view(end, "c3").error.is_some(),
        "c3 is dead at the load's end: {end:?}"
    );
    for n in ["c1", "c2"] {
        assert!(view(end, n).error.is_none(), "{n} answers: {end:?}");
    }
    whole_and_proven_at_check(run);
}

/// Cross-partition logged batch, its slow coordinator killed mid-batch: whole or
/// absent at ALL after the batchlog replay; what c1 and c2 held meanwhile is
/// what they hold at check time or less (rows only arrive: replay, hints).
#[test]
fn cross_partition_batch_with_its_coordinator_killed_is_whole_at_all_after_replay() {
    let _guard = lock();
    let s = Scratch::new();
    let run = s.run(&scenario("cassandra-cluster-batch-cross-coordinator-kill"));
    coordinator_kill_is_whole_at_all(&run);
    let rep = run.result.replicas.as_ref().unwrap();
    let (end, check) = (rep.load_end.as_ref().unwrap(), rep.check.as_ref().unwrap());
    for n in ["c1", "c2"] {
        let (e, c) = (view(end, n), view(check, n));
        assert!(
            c.scanned_primary >= e.scanned_primary,
            "{n}: {e:?} then {c:?}"
        );
        // What arrived after the load's end can only be batches the client did not
        // see succeed: the replay of an `unknown` one.
        let later = c.scanned_primary - e.scanned_primary;
        assert!(
            later <= run.checker().ambiguous_unknown.both,
            "{n}: {later} rows arrived later"
        );
        eprintln!("{n}: {later} batches arrived after the load's end (batchlog replay)");
    }
    // The batchlog and the hints bring every replica to the same records.
    assert!(
        rep.agreed_after_ms.is_some(),
        "replicas never agreed: {rep:?}"
    );
    assert!(check.agree, "{check:?}");
}

/// Same-partition logged batch under the same kill: one mutation, atomic on each
/// replica: no replica ever holds half a batch, and a replica that lacks batches
/// lacks them on both sides.
#[test]
fn same_partition_batch_is_atomic_on_every_replica_when_its_coordinator_dies() {
    let _guard = lock();
    let s = Scratch::new();
    let run = s.run(&scenario("cassandra-cluster-batch-same-coordinator-kill"));
    coordinator_kill_is_whole_at_all(&run);
    let rep = run.result.replicas.as_ref().unwrap();
    for snap in [rep.load_end.as_ref().unwrap(), rep.check.as_ref().unwrap()] {
        for v in snap.replicas.iter().filter(|v| v.error.is_none()) {
            assert_eq!(
                (v.orphans, v.ghosts),
                (0, 0),
                "half a batch on {}: {v:?}",
                v.node
            );
            assert_eq!(v.missing_primary, v.missing_secondary, "{v:?}");
            assert_eq!(v.scanned_primary, v.scanned_secondary, "{v:?}");
        }
    }
    let c3 = view(rep.check.as_ref().unwrap(), "c3");
    eprintln!(
        "c3 at check: lacks {} batches (sent, not applied by itself before it died); agreed: {:?}",
        c3.missing_primary, rep.agreed_after_ms
    );
}

/// The outbox relay coordinated by the minority node: its LWT claims fail for want
/// of a Paxos quorum (timeouts, then Unavailable), nothing is published while the
/// cut lasts, and no entry is published twice except the one named cause.
#[test]
fn outbox_relay_in_a_minority_cannot_claim_and_never_publishes_twice() {
    let _guard = lock();
    let s = Scratch::new();
    let run = s.run(&scenario("cassandra-cluster-outbox-minority-relay"));
    let c = run.checker();
    assert_eq!(
        (c.orphans, c.ghosts, c.lost_acks),
        (0, 0, 0),
        "{}",
        run.explain()
    );
    // A second publication only ever comes from a mark cut off mid-flight: one
    // worker, at most one.
    assert!(c.duplicates <= 1, "{}", run.explain());
    if let Some(a) = c.attribution.get("duplicates") {
        assert_eq!(a.outside, 0, "an unexplained double publication: {a:?}");
        assert_eq!(
            a.causes.get("relay restart after an error").copied(),
            Some(c.duplicates)
        );
    }
    assert_eq!(run.code, 0, "{}", run.explain());
    let relay = run.result.relay.as_ref().expect("relay figures");
    assert!(relay.stats.drained, "{relay:?}");
    assert!(relay.stats.errors > 0, "the claims never failed: {relay:?}");
    let samples = relay.stats.error_samples.join("\n");
    assert!(samples.contains("(LWT)"), "{samples}");
    assert!(
        samples.contains("Serial") || samples.contains("client timeout"),
        "no failed Paxos round among: {samples}"
    );
    eprintln!("relay errors during the cut:\n{samples}");
    // An order written (at ONE, on c3) after the cut could only be claimed after
    // the healing: it waited at least until then.
    let w = window(&run.result, "partition");
    let (cut, healed) = (w.start_s.unwrap(), w.end_s.unwrap());
    let waited = run.count(|e| {
        ok(e) && e.start_us as f64 / 1e6 >= cut + 1.0 && (e.end_us as f64 / 1e6) < healed - 1.0
    });
    assert!(
        waited > 0,
        "no order written inside the cut: {}",
        run.explain()
    );
    let max_ms = relay.time_to_consistency_ms.max;
    assert!(
        max_ms >= (healed - cut - 2.0) * 1000.0,
        "time to consistency {max_ms} ms"
    );
    // Meanwhile c1 and c2 lacked the orders c3 took at ONE.
    let rep = run.result.replicas.as_ref().unwrap();
    let end = rep.load_end.as_ref().unwrap();
    for n in ["c1", "c2"] {
        assert!(view(end, n).missing_primary >= waited, "{:?}", view(end, n));
    }
    whole_and_proven_at_check(&run);
}

const PLANTED: &str = r#"
name = "e2e-cluster-planted"
[target]
store = "cassandra"
server = "cassandra-cluster"
[target.primary]
coordinator = "c3"
consistency = "one"
[target.secondary]
coordinator = "c3"
consistency = "one"
[pattern]
name = "outbox"
[workload]
rate = 10
duration = "1s"
"#;

/// Divergence planted on c3 alone (c3 cut off, writes at ONE through c3) is
/// counted exactly by c3's read, and c1/c2's reads count exactly what they lack;
/// after the healing the hints bring everyone to the same records.
#[test]
fn divergence_planted_on_one_replica_is_counted_exactly_per_replica() {
    let _guard = lock();
    rt().block_on(async {
        reset().await;
        let scenario = parse(PLANTED);
        let stores = fresh_store(scenario.clone()).await;
        let check = ReplicaCheck::of(&stores).await.unwrap().expect("replicas");
        let check = &check;
        let (p, s) = stores.sides().await.unwrap();
        let rec = |id: u64, amount: u64| Record {
            order_id: id,
            customer_id: 3,
            amount_cents: amount,
        };
        let mut history = History::default();
        for id in 0..10 {
            history.record(
                id,
                OpSummary::new(Outcome::Ok, SideOutcome::Ok, SideOutcome::Async, 0),
            );
        }
        // 0..4 on every replica.
        for id in 0..4 {
            p.plant(rec(id, 100), 1).await.unwrap();
            s.plant(rec(id, 100), 1).await.unwrap();
        }
        within(
            Duration::from_secs(60),
            "0..4 on every replica",
            || async move { agree(&check.read(Duration::from_secs(10)).await) },
        )
        .await;
        let nemesis = nemesis();
        let state = nemesis.state().clone();
        let cut = nemesis
            .apply(&cluster::NodeFault::Partition(Partition::isolate(
                node(3),
                &state,
            )))
            .await
            .expect("partition");
        // On c3 alone: 4, 5 orphans; 6 ghost; 7 three times on the secondary;
        // 8 mismatched; 9 nowhere; one foreign key.
        p.plant(rec(4, 100), 1).await.unwrap();
        p.plant(rec(5, 100), 1).await.unwrap();
        s.plant(rec(6, 100), 1).await.unwrap();
        p.plant(rec(7, 100), 1).await.unwrap();
        s.plant(rec(7, 100), 3).await.unwrap();
        p.plant(rec(8, 100), 1).await.unwrap();
        s.plant(rec(8, 999), 1).await.unwrap();
        s.plant_foreign("not-an-order").await.unwrap();
        let fields = &scenario.check.fields;
        let snap = snapshot(
            check.read(Duration::from_secs(10)).await,
            &history,
            fields,
            0.0,
            Vec::new(),
        );
        let healed = nemesis.heal(cut).await;
        assert!(!snap.agree);
        let c3 = view(&snap, "c3");
        assert_eq!(
            (
                c3.orphans,
                c3.ghosts,
                c3.duplicates,
                c3.mismatches,
                c3.lost_acks,
                c3.divergence
            ),
            (2, 1, 2, 1, 4, 10),
            "{c3:?}"
        );
        assert_eq!(
            (c3.scanned_primary, c3.scanned_secondary),
            (8, 10),
            "{c3:?}"
        );
        assert_eq!(
            (c3.missing_primary, c3.missing_secondary, c3.differing),
            (0, 0, 0),
            "{c3:?}"
        );
        for n in ["c1", "c2"] {
            let v = view(&snap, n);
            // 4..9 are on no side of theirs: six acknowledged orders lost there.
            assert_eq!(
                (v.orphans, v.ghosts, v.duplicates, v.mismatches, v.lost_acks),
                (0, 0, 0, 0, 6),
                "{v:?}"
            );
            assert_eq!((v.scanned_primary, v.scanned_secondary), (4, 4), "{v:?}");
            // c3 holds 4, 5, 7, 8 on the primary and 6, 7, 8 on the secondary.
            assert_eq!((v.missing_primary, v.missing_secondary), (4, 3), "{v:?}");
        }
        healed.expect("heal");
        let waited = within(
            Duration::from_secs(180),
            "hints bring c1 and c2 what c3 took",
            || async move { agree(&check.read(Duration::from_secs(10)).await) },
        )
        .await;
        eprintln!("replicas agreed {waited:?} after the healing");
        stores.drop_namespace().await.unwrap();
    });
}

const CRASHED_RUN: &str = r#"
name = "e2e-cluster-killed-run"
[target]
store = "cassandra"
server = "cassandra-cluster"
[pattern]
name = "naive"
consistency = "one"
[workload]
rate = 10
duration = "120s"
[[faults]]
kind = "partition"
nodes = ["c2"]
start = "1s"
duration = "110s"
[[faults]]
kind = "node-pause"
node = "c3"
start = "1s"
duration = "110s"
[expect]
divergence = "any"
"#;

/// `kill -9` of a run while a partition and a paused node are in force leaves them
/// behind; `dualwrite reset` (the binary) removes every rule, resumes the node, and
/// frees the cluster for the next run.
#[test]
fn reset_after_kill_9_of_a_run_mid_partition_leaves_no_rule_and_no_paused_node() {
    let _guard = lock();
    let state = rt().block_on(async {
        reset().await;
        nemesis().state().clone()
    });
    let s = Scratch::new();
    let file = s.write("killed.toml", CRASHED_RUN);
    let mut child = std::process::Command::new(bin())
        .args(["run", file.to_str().unwrap(), "--quiet", "--results-dir"])
        .arg(s.results())
        .current_dir(repo())
        .env("DUALWRITE_STATE", state_dir())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("dualwrite run");
    let c3 = state.node(node(3)).unwrap().clone();
    let in_force = || {
        let cut = state
            .nodes
            .iter()
            .all(|n| nft_tables(&n.netns).contains("inet dualwrite"));
        let paused = cluster::node_pid(&c3).ok().and_then(cluster::proc_state) == Some('T');
        cut && paused
    };
    let t0 = Instant::now();
    while !in_force() {
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "the run never put both faults in force"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before its faults"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    child.kill().expect("kill -9");
    child.wait().unwrap();
    // Left behind by the crash.
    assert!(in_force(), "the faults should outlive the killed run");
    let out = s.dualwrite(&["reset"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(stdout.contains("resumed paused cassandra-c3"), "{stdout}");
    assert!(
        stdout.contains("removed nft table `inet dualwrite`"),
        "{stdout}"
    );
    for n in &state.nodes {
        assert_eq!(nft_tables(&n.netns).trim(), "", "rules left in {}", n.netns);
        let pid = cluster::node_pid(n).expect("node runs");
        assert_ne!(cluster::proc_state(pid), Some('T'), "{} stopped", n.id);
    }
    // The cluster is free again, and clean.
    assert_eq!(rt().block_on(reset()), Vec::<String>::new());
    // The killed run never dropped its keyspace: named after its run id
    // (YYYYMMDDTHHMMSSZ-tag -> dw_YYYYMMDDHHMMSS_tag, see run::new_run_id).
    let run_dir = std::fs::read_dir(s.results().join("e2e-cluster-killed-run"))
        .unwrap()
        .flatten()
        .find(|e| e.file_name() != "latest")
        .expect("the killed run's directory");
    let id = run_dir
        .file_name()
        .to_string_lossy()
        .replace(['T', 'Z'], "");
    let keyspace = format!("dw_{}", id.replace('-', "_"));
    rt().block_on(async {
        let s1 = super::pinned(&state, 1).await;
        super::drop_keyspace(&s1, &keyspace).await;
    });
    for side in ["primary", "secondary"] {
        for n in 1..=3 {
            let (enabled, toxics) = proxy_state(&format!("cassandra_cluster_{side}_n{n}"));
            assert!(enabled && toxics.is_empty(), "{side} n{n}: {toxics:?}");
        }
    }
}
