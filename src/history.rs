//! The history: every logical operation with its intended and actual start, end,
//! outcome and per-side outcomes. Streamed to `history.jsonl` as the run goes, and
//! kept in memory only as a compact summary (12 bytes per operation) for the checker.

use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

/// What the client saw for the whole operation (Jepsen's ok / fail / info).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Ok,
    /// Definitely not applied as a whole (the write may still have landed on one side).
    Fail,
    /// Indeterminate: a timeout or a reset; the write may have landed.
    Unknown,
}

impl Outcome {
    /// The serialized name (serde's `rename_all = "lowercase"`).
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Fail => "fail",
            Outcome::Unknown => "unknown",
        }
    }
}

/// What one side's write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SideOutcome {
    Ok,
    Fail,
    Unknown,
    /// Not attempted (an earlier step failed).
    Skipped,
    /// Written later by a relay; see the checker.
    Async,
}

impl SideOutcome {
    /// The serialized name (serde's `rename_all = "lowercase"`).
    pub fn name(self) -> &'static str {
        match self {
            SideOutcome::Ok => "ok",
            SideOutcome::Fail => "fail",
            SideOutcome::Unknown => "unknown",
            SideOutcome::Skipped => "skipped",
            SideOutcome::Async => "async",
        }
    }

    fn code(self) -> u8 {
        self as u8
    }
    fn from_code(c: u8) -> Self {
        match c {
            0 => SideOutcome::Ok,
            1 => SideOutcome::Fail,
            2 => SideOutcome::Unknown,
            3 => SideOutcome::Skipped,
            _ => SideOutcome::Async,
        }
    }
}

/// What a pattern client reports for one logical operation.
#[derive(Debug, Clone, PartialEq)]
pub struct OpReport {
    pub outcome: Outcome,
    /// Error class of the last error seen (`timeout`, `refused`, `ConditionalCheckFailed`, ...).
    pub error: Option<String>,
    pub primary: SideOutcome,
    pub secondary: SideOutcome,
    /// Attempts beyond the first (application-level retries).
    pub retries: u32,
    /// The full error text, kept once per error class in the result.
    pub detail: Option<String>,
}

impl OpReport {
    pub fn ok(primary: SideOutcome, secondary: SideOutcome) -> Self {
        Self {
            outcome: Outcome::Ok,
            error: None,
            primary,
            secondary,
            retries: 0,
            detail: None,
        }
    }

    /// Benchmark only: a bare client's report, with no error classification.
    pub fn bare(ok: bool) -> Self {
        let (outcome, side) = if ok {
            (Outcome::Ok, SideOutcome::Ok)
        } else {
            (Outcome::Fail, SideOutcome::Fail)
        };
        Self {
            outcome,
            error: None,
            primary: side,
            secondary: side,
            retries: 0,
            detail: None,
        }
    }

    pub fn with_retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self
    }
}

/// One line of `history.jsonl`. Times are microseconds since the load started.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub id: u64,
    pub intended_us: u64,
    pub start_us: u64,
    pub end_us: u64,
    pub outcome: Outcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub primary: SideOutcome,
    pub secondary: SideOutcome,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub retries: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// The compact in-memory record the checker needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OpSummary {
    /// 0 = not issued, 1 = ok, 2 = fail, 3 = unknown.
    outcome: u8,
    primary: u8,
    secondary: u8,
    /// Intended start and end, milliseconds since the load started (fault attribution).
    pub intended_ms: u32,
    pub end_ms: u32,
}

impl OpSummary {
    pub fn new(
        outcome: Outcome,
        primary: SideOutcome,
        secondary: SideOutcome,
        intended_ms: u32,
    ) -> Self {
        Self::timed(outcome, primary, secondary, intended_ms, intended_ms)
    }

    pub fn timed(
        outcome: Outcome,
        primary: SideOutcome,
        secondary: SideOutcome,
        intended_ms: u32,
        end_ms: u32,
    ) -> Self {
        let outcome = match outcome {
            Outcome::Ok => 1,
            Outcome::Fail => 2,
            Outcome::Unknown => 3,
        };
        Self {
            outcome,
            primary: primary.code(),
            secondary: secondary.code(),
            intended_ms,
            end_ms,
        }
    }

    pub fn outcome(&self) -> Option<Outcome> {
        match self.outcome {
            1 => Some(Outcome::Ok),
            2 => Some(Outcome::Fail),
            3 => Some(Outcome::Unknown),
            _ => None,
        }
    }

    pub fn primary(&self) -> SideOutcome {
        SideOutcome::from_code(self.primary)
    }

    pub fn secondary(&self) -> SideOutcome {
        SideOutcome::from_code(self.secondary)
    }
}

/// The operations of one run, indexed by id (ids are dense from 0).
#[derive(Debug, Default, Clone)]
pub struct History {
    ops: Vec<OpSummary>,
}

impl History {
    pub fn with_capacity(n: usize) -> Self {
        Self {
            ops: Vec::with_capacity(n),
        }
    }

    pub fn record(&mut self, id: u64, summary: OpSummary) {
        let i = id as usize;
        if self.ops.len() <= i {
            self.ops.resize(i + 1, OpSummary::default());
        }
        self.ops[i] = summary;
    }

