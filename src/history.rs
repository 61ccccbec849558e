//! The history: every logical operation with its intended and actual start, end,
//! outcome and per-side outcomes. Streamed to `history.jsonl` as the run goes, and
//! kept in memory only as a compact summary (12 bytes per operation) for the checker.

use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::Write;
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
    file: File,
    /// Lines not yet written to the file, `buf[..len]`. Lines are assembled in
    /// place (fixed-size copies, digits written directly): a call per field into a
    /// `BufWriter` was most of the history's cost in callgrind.
    buf: Box<[u8]>,
    len: usize,
}

/// The buffer's size: a write to the file every 64 KiB.
const BUFFER: usize = 1 << 16;
/// A line at its widest without the error class: the keys, five numbers of 20
/// digits and three names padded to 8 bytes.
const LINE_MAX: usize = 256;

/// A name with its closing quote, padded to 8 bytes, and its length: a name is
/// copied as one 8-byte word and the cursor advances by the length.
const fn quoted(name: &str) -> ([u8; 8], usize) {
    let mut out = [0u8; 8];
    let bytes = name.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        out[i] = bytes[i];
        i += 1;
    }
    out[i] = b'"';
    (out, i + 1)
}

/// Indexed by `Outcome as usize` (the names of [`Outcome::name`]).
const OUTCOMES: [([u8; 8], usize); 3] = [quoted("ok"), quoted("fail"), quoted("unknown")];
/// Indexed by [`SideOutcome::code`] (the names of [`SideOutcome::name`]).
const SIDES: [([u8; 8], usize); 5] = [
    quoted("ok"),
    quoted("fail"),
    quoted("unknown"),
    quoted("skipped"),
    quoted("async"),
];

const DIGIT_PAIRS: &[u8; 200] = b"0001020304050607080910111213141516171819\
2021222324252627282930313233343536373839\
4041424344454647484950515253545556575859\
6061626364656667686970717273747576777879\
8081828384858687888990919293949596979899";

/// Writes into a slice the caller has sized for the line (indexing checks bounds).
struct Cursor<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl Cursor<'_> {
    #[inline]
    fn put(&mut self, bytes: &[u8]) {
        self.buf[self.pos..self.pos + bytes.len()].copy_from_slice(bytes);
        self.pos += bytes.len();
    }

    #[inline]
    fn put_name(&mut self, (word, len): &([u8; 8], usize)) {
        self.buf[self.pos..self.pos + 8].copy_from_slice(word);
        self.pos += len;
    }

    /// Decimal, two digits per step from the right into a scratch array, then one
    /// copy of a fixed 20 bytes from the first digit (what lands past the number is
    /// overwritten by the rest of the line, or lies past its end): a copy of the
    /// number's own length was a call to memcpy.
    #[inline]
    fn put_u64(&mut self, mut n: u64) {
        let mut digits = [0u8; 40];
        let mut i = 20;
        while n >= 100 {
            let d = (n % 100) as usize * 2;
            n /= 100;
            i -= 2;
            digits[i..i + 2].copy_from_slice(&DIGIT_PAIRS[d..d + 2]);
        }
        if n >= 10 {
            let d = n as usize * 2;
            i -= 2;
            digits[i..i + 2].copy_from_slice(&DIGIT_PAIRS[d..d + 2]);
        } else {
            i -= 1;
            digits[i] = b'0' + n as u8;
        }
        self.buf[self.pos..self.pos + 20].copy_from_slice(&digits[i..i + 20]);
        self.pos += 20 - i;
    }
}

impl HistoryWriter {
    pub fn create(path: &Path) -> std::io::Result<Self> {
        Ok(Self {
            file: File::create(path)?,
            buf: vec![0; BUFFER].into_boxed_slice(),
            len: 0,
        })
    }

