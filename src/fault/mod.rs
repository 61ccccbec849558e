//! The nemesis: applies the scenario's fault schedule and records every window as it
//! actually happened. Network faults go through Toxiproxy (or, for a side that
//! lives in this process, to its store's switches); relay crashes go to the relay;
//! SDK errors and fail points go to the store; process faults signal the local
//! stack's servers by pid (`process.rs`) or the `[app]` processes dualwrite
//! started (`crate::app`); faults between the Cassandra cluster's nodes go to its
//! nemesis (`cluster/scheduled.rs`). Whatever happens, [`restore`] puts every
//! proxy back.

pub mod cluster;
pub mod lock;
pub mod process;
pub mod toxiproxy;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

use crate::relay::Relay;
pub use crate::result::FaultWindow;
use crate::scenario::{FaultKind, FaultSpec, Side};
use crate::store::Stores;
use process::ProcessControl;
use toxiproxy::{TOXIC_PREFIX, Toxic, Toxiproxy};

/// What faults act on besides Toxiproxy.
pub struct FaultTargets {
    pub stores: Arc<Stores>,
    pub relay: Option<Arc<tokio::sync::Mutex<Relay>>>,
    /// The local stack's servers (only when the schedule has process faults).
    pub processes: Option<ProcessControl>,
    /// `[app]`: the service and relay dualwrite started.
    pub app: Option<Arc<crate::app::AppRun>>,
    /// The Cassandra cluster (only when a side lives on it).
    pub cluster: Option<Arc<cluster::ScheduledFaults>>,
}

pub struct Nemesis {
    toxiproxy: Toxiproxy,
    run_id: String,
    /// The proxies of each connection: one, or one per node on the cluster (a
    /// network fault on the side acts on all of them).
    proxies: BTreeMap<Side, Vec<String>>,
    specs: Vec<FaultSpec>,
    load: Duration,
}

struct Event {
    at: Duration,
    apply: bool,
    window: usize,
}

impl Nemesis {
    pub fn new(
        toxiproxy: Toxiproxy,
        run_id: &str,
        proxies: BTreeMap<Side, Vec<String>>,
        specs: Vec<FaultSpec>,
        load: Duration,
    ) -> Self {
        Self {
            toxiproxy,
            run_id: run_id.to_string(),
            proxies,
            specs,
            load,
        }
    }

    /// Every planned window, in schedule order.
    pub fn plan(&self) -> Vec<FaultWindow> {
        let mut out = Vec::new();
        for spec in &self.specs {
            for (w, (start, end)) in spec.windows(self.load).into_iter().enumerate() {
                out.push(FaultWindow {
                    fault: spec.index,
                    window: w,
                    kind: spec.kind.name().to_string(),
                    side: (spec.kind.process_target().is_none() && !spec.kind.is_node())
                        .then_some(spec.side),
                    direction: if spec.kind.is_network() {
                        spec.direction.name().to_string()
                    } else {
                        "-".into()
                    },
                    toxicity: spec.toxicity,
                    proxy: spec
                        .kind
                        .is_network()
                        .then(|| self.proxies.get(&spec.side).map(|p| p.join(",")))
                        .flatten(),
                    server: match spec.kind.is_node() {
                        true => Some(crate::store::cassandra::CLUSTER_SERVER.to_string()),
                        false => spec.kind.process_target().map(str::to_string),
                    },
                    nodes: spec.kind.nodes(),
                    planned_start_s: start.as_secs_f64(),
                    planned_end_s: end.as_secs_f64(),
                    start_s: None,
                    end_s: None,
                    recovered_s: None,
                    error: None,
                });
            }
        }
        out.sort_by(|a, b| a.planned_start_s.total_cmp(&b.planned_start_s));
        out
    }