    /// The operation with this id, if it was issued in this run.
    pub fn get(&self, id: u64) -> Option<&OpSummary> {
        self.ops.get(id as usize).filter(|s| s.outcome().is_some())
    }

    pub fn len(&self) -> usize {
        self.ops.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (u64, &OpSummary)> {
        self.ops
            .iter()
            .enumerate()
            .filter(|(_, s)| s.outcome().is_some())
            .map(|(i, s)| (i as u64, s))
    }

    /// Rebuilds the summary from a `history.jsonl` file.
    pub fn read_jsonl(path: &Path) -> std::io::Result<(History, Vec<HistoryEntry>)> {
        let text = std::fs::read_to_string(path)?;
        let mut history = History::default();
        let mut entries = Vec::new();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let e: HistoryEntry = serde_json::from_str(line)
                .map_err(|err| std::io::Error::new(std::io::ErrorKind::InvalidData, err))?;
            history.record(
                e.id,
                OpSummary::timed(
                    e.outcome,
                    e.primary,
                    e.secondary,
                    (e.intended_us / 1000) as u32,
                    (e.end_us / 1000) as u32,
                ),
            );
            entries.push(e);
        }
        Ok((history, entries))
    }
}

/// Appends history entries to a JSON-lines file.
pub struct HistoryWriter {
    out: BufWriter<File>,
}

impl HistoryWriter {
    pub fn create(path: &Path) -> std::io::Result<Self> {
        Ok(Self {
            out: BufWriter::with_capacity(1 << 16, File::create(path)?),
        })
    }

    /// One JSON line, byte for byte what serde_json writes for [`HistoryEntry`]
    /// (a test holds them equal), written by hand: serde's string escaping of the
    /// fixed enum names was the history writer's main cost in callgrind.
    pub fn append(&mut self, entry: &HistoryEntry) -> std::io::Result<()> {
        let mut n = itoa::Buffer::new();
        let out = &mut self.out;
        out.write_all(b"{\"id\":")?;
        out.write_all(n.format(entry.id).as_bytes())?;
        out.write_all(b",\"intended_us\":")?;
        out.write_all(n.format(entry.intended_us).as_bytes())?;
        out.write_all(b",\"start_us\":")?;
        out.write_all(n.format(entry.start_us).as_bytes())?;
        out.write_all(b",\"end_us\":")?;
        out.write_all(n.format(entry.end_us).as_bytes())?;
        out.write_all(b",\"outcome\":\"")?;
        out.write_all(entry.outcome.name().as_bytes())?;
        out.write_all(b"\"")?;
        if let Some(error) = &entry.error {
            out.write_all(b",\"error\":")?;
            serde_json::to_writer(&mut *out, error)?;
        }
        out.write_all(b",\"primary\":\"")?;
        out.write_all(entry.primary.name().as_bytes())?;
        out.write_all(b"\",\"secondary\":\"")?;
        out.write_all(entry.secondary.name().as_bytes())?;
        out.write_all(b"\"")?;
        if entry.retries != 0 {
            out.write_all(b",\"retries\":")?;
            out.write_all(n.format(entry.retries).as_bytes())?;
        }
        out.write_all(b"}\n")
    }

    pub fn finish(mut self) -> std::io::Result<()> {
        self.out.flush()?;
        self.out.get_ref().sync_all()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_written_history_lines_equal_serde_json() {
        let dir = std::env::temp_dir().join(format!("dw-history-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("h.jsonl");
        let entries = [
            HistoryEntry {
                id: 0,
                intended_us: 1,
                start_us: 2,
                end_us: u64::MAX,
                outcome: Outcome::Ok,
                error: None,
                primary: SideOutcome::Ok,
                secondary: SideOutcome::Async,
                retries: 0,
            },
            HistoryEntry {
                id: 42,
                intended_us: 1_000_000,
                start_us: 1_000_017,
                end_us: 2_000_000,
                outcome: Outcome::Unknown,
                error: Some("time\"out\\ \u{1}é".into()),
                primary: SideOutcome::Unknown,
                secondary: SideOutcome::Skipped,
                retries: 3,
            },
            HistoryEntry {
                id: 7,
                intended_us: 0,
                start_us: 0,
                end_us: 0,
                outcome: Outcome::Fail,
                error: Some("refused".into()),
                primary: SideOutcome::Fail,
                secondary: SideOutcome::Fail,
                retries: u32::MAX,
            },
        ];
        let mut w = HistoryWriter::create(&path).unwrap();
        for e in &entries {
            w.append(e).unwrap();
        }
        w.finish().unwrap();
        let written = std::fs::read_to_string(&path).unwrap();
        let expected: String = entries
            .iter()
            .map(|e| serde_json::to_string(e).unwrap() + "\n")
            .collect();
        assert_eq!(written, expected);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn summary_round_trips_outcomes() {
        let s = OpSummary::new(Outcome::Unknown, SideOutcome::Ok, SideOutcome::Async, 1234);
        assert_eq!(s.outcome(), Some(Outcome::Unknown));
        assert_eq!(s.primary(), SideOutcome::Ok);
        assert_eq!(s.secondary(), SideOutcome::Async);
        assert_eq!(std::mem::size_of::<OpSummary>(), 12);
        let mut h = History::default();
        h.record(3, s);
        assert!(h.get(2).is_none());
        assert_eq!(h.get(3), Some(&s));
        assert_eq!(h.iter().count(), 1);
    }
}