    /// One JSON line, byte for byte what serde_json writes for [`HistoryEntry`]
    /// (a test holds them equal), written by hand: serde's string escaping of the
    /// fixed enum names was the history writer's main cost in callgrind.
    pub fn append(&mut self, entry: &HistoryEntry) -> std::io::Result<()> {
        self.line(
            entry.id,
            [entry.intended_us, entry.start_us, entry.end_us],
            entry.outcome,
            entry.error.as_deref(),
            [entry.primary, entry.secondary],
            entry.retries,
        )
    }

    /// The line of [`HistoryWriter::append`] from a client's report, without
    /// building a [`HistoryEntry`] (the driver's path: no copy of the error class).
    pub fn append_parts(
        &mut self,
        id: u64,
        intended_us: u64,
        start_us: u64,
        end_us: u64,
        report: &OpReport,
    ) -> std::io::Result<()> {
        self.line(
            id,
            [intended_us, start_us, end_us],
            report.outcome,
            report.error.as_deref(),
            [report.primary, report.secondary],
            report.retries,
        )
    }

    fn line(
        &mut self,
        id: u64,
        [intended_us, start_us, end_us]: [u64; 3],
        outcome: Outcome,
        error: Option<&str>,
        [primary, secondary]: [SideOutcome; 2],
        retries: u32,
    ) -> std::io::Result<()> {
        // Error classes are rare and arbitrary text: serde_json escapes them.
        let error = error.map(serde_json::to_string).transpose()?;
        let need = LINE_MAX + error.as_ref().map_or(0, |e| e.len() + 10);
        if self.len + need > self.buf.len() {
            self.flush()?;
            if need > self.buf.len() {
                self.buf = vec![0; need].into_boxed_slice();
            }
        }
        let mut c = Cursor {
            buf: &mut self.buf,
            pos: self.len,
        };
        c.put(b"{\"id\":");
        c.put_u64(id);
        c.put(b",\"intended_us\":");
        c.put_u64(intended_us);
        c.put(b",\"start_us\":");
        c.put_u64(start_us);
        c.put(b",\"end_us\":");
        c.put_u64(end_us);
        c.put(b",\"outcome\":\"");
        c.put_name(&OUTCOMES[outcome as usize]);
        if let Some(error) = &error {
            c.put(b",\"error\":");
            c.put(error.as_bytes());
        }
        c.put(b",\"primary\":\"");
        c.put_name(&SIDES[primary.code() as usize]);
        c.put(b",\"secondary\":\"");
        c.put_name(&SIDES[secondary.code() as usize]);
        if retries != 0 {
            c.put(b",\"retries\":");
            c.put_u64(u64::from(retries));
        }
        c.put(b"}\n");
        self.len = c.pos;
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let written = self.file.write_all(&self.buf[..self.len]);
        // Emptied also on error: the caller stops writing on the first error, and
        // the drop must not retry a write that failed.
        self.len = 0;
        written
    }

    pub fn finish(mut self) -> std::io::Result<()> {
        self.flush()?;
        self.file.sync_all()
    }
}

impl Drop for HistoryWriter {
    /// Like `BufWriter`: what is buffered reaches the file even without `finish`
    /// (a run that failed midway keeps the history it has).
    fn drop(&mut self) {
        let _ = self.flush();
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
        // Every outcome and side name, numbers of every width, and enough lines to
        // cross the buffer's flushes; an error class longer than the buffer.
        let mut entries = entries.to_vec();
        let outcomes = [Outcome::Ok, Outcome::Fail, Outcome::Unknown];
        let sides = [
            SideOutcome::Ok,
            SideOutcome::Fail,
            SideOutcome::Unknown,
            SideOutcome::Skipped,
            SideOutcome::Async,
        ];
        for i in 0..5000u64 {
            let wide = 10u64.pow((i % 20) as u32) - 1;
            entries.push(HistoryEntry {
                id: i,
                intended_us: wide,
                start_us: wide + 1,
                end_us: i * 37,
                outcome: outcomes[i as usize % 3],
                error: (i % 7 == 0).then(|| format!("class {i}")),
                primary: sides[i as usize % 5],
                secondary: sides[(i / 5) as usize % 5],
                retries: (i % 3) as u32,
            });
        }
        entries[4000].error = Some("x".repeat(100_000));
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
