//! `dualwrite bench`: the harness measured against itself and against the bare
//! client, side by side in one run, reported as ratios (the machine is shared and
//! noisy, so absolute numbers from different runs do not compare). Benchmarks
//! report; they never assert wall-clock times in the test suite.
//!
//! `--json FILE` keeps the figures ([`figures`]); `--baseline FILE` judges this
//! run's harness figures against an earlier file's ([`baseline`]). The
//! pattern-overhead table is [`patterns`], the seed's claims beside it [`claims`].

mod app;
mod baseline;
mod claims;
mod figures;
mod kafka;
mod patterns;
mod proxies;
mod readers;

use async_trait::async_trait;
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use hdrhistogram::Histogram;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::watch;

use self::figures::{BenchResult, StoreFigures};
use crate::checker::{self, CollectedScan};
use crate::driver::{self, DriveSpec, LiveCounters};
use crate::history::{History, HistoryWriter, OpReport, OpSummary, Outcome, SideOutcome};
use crate::order::Order;
use crate::pattern::PatternKind;
use crate::run::{self, RunOptions};
use crate::scenario::{self, Field, Scenario, StoreKind};
use crate::store::{self, Record, ScanSink};
use crate::writer::Writer as PatternClient;

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Stores to measure (comma separated): dynamodb, cassandra, mongodb; kafka
    /// (a topic as the secondary side: its own rows, needs `scripts/stack up --only kafka`).
    #[arg(
        long,
        default_value = "dynamodb,cassandra,mongodb",
        value_delimiter = ','
    )]
    pub stores: Vec<String>,
    /// Operations for the driver-ceiling and history-cost figures (no I/O sink).
    #[arg(long, default_value_t = 1_000_000)]
    pub sink_ops: u64,
    /// Records per side for the in-memory checker figure.
    #[arg(long, default_value_t = 1_000_000)]
    pub checker_records: u64,
    /// Shorter loads (for a quick look; the figures get noisier).
    #[arg(long)]
    pub quick: bool,
    /// Where the bench's own runs are written.
    #[arg(long, default_value = "results/bench")]
    pub results_dir: PathBuf,
    /// Stores on which to measure the HTTP hop of `[app]` (the example naive
    /// service, examples/apps); empty to skip.
    #[arg(long, default_value = "dynamodb", value_delimiter = ',')]
    pub app: Vec<String>,
    /// Also the pattern-overhead table of Cassandra on the local three-node
    /// cluster at QUORUM, beside the single node's in the same run (needs
    /// scripts/stack up --only cassandra-cluster).
    #[arg(long)]
    pub cluster: bool,
    /// Only the harness's own figures, what --baseline judges: per store, skip the
    /// rate-accuracy and pattern-overhead tables.
    #[arg(long)]
    pub harness_only: bool,
    /// Write the figures to FILE as JSON (schema in docs/BENCH.md), atomically, and
    /// again after every part measured.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// An earlier --json FILE: print each harness figure's ratio against it (driver
    /// ceiling, history B/op, checker B/record, dualwrite vs the bare client per
    /// store) and exit 1 when one regressed by more than its tolerance. Figures
    /// missing from either file are listed and not judged.
    #[arg(long, value_name = "FILE")]
    pub baseline: Option<PathBuf>,
    /// Tolerated fall of the driver ceiling (ops/s and x the fastest store) below
    /// the baseline, as a fraction: 0.5 passes down to half. Wide, because the
    /// ceiling moves with whatever else runs; a task per operation cost about 4x.
    #[arg(long, default_value_t = 0.5, value_name = "FRACTION")]
    pub tolerance_ceiling: f64,
    /// Tolerated rise of history B/op and checker B/record above the baseline, as a
    /// fraction: 0.25 passes up to 1.25x.
    #[arg(long, default_value_t = 0.25, value_name = "FRACTION")]
    pub tolerance_memory: f64,
    /// Tolerated fall of dualwrite vs bare-client throughput below the baseline,
    /// as a fraction: 0.1 passes down to 0.9x. Compare runs on a quiet machine: a
    /// core kept busy by another process once moved this figure by 20%.
    #[arg(long, default_value_t = 0.1, value_name = "FRACTION")]
    pub tolerance_overhead: f64,
    /// Pattern-overhead table: the rate of each row's latency run, after every
    /// row's maximum is measured: `own` (each row at --latency-fraction of its own
    /// maximum) or `slowest` (every row at that fraction of the slowest row's).
    #[arg(long, value_enum, default_value_t = patterns::LatencyRule::Own)]
    pub latency_rule: patterns::LatencyRule,
    /// The fraction of the maximum for --latency-rule, above 0 and at most 1.
    #[arg(long, default_value_t = 0.5, value_name = "FRACTION")]
    pub latency_fraction: f64,
    /// The stores' runs go through Toxiproxy proxies of the bench's own (same
    /// upstreams, deleted after), so a test holding the stack's proxies does not
    /// make the bench skip a store.
    #[arg(long)]
    pub own_proxies: bool,
}

