//! The driver against a client written here (no servers), on tokio's paused clock:
//! time only moves when every task waits, straight to the next timer, so the
//! assertions are exact instead of depending on how loaded the machine is.

use super::*;
use async_trait::async_trait;
use std::collections::BTreeMap;
use std::sync::atomic::AtomicUsize;

use crate::history::HistoryEntry;

const MS: u64 = 1000;
const S: u64 = 1_000_000;

type Behaviour = Box<dyn Fn(u64) -> (Option<Duration>, OpReport) + Send + Sync>;

/// Takes as long as told per operation (`None`: never answers) on tokio's clock,
/// reports as told, and counts the operations in flight.
struct TestClient {
    behaviour: Behaviour,
    calls: AtomicU64,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

impl TestClient {
    fn new(
        behaviour: impl Fn(u64) -> (Option<Duration>, OpReport) + Send + Sync + 'static,
    ) -> Self {
        Self {
            behaviour: Box::new(behaviour),
            calls: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
        }
    }

    /// Every operation takes `d` and succeeds.
    fn taking(d: Duration) -> Self {
        Self::new(move |_| (Some(d), ok()))
    }
}

fn ok() -> OpReport {
    OpReport::ok(SideOutcome::Ok, SideOutcome::Ok)
}

/// Leaves the in-flight count when the operation ends, also when it is dropped at
/// its deadline or unwinds.
struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[async_trait]
impl PatternClient for TestClient {
    async fn write(&self, order: &Order) -> OpReport {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        let _guard = InFlight(&self.in_flight);
        let (delay, report) = (self.behaviour)(order.id);
        match delay {
            Some(d) if d.is_zero() => {}
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending::<()>().await,
        }
        report
    }
}

fn spec(rate: f64, ops: u64, concurrency: usize) -> DriveSpec {
    DriveSpec {
        seed: 1,
        rate,
        ops,
        concurrency,
        customers: 10,
        payload_bytes: 16,
        op_deadline: Duration::from_secs(60),
    }
}

struct Driven {
    stats: DriverStats,
    history: History,
    /// history.jsonl, in file order.
    lines: Vec<HistoryEntry>,
    live: Arc<LiveCounters>,
    /// Tokio's clock when the driver returned, in us since t0.
    returned_us: u64,
}

/// Drives `client` with the history streamed to a file; `stop_after` sets the stop
/// signal that long after t0.
async fn drive_test(
    client: Arc<TestClient>,
    spec: DriveSpec,
    stop_after: Option<Duration>,
) -> Driven {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("history.jsonl");
    let writer = HistoryWriter::create(&path).unwrap();
    let (tx, rx) = watch::channel(false);
    let t0 = now();
    // Without a stop the sender is dropped at once: a sender gone without setting
    // the signal is not a stop.
    if let Some(after) = stop_after {
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            let _ = tx.send(true);
        });
    }
    let live = Arc::new(LiveCounters::default());
    let (stats, history, writer) = drive(client, spec, t0, Some(writer), rx, live.clone())
        .await
        .unwrap();
    let returned_us = now().duration_since(t0).as_micros() as u64;
    writer.unwrap().finish().unwrap();
    let (from_file, lines) = History::read_jsonl(&path).unwrap();
    assert_eq!(from_file.len(), history.len());
    Driven {
        stats,
        history,
        lines,
        live,
        returned_us,
    }
}

fn by_id(lines: &[HistoryEntry]) -> BTreeMap<u64, &HistoryEntry> {
    let map: BTreeMap<u64, &HistoryEntry> = lines.iter().map(|e| (e.id, e)).collect();
    assert_eq!(
        map.len(),
        lines.len(),
        "an id appears twice in history.jsonl"
    );
    map
}

