//! `reads.jsonl`, beside `history.jsonl` (whose lines stay what they were): one
//! line per read of both sides of one order, streamed as the reads complete.
//! Times are microseconds since the load started, as in the history.

use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use crate::history::Outcome;

/// What one side showed a read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Seen {
    /// The side answered and holds the order's record.
    Seen,
    /// The side answered and does not hold it.
    Absent,
    /// The read certainly was not served (never sent, refused).
    Fail,
    /// The read may have been served; its answer was lost.
    Unknown,
}

impl Seen {
    pub fn answered(self) -> bool {
        matches!(self, Seen::Seen | Seen::Absent)
    }

    pub fn name(self) -> &'static str {
        match self {
            Seen::Seen => "seen",
            Seen::Absent => "absent",
            Seen::Fail => "fail",
            Seen::Unknown => "unknown",
        }
    }
}

/// One line of `reads.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReadEntry {
    /// Read number, in the order the reads were planned.
    pub n: u64,
    /// The order's operation id (its key is `o%012d` of it).
    pub id: u64,
    /// The planned delay after the write's answer.
    pub delay_ms: u64,
    /// The write's outcome, as in `history.jsonl`.
    pub write: Outcome,
    /// The write's answer + the delay: when the read was meant to start.
    pub planned_us: u64,
    pub start_us: u64,
    pub end_us: u64,
    /// `ok`: both sides answered; `fail`: a side certainly did not serve it (and
    /// none is unknown); `unknown`: a side's answer was lost.
    pub outcome: Outcome,
    pub primary: Seen,
    pub secondary: Seen,
    /// Records of the order a side holds, when more than one (duplicates).
    #[serde(default, skip_serializing_if = "at_most_one")]
    pub primary_copies: u32,
    #[serde(default, skip_serializing_if = "at_most_one")]
    pub secondary_copies: u32,
    /// Error class of a side that did not answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secondary_error: Option<String>,
}

fn at_most_one(n: &u32) -> bool {
    *n <= 1
}

impl ReadEntry {
    /// The read's outcome from its sides' (the rule of `ReadOutcome`, both sides).
    pub fn outcome_of(primary: Seen, secondary: Seen) -> Outcome {
        if primary.answered() && secondary.answered() {
            Outcome::Ok
        } else if primary == Seen::Unknown || secondary == Seen::Unknown {
            Outcome::Unknown
        } else {
            Outcome::Fail
        }
    }

    pub fn answered(&self) -> bool {
        self.outcome == Outcome::Ok
    }
}

/// Appends read entries to `reads.jsonl`.
pub struct ReadsWriter {
    out: BufWriter<File>,
}

impl ReadsWriter {
    pub fn create(path: &Path) -> std::io::Result<Self> {
        Ok(Self {
            out: BufWriter::with_capacity(1 << 16, File::create(path)?),
        })
    }

    pub fn append(&mut self, entry: &ReadEntry) -> std::io::Result<()> {
        serde_json::to_writer(&mut self.out, entry)?;
        self.out.write_all(b"\n")
    }

    pub fn finish(mut self) -> std::io::Result<()> {
        self.out.flush()?;
        self.out.get_ref().sync_all()
    }
}

/// Reads `reads.jsonl` back.
pub fn read_jsonl(path: &Path) -> std::io::Result<Vec<ReadEntry>> {
    let text = std::fs::read_to_string(path)?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            serde_json::from_str(line)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_is_ok_only_when_both_sides_answered() {
        let of = ReadEntry::outcome_of;
        assert_eq!(of(Seen::Seen, Seen::Absent), Outcome::Ok);
        assert_eq!(of(Seen::Seen, Seen::Fail), Outcome::Fail);
        assert_eq!(of(Seen::Fail, Seen::Unknown), Outcome::Unknown);
        assert_eq!(of(Seen::Unknown, Seen::Absent), Outcome::Unknown);
    }

    #[test]
    fn entries_round_trip_and_omit_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("reads.jsonl");
        let e = ReadEntry {
            n: 3,
            id: 42,
            delay_ms: 10,
            write: Outcome::Ok,
            planned_us: 1_000,
            start_us: 1_010,
            end_us: 2_000,
            outcome: Outcome::Fail,
            primary: Seen::Seen,
            secondary: Seen::Fail,
            primary_copies: 1,
            secondary_copies: 0,
            primary_error: None,
            secondary_error: Some("refused".into()),
        };
        let mut w = ReadsWriter::create(&path).unwrap();
        w.append(&e).unwrap();
        w.finish().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            "{\"n\":3,\"id\":42,\"delay_ms\":10,\"write\":\"ok\",\"planned_us\":1000,\"start_us\":1010,\"end_us\":2000,\"outcome\":\"fail\",\"primary\":\"seen\",\"secondary\":\"fail\",\"secondary_error\":\"refused\"}\n"
        );
        let back = read_jsonl(&path).unwrap();
        assert_eq!(back[0].primary_copies, 0, "omitted copies read back as 0");
        assert_eq!(back[0].secondary_error, e.secondary_error);
    }
}
