//! The relay after the load: drain (bounded), stop, and its figures.

use super::*;

impl Run<'_> {
    /// Lets the relay drain (bounded), or the stores quiesce; returns the known
    /// causes of duplicates the relay saw.
    pub(super) async fn settle_relay(
        &mut self,
        setup: &SetUp,
        load: &Load,
    ) -> anyhow::Result<Causes> {
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
}