#[tokio::test(start_paused = true)]
async fn a_slow_client_does_not_lower_the_operations_issued_open_loop() {
    // 100/s for one second against a client that takes 10 s: a closed loop would
    // issue one operation; the open loop issues all 100, each at its intended time.
    let client = Arc::new(TestClient::taking(Duration::from_secs(10)));
    let run = drive_test(client.clone(), spec(100.0, 100, 1000), None).await;
    assert_eq!(run.stats.issued, 100);
    assert_eq!(client.calls.load(Ordering::SeqCst), 100);
    assert_eq!(client.max_in_flight.load(Ordering::SeqCst), 100);
    assert_eq!(run.stats.delayed, 0);
    assert_eq!(run.stats.max_start_delay_ms, 0.0);
    assert!(
        (run.stats.achieved_tps - 100.0).abs() < 1e-6,
        "{}",
        run.stats.achieved_tps
    );
    let lines = by_id(&run.lines);
    for id in 0..100 {
        let e = lines[&id];
        assert_eq!(e.intended_us, id * 10 * MS, "op {id} is off the schedule");
        assert_eq!(e.start_us, e.intended_us);
        assert_eq!(e.end_us - e.intended_us, 10 * S);
    }
    // Every operation was issued within the first second, not one per 10 s.
    assert_eq!(run.stats.timeline[0].attempted, 100);
    assert_eq!(run.returned_us, 10 * S + 990 * MS);
}

#[tokio::test(start_paused = true)]
async fn the_concurrency_cap_holds_and_ops_it_delays_count_as_delayed() {
    let client = Arc::new(TestClient::taking(Duration::from_millis(100)));
    let run = drive_test(client.clone(), spec(1000.0, 200, 10), None).await;
    assert_eq!(run.stats.issued, 200);
    assert_eq!(client.max_in_flight.load(Ordering::SeqCst), 10);
    // Ten at a time for 100 ms each, one due every ms: the first ten start on time
    // (op i at i ms), and each later one when the op ten before it ends, 100 ms
    // after that one started. Op i waits 90 ms per ten before it: all but the first
    // ten are delayed.
    let lines = by_id(&run.lines);
    for id in 0..200 {
        let e = lines[&id];
        assert_eq!(e.intended_us, id * MS);
        assert_eq!(e.start_us, ((id / 10) * 100 + id % 10) * MS, "op {id}");
    }
    assert_eq!(run.stats.delayed, 190);
    assert_eq!(run.stats.max_start_delay_ms, 19.0 * 90.0);
}

#[tokio::test(start_paused = true)]
async fn latency_is_measured_from_the_intended_start() {
    // One at a time, 100 ms each, one due every 10 ms: op k waits for the k before
    // it, so its latency is the wait plus its own 100 ms, its service time 100 ms.
    let d = 100 * MS;
    let client = Arc::new(TestClient::taking(Duration::from_micros(d)));
    let run = drive_test(client, spec(100.0, 5, 1), None).await;
    let lines = by_id(&run.lines);
    for k in 0..5 {
        let e = lines[&k];
        assert_eq!(e.intended_us, k * 10 * MS);
        assert_eq!(e.start_us, k * d);
        assert_eq!(e.end_us - e.start_us, d);
        assert_eq!(e.end_us - e.intended_us, (k + 1) * d - k * 10 * MS);
        assert!(e.end_us - e.intended_us >= d);
    }
    assert_eq!(run.stats.delayed, 4);
    assert_eq!(run.stats.max_start_delay_ms, 360.0);
    // The histograms: latency up to 460 ms (op 4), service time 100 ms for all.
    assert!(
        run.stats
            .latency_us
            .equivalent(run.stats.latency_us.max(), 460 * MS)
    );
    assert!(
        run.stats
            .latency_us
            .equivalent(run.stats.latency_us.min(), d)
    );
    assert!(
        run.stats
            .service_us
            .equivalent(run.stats.service_us.max(), d)
    );
    assert!(
        run.stats
            .service_us
            .equivalent(run.stats.service_us.min(), d)
    );
}