    /// Runs the schedule from `t0` until it is done or `stop` fires; every applied
    /// fault is removed before returning. `active` lists the faults now in force.
    pub async fn run(
        &self,
        t0: Instant,
        mut stop: watch::Receiver<bool>,
        targets: &FaultTargets,
        active: Arc<Mutex<Vec<String>>>,
    ) -> Vec<FaultWindow> {
        let mut windows = self.plan();
        let specs: HashMap<(usize, usize), FaultSpec> = windows
            .iter()
            .map(|w| {
                (
                    (w.fault, w.window),
                    self.specs
                        .iter()
                        .find(|s| s.index == w.fault)
                        .unwrap()
                        .clone(),
                )
            })
            .collect();
        let mut events: Vec<Event> = Vec::new();
        for (i, w) in windows.iter().enumerate() {
            events.push(Event {
                at: Duration::from_secs_f64(w.planned_start_s),
                apply: true,
                window: i,
            });
            events.push(Event {
                at: Duration::from_secs_f64(w.planned_end_s),
                apply: false,
                window: i,
            });
        }
        // Removals first at equal times, so back-to-back windows do not overlap.
        events.sort_by(|a, b| a.at.cmp(&b.at).then(a.apply.cmp(&b.apply)));
        let mut down_count: HashMap<String, u32> = HashMap::new();
        // Windows whose apply request failed: a timed-out request may still have
        // been carried out, so their removal is still sent (removals are idempotent).
        let mut maybe_applied: Vec<bool> = vec![false; windows.len()];
        for ev in events {
            let stopped = tokio::select! {
                _ = tokio::time::sleep_until((t0 + ev.at).into()) => false,
                _ = stop.wait_for(|s| *s) => true,
            };
            if stopped {
                break;
            }
            let w = &mut windows[ev.window];
            let spec = &specs[&(w.fault, w.window)];
            if !ev.apply && w.start_s.is_none() && !maybe_applied[ev.window] {
                continue; // never applied (an error was recorded)
            }
            // The window is recorded conservatively: it opens when the request to
            // apply is sent (the fault may bite before the answer comes back: a
            // slow Toxiproxy answer otherwise leaves early victims "outside") and
            // closes when the removal has been answered.
            let sent = t0.elapsed().as_secs_f64();
            let result = self.act(spec, w, ev.apply, targets, &mut down_count).await;
            let now = t0.elapsed().as_secs_f64();
            match result {
                Ok(()) if ev.apply => {
                    w.start_s = Some(sent);
                    active.lock().unwrap().push(w.label());
                }
                Ok(()) => {
                    w.end_s = Some(now);
                    active.lock().unwrap().retain(|l| *l != w.label());
                }
                Err(e) => {
                    eprintln!(
                        "warning: fault {} could not be {}: {e:#}",
                        w.label(),
                        if ev.apply { "applied" } else { "removed" }
                    );
                    w.error = Some(format!("{e:#}"));
                    if ev.apply {
                        maybe_applied[ev.window] = true;
                    } else {
                        w.end_s = Some(now);
                    }
                }
            }
        }
        // Stopped early, or windows that outlast the load: remove what is in force.
        for i in 0..windows.len() {
            if (windows[i].start_s.is_some() || maybe_applied[i]) && windows[i].end_s.is_none() {
                let spec = specs[&(windows[i].fault, windows[i].window)].clone();
                let w = &mut windows[i];
                if let Err(e) = self.act(&spec, w, false, targets, &mut down_count).await {
                    w.error = Some(format!("{e:#}"));
                }
                w.end_s = Some(t0.elapsed().as_secs_f64());
            }
        }
        active.lock().unwrap().clear();
        windows
    }

    fn toxic_name(&self, w: &FaultWindow) -> String {
        format!("{TOXIC_PREFIX}{}-f{}-w{}", self.run_id, w.fault, w.window)
    }

