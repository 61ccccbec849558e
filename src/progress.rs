//! The progress line during a run: elapsed, achieved rate, outcomes, active faults.
//! Redrawn in place on a terminal; plain lines every 5 s otherwise (CI logs).

use std::io::Write;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::driver::LiveCounters;

pub struct Progress {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Progress {
    pub fn start(
        t0: Instant,
        load: Duration,
        live: Arc<LiveCounters>,
        active: Arc<Mutex<Vec<String>>>,
        tty: bool,
    ) -> Self {
        let (stop, mut stopped) = tokio::sync::oneshot::channel();
        let every = if tty {
            Duration::from_millis(500)
        } else {
            Duration::from_secs(5)
        };
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    _ = tick.tick() => {}
                }
                let line = line(t0, load, &live, &active);
                let mut err = std::io::stderr().lock();
                if tty {
                    let _ = write!(err, "\r\x1b[2K{line}");
                } else {
                    let _ = writeln!(err, "{line}");
                }
                let _ = err.flush();
            }
            if tty {
                let _ = writeln!(
                    std::io::stderr(),
                    "\r\x1b[2K{}",
                    line(t0, load, &live, &active)
                );
            }
        });
        Self { stop, task }
    }

    pub async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

fn line(t0: Instant, load: Duration, live: &LiveCounters, active: &Mutex<Vec<String>>) -> String {
    let elapsed = t0.elapsed().as_secs_f64().max(0.001);
    let issued = live.issued.load(Ordering::Relaxed);
    let faults = active.lock().unwrap().join(", ");
    format!(
        "[{}] {:8.1} ops/s  ok {}  fail {}  unknown {}  faults: {}",
        clock(elapsed, load.as_secs_f64()),
        issued as f64 / elapsed,
        live.ok.load(Ordering::Relaxed),
        live.fail.load(Ordering::Relaxed),
        live.unknown.load(Ordering::Relaxed),
        if faults.is_empty() { "none" } else { &faults }
    )
}

/// `  12.0s/20s`, or, once the load runs past its plan (operations still in
/// flight, a store that stalls), `  25.0s: 5.0s over the planned 20s`.
fn clock(elapsed: f64, planned: f64) -> String {
    if elapsed <= planned {
        format!("{elapsed:6.1}s/{planned:.0}s")
    } else {
        format!(
            "{elapsed:6.1}s: {:.1}s over the planned {planned:.0}s",
            elapsed - planned
        )
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_clock_says_when_the_load_overran_its_plan() {
        assert_eq!(super::clock(2.5, 3.0), "   2.5s/3s");
        assert_eq!(
            super::clock(50.0, 3.0),
            "  50.0s: 47.0s over the planned 3s"
        );
    }
}