#[tokio::test(start_paused = true)]
async fn a_stop_signal_ends_issuing_and_in_flight_ops_complete() {
    // 100/s for 10 s planned; stop at 1.005 s: the ops due at 0..=1.0 s are issued
    // (101), none after, and the driver returns once the last one has answered.
    let client = Arc::new(TestClient::taking(Duration::from_millis(50)));
    let run = drive_test(
        client.clone(),
        spec(100.0, 1000, 64),
        Some(Duration::from_micros(1005 * MS)),
    )
    .await;
    assert_eq!(run.stats.issued, 101);
    assert_eq!(client.calls.load(Ordering::SeqCst), 101);
    assert_eq!(run.stats.ok, 101);
    assert_eq!(run.lines.len(), 101);
    assert_eq!(run.returned_us, 1050 * MS);
    assert_eq!(run.live.issued.load(Ordering::SeqCst), 101);
}

#[tokio::test(start_paused = true)]
async fn a_stop_signal_ends_issuing_also_behind_schedule() {
    // One at a time, 100 ms each, one due every ms: the driver is always behind, so
    // no worker ever waits for a start time. Stopped at 250 ms, during the third.
    let client = Arc::new(TestClient::taking(Duration::from_millis(100)));
    let run = drive_test(
        client.clone(),
        spec(1000.0, 1000, 1),
        Some(Duration::from_millis(250)),
    )
    .await;
    assert_eq!(run.stats.issued, 3);
    assert_eq!(client.calls.load(Ordering::SeqCst), 3);
    assert_eq!(run.returned_us, 300 * MS);
}

#[tokio::test(start_paused = true)]
async fn a_stop_set_before_the_load_issues_nothing() {
    let client = Arc::new(TestClient::taking(Duration::ZERO));
    let (tx, rx) = watch::channel(false);
    tx.send(true).unwrap();
    let (stats, history, _) = drive(
        client.clone(),
        spec(100.0, 10, 4),
        now(),
        None,
        rx,
        Arc::default(),
    )
    .await
    .unwrap();
    assert_eq!(stats.issued, 0);
    assert_eq!(stats.achieved_tps, 0.0);
    assert!(history.is_empty());
    assert_eq!(client.calls.load(Ordering::SeqCst), 0);
}

#[tokio::test(start_paused = true)]
async fn every_completion_is_one_history_line_with_its_outcome_and_error_class() {
    // Outcomes by id: ok, fail (refused, with a detail), unknown (timeout), a
    // deadline (never answers), a panic.
    let client = Arc::new(TestClient::new(|id| match id % 5 {
        0 => (Some(Duration::from_millis(1)), ok()),
        1 => (
            Some(Duration::ZERO),
            OpReport {
                outcome: Outcome::Fail,
                error: Some("refused".into()),
                primary: SideOutcome::Fail,
                secondary: SideOutcome::Skipped,
                retries: 2,
                detail: Some(format!("connection refused (op {id})")),
            },
        ),
        2 => (
            Some(Duration::from_millis(3)),
            OpReport {
                outcome: Outcome::Unknown,
                error: Some("timeout".into()),
                primary: SideOutcome::Ok,
                secondary: SideOutcome::Unknown,
                retries: 0,
                detail: None,
            },
        ),
        3 => (None, ok()),
        _ => panic!("client bug on op {id}"),
    }));
    let mut s = spec(1000.0, 50, 8);
    s.op_deadline = Duration::from_secs(2);
    let run = drive_test(client, s, None).await;
    let st = &run.stats;
    assert_eq!(st.issued, 50);
    assert_eq!(run.lines.len(), 50);
    assert_eq!(
        by_id(&run.lines).keys().copied().collect::<Vec<_>>(),
        (0..50).collect::<Vec<_>>()
    );
    assert_eq!((st.ok, st.fail, st.unknown), (10, 10, 30));
    assert_eq!(st.retries, 20);
    let classes: Vec<(&str, u64)> = st.errors.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    assert_eq!(
        classes,
        [
            ("deadline", 10),
            ("panic", 10),
            ("refused", 10),
            ("timeout", 10)
        ]
    );
    assert_eq!(st.error_samples["refused"], "connection refused (op 1)");
    assert_eq!(st.error_samples["panic"], "client bug on op 4");
    assert!(!st.error_samples.contains_key("timeout"));
    for e in &run.lines {
        let summary = run.history.get(e.id).unwrap();
        assert_eq!(Some(e.outcome), summary.outcome());
        assert_eq!(
            (e.primary, e.secondary),
            (summary.primary(), summary.secondary())
        );
        match e.id % 5 {
            1 => assert_eq!((e.error.as_deref(), e.retries), (Some("refused"), 2)),
            3 => {
                assert_eq!(e.error.as_deref(), Some("deadline"));
                assert_eq!(e.end_us - e.start_us, 2 * S);
            }
            4 => assert_eq!(e.error.as_deref(), Some("panic")),
            _ => {}
        }
    }
    assert_eq!(run.live.ok.load(Ordering::SeqCst), 10);
    assert_eq!(run.live.fail.load(Ordering::SeqCst), 10);
    assert_eq!(run.live.unknown.load(Ordering::SeqCst), 30);
}

