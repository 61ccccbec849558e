//! `[readers]`: what the readers saw, into the result.

use super::*;

impl Run<'_> {
    /// What the readers saw into the result: every read, summed up against the
    /// history (`crate::reader::stats`).
    pub(super) fn record_reads(
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
}
