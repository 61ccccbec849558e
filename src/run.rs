//! One run of one scenario, in phases, as Jepsen's `run!`: [`Run::set_up`] (proxies
//! clean, stores connected and prepared, the writer and relay built) →
//! [`Run::load`] (driver + nemesis) → [`Run::settle`] (the relay drains, the
//! stores quiesce) → [`Run::check`] (both sides scanned) → [`Run::finish`] (the
//! verdict, the result written). The result is filled as the phases go, so an
//! error in a later phase still reports what the earlier ones did. Proxies are
//! restored on every path out of here; `main` also restores them after a panic.

use anyhow::Context;
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

use crate::app::AppRun;
use crate::checker::{self, Causes, CheckerReport, CollectedScan};
use crate::driver::{self, DriveSpec, DriverStats, LiveCounters};
use crate::fault::cluster::{ClusterNemesis, ScheduledFaults};
use crate::fault::process::ProcessControl;
use crate::fault::toxiproxy::Toxiproxy;
use crate::fault::{self, FaultTargets, FaultWindow, Nemesis};
use crate::history::{History, HistoryWriter};
use crate::pattern::Delivery;
use crate::progress::Progress;
use crate::reader::{self, ReaderHandle, ReaderSpec};
use crate::relay::{Relay, Sink};
use crate::replicas::ReplicaCheck;
use crate::result::{
    self, Availability, Latency, Ops, RelayResult, ReplicaReport, RunDir, RunResult, ScenarioInfo,
    Tool, Verdict, WorkloadResult,
};
use crate::scenario::{FaultKind, Scenario, Side};
use crate::store::{self, ReadOptions, SideStore, Stores};
use crate::verdict;
use crate::writer::Writer;

/// Per-replica reads at the load's end: a paused node never answers, and the
/// faults still in force wait for these reads.
const LOAD_END_READ: Duration = Duration::from_secs(5);
/// Per-replica reads at check time (every node is up again).
const CHECK_READ: Duration = Duration::from_secs(30);
/// How long a run waits for another process's hold on the cluster.
const CLUSTER_LOCK_WAIT: Duration = Duration::from_secs(30);
/// How long a restarted node may take to be seen up by the others.
const READY_LIMIT: Duration = Duration::from_secs(120);

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
    run_repeat(scenario, opts, None, interrupt).await
}

/// [`run_scenario`] as one run of a `--repeat` series: the result records
/// `repeat` from its first write on (the caller has set the seed).
pub async fn run_repeat(
    scenario: Scenario,
    opts: &RunOptions,
    repeat: Option<result::Repeat>,
    interrupt: watch::Receiver<bool>,
) -> Result<(RunResult, RunDir), RunFailed> {
    let mut run = Run::new(scenario, opts).map_err(|e| RunFailed::bare(infra(e)))?;
    run.result.repeat = repeat;
    // Held until the proxies are restored below.
    let holder = format!("run {} of scenario {}", run.run_id, run.scenario.name);
    let outcome = match fault::lock::acquire(run.toxiproxy.base(), &run.proxy_names(), &holder) {
        Ok(_locks) => {
            let outcome = run.phases(interrupt).await;
            // Stop the service under test and restore on every path, including
            // errors; a crash of this process is handled by the same function at
            // the start of the next run (and the kernel kills its children).
            run.stop_app().await;
            run.record_app();
            run.restore_proxies("").await;
            outcome
        }
        // Another run owns the proxies: leave them alone (no restore).
        Err(e) => Err(infra(e)),
    };
    run.finish(outcome)
}

/// One run's identity, its files, and the result as filled so far.
struct Run<'a> {
    scenario: Arc<Scenario>,
    opts: &'a RunOptions,
    run_id: String,
    namespace: String,
    dir: RunDir,
    toxiproxy: Toxiproxy,
    /// The proxies of each connection that goes through any (one per node on the
    /// Cassandra cluster).
    proxies: BTreeMap<Side, Vec<String>>,
    started_at: chrono::DateTime<chrono::Utc>,
    result: RunResult,
    /// `[app]`: the service's processes, once set-up has prepared them.
    app: Option<Arc<AppRun>>,
    /// When the load started (process events are timed from it).
    load_t0: Option<Instant>,
}