/// On the real clock: a paused one never lets the driver fall behind schedule.
#[tokio::test]
async fn a_saturated_driver_records_every_completion() {
    // A client that answers on the first poll, far below the rate: completions are
    // handed over in batches, and an operation count that is no multiple of the
    // batch leaves a partial one for the end. Counts only: nothing here depends on
    // how fast the machine is.
    let client = Arc::new(TestClient::taking(Duration::ZERO));
    let ops = 5 * BATCH as u64 + 7;
    let run = drive_test(client, spec(1e9, ops, 64), None).await;
    assert_eq!(run.stats.issued, ops);
    assert_eq!(run.stats.ok, ops);
    assert_eq!(run.lines.len() as u64, ops);
    assert_eq!(by_id(&run.lines).len() as u64, ops);
    assert_eq!(run.history.iter().count() as u64, ops);
    assert_eq!(run.live.ok.load(Ordering::SeqCst), ops);
    assert_eq!(run.live.issued.load(Ordering::SeqCst), ops);
}

#[tokio::test(start_paused = true)]
async fn the_timeline_counts_each_second_and_its_latency_quantiles() {
    // 10/s for 3 s; op i takes i ms: second s completes ops 10s..10s+9, whose
    // latencies are their own durations (nothing waits), so the quantiles are known.
    let client = Arc::new(TestClient::new(|id| {
        (Some(Duration::from_millis(id)), ok())
    }));
    let run = drive_test(client, spec(10.0, 30, 64), None).await;
    let t = &run.stats.timeline;
    assert_eq!(t.len(), 3);
    for (s, second) in t.iter().enumerate() {
        let s = s as u64;
        assert_eq!((second.t, second.attempted, second.ok), (s, 10, 10));
        // Samples 10s..10s+9 ms: rank round(9 * 0.5) = 5 and round(9 * 0.99) = 9.
        assert_eq!(second.p50_ms, (10 * s + 5) as f64);
        assert_eq!(second.p99_ms, (10 * s + 9) as f64);
    }
}

#[test]
fn the_drive_future_is_send() {
    // `run` is spawned on the multi-thread runtime (cli), so the driver's future
    // must be Send: the workers share their state through Sync types only.
    fn assert_send<T: Send>(_: &T) {}
    let (_tx, rx) = watch::channel(false);
    let f = drive(
        Arc::new(TestClient::taking(Duration::ZERO)),
        spec(1.0, 1, 1),
        Instant::now(),
        None,
        rx,
        Arc::default(),
    );
    assert_send(&f);
}