impl BenchArgs {
    fn latency_at(&self) -> Result<patterns::LatencyAt, String> {
        let f = self.latency_fraction;
        if f > 0.0 && f <= 1.0 {
            Ok(patterns::LatencyAt {
                rule: self.latency_rule,
                fraction: f,
            })
        } else {
            Err(format!(
                "--latency-fraction {f} is out of range; use a fraction above 0 and at most 1 (0.5: half of each maximum)"
            ))
        }
    }

    fn tolerances(&self) -> Result<baseline::Tolerances, String> {
        let check = |flag: &str, v: f64, max: f64| {
            if (0.0..=max).contains(&v) {
                Ok(v)
            } else {
                Err(format!(
                    "--{flag} {v} is out of range; use a fraction from 0 to {max}"
                ))
            }
        };
        Ok(baseline::Tolerances {
            ceiling: check("tolerance-ceiling", self.tolerance_ceiling, 1.0)?,
            memory: check("tolerance-memory", self.tolerance_memory, 100.0)?,
            overhead: check("tolerance-overhead", self.tolerance_overhead, 1.0)?,
        })
    }
}

/// A sink that does no I/O: benchmark only, never presented as a store.
struct NullClient;

#[async_trait]
impl PatternClient for NullClient {
    async fn write(&self, _order: &Order) -> OpReport {
        OpReport::ok(SideOutcome::Ok, SideOutcome::Ok)
    }
}

fn rss_kb(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// What the bench has found so far: printed as it goes, kept as figures, and
/// written to the --json file after every part.
struct Summary {
    lines: Vec<String>,
    figures: BenchResult,
    json: Option<PathBuf>,
    /// The first failure to write the --json file.
    unsaved: Option<String>,
}

impl Summary {
    fn add(&mut self, line: String) {
        println!("{line}");
        self.lines.push(line);
    }

    /// Rewrites the --json file with the figures so far (hyperfine's habit: a part
    /// that fails later does not lose the ones before it).
    fn save(&mut self) {
        let Some(path) = &self.json else { return };
        self.figures.summary = self
            .lines
            .iter()
            .filter_map(|l| l.strip_prefix("SUMMARY "))
            .map(str::to_string)
            .collect();
        if let Err(e) = self.figures.write(path)
            && self.unsaved.is_none()
        {
            let e = format!("cannot write {}: {e}", path.display());
            eprintln!("error: {e}");
            self.unsaved = Some(e);
        }
    }

    fn store(&mut self, store: StoreKind) -> &mut StoreFigures {
        self.figures.stores.entry(store.to_string()).or_default()
    }
}

fn met(ok: bool) -> &'static str {
    if ok { "MET" } else { "NOT MET" }
}