/// What set-up built.
struct SetUp {
    stores: Arc<Stores>,
    writer: Arc<dyn Writer>,
    relay: Option<Arc<tokio::sync::Mutex<Relay>>>,
    processes: Option<ProcessControl>,
    /// The Cassandra cluster, held (its lock) for the whole run.
    cluster: Option<Arc<ScheduledFaults>>,
    /// Per-replica reads, when a side lives on several replicas.
    replicas: Option<ReplicaCheck>,
    /// What the readers read with, when the scenario has `[readers]`.
    readers: Option<ReaderSpec>,
}

/// What the load left.
struct Load {
    t0: Instant,
    stats: DriverStats,
    history: History,
    windows: Vec<FaultWindow>,
    interrupted: bool,
    ended: Instant,
    /// Still reading what the load wrote: finished during the settle period.
    readers: Option<ReaderHandle>,
}

impl<'a> Run<'a> {
    fn new(scenario: Scenario, opts: &'a RunOptions) -> anyhow::Result<Self> {
        let scenario = Arc::new(scenario);
        let (run_id, generated) = new_run_id(&scenario.namespace.prefix);
        let namespace = scenario.namespace.for_run(&generated);
        let dir = RunDir::create(&opts.results_dir, &scenario.name, &run_id)?;
        result::write_atomic(&dir.scenario_file(), scenario.source.as_bytes())?;
        // A run that never uses the relay connection leaves its proxy to others.
        let proxies = Side::ALL
            .into_iter()
            .filter(|s| *s != Side::Relay || scenario.uses_relay_connection())
            .map(|s| (s, scenario.target.proxies(s)))
            .filter(|(_, p)| !p.is_empty())
            .collect();
        let result = empty_result(&scenario, &run_id, &namespace);
        Ok(Self {
            toxiproxy: Toxiproxy::new(&scenario.target.toxiproxy),
            scenario,
            opts,
            run_id,
            namespace,
            dir,
            proxies,
            started_at: chrono::Utc::now(),
            result,
            app: None,
            load_t0: None,
        })
    }

    fn proxy_names(&self) -> Vec<String> {
        self.proxies.values().flatten().cloned().collect()
    }

    fn say(&self, line: String) {
        if !self.opts.quiet {
            eprintln!("{line}");
        }
    }

    fn note(&mut self, line: String) {
        self.result.notes.push(line);
    }

    /// Puts every proxy of the run back; `when` is added to what it reports.
    async fn restore_proxies(&mut self, when: &str) {
        let names = self.proxy_names();
        if names.is_empty() {
            return;
        }
        match fault::restore(&self.toxiproxy, &names).await {
            Ok(fixed) => {
                for line in fixed {
                    self.note(format!("{line}{when}"));
                }
            }
            Err(e) => self.note(format!("could not verify proxies were restored: {e:#}")),
        }
    }

    async fn phases(&mut self, interrupt: watch::Receiver<bool>) -> anyhow::Result<()> {
        let mut setup = self.set_up().await?;
        for s in setup.stores.all() {
            s.capacity_start().await;
        }
        let mut load = self.load(&mut setup, interrupt).await?;
        let readers = load.readers.take();
        let causes = self.settle(&setup, &load, readers).await?;
        // After the relay drained (its work is part of the cost), before the scans.
        self.record_capacity(&setup).await;
        // The service is done: the stores are quiet while they are scanned.
        self.stop_app().await;
        self.check(&setup, &load, &causes).await?;
        self.drop_namespace(&setup).await;
        Ok(())
    }

