//! One run of one scenario, box by box: set-up -> driver + nemesis (+ relay) ->
//! settle -> checker -> result. Proxies are restored on every path out of here;
//! `main` also restores them after a panic.

use anyhow::Context;
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

use crate::checker::{self, CheckerReport, CollectedScan};
use crate::driver::{self, DriveSpec, LiveCounters};
use crate::fault::toxiproxy::Toxiproxy;
use crate::fault::{self, FaultTargets, Nemesis};
use crate::history::HistoryWriter;
use crate::progress::Progress;
use crate::relay::Relay;
use crate::result::{
    self, Latency, Ops, RelayResult, RunDir, RunResult, ScenarioInfo, Tool, Verdict, WorkloadResult,
};
use crate::scenario::{Scenario, Side, SideEndpoint};
use crate::store::{self, StoreContext};

/// How to run (from the command line).
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub results_dir: PathBuf,
    pub quiet: bool,
    pub verbose: bool,
    pub check_on_interrupt: bool,
    /// Keep the run's tables/collections after the check.
    pub keep_data: bool,
    /// Local stack state dir (pids for process faults) and its script.
    pub stack_state: PathBuf,
    pub stack_script: PathBuf,
}

/// Infrastructure failure: a store, proxy or the results directory is unusable (exit 3).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct InfraError(pub String);

fn infra(e: anyhow::Error) -> anyhow::Error {
    if e.downcast_ref::<InfraError>().is_some() {
        e
    } else {
        InfraError(format!("{e:#}")).into()
    }
}

/// A unique, sortable run id, and a namespace usable as a table/keyspace/database name.
pub fn new_run_id(prefix: &str) -> (String, String) {
    let now = chrono::Utc::now();
    let tag: u16 = rand::random();
    let run_id = format!("{}-{tag:04x}", now.format("%Y%m%dT%H%M%SZ"));
    let namespace = format!("{prefix}_{}_{tag:04x}", now.format("%Y%m%d%H%M%S"));
    (run_id, namespace)
}

/// A run that ended with an error. Unless not even its run directory could be
/// made, an error result (verdict `error`, the reason) is already on disk and
/// carried here too, so summaries and JUnit list the run instead of dropping it.
#[derive(Debug, thiserror::Error)]
#[error("{error:#}")]
pub struct RunFailed {
    pub error: anyhow::Error,
    pub written: Option<Box<(RunResult, RunDir)>>,
}

impl RunFailed {
    fn bare(error: anyhow::Error) -> Self {
        Self {
            error,
            written: None,
        }
    }
}

/// Runs one scenario and writes its result. `interrupt` turns true on Ctrl-C/SIGTERM.
pub async fn run_scenario(
    scenario: Scenario,
    opts: &RunOptions,
    interrupt: watch::Receiver<bool>,
) -> Result<(RunResult, RunDir), RunFailed> {
    let scenario = Arc::new(scenario);
    let (run_id, namespace) = new_run_id(&scenario.namespace.prefix);
    let dir = RunDir::create(&opts.results_dir, &scenario.name, &run_id)
        .map_err(|e| RunFailed::bare(infra(e)))?;
    result::write_atomic(&dir.scenario_file(), scenario.source.as_bytes())
        .map_err(|e| RunFailed::bare(infra(e.into())))?;
    let started_at = chrono::Utc::now();
    let toxiproxy = Toxiproxy::new(&scenario.target.toxiproxy);
    // A synchronous pattern never uses the relay side: leave its proxy to others.
    let proxies: BTreeMap<Side, String> = Side::ALL
        .into_iter()
        .filter(|s| *s != Side::Relay || scenario.pattern.kind.is_async())
        .filter_map(|s| match scenario.target.endpoint(s) {
            SideEndpoint::Proxy(p) => Some((s, p.clone())),
            SideEndpoint::Direct(_) => None,
        })
        .collect();
    let proxy_names: Vec<String> = proxies.values().cloned().collect();
    // Held until the proxies are restored below.
    let holder = format!("run {run_id} of scenario {}", scenario.name);
    let mut notes = Vec::new();
    // The load's figures, once the load is over: an error in the checker phase
    // still reports what the load did.
    let mut after_load = None;
    let outcome = match fault::lock::acquire(toxiproxy.base(), &proxy_names, &holder) {
        Ok(_locks) => {
            let outcome = run_inner(
                &scenario,
                opts,
                interrupt,
                &dir,
                &run_id,
                &namespace,
                &toxiproxy,
                &proxies,
                &mut notes,
                &mut after_load,
            )
            .await;
            // Restore on every path, including errors; a crash of this process is
            // handled by the same function at the start of the next run.
            if !proxy_names.is_empty()
                && let Err(e) = fault::restore(&toxiproxy, &proxy_names).await
            {
                notes.push(format!("could not verify proxies were restored: {e:#}"));
            }
            outcome
        }
        // Another run owns the proxies: leave them alone (no restore).
        Err(e) => Err(infra(e)),
    };
    let finished_at = chrono::Utc::now();
    let mut result = match outcome {
        Ok(r) => r,
        Err(e) => {
            // Nothing is lost: an error still leaves a result saying what happened.
            let mut r = after_load.unwrap_or_else(|| empty_result(&scenario, &run_id, &namespace));
            r.complete = false;
            r.verdict = Verdict::Error;
            r.verdict_reasons = vec![format!("{e:#}")];
            r.started_at = started_at.to_rfc3339();
            r.finished_at = finished_at.to_rfc3339();
            r.notes = notes;
            if let Err(w) = r.write(&dir.result_file()) {
                return Err(RunFailed::bare(anyhow::anyhow!(
                    "{e:#} (and its error result could not be written: {w:#})"
                )));
            }
            let _ = dir.mark_latest();
            return Err(RunFailed {
                error: e,
                written: Some(Box::new((r, dir))),
            });
        }
    };
    result.started_at = started_at.to_rfc3339();
    result.finished_at = finished_at.to_rfc3339();
    result.notes.extend(notes);
    result
        .write(&dir.result_file())
        .map_err(|e| RunFailed::bare(infra(e)))?;
    let _ = dir.mark_latest();
    Ok((result, dir))
}