pub async fn main(args: BenchArgs) -> i32 {
    // Everything that can be wrong with the flags is found before minutes of load.
    let (tolerances, latency_at) = match args.tolerances().and_then(|t| Ok((t, args.latency_at()?)))
    {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            return crate::exit::BAD_INPUT;
        }
    };
    let mut stores = Vec::new();
    let mut kafka = false;
    for name in args.stores.iter().filter(|s| !s.is_empty()) {
        if name == "kafka" {
            // Kafka holds only a secondary side: its own rows (mod kafka_rows).
            kafka = true;
            continue;
        }
        let Some(store) = StoreKind::parse(name) else {
            eprintln!("error: unknown store `{name}`; use dynamodb, cassandra, mongodb");
            return crate::exit::BAD_INPUT;
        };
        stores.push(store);
    }
    let earlier = match args.baseline.as_deref().map(BenchResult::read).transpose() {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: {e:#}");
            return crate::exit::BAD_INPUT;
        }
    };
    let mut summary = Summary {
        lines: Vec::new(),
        figures: BenchResult::new(
            args.sink_ops,
            args.checker_records,
            args.quick,
            args.harness_only,
        ),
        json: args.json.clone(),
        unsaved: None,
    };
    if !args.harness_only {
        summary.figures.latency_rule = Some(latency_at.describe());
    }
    summary.save();
    if summary.unsaved.is_some() {
        eprintln!("nothing was measured");
        return crate::exit::INFRA;
    }
    println!("# dualwrite bench ({} cores)", summary.figures.cores);
    let ceiling = driver_ceiling(args.sink_ops, &mut summary).await;
    checker_memory(args.checker_records, &mut summary);
    summary.save();
    let mut own_proxies = None;
    if args.own_proxies {
        match proxies::OwnProxies::create(&stores).await {
            Ok(p) => own_proxies = Some(p),
            Err(e) => {
                eprintln!("error: --own-proxies: {e:#}");
                return crate::exit::INFRA;
            }
        }
    }
    let mut fastest_store: f64 = 0.0;
    for store in stores {
        match store_figures(store, &args, &mut summary).await {
            Ok(max) => fastest_store = fastest_store.max(max),
            Err(e) => {
                summary.add(format!("{store}: skipped ({e:#})"));
                summary.store(store).skipped = Some(format!("{e:#}"));
            }
        }
        summary.save();
    }
    if let Some(mut p) = own_proxies {
        p.remove().await;
    }
    if kafka && !args.harness_only {
        match kafka::figures(&args, &mut summary).await {
            Ok(max) => fastest_store = fastest_store.max(max),
            Err(e) => summary.add(format!("kafka: skipped ({e:#})")),
        }
    }
    for name in args.app.iter().filter(|s| !s.is_empty()) {
        let Some(store) = StoreKind::parse(name) else {
            eprintln!("error: unknown store `{name}` for --app; use dynamodb, cassandra, mongodb");
            return crate::exit::BAD_INPUT;
        };
        if let Err(e) = app::app_overhead(store, &args, &mut summary).await {
            summary.add(format!("app ({store}): skipped ({e:#})"));
        }
    }
    if args.cluster {
        match crate::bench_cluster::pattern_tables(&args).await {
            Ok(lines) => lines.into_iter().for_each(|l| summary.add(l)),
            Err(e) => summary.add(format!("cassandra cluster: skipped ({e:#})")),
        }
    }
    if !args.harness_only && !summary.figures.stores.is_empty() {
        // The runs' orders: 2000 at most per run, 64-byte payloads.
        let wcu = claims::Wcu::of_orders(2000, 64);
        let rows = claims::rows(&summary.figures.stores, &wcu);
        println!(
            "\n## The seed's claims next to this run (latency from the pattern-overhead tables, {})\n{}",
            latency_at.describe(),
            claims::table(&rows)
        );
        summary.figures.claims = rows;
        summary.save();
    }
    if fastest_store > 0.0 && ceiling > 0.0 {
        let ratio = ceiling / fastest_store;
        summary.figures.harness.fastest_store_ops_s = Some(fastest_store);
        summary.figures.harness.driver_ceiling_x_fastest_store = Some(ratio);
        summary.add(format!(
            "SUMMARY driver ceiling: {ceiling:.0} ops/s = {ratio:.0}x the fastest store here ({fastest_store:.0} ops/s); goal >= 100x: {}",
            met(ratio >= 100.0)
        ));
    }
    summary.save();
    println!("\n## Summary");
    for line in summary.lines.iter().filter(|l| l.starts_with("SUMMARY")) {
        println!("{}", line.trim_start_matches("SUMMARY "));
    }
    let mut code = crate::exit::PASS;
    if let Some(earlier) = earlier {
        let comparisons = baseline::compare(&earlier, &summary.figures, &tolerances);
        println!(
            "\n## Against the baseline {} ({})\n{}",
            args.baseline.as_deref().unwrap_or(Path::new("")).display(),
            earlier.started_at,
            baseline::table(&comparisons)
        );
        if baseline::regressed(&comparisons) {
            println!("a harness figure regressed beyond its tolerance");
            code = crate::exit::REGRESSION;
        }
    }
    if summary.unsaved.is_some() {
        code = crate::exit::worst(code, crate::exit::INFRA);
    }
    code
}

