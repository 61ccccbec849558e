//! `dualwrite bench --cluster`: the pattern-overhead table of Cassandra measured on
//! the single node and on the local three-node cluster (replication factor 3),
//! both at QUORUM, in one run and interleaved pattern by pattern, so the two
//! columns meet the same machine load. Each server's patterns are reported
//! against that server's own single-write baseline, and the cluster against the
//! single node.

use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use std::sync::Arc;

use crate::bench::{BenchArgs, bare_loop, bare_store_single, first_line, parse, run_one, variants};
use crate::pattern::PatternKind;
use crate::scenario::StoreKind;
use crate::store::cassandra::CLUSTER_SERVER;

const SERVERS: [&str; 2] = ["cassandra", CLUSTER_SERVER];

/// Latency at a fixed rate and the most a server absorbed.
#[derive(Debug, Clone, Copy, Default)]
struct Figures {
    p50: f64,
    p99: f64,
    max: f64,
}

fn text(
    server: &str,
    pattern: &str,
    rate: f64,
    limit: &str,
    concurrency: usize,
    extra: &str,
) -> String {
    format!(
        "name = \"bench-{server}-{pattern}\"\n[target]\nstore = \"cassandra\"\nserver = \"{server}\"\n[pattern]\nname = \"{pattern}\"\nconsistency = \"quorum\"\n{extra}[workload]\nrate = {rate}\n{limit}\nconcurrency = {concurrency}\nop_timeout = \"5s\"\n[check]\nsettle = \"10s\"\n[expect]\ndivergence = \"any\"\norphans = \"any\"\nlost_acks = \"any\"\nduplicates = \"any\"\nghosts = \"any\"\n"
    )
}

/// One pattern on one server: p50/p99 at `rate` for `secs`, and the achieved rate
/// of `ops` operations at concurrency 16.
async fn pattern_figures(
    args: &BenchArgs,
    server: &str,
    kind: PatternKind,
    extra: &str,
    rate: f64,
    secs: u64,
    ops: u64,
) -> anyhow::Result<Figures> {
    let at_rate = run_one(
        &text(
            server,
            kind.name(),
            rate,
            &format!("duration = \"{secs}s\""),
            64,
            extra,
        ),
        args,
    )
    .await?;
    let max = run_one(
        &text(
            server,
            kind.name(),
            100_000.0,
            &format!("ops = {ops}"),
            16,
            extra,
        ),
        args,
    )
    .await?;
    Ok(Figures {
        p50: at_rate.latency_ms.p50,
        p99: at_rate.latency_ms.p99,
        max: max.workload.achieved_tps,
    })
}

/// Prints the two tables side by side and returns the summary lines.
pub async fn pattern_tables(args: &BenchArgs) -> anyhow::Result<Vec<String>> {
    let store = StoreKind::parse("cassandra").expect("cassandra is registered");
    let secs = if args.quick { 3 } else { 6 };
    let ops: u64 = if args.quick { 600 } else { 2000 };
    println!("\n## cassandra: one node and the three-node cluster, both at QUORUM");
    // A rate both servers absorb: 0.3 x the slower one's bare single write.
    let mut probes = Vec::new();
    let mut ceiling = f64::INFINITY;
    for server in SERVERS {
        let probe = Arc::new(parse(&text(server, "naive", 10.0, "ops = 1", 16, ""))?);
        let (max, _) = crate::bench::with_bare_client(probe.clone(), server, |bare| {
            bare_loop(bare, ops / 2, 16)
        })
        .await?;
        ceiling = ceiling.min(max);
        probes.push(probe);
    }
    let rate = (ceiling * 0.3 / 10.0).round().max(1.0) * 10.0;
    let mut single = [Figures::default(); 2];
    for (i, probe) in probes.into_iter().enumerate() {
        let (p50, p99, max) = bare_store_single(store, probe, rate, secs).await?;
        single[i] = Figures { p50, p99, max };
    }
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED).set_header(vec![
        "pattern",
        "1 node p50 ms",
        "1 node p99 ms",
        "1 node max/s",
        "1 node p50 / single",
        "cluster p50 ms",
        "cluster p99 ms",
        "cluster max/s",
        "cluster p50 / single",
        "cluster / 1 node p50",
        "cluster / 1 node max",
    ]);
    let row = |name: String, f: [Figures; 2]| -> Vec<String> {
        vec![
            name,
            format!("{:.2}", f[0].p50),
            format!("{:.2}", f[0].p99),
            format!("{:.0}", f[0].max),
            format!("{:.2}", f[0].p50 / single[0].p50),
            format!("{:.2}", f[1].p50),
            format!("{:.2}", f[1].p99),
            format!("{:.0}", f[1].max),
            format!("{:.2}", f[1].p50 / single[1].p50),
            format!("{:.2}", f[1].p50 / f[0].p50),
            format!("{:.2}", f[1].max / f[0].max),
        ]
    };
    table.add_row(row("single write (baseline)".into(), single));
    let mut lines = Vec::new();
    for kind in PatternKind::ALL
        .into_iter()
        .filter(|k| k.on(store.spec()).is_ok())
    {
        for (label, extra) in variants(store, kind) {
            let name = if label.is_empty() {
                kind.name().to_string()
            } else {
                format!("{kind} ({label})")
            };
            let mut f = [Figures::default(); 2];
            let mut failed = None;
            // Interleaved: the same pattern on both servers back to back.
            for (i, server) in SERVERS.iter().enumerate() {
                match pattern_figures(args, server, kind, extra, rate, secs, ops).await {
                    Ok(x) => f[i] = x,
                    Err(e) => failed = Some(format!("{server}: {}", first_line(&e))),
                }
            }
            match failed {
                Some(why) => {
                    table.add_row(vec![name, format!("not run: {why}")]);
                }
                None => {
                    lines.push(format!(
                        "SUMMARY cassandra {name} at QUORUM: cluster p50 {:.2} ms vs one node {:.2} ms = {:.2}x; max {:.0}/s vs {:.0}/s = {:.2}x",
                        f[1].p50,
                        f[0].p50,
                        f[1].p50 / f[0].p50,
                        f[1].max,
                        f[0].max,
                        f[1].max / f[0].max
                    ));
                    table.add_row(row(name, f));
                }
            }
        }
    }
    println!(
        "pattern overhead at QUORUM ({rate}/s for {secs}s for latency; {ops} ops at concurrency 16 for max; one node = RF 1, cluster = RF 3):\n{table}"
    );
    Ok(lines)
}