    /// Proxies clean, stores connected and prepared, the writer and relay built.
    async fn set_up(&mut self) -> anyhow::Result<SetUp> {
        if !self.proxies.is_empty() {
            self.toxiproxy.version().await.map_err(infra)?;
            for line in fault::restore(&self.toxiproxy, &self.proxy_names())
                .await
                .map_err(infra)?
            {
                self.say(format!(
                    "note: {line} (left by an earlier run that did not finish)"
                ));
                self.note(line);
            }
        }
        let processes = self.process_control().map_err(infra)?;
        let cluster = self.take_cluster().await.map_err(infra)?;
        // Toxiproxy is asked only for the proxies' addresses.
        let endpoints = store::resolve_endpoints(&self.scenario.target, &self.toxiproxy)
            .await
            .map_err(infra)?;
        let stores = tokio::time::timeout(
            Duration::from_secs(10),
            Stores::connect(
                &self.scenario,
                &self.namespace,
                &endpoints,
                &self.opts.stack_state,
            ),
        )
        .await
        .map_err(|_| {
            InfraError(format!(
                "{} did not answer within 10s (is the local stack up? scripts/stack up)",
                self.scenario.target.stores_label()
            ))
        })?
        .map_err(infra)?;
        self.result.server = stores.server_info();
        stores.prepare().await.map_err(infra)?;
        let writer: Arc<dyn Writer> = match &self.scenario.app {
            Some(app) => {
                // Kept before it starts, so every way out of the run stops it.
                let run = Arc::new(
                    AppRun::prepare(app, &endpoints, &self.namespace, &self.dir.path)
                        .map_err(infra)?,
                );
                self.app = Some(run.clone());
                self.say(format!(
                    "starting the service under test: {}",
                    app.service
                        .command
                        .as_ref()
                        .map_or("attached".to_string(), |c| c.join(" "))
                ));
                if let Err(e) = run.start().await {
                    // The service may have created its tables before failing:
                    // stopped first (so it creates nothing more), then dropped.
                    self.stop_app().await;
                    if !self.scenario.namespace.keep && !self.opts.keep_data {
                        let _ = stores.drop_namespace().await;
                    }
                    return Err(infra(e));
                }
                Arc::new(
                    crate::writer::http::HttpWriter::new(
                        app,
                        &run.vars,
                        self.scenario.workload.concurrency,
                    )
                    .map_err(infra)?,
                )
            }
            None => crate::pattern::writer(&self.scenario.pattern, &stores)
                .await
                .map_err(infra)?,
        };
        let relay = if self.scenario.pattern.kind.is_async() {
            let source = stores.primary.relay_source().await.map_err(infra)?;
            let sink = match self.scenario.pattern.relay.delivery {
                Delivery::AtLeastOnce => Sink::AtLeastOnce(
                    stores
                        .secondary
                        .side(Side::Secondary)
                        .await
                        .map_err(infra)?,
                ),
                Delivery::ExactlyOnce => {
                    Sink::ExactlyOnce(stores.secondary.exactly_once_sink().await.map_err(infra)?)
                }
            };
            Some(Arc::new(tokio::sync::Mutex::new(Relay::start(
                source,
                sink,
                self.scenario.pattern.relay.clone(),
                self.scenario.seed,
            ))))
        } else {
            None
        };
        let replicas = ReplicaCheck::of(&stores).await.map_err(infra)?;
        let readers = match &self.scenario.readers {
            Some(r) => {
                let (primary, secondary) = stores.sides().await.map_err(infra)?;
                let key = self.scenario.pattern.secondary_key_policy();
                let w = &self.scenario.workload;
                Some(ReaderSpec {
                    readers: r.clone(),
                    primary,
                    secondary,
                    primary_options: ReadOptions {
                        consistency: r.primary.clone(),
                        key,
                    },
                    secondary_options: ReadOptions {
                        consistency: r.secondary.clone(),
                        key,
                    },
                    seed: self.scenario.seed,
                    customers: w.customers,
                    read_deadline: w.op_timeout + Duration::from_secs(1),
                })
            }
            None => None,
        };
        Ok(SetUp {
            stores: Arc::new(stores),
            writer,
            relay,
            processes,
            cluster,
            replicas,
            readers,
        })
    }

    /// On the Cassandra cluster: takes it for this run (one run faults it at a
    /// time), checks the node faults against it, and heals what an earlier run
    /// left (a partition, a paused or killed node) before anything connects.
    async fn take_cluster(&mut self) -> anyhow::Result<Option<Arc<ScheduledFaults>>> {
        if !self.scenario.target.uses_cluster() {
            return Ok(None);
        }
        // `dualwrite reset` elsewhere holds the cluster's lock for a moment (or while
        // it restarts a node): wait for it; another run holds it for its whole
        // length, and is named in the error.
        let t0 = Instant::now();
        let nemesis = loop {
            match ClusterNemesis::load(&self.opts.stack_state) {
                Err(e) if e.to_string().contains("in use") && t0.elapsed() < CLUSTER_LOCK_WAIT => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                other => break other?,
            }
        };
        let (cluster, healed) = ScheduledFaults::take(nemesis, &self.scenario.faults).await?;
        for line in healed {
            self.say(format!(
                "note: {line} (left by an earlier run that did not finish)"
            ));
            self.note(format!("Cassandra cluster: {line}"));
        }
        Ok(Some(Arc::new(cluster)))
    }