/// Driver ceiling and history cost: the scheduler, history and histograms against a
/// sink that does no I/O, with the history streamed to a file as in a real run.
async fn driver_ceiling(ops: u64, summary: &mut Summary) -> f64 {
    let dir = tempfile_dir();
    let writer = HistoryWriter::create(&dir.join("history.jsonl")).ok();
    let before = rss_kb("VmRSS:");
    let spec = DriveSpec {
        seed: 1,
        rate: 1e9,
        ops,
        concurrency: 64,
        customers: 1000,
        payload_bytes: 64,
        op_deadline: Duration::from_secs(10),
    };
    let (_tx, stop) = watch::channel(false);
    let started = Instant::now();
    let t0 = Instant::now();
    let result = driver::drive(
        Arc::new(NullClient),
        spec,
        t0,
        writer,
        stop,
        Arc::new(LiveCounters::default()),
    )
    .await;
    let elapsed = started.elapsed().as_secs_f64();
    let (stats, history, writer) = match result {
        Ok(r) => r,
        Err(e) => {
            summary.add(format!("driver ceiling: failed: {e:#}"));
            return 0.0;
        }
    };
    if let Some(w) = writer {
        let _ = w.finish();
    }
    let after = rss_kb("VmRSS:");
    let rate = stats.issued as f64 / elapsed;
    let per_op = (after.saturating_sub(before) * 1024) as f64 / ops as f64;
    let file = std::fs::metadata(dir.join("history.jsonl")).map_or(0, |m| m.len());
    summary.figures.harness.driver_ceiling_ops_s = Some(rate);
    summary.figures.harness.history_bytes_per_op = Some(per_op);
    summary.add(format!(
        "driver ceiling: {} ops through the scheduler, history and histograms in {elapsed:.2}s = {rate:.0} ops/s (history file {:.0} MB streamed to disk)",
        stats.issued,
        file as f64 / 1e6
    ));
    summary.add(format!(
        "SUMMARY history cost: resident memory grew {:.1} MB over {ops} operations = {per_op:.1} B/op (in-memory summary {} B/op); goal <= 64 B/op: {}",
        after.saturating_sub(before) as f64 / 1024.0,
        std::mem::size_of::<OpSummary>(),
        met(per_op <= 64.0)
    ));
    drop(history);
    let _ = std::fs::remove_dir_all(&dir);
    rate
}

fn tempfile_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("dualwrite-bench-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    dir
}

