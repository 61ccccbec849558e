//! The Cassandra cluster: its hold for the run, and what each replica held.

use super::*;

impl Run<'_> {
    /// On the Cassandra cluster: takes it for this run (one run faults it at a
    /// time), checks the node faults against it, and heals what an earlier run
    /// left (a partition, a paused or killed node) before anything connects.
    pub(super) async fn take_cluster(&mut self) -> anyhow::Result<Option<Arc<ScheduledFaults>>> {
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

    /// Polls the replicas until they hold the same records, within what is left
    /// of the settle period (at least one round).
    pub(super) async fn wait_replicas(&mut self, check: &ReplicaCheck, load: &Load) {
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

    /// What each replica holds at check time, each read proven by a trace, before
    /// the final scan (whose read at ALL may repair the replicas it reads).
    pub(super) async fn check_replicas(
        &mut self,
        check: &ReplicaCheck,
        load: &Load,
    ) -> anyhow::Result<()> {
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
}