pub fn empty_result(scenario: &Scenario, run_id: &str, namespace: &str) -> RunResult {
    RunResult {
        schema_version: result::SCHEMA_VERSION,
        tool: Tool::default(),
        run_id: run_id.to_string(),
        scenario: ScenarioInfo {
            name: scenario.name.clone(),
            file: scenario.file.display().to_string(),
            sha256: scenario.sha256.clone(),
            description: scenario.description.clone(),
            faults: scenario.faults.iter().map(|f| f.short()).collect(),
        },
        seed: scenario.seed,
        target: scenario.target.store.name().to_string(),
        pattern: scenario.pattern.kind.name().to_string(),
        pattern_options: serde_json::to_value(&scenario.pattern).unwrap_or_default(),
        server: Default::default(),
        namespace: namespace.to_string(),
        started_at: String::new(),
        finished_at: String::new(),
        complete: false,
        interrupted: None,
        workload: WorkloadResult {
            target_tps: scenario.workload.rate,
            concurrency: scenario.workload.concurrency,
            ops: Ops {
                planned: scenario.workload.planned_ops(),
                ..Ops::default()
            },
            ..WorkloadResult::default()
        },
        latency_ms: Latency::default(),
        service_ms: Latency::default(),
        timeline: Vec::new(),
        faults: Vec::new(),
        relay: None,
        checker: CheckerReport::default(),
        checked: false,
        expect: scenario.expect.clone(),
        verdict: Verdict::Error,
        verdict_reasons: Vec::new(),
        notes: Vec::new(),
    }
}