/// Checker memory and speed on synthetic records (no store can hold 2 x 1M records
/// and be scanned in a reasonable time on this machine; the real-scan ratio is
/// measured per store below on a smaller table).
fn checker_memory(records: u64, summary: &mut Summary) {
    let hwm_before = rss_kb("VmRSS:");
    let mut history = History::with_capacity(records as usize);
    let mut p = CollectedScan::default();
    let mut s = CollectedScan::default();
    for id in 0..records {
        history.record(
            id,
            OpSummary::new(
                Outcome::Ok,
                SideOutcome::Ok,
                SideOutcome::Ok,
                (id / 100) as u32,
            ),
        );
        let r = Record {
            order_id: id,
            customer_id: id % 1000,
            amount_cents: id,
        };
        // A permutation (7919 is prime and divides no power of ten): scans return
        // records in arbitrary order.
        let shuffled = id.wrapping_mul(7919) % records;
        p.record(Record {
            order_id: shuffled,
            customer_id: shuffled % 1000,
            amount_cents: shuffled,
        });
        s.record(r);
    }
    let started = Instant::now();
    let report = checker::check(
        p,
        s,
        &history,
        &[Field::CustomerId, Field::AmountCents],
        &[],
        &checker::Causes::new(),
    );
    let elapsed = started.elapsed().as_secs_f64();
    let grew = rss_kb("VmHWM:").saturating_sub(hwm_before) * 1024;
    let per_record = grew as f64 / (2 * records) as f64;
    summary.figures.harness.checker_bytes_per_record = Some(per_record);
    summary.add(format!(
        "SUMMARY checker memory: {records} records per side compared in {elapsed:.2}s ({:.0} records/s), peak memory {per_record:.1} B/record (incl. history); goal <= 64 B/record: {} (divergence found: {}, expected 0)",
        (2 * records) as f64 / elapsed,
        met(per_record <= 64.0),
        report.divergence
    ));
}

fn scenario_text(
    store: StoreKind,
    pattern: &str,
    rate: f64,
    limit: &str,
    concurrency: usize,
    extra: &str,
) -> String {
    let server = format!(
        "server = \"{}\"\n{}",
        store.spec().bench.server,
        proxies::sides_text(store)
    );
    format!(
        "name = \"bench-{store}-{pattern}\"\n[target]\nstore = \"{store}\"\n{server}[pattern]\nname = \"{pattern}\"\n{extra}[workload]\nrate = {rate}\n{limit}\nconcurrency = {concurrency}\nop_timeout = \"5s\"\n[check]\nsettle = \"10s\"\n[expect]\ndivergence = \"any\"\norphans = \"any\"\nlost_acks = \"any\"\nduplicates = \"any\"\nghosts = \"any\"\n"
    )
}

pub(crate) fn parse(text: &str) -> anyhow::Result<Scenario> {
    Ok(scenario::parse(Path::new("bench.toml"), text)?)
}

pub(crate) async fn run_one(
    text: &str,
    args: &BenchArgs,
) -> anyhow::Result<crate::result::RunResult> {
    let opts = RunOptions {
        results_dir: args.results_dir.clone(),
        quiet: true,
        verbose: false,
        check_on_interrupt: false,
        keep_data: false,
        // The Cassandra cluster's runs find its nodes through the stack's state.
        stack_state: crate::store::stack_state_dir(),
        stack_script: PathBuf::from("scripts/stack"),
    };
    let (_tx, rx) = watch::channel(false);
    Ok(run::run_scenario(parse(text)?, &opts, rx).await?.0)
}

/// A closed loop of `concurrency` tasks calling `client` until `ops` are done.
pub(crate) async fn bare_loop(
    client: Arc<dyn PatternClient>,
    ops: u64,
    concurrency: usize,
) -> (f64, Histogram<u64>) {
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (client, next) = (client.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut h =
                Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds");
            loop {
                let id = next.fetch_add(1, Ordering::Relaxed);
                if id >= ops {
                    return h;
                }
                let order = Order::generate(9, id, 1000, 64);
                let t = Instant::now();
                client.write(&order).await;
                h.saturating_record(t.elapsed().as_micros() as u64);
            }
        }));
    }
    let mut all = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds");
    for t in tasks {
        if let Ok(h) = t.await {
            let _ = all.add(h);
        }
    }
    (ops as f64 / started.elapsed().as_secs_f64(), all)
}