    /// The local stack's processes, resolved before the load when the schedule
    /// has process faults (a missing pid file or script is an error now, not a
    /// server left down mid-run).
    fn process_control(&self) -> anyhow::Result<Option<ProcessControl>> {
        let servers: Vec<&str> = self
            .scenario
            .faults
            .iter()
            .filter_map(|f| f.kind.server())
            .collect();
        if servers.is_empty() {
            return Ok(None);
        }
        ProcessControl::resolve(&self.opts.stack_state, &self.opts.stack_script, &servers).map(Some)
    }

    /// The driver and the nemesis, side by side until the load ends.
    async fn load(
        &mut self,
        setup: &mut SetUp,
        interrupt: watch::Receiver<bool>,
    ) -> anyhow::Result<Load> {
        let scenario = self.scenario.clone();
        let history_writer = HistoryWriter::create(&self.dir.history_file())?;
        let live = Arc::new(LiveCounters::default());
        let active = Arc::new(Mutex::new(Vec::new()));
        let planned = scenario.workload.planned_duration();
        let nemesis = Nemesis::new(
            self.toxiproxy.clone(),
            &self.run_id,
            self.proxies.clone(),
            scenario.faults.clone(),
            planned,
        );
        let targets = FaultTargets {
            stores: setup.stores.clone(),
            relay: setup.relay.clone(),
            processes: setup.processes.clone(),
            app: self.app.clone(),
            cluster: setup.cluster.clone(),
        };
        let (nemesis_stop_tx, nemesis_stop_rx) = watch::channel(false);
        let t0 = Instant::now() + Duration::from_millis(20);
        self.load_t0 = Some(t0);
        self.say(format!(
            "run {}: {} / {} on {} ({}), {} ops at {}/s, {} fault window(s)",
            self.run_id,
            scenario.name,
            scenario.pattern_name(),
            scenario.target.stores_label(),
            self.result.server.product,
            scenario.workload.planned_ops(),
            scenario.workload.rate,
            nemesis.plan().len()
        ));
        let progress = (!self.opts.quiet).then(|| {
            Progress::start(
                t0,
                planned,
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
            op_deadline: match &scenario.app {
                // One request per order, bounded by its own timeout.
                Some(app) => app.request.timeout + Duration::from_secs(5),
                None => {
                    scenario.workload.op_timeout * (scenario.pattern.retries + 2)
                        + Duration::from_secs(1)
                }
            },
        };
        // The readers hear every answer of the writer they wrap.
        let (writer, readers) = match setup.readers.take() {
            Some(spec) => {
                let out = reader::entry::ReadsWriter::create(&self.dir.reads_file())?;
                let (writer, handle) =
                    reader::start(spec, setup.writer.clone(), t0, Some(out), interrupt.clone());
                (writer, Some(handle))
            }
            None => (setup.writer.clone(), None),
        };
        let fields = scenario.check.fields.clone();
        let (windows, (driven, load_end)) = tokio::join!(
            nemesis.run(t0, nemesis_stop_rx, &targets, active.clone()),
            async {
                let r = driver::drive(
                    writer,
                    spec,
                    t0,
                    Some(history_writer),
                    interrupt.clone(),
                    live.clone(),
                )
                .await;
                // What each replica holds while the faults still in force are.
                let load_end = match (&setup.replicas, &r) {
                    (Some(check), Ok((_, history, _))) => {
                        let in_force = active.lock().unwrap().clone();
                        let reads = check.read(LOAD_END_READ).await;
                        let at = t0.elapsed().as_secs_f64();
                        Some(crate::replicas::snapshot(
                            reads, history, &fields, at, in_force,
                        ))
                    }
                    _ => None,
                };
                // The load is over: faults still in force are removed now.
                let _ = nemesis_stop_tx.send(true);
                (r, load_end)
            }
        );
        if let Some(check) = &setup.replicas {
            self.result.replicas = Some(ReplicaReport {
                final_read: check.final_read().to_string(),
                load_end,
                ..ReplicaReport::default()
            });
        }
        if let Some(p) = progress {
            p.stop().await;
        }
        // The nemesis is done: release its hold on the relay, so the relay can be
        // taken back after the settle period, also when the driver failed.
        drop(targets);
        // Belt and braces before settle and scan: a fault request that timed out may
        // have landed after the nemesis gave up on it (seen in a 30-minute soak on a
        // loaded machine: a proxy left disabled made the final scan fail).
        self.restore_proxies(" after the load").await;
        let (stats, history, writer) = driven?;
        if let Some(w) = writer {
            w.finish().context("writing history.jsonl")?;
        }
        let mut windows = windows;
        checker::recovery_tails(&mut windows, &history);
        if self.opts.verbose && !self.opts.quiet {
            for w in &windows {
                let at = |s: Option<f64>| s.map_or("never".to_string(), |s| format!("{s:.3}"));
                eprintln!(
                    "fault {}: planned {:.3}-{:.3} s, applied {}-{} s{}",
                    w.label(),
                    w.planned_start_s,
                    w.planned_end_s,
                    at(w.start_s),
                    at(w.end_s),
                    w.recovery_ms().map_or(String::new(), |ms| format!(
                        ", side recovered {ms} ms after"
                    ))
                );
            }
        }
        for w in windows.iter().filter(|w| w.error.is_some()) {
            let line = format!(
                "fault {} failed: {}",
                w.label(),
                w.error.as_deref().unwrap_or("")
            );
            self.note(line);
        }
        let load = Load {
            t0,
            stats,
            history,
            windows,
            interrupted: *interrupt.borrow(),
            ended: Instant::now(),
            readers,
        };
        self.record_load(&load, setup);
        Ok(load)
    }

    /// The load's figures into the result (kept even if a later phase fails).
    fn record_load(&mut self, load: &Load, setup: &SetUp) {
        let stats = &load.stats;
        let r = &mut self.result;
        r.interrupted = load
            .interrupted
            .then(|| "interrupted by signal".to_string());
        r.workload.achieved_tps = (stats.achieved_tps * 100.0).round() / 100.0;
        r.workload.load_s = (stats.load_s * 1000.0).round() / 1000.0;
        r.workload.ops = Ops {
            planned: self.scenario.workload.planned_ops(),
            total: stats.issued,
            ok: stats.ok,
            fail: stats.fail,
            unknown: stats.unknown,
        };
        r.workload.retries = stats.retries;
        r.workload.delayed = stats.delayed;
        r.workload.max_start_delay_ms = (stats.max_start_delay_ms * 1000.0).round() / 1000.0;
        r.workload.errors = stats.errors.clone();
        r.workload.error_samples = stats.error_samples.clone();
        r.latency_ms = Latency::from_us(&stats.latency_us);
        r.service_ms = Latency::from_us(&stats.service_us);
        r.timeline = stats.timeline.clone();
        r.faults = load.windows.clone();
        r.availability = Availability::of(&load.history, &load.windows);
        r.warnings
            .extend(verdict::availability_warnings(&r.availability));
        for s in setup.stores.all() {
            r.faults_injected.extend(s.injected_faults());
        }
    }

    /// Each store's capacity figures per issued operation into the result.
    async fn record_capacity(&mut self, setup: &SetUp) {
        let orders = self.result.workload.ops.total;
        let mut all = result::CapacityResult {
            orders,
            ..Default::default()
        };
        for s in setup.stores.all() {
            let c = s.capacity(orders).await;
            all.figures.extend(c.figures);
            all.notes.extend(c.notes);
        }
        if !all.figures.is_empty() {
            self.result.capacity = Some(all);
        }
    }

    fn do_check(&self, load: &Load) -> bool {
        !load.interrupted || self.opts.check_on_interrupt
    }

    /// Lets the relay drain (bounded), or the stores quiesce; returns the known
    /// causes of duplicates the relay saw.
    async fn settle(
        &mut self,
        setup: &SetUp,
        load: &Load,
        readers: Option<ReaderHandle>,
    ) -> anyhow::Result<Causes> {
        // The readers finish the reads the load planned meanwhile.
        let reads = async move {
            match readers {
                Some(h) => Some(h.finish().await),
                None => None,
            }
        };
        let (causes, reads) = tokio::join!(self.settle_relay(setup, load), reads);
        self.record_reads(reads, load)?;
        let causes = causes?;
        if let Some(check) = &setup.replicas
            && self.do_check(load)
        {
            self.wait_replicas(check, load).await;
        }
        Ok(causes)
    }

    /// Polls the replicas until they hold the same records, within what is left
    /// of the settle period (at least one round).
    async fn wait_replicas(&mut self, check: &ReplicaCheck, load: &Load) {
        let deadline = load.ended + self.scenario.check.settle;
        let (agreed, polls) = check.wait_agreement(deadline).await;
        let last_end = load
            .windows
            .iter()
            .filter_map(|w| w.end_s)
            .fold(load.stats.load_s, f64::max);
        if let Some(r) = self.result.replicas.as_mut() {
            r.polls = polls;
            if let Some(at) = agreed {
                let s = at.saturating_duration_since(load.t0).as_secs_f64();
                r.agreed_s = Some((s * 1000.0).round() / 1000.0);
                r.agreed_after_ms = Some(((s - last_end).max(0.0) * 1000.0).round() as u64);
            }
        }
        if agreed.is_none() {
            self.note(format!(
                "the replicas still held different records at the end of the settle period ({polls} rounds of reads); the final scan at {} merged them",
                check.final_read()
            ));
        }
    }

    /// Lets the relay drain (bounded), or the stores quiesce; returns the known
    /// causes of duplicates the relay saw.
    async fn settle_relay(&mut self, setup: &SetUp, load: &Load) -> anyhow::Result<Causes> {
        let settle = self.scenario.check.settle;
        let Some(relay) = &setup.relay else {
            // Replicas are waited for (and polled) instead of a plain sleep.
            if self.do_check(load) && setup.replicas.is_none() {
                if self
                    .scenario
                    .app
                    .as_ref()
                    .is_some_and(|a| a.async_secondary)
                {
                    self.settle_app(setup, load).await;
                } else {
                    tokio::time::sleep(settle).await;
                }
            }
            return Ok(Causes::new());
        };
        let (pending_at_load_end, drained, pending, causes) = {
            let mut r = relay.lock().await;
            r.restart(); // a relay-crash window cut short by the end of the load
            let pending_at_load_end = r.pending().await.unwrap_or(u64::MAX);
            let (drained, pending) = if self.do_check(load) {
                r.wait_drained(settle).await
            } else {
                (false, pending_at_load_end)
            };
            if !drained {
                self.note(format!(
                    "the relay did not drain within the settle time ({pending} pending)"
                ));
            }
            if let Some(e) = r.last_error() {
                self.note(format!("the relay's last error: {e}"));
            }
            (pending_at_load_end, drained, pending, r.causes())
        };
        let drain = load.ended.elapsed();
        let (deliveries, mut stats) = relay.lock().await.stop();
        stats.pending_at_load_end = pending_at_load_end;
        stats.pending_at_check = pending;
        stats.drained = drained;
        stats.drain_ms = drain.as_millis() as u64;
        stats.fault_crashes = load
            .windows
            .iter()
            .filter(|w| w.kind == FaultKind::RelayCrash.name() && w.start_s.is_some())
            .count() as u64;
        let mut ttc = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3)
            .expect("valid bounds");
        for (id, at) in deliveries {
            if let Some(op) = load.history.get(id) {
                let intended = load.t0 + Duration::from_millis(u64::from(op.intended_ms));
                ttc.saturating_record(
                    at.saturating_duration_since(intended).as_micros().max(1) as u64
                );
            }
        }
        self.result.relay = Some(RelayResult {
            stats,
            time_to_consistency_ms: Latency::from_us(&ttc),
        });
        Ok(causes)
    }

    /// `[app]` with a relay: waits (at most the settle time) until every order on
    /// the primary has its record on the secondary.
    async fn settle_app(&mut self, setup: &SetUp, load: &Load) {
        let note =
            crate::app::wait_caught_up(&setup.stores, self.scenario.check.settle, load.ended).await;
        self.note(note);
    }

    /// Stops the service and its relay (idempotent), noting any it had to kill.
    async fn stop_app(&mut self) {
        if let Some(app) = self.app.clone() {
            for line in app.stop().await {
                self.note(line);
            }
        }
    }

    /// What happened to the `[app]` processes, into the result; deaths (exits
    /// nobody asked for) are warnings.
    fn record_app(&mut self) {
        let Some(app) = self.app.clone() else {
            return;
        };
        let t0 = self.load_t0.unwrap_or_else(Instant::now);
        for line in app.deaths(t0) {
            self.say(format!("warning: {line}"));
            self.result.warnings.push(line);
        }
        self.result.app = Some(app.result(t0));
    }

    /// What the readers saw into the result: every read, summed up against the
    /// history (`crate::reader::stats`).
    fn record_reads(
        &mut self,
        reads: Option<anyhow::Result<(Vec<reader::entry::ReadEntry>, result::Followed)>>,
        load: &Load,
    ) -> anyhow::Result<()> {
        let (Some(reads), Some(spec)) = (reads, &self.scenario.readers) else {
            return Ok(());
        };
        let (reads, followed) = reads.context("the readers failed")?;
        let delays: Vec<u64> = spec.delays.iter().map(|d| d.as_millis() as u64).collect();
        let mut r = reader::stats::summarize(&reads, &load.history, &delays);
        r.plan = result::ReadersPlan {
            rate: spec.rate,
            concurrency: spec.concurrency,
            delays_ms: delays,
            unacknowledged: spec.unacknowledged,
            primary: spec.primary.clone(),
            secondary: spec.secondary.clone(),
        };
        r.followed = followed;
        self.result.readers = Some(r);
        Ok(())
    }

    /// Full scans of both sides, compared with each other and the history.
    async fn check(&mut self, setup: &SetUp, load: &Load, causes: &Causes) -> anyhow::Result<()> {
        // After the settle: what the clients did on their own (a relay's included).
        for s in setup.stores.all() {
            self.result.client_counts.extend(s.client_counts());
        }
        if !self.do_check(load) {
            return Ok(());
        }
        if let Some(check) = &setup.replicas {
            self.check_replicas(check, load).await?;
        }
        self.say("checking: full scan of both sides".to_string());
        let (primary_side, secondary_side) = setup.stores.sides().await.map_err(infra)?;
        let primary = self
            .scan(primary_side.as_ref(), Side::Primary, load)
            .await?;
        let secondary = self
            .scan(secondary_side.as_ref(), Side::Secondary, load)
            .await?;
        let report = checker::check(
            primary,
            secondary,
            &load.history,
            &self.scenario.check.fields,
            &load.windows,
            causes,
        );
        let mut report = report;
        if self.scenario.app.is_some() {
            // Samples as the service stores them: with this run's prefix.
            let prefix = crate::store::layout::run_prefix(&self.namespace);
            for ids in report.samples.values_mut() {
                for id in ids.iter_mut() {
                    if crate::order::parse_order_key(id).is_some() {
                        *id = format!("{prefix}{id}");
                    }
                }
            }
        }
        self.result.checker = Some(report);
        self.result.checked = true;
        Ok(())
    }

    /// What each replica holds at check time, each read proven by a trace, before
    /// the final scan (whose read at ALL may repair the replicas it reads).
    async fn check_replicas(&mut self, check: &ReplicaCheck, load: &Load) -> anyhow::Result<()> {
        self.say("checking: each replica on its own".to_string());
        let waited = check.ready(READY_LIMIT).await.map_err(infra)?;
        if waited > Duration::from_secs(1) {
            self.note(format!(
                "waited {:.1} s for every replica to be up before the final scan",
                waited.as_secs_f64()
            ));
        }
        let reads = check.read(CHECK_READ).await;
        let at = load.t0.elapsed().as_secs_f64();
        let mut snap = crate::replicas::snapshot(
            reads,
            &load.history,
            &self.scenario.check.fields,
            at,
            Vec::new(),
        );
        let traces = check.traces().await;
        for view in &mut snap.replicas {
            view.trace = traces.get(&view.node).cloned();
            if view.trace.as_ref().is_some_and(|t| !t.proven) {
                let line = format!(
                    "the per-replica read of {} was not proven to read that node alone (trace: {:?})",
                    view.node, view.trace
                );
                self.note(line);
            }
        }
        if let Some(r) = self.result.replicas.as_mut() {
            r.check = Some(snap);
        }
        Ok(())
    }

    /// One side's scan. A side whose data is gone because its in-memory server
    /// was killed is read as empty, and said so: every acknowledged order then
    /// counts as lost, which is what happened to it.
    async fn scan(
        &mut self,
        side: &dyn SideStore,
        which: Side,
        load: &Load,
    ) -> anyhow::Result<CollectedScan> {
        let mut scan = CollectedScan::default();
        match side.scan(&mut scan).await {
            Ok(()) => Ok(scan),
            Err(e) => match self.killed_in_memory_server(which, load) {
                Some(server) => {
                    self.note(format!(
                        "the {which} side's server {server} keeps its data in memory and was killed during the run: its data is lost ({}: {e:#}); the checker read it as empty",
                        side.describe()
                    ));
                    Ok(CollectedScan::default())
                }
                None => Err(infra(e)),
            },
        }
    }

    /// The in-memory server of a side that a process-kill window hit, if any.
    fn killed_in_memory_server(&self, side: Side, load: &Load) -> Option<String> {
        let target = &self.scenario.target;
        let server = target.server_of(side);
        let spec = target.store_of(side).spec().server(server)?;
        let in_memory = spec.local.as_ref().is_some_and(|l| l.in_memory);
        let killed = load.windows.iter().any(|w| {
            w.kind == "process-kill" && w.start_s.is_some() && w.server.as_deref() == Some(server)
        });
        (in_memory && killed).then(|| server.to_string())
    }

    async fn drop_namespace(&mut self, setup: &SetUp) {
        if !self.scenario.namespace.keep && !self.opts.keep_data {
            if let Err(e) = setup.stores.drop_namespace().await {
                let ns = self.namespace.clone();
                self.note(format!("could not drop namespace {ns}: {e:#}"));
            }
        } else {
            let ns = self.namespace.clone();
            self.note(format!("data kept in namespace {ns}"));
        }
    }

    /// The verdict, decided in `crate::verdict`, and the result written atomically.
    fn finish(mut self, outcome: anyhow::Result<()>) -> Result<(RunResult, RunDir), RunFailed> {
        let r = &mut self.result;
        r.started_at = self.started_at.to_rfc3339();
        r.finished_at = chrono::Utc::now().to_rfc3339();
        let error = match outcome {
            Err(e) => {
                r.complete = false;
                r.verdict = Verdict::Error;
                r.verdict_reasons = vec![format!("{e:#}")];
                // The checker did not finish: its counts are unknown, not zero.
                r.checker = None;
                r.checked = false;
                Some(e)
            }
            Ok(()) => {
                r.complete = r.interrupted.is_none() && r.checker.is_some();
                match &r.checker {
                    Some(c) => {
                        let (v, reasons) =
                            verdict::judge(c, &r.availability, r.readers.as_ref(), &r.expect);
                        r.verdict = v;
                        r.verdict_reasons = reasons;
                    }
                    None => {
                        r.verdict = Verdict::Error;
                        r.verdict_reasons = vec![
                            "interrupted before the checker ran (use --check-on-interrupt)".into(),
                        ];
                    }
                }
                None
            }
        };
        if let Err(w) = self.result.write(&self.dir.result_file()) {
            let e = match error {
                Some(e) => {
                    anyhow::anyhow!("{e:#} (and its error result could not be written: {w:#})")
                }
                None => infra(w),
            };
            return Err(RunFailed::bare(e));
        }
        let _ = self.dir.mark_latest();
        match error {
            None => Ok((self.result, self.dir)),
            Some(error) => Err(RunFailed {
                error,
                written: Some(Box::new((self.result, self.dir))),
            }),
        }
    }
}

/// The result of a run that has not started yet: the scenario's identity and
/// plan, nothing measured.
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
        repeat: None,
        target: scenario.target.stores_label(),
        pattern: scenario.pattern_name().to_string(),
        pattern_options: match &scenario.app {
            // The request and processes; environment and header values are
            // never serialized (secrets).
            Some(app) => serde_json::to_value(app).unwrap_or_default(),
            None => serde_json::to_value(&scenario.pattern).unwrap_or_default(),
        },
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
        faults_injected: BTreeMap::new(),
        client_counts: BTreeMap::new(),
        app: None,
        replicas: None,
        availability: Availability::default(),
        capacity: None,
        readers: None,
        checker: None::<CheckerReport>,
        checked: false,
        expect: scenario.expect.clone(),
        verdict: Verdict::Error,
        verdict_reasons: Vec::new(),
        warnings: scenario.warnings.clone(),
        notes: Vec::new(),
    }
}