    async fn act(
        &self,
        spec: &FaultSpec,
        w: &FaultWindow,
        apply: bool,
        targets: &FaultTargets,
        down_count: &mut HashMap<String, u32>,
    ) -> anyhow::Result<()> {
        // A side without a proxy lives in this process: its store switches it.
        if spec.kind.is_network() && !self.proxies.contains_key(&spec.side) {
            return targets.stores.of(spec.side).set_fault(spec, apply).await;
        }
        match &spec.kind {
            FaultKind::Down => {
                for proxy in self.proxy_of(spec)? {
                    let n = down_count.entry(proxy.clone()).or_default();
                    if apply {
                        *n += 1;
                        if *n == 1 {
                            self.toxiproxy.set_enabled(&proxy, false).await?;
                        }
                    } else {
                        *n = n.saturating_sub(1);
                        if *n == 0 {
                            self.toxiproxy.set_enabled(&proxy, true).await?;
                        }
                    }
                }
                Ok(())
            }
            kind if kind.is_network() => {
                let name = self.toxic_name(w);
                for proxy in self.proxy_of(spec)? {
                    if apply {
                        let toxic = toxic_for(spec, name.clone())
                            .expect("network kinds other than down are toxics");
                        self.toxiproxy.add_toxic(&proxy, &toxic).await?;
                    } else {
                        self.toxiproxy.remove_toxic(&proxy, &name).await?;
                    }
                }
                Ok(())
            }
            kind if kind.is_node() => {
                let cluster = targets.cluster.as_ref().ok_or_else(|| {
                    anyhow::anyhow!(
                        "faults between nodes need the Cassandra cluster (scripts/stack up --only cassandra-cluster)"
                    )
                })?;
                cluster.act(kind, (w.fault, w.window), apply).await
            }
            FaultKind::RelayCrash => {
                let relay = targets
                    .relay
                    .as_ref()
                    .ok_or_else(|| anyhow::anyhow!("this pattern has no relay"))?;
                let mut relay = relay.lock().await;
                if apply {
                    relay.crash(&w.label())
                } else {
                    relay.restart()
                }
                Ok(())
            }
            FaultKind::SdkError { .. } | FaultKind::FailCommand { .. } => {
                targets.stores.of(spec.side).set_fault(spec, apply).await
            }
            FaultKind::AppKill { process } | FaultKind::AppPause { process } => {
                let app = targets
                    .app
                    .as_ref()
                    .ok_or_else(|| anyhow::anyhow!("this run started no [app] process"))?;
                let kill = matches!(spec.kind, FaultKind::AppKill { .. });
                app.fault(process, kill, apply).await
            }
            FaultKind::ProcessKill { server } | FaultKind::ProcessPause { server } => {
                let processes = targets.processes.as_ref().ok_or_else(|| {
                    anyhow::anyhow!("process faults need the local stack (scripts/stack up)")
                })?;
                let kill = matches!(spec.kind, FaultKind::ProcessKill { .. });
                processes.act(server, kill, apply).await
            }
            _ => unreachable!("all kinds handled"),
        }
    }

    fn proxy_of(&self, spec: &FaultSpec) -> anyhow::Result<Vec<String>> {
        self.proxies
            .get(&spec.side)
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("the {} side has no proxy", spec.side))
    }
}

/// The Toxiproxy toxic for a network fault (`None` for `down` and non-network kinds).
pub fn toxic_for(spec: &FaultSpec, name: String) -> Option<Toxic> {
    let attrs: &[(&str, u64)] = &match &spec.kind {
        FaultKind::Latency {
            latency_ms,
            jitter_ms,
        } => vec![("latency", *latency_ms), ("jitter", *jitter_ms)],
        FaultKind::Bandwidth { rate_kbps } => vec![("rate", *rate_kbps)],
        FaultKind::SlowClose { delay_ms } => vec![("delay", *delay_ms)],
        FaultKind::Timeout { timeout_ms } => vec![("timeout", *timeout_ms)],
        FaultKind::ResetPeer { timeout_ms } => vec![("timeout", *timeout_ms)],
        FaultKind::Slicer {
            average_size,
            size_variation,
            delay_us,
        } => {
            vec![
                ("average_size", *average_size),
                ("size_variation", *size_variation),
                ("delay", *delay_us),
            ]
        }
        FaultKind::LimitData { bytes } => vec![("bytes", *bytes)],
        _ => return None,
    };
    Some(Toxic {
        name,
        kind: spec.kind.name().to_string(),
        stream: spec.direction.name().to_string(),
        toxicity: spec.toxicity,
        attributes: attrs.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
    })
}

/// Removes every dualwrite toxic from these proxies and enables them. Returns one
/// line per thing it had to fix (empty when the proxies were clean).
pub async fn restore(toxiproxy: &Toxiproxy, proxies: &[String]) -> anyhow::Result<Vec<String>> {
    let mut fixed = Vec::new();
    for name in proxies {
        let info = toxiproxy.proxy(name).await?;
        for t in info
            .toxics
            .iter()
            .filter(|t| t.name.starts_with(TOXIC_PREFIX))
        {
            toxiproxy.remove_toxic(name, &t.name).await?;
            fixed.push(format!(
                "removed leftover toxic `{}` from proxy `{name}`",
                t.name
            ));
        }
        if !info.enabled {
            toxiproxy.set_enabled(name, true).await?;
            fixed.push(format!("re-enabled proxy `{name}`"));
        }
    }
    Ok(fixed)
}

/// Removes dualwrite toxics from every proxy (the `reset` command).
pub async fn restore_all(toxiproxy: &Toxiproxy) -> anyhow::Result<Vec<String>> {
    let names: Vec<String> = toxiproxy.proxies().await?.into_keys().collect();
    restore(toxiproxy, &names).await
}