/// Every figure for one store. Returns the store's maximum throughput.
async fn store_figures(
    store: StoreKind,
    args: &BenchArgs,
    summary: &mut Summary,
) -> anyhow::Result<f64> {
    println!("\n## {store}");
    let secs = if args.quick { 3 } else { 6 };
    let sat_ops: u64 = if args.quick { 600 } else { 2000 };
    let concurrency = 16;

    // Overhead versus the bare client. Each side gets fresh tables per turn, as a
    // run does (moto's writes slow down as a table grows).
    // The probe's concurrency sizes the bare client's connection pool: the same as
    // the runs', or the two sides would not be doing the same thing (FerretDB on
    // SQLite is faster with a 4-connection pool than with 16).
    let probe = Arc::new(parse(&scenario_text(
        store,
        "naive",
        10.0,
        "ops = 1",
        concurrency,
        "",
    ))?);
    let (mut dw_tps, mut dw_p50, mut bare_tps, mut bare_p50) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    // A B B A: drift (moto slows as its tables grow; a noisy neighbour) hits both
    // sides equally instead of always favouring whichever runs first.
    for round in 0..2 {
        for dualwrite_turn in [round == 0, round != 0] {
            if dualwrite_turn {
                let r = run_one(
                    &scenario_text(
                        store,
                        "naive",
                        100_000.0,
                        &format!("ops = {sat_ops}"),
                        concurrency,
                        "",
                    ),
                    args,
                )
                .await?;
                dw_tps.push(r.workload.achieved_tps);
                dw_p50.push(r.service_ms.p50);
            } else {
                let (bare_store, _) = store::connect_fresh(probe.clone()).await?;
                let Some(bare) = bare_store.primary.bare_client(2).await else {
                    anyhow::bail!("no bare client for {store} yet");
                };
                let (tps, h) = bare_loop(bare, sat_ops, concurrency).await;
                let _ = bare_store.drop_namespace().await;
                bare_tps.push(tps);
                bare_p50.push(h.value_at_quantile(0.5) as f64 / 1000.0);
            }
        }
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let (tps_ratio, p50_ratio) = (
        mean(&dw_tps) / mean(&bare_tps),
        mean(&dw_p50) / mean(&bare_p50),
    );
    summary.add(format!(
        "SUMMARY overhead ({store} naive, concurrency {concurrency}, {sat_ops} ops x2, A B B A): dualwrite {:.0} ops/s vs bare loop {:.0} ops/s = {tps_ratio:.3}; p50 {:.2} ms vs {:.2} ms = {p50_ratio:.3}; goal >= 0.95 and p50 at most 5% above: {}",
        mean(&dw_tps),
        mean(&bare_tps),
        mean(&dw_p50),
        mean(&bare_p50),
        met(tps_ratio >= 0.95 && p50_ratio <= 1.05)
    ));
    let max_tps = mean(&dw_tps).max(mean(&bare_tps));
    let figures = summary.store(store);
    figures.server = Some(store.spec().bench.server.to_string());
    figures.dualwrite_ops_s = Some(mean(&dw_tps));
    figures.bare_ops_s = Some(mean(&bare_tps));
    figures.dualwrite_vs_bare = Some(tps_ratio);
    figures.p50_vs_bare = Some(p50_ratio);
    summary.save();

    if args.harness_only {
        // The single write's maximum (the driver ceiling is judged against it) and
        // the checker against a bare scan; no tables.
        let (single_max, _) = with_bare_client(probe.clone(), store.name(), |client| {
            bare_loop(client, 1000, 16)
        })
        .await?;
        summary.store(store).single_write_max_ops_s = Some(single_max);
        summary.add(format!(
            "single write maximum ({store}, 1000 ops at concurrency 16): {single_max:.0} ops/s"
        ));
        checker_on_store(store, probe, checker_records(args.quick, store), summary).await?;
        return Ok(max_tps.max(single_max));
    }

    readers::readers_cost(store, args, max_tps, summary).await?;

    // Rate accuracy up to (and past) what the store absorbs.
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED).set_header(vec![
        "target/s",
        "achieved/s",
        "ratio",
        "delayed ops",
        "p50 ms",
        "p99 ms",
        "note",
    ]);
    let mut worst_below: f64 = f64::INFINITY;
    for fraction in [0.1, 0.4, 0.8, 1.5] {
        let rate = ((max_tps * fraction) / 10.0).round().max(1.0) * 10.0;
        let r = run_one(
            &scenario_text(
                store,
                "naive",
                rate,
                &format!("duration = \"{secs}s\""),
                64,
                "",
            ),
            args,
        )
        .await?;
        let ratio = r.workload.achieved_tps / rate;
        let saturated = fraction > 1.0;
        if !saturated {
            worst_below = worst_below.min(ratio);
        }
        table.add_row(vec![
            format!("{rate:.0}"),
            format!("{:.1}", r.workload.achieved_tps),
            format!("{ratio:.3}"),
            r.workload.delayed.to_string(),
            format!("{:.2}", r.latency_ms.p50),
            format!("{:.2}", r.latency_ms.p99),
            if saturated {
                "above capacity: delayed ops counted, latency from intended start".into()
            } else {
                String::new()
            },
        ]);
    }
    println!("rate accuracy (naive, no faults, {secs}s per rate):\n{table}");
    summary.store(store).rate_accuracy_worst = Some(worst_below);
    summary.add(format!(
        "SUMMARY rate accuracy ({store}): worst achieved/target {worst_below:.3} at rates up to 0.8x capacity ({max_tps:.0} ops/s); goal >= 0.99: {}",
        met(worst_below >= 0.99)
    ));

    // Pattern-overhead table: every pattern's maximum, then its latency below it.
    let at = args.latency_at().map_err(anyhow::Error::msg)?;
    let single_max = patterns::table(store, probe.clone(), args, at, summary).await?;

    // Checker cost on the real store: scan + compare versus a bare scan.
    checker_on_store(store, probe, checker_records(args.quick, store), summary).await?;
    // The store's rate here is the fastest anything reached on it, the single-write
    // baseline included: the driver ceiling is judged against that.
    Ok(max_tps.max(single_max))
}

