//! `[app]`: the service under test and its relay, around the phases.

use super::*;

impl Run<'_> {
    /// `[app]` with a relay: waits (at most the settle time) until every order on
    /// the primary has its record on the secondary.
    pub(super) async fn settle_app(&mut self, setup: &SetUp, load: &Load) {
        let note =
            crate::app::wait_caught_up(&setup.stores, self.scenario.check.settle, load.ended).await;
        self.note(note);
    }

    /// Stops the service and its relay (idempotent), noting any it had to kill.
    pub(super) async fn stop_app(&mut self) {
        if let Some(app) = self.app.clone() {
            for line in app.stop().await {
                self.note(line);
            }
        }
    }

    /// What happened to the `[app]` processes, into the result; deaths (exits
    /// nobody asked for) are warnings.
    pub(super) fn record_app(&mut self) {
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
}