#[allow(clippy::too_many_arguments)]
async fn run_inner(
    scenario: &Arc<Scenario>,
    opts: &RunOptions,
    interrupt: watch::Receiver<bool>,
    dir: &RunDir,
    run_id: &str,
    namespace: &str,
    toxiproxy: &Toxiproxy,
    proxies: &BTreeMap<Side, String>,
    notes: &mut Vec<String>,
    after_load: &mut Option<RunResult>,
) -> anyhow::Result<RunResult> {
    let say = |line: String| {
        if !opts.quiet {
            eprintln!("{line}");
        }
    };
    // Where each side connects: the proxy's listen address, or the direct endpoint.
    let proxy_names: Vec<String> = proxies.values().cloned().collect();
    if !proxies.is_empty() {
        toxiproxy.version().await.map_err(infra)?;
        for line in fault::restore(toxiproxy, &proxy_names)
            .await
            .map_err(infra)?
        {
            say(format!(
                "note: {line} (left by an earlier run that did not finish)"
            ));
            notes.push(line);
        }
    }
    let endpoints = store::resolve_endpoints(&scenario.target, toxiproxy)
        .await
        .map_err(infra)?;
    let ctx = StoreContext {
        scenario: scenario.clone(),
        namespace: namespace.to_string(),
        endpoints,
    };
    let store: Arc<dyn store::Store> = Arc::from(
        tokio::time::timeout(Duration::from_secs(10), store::connect(ctx))
            .await
            .map_err(|_| {
                InfraError(format!(
                    "{} did not answer within 10s (is the local stack up? scripts/stack up)",
                    scenario.target.store
                ))
            })?
            .map_err(infra)?,
    );
    let server = store.server_info();
    store.prepare().await.map_err(infra)?;
    let client = store.client().await.map_err(infra)?;
    let relay = store.relay().await.map_err(infra)?.map(|worker| {
        Arc::new(tokio::sync::Mutex::new(Relay::start(
            worker,
            scenario.pattern.relay.clone(),
            scenario.seed,
        )))
    });

    let history_writer = HistoryWriter::create(&dir.history_file())?;
    let live = Arc::new(LiveCounters::default());
    let active = Arc::new(Mutex::new(Vec::new()));
    let load = scenario.workload.planned_duration();
    let nemesis = Nemesis::new(
        toxiproxy.clone(),
        run_id,
        proxies.clone(),
        scenario.faults.clone(),
        load,
    );
    let targets = FaultTargets {
        store: store.clone(),
        relay: relay.clone(),
        stack_state: opts.stack_state.clone(),
        stack_script: opts.stack_script.clone(),
    };
    let (nemesis_stop_tx, nemesis_stop_rx) = watch::channel(false);
    let t0 = Instant::now() + Duration::from_millis(20);
    say(format!(
        "run {run_id}: {} / {} on {} ({}), {} ops at {}/s, {} fault window(s)",
        scenario.name,
        scenario.pattern.kind,
        scenario.target.store,
        server.product,
        scenario.workload.planned_ops(),
        scenario.workload.rate,
        nemesis.plan().len()
    ));
    let progress = (!opts.quiet).then(|| {
        Progress::start(
            t0,
            load,
            live.clone(),
            active.clone(),
            std::io::stderr().is_terminal(),
        )
    });
    let spec = DriveSpec {
        seed: scenario.seed,
        rate: scenario.workload.rate,
        ops: scenario.workload.planned_ops(),
        concurrency: scenario.workload.concurrency,
        customers: scenario.workload.customers,
        payload_bytes: scenario.workload.payload_bytes,
        op_deadline: scenario.workload.op_timeout * (scenario.pattern.retries + 2)
            + Duration::from_secs(1),
    };
    let (windows, driven) = tokio::join!(
        async {
            nemesis
                .run(t0, nemesis_stop_rx, &targets, active.clone())
                .await
        },
        async {
            let r = driver::drive(
                client,
                spec,
                t0,
                Some(history_writer),
                interrupt.clone(),
                live.clone(),
            )
            .await;
            // The load is over: faults still in force are removed now.
            let _ = nemesis_stop_tx.send(true);
            r
        }
    );
    if let Some(p) = progress {
        p.stop().await;
    }
    // The nemesis is done: release its hold on the relay, so the relay can be
    // taken back (Arc::try_unwrap) after the settle period, also when the driver
    // failed (before the `?`).
    drop(targets);
    // Belt and braces before settle and scan: a fault request that timed out may
    // have landed after the nemesis gave up on it (seen in a 30-minute soak on a
    // loaded machine: a proxy left disabled made the final scan fail).
    if !proxy_names.is_empty()
        && let Ok(fixed) = fault::restore(toxiproxy, &proxy_names).await
    {
        for line in fixed {
            say(format!("note: {line} after the load"));
            notes.push(format!("{line} after the load"));
        }
    }
    let (stats, history, writer) = driven?;
    if let Some(w) = writer {
        w.finish().context("writing history.jsonl")?;
    }
    for w in windows.iter().filter(|w| w.error.is_some()) {
        notes.push(format!(
            "fault {} failed: {}",
            w.label(),
            w.error.as_deref().unwrap_or("")
        ));
    }
    let interrupted = *interrupt.borrow();
    let load_end = Instant::now();

    // Settle: let the relay drain (bounded), or the stores quiesce.
    let mut relay_stats = None;
    let do_check = !interrupted || opts.check_on_interrupt;
    if let Some(relay) = &relay {
        let mut r = relay.lock().await;
        r.restart(); // a relay-crash window cut short by the end of the load
        let pending_at_load_end = r.pending().await.unwrap_or(u64::MAX);
        let (drained, pending) = if do_check {
            r.wait_drained(scenario.check.settle).await
        } else {
            (false, pending_at_load_end)
        };
        if !drained {
            notes.push(format!(
                "the relay did not drain within the settle time ({pending} pending)"
            ));
        }
        if let Some(e) = r.last_error() {
            notes.push(format!("the relay's last error: {e}"));
        }
        relay_stats = Some((pending_at_load_end, drained, pending, load_end.elapsed()));
    } else if do_check {
        tokio::time::sleep(scenario.check.settle).await;
    }
    let relay_result = match relay {
        Some(relay) => {
            let relay = Arc::try_unwrap(relay)
                .map_err(|_| anyhow::anyhow!("relay still shared"))?
                .into_inner();
            let (deliveries, mut stats_r) = relay.stop();
            let (pending_at_load_end, drained, pending, drain) = relay_stats.unwrap_or_default();
            stats_r.pending_at_load_end = pending_at_load_end;
            stats_r.pending_at_check = pending;
            stats_r.drained = drained;
            stats_r.drain_ms = drain.as_millis() as u64;
            stats_r.fault_crashes = windows
                .iter()
                .filter(|w| w.kind == "relay-crash" && w.start_s.is_some())
                .count() as u64;
            let mut ttc = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3)
                .expect("valid bounds");
            for (id, at) in deliveries {
                if let Some(op) = history.get(id) {
                    let intended = t0 + Duration::from_millis(u64::from(op.intended_ms));
                    ttc.saturating_record(
                        at.saturating_duration_since(intended).as_micros().max(1) as u64,
                    );
                }
            }
            Some(RelayResult {
                stats: stats_r,
                time_to_consistency_ms: Latency::from_us(&ttc),
            })
        }
        None => None,
    };

    let mut result = empty_result(scenario, run_id, namespace);
    result.server = server;
    result.interrupted = interrupted.then(|| "interrupted by signal".to_string());
    result.workload.achieved_tps = (stats.achieved_tps * 100.0).round() / 100.0;
    result.workload.load_s = (stats.load_s * 1000.0).round() / 1000.0;
    result.workload.ops = Ops {
        planned: spec_ops(scenario),
        total: stats.issued,
        ok: stats.ok,
        fail: stats.fail,
        unknown: stats.unknown,
    };
    result.workload.retries = stats.retries;
    result.workload.delayed = stats.delayed;
    result.workload.max_start_delay_ms = (stats.max_start_delay_ms * 1000.0).round() / 1000.0;
    result.workload.errors = stats.errors.clone();
    result.workload.error_samples = stats.error_samples.clone();
    result.latency_ms = Latency::from_us(&stats.latency_us);
    result.service_ms = Latency::from_us(&stats.service_us);
    result.timeline = stats.timeline.clone();
    result.faults = windows;
    result.relay = relay_result;
    *after_load = Some(result.clone());

    let checker = if do_check {
        say("checking: full scan of both sides".to_string());
        let mut primary = CollectedScan::default();
        store
            .scan(Side::Primary, &mut primary)
            .await
            .map_err(infra)?;
        let mut secondary = CollectedScan::default();
        store
            .scan(Side::Secondary, &mut secondary)
            .await
            .map_err(infra)?;
        Some(checker::check(
            primary,
            secondary,
            &history,
            &scenario.check.fields,
            &result.faults,
        ))
    } else {
        None
    };
    if !scenario.namespace.keep && !opts.keep_data {
        if let Err(e) = store.drop_namespace().await {
            notes.push(format!("could not drop namespace {namespace}: {e:#}"));
        }
    } else {
        notes.push(format!("data kept in namespace {namespace}"));
    }

    result.complete = !interrupted && checker.is_some();
    match checker {
        Some(c) => {
            let (verdict, reasons) = result::judge(&c, &scenario.expect);
            result.checker = c;
            result.checked = true;
            result.verdict = verdict;
            result.verdict_reasons = reasons;
        }
        None => {
            result.verdict = Verdict::Error;
            result.verdict_reasons =
                vec!["interrupted before the checker ran (use --check-on-interrupt)".into()];
        }
    }
    Ok(result)
}

fn spec_ops(scenario: &Scenario) -> u64 {
    scenario.workload.planned_ops()
}