/// The variants of a pattern worth a row, from the options the store honours:
/// both partitionings of a logged batch, `lwt_insert`, a polling relay.
pub(crate) fn variants(store: StoreKind, kind: PatternKind) -> Vec<(&'static str, &'static str)> {
    let honours = |option: &str| match store.spec().support(kind) {
        crate::store::spec::Support::Yes { options, .. } => options.contains(&option),
        crate::store::spec::Support::No(_) => false,
    };
    let mut v = Vec::new();
    if honours("partitioning") {
        v.push(("same", "partitioning = \"same\"\n"));
        v.push(("cross", "partitioning = \"cross\"\n"));
    } else if honours("relay.mode") && kind == PatternKind::Outbox {
        // `streams` takes relay.mode only to refuse "poll": nothing to poll.
        v.push(("poll", "[pattern.relay]\nmode = \"poll\"\n"));
    } else {
        v.push(("", ""));
    }
    if honours("lwt_insert") {
        v.push(("lwt", "lwt_insert = true\n"));
    }
    v
}

/// Records per side for the checker-vs-bare-scan figure: enough that the scan takes
/// seconds, not milliseconds (noise), within what the store writes in about a
/// minute here (moto and mongoeco ~100-150 ops/s, Cassandra thousands).
fn checker_records(quick: bool, store: StoreKind) -> u64 {
    if quick {
        500
    } else {
        store.spec().bench.checker_records
    }
}

pub(crate) fn first_line(e: &anyhow::Error) -> String {
    format!("{e:#}")
        .lines()
        .next()
        .unwrap_or("")
        .chars()
        .take(80)
        .collect()
}

/// Runs `f` with the store's bare client (one plain write per operation) in a
/// fresh namespace of `probe`'s store, dropped after.
pub(crate) async fn with_bare_client<T, Fut>(
    probe: Arc<Scenario>,
    what: &str,
    f: impl FnOnce(Arc<dyn PatternClient>) -> Fut,
) -> anyhow::Result<T>
where
    Fut: std::future::Future<Output = T>,
{
    let (s, _) = store::connect_fresh(probe).await?;
    let client = s
        .primary
        .bare_client(1)
        .await
        .ok_or_else(|| anyhow::anyhow!("no bare client for {what}"))?;
    let out = f(client).await;
    let _ = s.drop_namespace().await;
    Ok(out)
}

/// The single-write baseline through the same driver: p50, p99 at `rate`, and max.
pub(crate) async fn bare_store_single(
    store: StoreKind,
    probe: Arc<Scenario>,
    rate: f64,
    secs: u64,
) -> anyhow::Result<(f64, f64, f64)> {
    with_bare_client(probe, store.name(), |client| {
        single_write_figures(client, rate, secs, 1000)
    })
    .await?
}

/// One write per operation through `client`: (p50, p99) in ms at `rate` for
/// `secs` through the driver, then the maximum ops/s of `max_ops` in a closed
/// loop at concurrency 16.
pub(crate) async fn single_write_figures(
    client: Arc<dyn PatternClient>,
    rate: f64,
    secs: u64,
    max_ops: u64,
) -> anyhow::Result<(f64, f64, f64)> {
    let spec = DriveSpec {
        seed: 3,
        rate,
        ops: (rate * secs as f64) as u64,
        concurrency: 64,
        customers: 1000,
        payload_bytes: 64,
        op_deadline: Duration::from_secs(10),
    };
    let (_tx, stop) = watch::channel(false);
    let (stats, _, _) = driver::drive(
        client.clone(),
        spec,
        Instant::now(),
        None,
        stop,
        Arc::default(),
    )
    .await?;
    let (max, _) = bare_loop(client, max_ops, 16).await;
    Ok((
        stats.latency_us.value_at_quantile(0.5) as f64 / 1000.0,
        stats.latency_us.value_at_quantile(0.99) as f64 / 1000.0,
        max,
    ))
}

struct Counting(u64);

impl ScanSink for Counting {
    fn record(&mut self, _record: Record) {
        self.0 += 1;
    }
    fn foreign(&mut self, _key: &str) {
        self.0 += 1;
    }
}

async fn checker_on_store(
    store: StoreKind,
    probe: Arc<Scenario>,
    records: u64,
    summary: &mut Summary,
) -> anyhow::Result<()> {
    let (s, _) = store::connect_fresh(probe.clone()).await?;
    let Some(writer) = s.primary.bare_client(2).await else {
        return Ok(());
    };
    let (primary, secondary) = s.sides().await?;
    let _ = bare_loop(writer, records, 16).await;
    let mut history = History::with_capacity(records as usize);
    for id in 0..records {
        history.record(
            id,
            OpSummary::new(Outcome::Ok, SideOutcome::Ok, SideOutcome::Ok, 0),
        );
    }
    let (mut bare, mut full) = (Vec::new(), Vec::new());
    for _ in 0..2 {
        let t = Instant::now();
        let mut c = Counting(0);
        primary.scan(&mut c).await?;
        secondary.scan(&mut c).await?;
        bare.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        let (mut p, mut q) = (CollectedScan::default(), CollectedScan::default());
        primary.scan(&mut p).await?;
        secondary.scan(&mut q).await?;
        let report = checker::check(
            p,
            q,
            &history,
            &probe.check.fields,
            &[],
            &checker::Causes::new(),
        );
        full.push(t.elapsed().as_secs_f64());
        anyhow::ensure!(report.divergence == 0, "bare writes diverged: {report:?}");
    }
    let _ = s.drop_namespace().await;
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let ratio = mean(&bare) / mean(&full);
    summary.store(store).checker_vs_bare_scan = Some(ratio);
    summary.add(format!(
        "SUMMARY checker cost ({store}, {records} records per side, x2 interleaved): scan+compare {:.0} records/s vs bare scan {:.0} records/s = {ratio:.3}; goal >= 0.9: {}",
        (2 * records) as f64 / mean(&full),
        (2 * records) as f64 / mean(&bare),
        met(ratio >= 0.9)
    ));
    Ok(())
}
