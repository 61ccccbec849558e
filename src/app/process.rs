//! One supervised process of `[app]` (the service or its relay): started in its
//! own process group with its output appended to log files, waited for until it
//! is ready (a URL answering 2xx, or a port accepting connections), signalled
//! for faults (SIGKILL, SIGSTOP/SIGCONT of the whole group), started again, and
//! stopped at the end (SIGTERM, then SIGKILL after a bound). Every start and
//! exit is recorded with its time, and an exit nobody asked for is a death.
//!
//! Each incarnation is spawned and waited for by a thread of its own that lives
//! exactly as long as the child, with `PR_SET_PDEATHSIG`: if dualwrite itself is
//! killed, the kernel kills the child too (the signal follows the thread that
//! forked, hence one that never outlives the child). Dropping a supervisor kills
//! what is still running (a panic unwinding a run).

use anyhow::Context;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// How to tell that a process can serve.
#[derive(Debug, Clone, PartialEq)]
pub enum Ready {
    /// `GET` answers 2xx.
    Http(String),
    /// A TCP connection to `host:port` is accepted.
    Tcp(String),
    /// As soon as it is started.
    Started,
}

/// What to run (every template already filled in).
#[derive(Clone)]
pub struct Spec {
    /// `service` or `relay`: names the log files and every message.
    pub name: String,
    pub argv: Vec<String>,
    /// How the command is shown in messages (the scenario's text, before
    /// templates are filled: `{env:...}` values never appear).
    pub shown: String,
    pub dir: Option<PathBuf>,
    /// Set on top of dualwrite's environment. Values are never printed.
    pub env: Vec<(String, String)>,
    pub ready: Ready,
    pub ready_timeout: Duration,
    pub stop_timeout: Duration,
    /// Directory of `<name>.stdout.log` and `<name>.stderr.log`.
    pub logs: PathBuf,
}

impl std::fmt::Debug for Spec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not the environment: it may hold secrets.
        f.debug_struct("Spec")
            .field("name", &self.name)
            .field("shown", &self.shown)
            .finish()
    }
}

/// Something that happened to the process, when (an `Instant`, made relative to
/// the load's start by the caller).
#[derive(Debug, Clone)]
pub struct Event {
    pub at: Instant,
    pub what: What,
}

#[derive(Debug, Clone, PartialEq)]
pub enum What {
    Started {
        pid: i32,
    },
    Ready {
        pid: i32,
    },
    /// `expected`: dualwrite stopped or killed it; otherwise it died.
    Exited {
        pid: i32,
        status: String,
        expected: bool,
    },
    Paused {
        pid: i32,
    },
    Resumed {
        pid: i32,
    },
}

/// One running child: its pid (= its process group) and its exit, once known.
struct Incarnation {
    pid: i32,
    exited: watch::Receiver<Option<String>>,
    /// Set before dualwrite stops or kills it, so the exit is not a death.
    expected: Arc<AtomicBool>,
}

pub struct Supervised {
    spec: Spec,
    current: Mutex<Option<Incarnation>>,
    events: Arc<Mutex<Vec<Event>>>,
}

impl Supervised {
    pub fn new(spec: Spec) -> Self {
        Self {
            spec,
            current: Mutex::new(None),
            events: Arc::new(Mutex::new(Vec::new())),
        }
    }

    pub fn name(&self) -> &str {
        &self.spec.name
    }

    pub fn spec(&self) -> &Spec {
        &self.spec
    }

    pub fn stdout_log(&self) -> PathBuf {
        self.spec
            .logs
            .join(format!("{}.stdout.log", self.spec.name))
    }

    pub fn stderr_log(&self) -> PathBuf {
        self.spec
            .logs
            .join(format!("{}.stderr.log", self.spec.name))
    }

    pub fn events(&self) -> Vec<Event> {
        self.events.lock().unwrap().clone()
    }

    fn record(&self, what: What) {
        self.events.lock().unwrap().push(Event {
            at: Instant::now(),
            what,
        });
    }

    /// The pid of the running incarnation, if it has not exited.
    pub fn pid(&self) -> Option<i32> {
        let cur = self.current.lock().unwrap();
        cur.as_ref()
            .filter(|i| i.exited.borrow().is_none())
            .map(|i| i.pid)
    }

    /// Starts the process and waits until it is ready. On failure the process is
    /// killed and the error names the command and the last lines of its stderr.
    pub async fn start(&self) -> anyhow::Result<()> {
        let inc = self.spawn()?;
        let pid = inc.pid;
        let mut exited = inc.exited.clone();
        let expected = inc.expected.clone();
        *self.current.lock().unwrap() = Some(inc);
        match self.wait_ready(&mut exited).await {
            Ok(()) => {
                // Under the events lock, which the waiting thread holds while it
                // records an exit and publishes it: `ready` never follows `exited`.
                let mut events = self.events.lock().unwrap();
                if exited.borrow().is_none() {
                    events.push(Event {
                        at: Instant::now(),
                        what: What::Ready { pid },
                    });
                }
                Ok(())
            }
            Err(why) => {
                expected.store(true, Ordering::SeqCst);
                signal_group(pid, libc::SIGKILL);
                let _ =
                    tokio::time::timeout(Duration::from_secs(5), exited.wait_for(Option::is_some))
                        .await;
                anyhow::bail!("{}", self.failure(&why))
            }
        }
    }

    /// The message for a process that could not start: what happened, the
    /// command, where, and the last lines it wrote to stderr.
    fn failure(&self, why: &str) -> String {
        let dir = self
            .spec
            .dir
            .as_ref()
            .map_or(String::new(), |d| format!(" (in {})", d.display()));
        let log = self.stderr_log();
        let tail = tail_lines(&log, 10);
        let tail = if tail.is_empty() {
            format!("  its stderr ({}) is empty", log.display())
        } else {
            format!(
                "  last lines of its stderr ({}):\n{}",
                log.display(),
                tail.lines()
                    .map(|l| format!("    | {l}"))
                    .collect::<Vec<_>>()
                    .join("\n")
            )
        };
        format!(
            "the {} {why}\n  command: {}{dir}\n{tail}",
            self.spec.name, self.spec.shown
        )
    }

    fn spawn(&self) -> anyhow::Result<Incarnation> {
        let open = |path: PathBuf| -> anyhow::Result<std::fs::File> {
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .with_context(|| format!("cannot open {}", path.display()))?;
            // A marker per incarnation, so restarts are visible in the logs.
            let _ = writeln!(
                f,
                "--- dualwrite: starting the {} at {} ---",
                self.spec.name,
                chrono::Utc::now().to_rfc3339()
            );
            Ok(f)
        };
        let stdout = open(self.stdout_log())?;
        let stderr = open(self.stderr_log())?;
        let mut cmd = std::process::Command::new(&self.spec.argv[0]);
        cmd.args(&self.spec.argv[1..])
            .envs(self.spec.env.iter().map(|(k, v)| (k, v)))
            .stdin(std::process::Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            // Its own group: faults and the stop reach its children too (a
            // `sh -c` wrapper, worker processes).
            .process_group(0);
        if let Some(d) = &self.spec.dir {
            cmd.current_dir(d);
        }
        // SAFETY: prctl is async-signal-safe; it runs in the child before exec.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
                Ok(())
            });
        }
        let (pid_tx, pid_rx) = std::sync::mpsc::channel::<std::io::Result<i32>>();
        let (exit_tx, exit_rx) = watch::channel(None);
        let expected = Arc::new(AtomicBool::new(false));
        let events = self.events.clone();
        let flag = expected.clone();
        std::thread::Builder::new()
            .name(format!("app-{}", self.spec.name))
            .spawn(move || {
                let mut child = match cmd.spawn() {
                    Ok(c) => c,
                    Err(e) => {
                        let _ = pid_tx.send(Err(e));
                        return;
                    }
                };
                let pid = child.id() as i32;
                // Recorded here, before the wait: `started` always precedes `exited`.
                events.lock().unwrap().push(Event {
                    at: Instant::now(),
                    what: What::Started { pid },
                });
                let _ = pid_tx.send(Ok(pid));
                let status = match child.wait() {
                    Ok(s) => describe_status(s),
                    Err(e) => format!("unknown ({e})"),
                };
                let mut events = events.lock().unwrap();
                events.push(Event {
                    at: Instant::now(),
                    what: What::Exited {
                        pid,
                        status: status.clone(),
                        expected: flag.load(Ordering::SeqCst),
                    },
                });
                let _ = exit_tx.send(Some(status));
            })
            .context("cannot start a thread")?;
        let pid = pid_rx
            .recv()
            .context("the spawning thread ended")?
            .with_context(|| {
                format!("cannot start the {}: `{}`", self.spec.name, self.spec.shown)
            })?;
        Ok(Incarnation {
            pid,
            exited: exit_rx,
            expected,
        })
    }

    async fn wait_ready(&self, exited: &mut watch::Receiver<Option<String>>) -> Result<(), String> {
        let bound = self.spec.ready_timeout;
        let deadline = tokio::time::Instant::now() + bound;
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(1))
            .build()
            .map_err(|e| format!("could not be probed: {e}"))?;
        let mut last = String::from("no answer yet");
        loop {
            if self.spec.ready == Ready::Started {
                return Ok(());
            }
            if let Some(status) = exited.borrow().clone() {
                return Err(format!(
                    "exited during start-up ({status}) before it was ready"
                ));
            }
            let probe = match &self.spec.ready {
                Ready::Started => Ok(()),
                Ready::Http(url) => match client.get(url).send().await {
                    Ok(r) if r.status().is_success() => return Ok(()),
                    Ok(r) => Err(format!("GET {url} answered {}", r.status().as_u16())),
                    Err(e) => Err(format!("GET {url}: {}", short_error(&e))),
                },
                Ready::Tcp(addr) => match tokio::time::timeout(
                    Duration::from_secs(1),
                    tokio::net::TcpStream::connect(addr),
                )
                .await
                {
                    Ok(Ok(_)) => return Ok(()),
                    Ok(Err(e)) => Err(format!("connecting to {addr}: {e}")),
                    Err(_) => Err(format!("connecting to {addr}: no answer within 1s")),
                },
            };
            if let Err(e) = probe {
                last = e;
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(format!(
                    "did not become ready within {:.1}s (last: {last})",
                    bound.as_secs_f64()
                ));
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                _ = exited.changed() => {}
            }
        }
    }

    /// SIGKILL of the whole group (a `process-kill` fault); returns once it exited.
    pub async fn kill(&self) -> anyhow::Result<()> {
        let (pid, mut exited) = self.running("kill")?;
        signal_group(pid, libc::SIGCONT); // a paused group dies all the same
        signal_group(pid, libc::SIGKILL);
        tokio::time::timeout(Duration::from_secs(10), exited.wait_for(Option::is_some))
            .await
            .map_err(|_| {
                anyhow::anyhow!(
                    "the {} (pid {pid}) did not die within 10s of SIGKILL",
                    self.spec.name
                )
            })?
            .ok();
        Ok(())
    }

    /// SIGSTOP (`pause`) or SIGCONT of the whole group (a `process-pause` fault).
    pub fn pause(&self, pause: bool) -> anyhow::Result<()> {
        let pid = self
            .pid()
            .ok_or_else(|| anyhow::anyhow!("the {} is not running", self.spec.name))?;
        if !signal_group(pid, if pause { libc::SIGSTOP } else { libc::SIGCONT }) {
            anyhow::bail!(
                "cannot signal the {} (pid {pid}): {}",
                self.spec.name,
                std::io::Error::last_os_error()
            );
        }
        self.record(if pause {
            What::Paused { pid }
        } else {
            What::Resumed { pid }
        });
        Ok(())
    }

    /// The running incarnation, marked so its coming exit is expected.
    fn running(&self, doing: &str) -> anyhow::Result<(i32, watch::Receiver<Option<String>>)> {
        let cur = self.current.lock().unwrap();
        match cur.as_ref() {
            Some(i) if i.exited.borrow().is_none() => {
                i.expected.store(true, Ordering::SeqCst);
                Ok((i.pid, i.exited.clone()))
            }
            _ => anyhow::bail!("cannot {doing} the {}: it is not running", self.spec.name),
        }
    }

    /// SIGTERM (after SIGCONT, in case it is paused), then SIGKILL once
    /// `stop_timeout` has passed; a no-op when it is not running. Returns whether
    /// it had to be killed.
    pub async fn stop(&self) -> bool {
        let Ok((pid, mut exited)) = self.running("stop") else {
            return false;
        };
        signal_group(pid, libc::SIGCONT);
        signal_group(pid, libc::SIGTERM);
        let graceful =
            tokio::time::timeout(self.spec.stop_timeout, exited.wait_for(Option::is_some))
                .await
                .is_ok();
        // Whatever is left of the group (children of a wrapper), and the leader if
        // it ignored SIGTERM.
        signal_group(pid, libc::SIGKILL);
        if !graceful {
            let _ = tokio::time::timeout(Duration::from_secs(5), exited.wait_for(Option::is_some))
                .await;
        }
        !graceful
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        if let Some(i) = self.current.get_mut().unwrap().as_ref()
            && i.exited.borrow().is_none()
        {
            i.expected.store(true, Ordering::SeqCst);
            signal_group(i.pid, libc::SIGKILL);
        }
    }
}

/// Sends `signal` to the process group led by `pid`; false if it failed.
fn signal_group(pid: i32, signal: i32) -> bool {
    // SAFETY: kill(2) on a group this module created (its leader's pid).
    unsafe { libc::kill(-pid, signal) == 0 }
}

fn describe_status(s: std::process::ExitStatus) -> String {
    match (s.code(), s.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(sig)) => format!("killed by signal {sig}{}", signal_name(sig)),
        _ => "unknown exit".to_string(),
    }
}

fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGKILL => " (SIGKILL)",
        libc::SIGTERM => " (SIGTERM)",
        libc::SIGSEGV => " (SIGSEGV)",
        libc::SIGABRT => " (SIGABRT)",
        libc::SIGINT => " (SIGINT)",
        _ => "",
    }
}

fn short_error(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut cur = std::error::Error::source(e);
    while let Some(s) = cur {
        text = format!("{text}: {s}");
        cur = s.source();
    }
    text
}

/// The last `n` lines of a log file (its last 16 KiB at most).
pub fn tail_lines(path: &Path, n: usize) -> String {
    let Ok(mut f) = std::fs::File::open(path) else {
        return String::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(16 * 1024)));
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with("--- dualwrite: "))
        .collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(dir: &Path, script: &str, ready: Ready) -> Spec {
        Spec {
            name: "service".into(),
            argv: vec!["/bin/sh".into(), "-c".into(), script.into()],
            shown: format!("/bin/sh -c '{script}'"),
            dir: Some(dir.to_path_buf()),
            env: vec![("PLANTED_SECRET".into(), "s3cr3t-value".into())],
            ready,
            ready_timeout: Duration::from_secs(5),
            stop_timeout: Duration::from_secs(2),
            logs: dir.to_path_buf(),
        }
    }

    /// Live (not zombie) processes of a group, from /proc.
    fn alive_in_group(pgid: i32) -> usize {
        std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
            .filter(|stat| {
                // pid (comm) state ppid pgrp ...: fields after the last ')'.
                let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
                let f: Vec<&str> = rest.split_whitespace().collect();
                f.len() > 2 && f[0] != "Z" && f[2] == pgid.to_string()
            })
            .count()
    }

    /// Polls (bounded) until `path` exists: the script got that far.
    async fn until_exists(path: &Path) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !path.exists() {
            assert!(
                Instant::now() < deadline,
                "{} never appeared",
                path.display()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn exits(p: &Supervised) -> Vec<(String, bool)> {
        p.events()
            .into_iter()
            .filter_map(|e| match e.what {
                What::Exited {
                    status, expected, ..
                } => Some((status, expected)),
                _ => None,
            })
            .collect()
    }

    #[tokio::test]
    async fn a_process_that_never_gets_ready_is_killed_and_named_with_its_stderr() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = spec(
            dir.path(),
            "echo 'cannot reach the orders table' >&2; exec sleep 60",
            Ready::Tcp("127.0.0.1:1".into()),
        );
        s.ready_timeout = Duration::from_millis(600);
        let p = Supervised::new(s);
        let started = Instant::now();
        let e = p.start().await.unwrap_err().to_string();
        assert!(started.elapsed() < Duration::from_secs(5), "bounded");
        assert!(e.contains("did not become ready within 0.6s"), "{e}");
        assert!(e.contains("command: /bin/sh -c"), "{e}");
        assert!(e.contains("| cannot reach the orders table"), "{e}");
        assert!(!e.contains("s3cr3t-value"), "{e}");
        assert_eq!(p.pid(), None, "killed after the bound");
        assert_eq!(
            exits(&p),
            vec![("killed by signal 9 (SIGKILL)".into(), true)]
        );
    }

    #[tokio::test]
    async fn an_exit_during_start_up_is_reported_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = spec(
            dir.path(),
            "echo 'bad config: PORT' >&2; exit 2",
            Ready::Http("http://127.0.0.1:1/health".into()),
        );
        s.ready_timeout = Duration::from_secs(60);
        let p = Supervised::new(s);
        let started = Instant::now();
        let e = p.start().await.unwrap_err().to_string();
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "not the whole bound"
        );
        assert!(e.contains("exited during start-up (exit status 2)"), "{e}");
        assert!(e.contains("bad config: PORT"), "{e}");
    }

    #[tokio::test]
    async fn stop_terminates_the_whole_group_and_logs_land_in_files() {
        let dir = tempfile::tempdir().unwrap();
        // A wrapper with a child that ignores nothing: both must go.
        let p = Supervised::new(spec(
            dir.path(),
            "echo hello; echo \"env=$PLANTED_SECRET\" > env.txt; sleep 60 & wait",
            Ready::Started,
        ));
        p.start().await.unwrap();
        let pid = p.pid().unwrap();
        // The child writes asynchronously: poll with a bound.
        let deadline = Instant::now() + Duration::from_secs(5);
        while !std::fs::read_to_string(p.stdout_log())
            .unwrap_or_default()
            .contains("hello")
        {
            assert!(Instant::now() < deadline, "stdout never reached the log");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(
            std::fs::read_to_string(dir.path().join("env.txt"))
                .unwrap()
                .trim(),
            "env=s3cr3t-value",
            "the environment reaches the process"
        );
        let killed = p.stop().await;
        assert!(!killed, "sh exits on SIGTERM");
        assert_eq!(p.pid(), None);
        assert_eq!(alive_in_group(pid), 0, "the group is gone");
        assert_eq!(
            exits(&p),
            vec![("killed by signal 15 (SIGTERM)".into(), true)]
        );
    }

    #[tokio::test]
    async fn a_process_ignoring_sigterm_is_killed_after_the_bound() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = spec(
            dir.path(),
            "trap '' TERM; touch trapped; while true; do sleep 0.05; done",
            Ready::Started,
        );
        s.stop_timeout = Duration::from_millis(300);
        let p = Supervised::new(s);
        p.start().await.unwrap();
        // SIGTERM before the trap is set would end it at once.
        until_exists(&dir.path().join("trapped")).await;
        let pid = p.pid().unwrap();
        assert!(p.stop().await, "it had to be killed");
        assert_eq!(p.pid(), None);
        assert_eq!(alive_in_group(pid), 0);
    }

    #[tokio::test]
    async fn kill_pause_and_restart_are_expected_and_an_unasked_exit_is_a_death() {
        let dir = tempfile::tempdir().unwrap();
        let p = Supervised::new(spec(
            dir.path(),
            "if [ -f second ]; then exit 7; fi; touch second; exec sleep 60",
            Ready::Started,
        ));
        p.start().await.unwrap();
        until_exists(&dir.path().join("second")).await;
        p.pause(true).unwrap();
        p.pause(false).unwrap();
        p.kill().await.unwrap();
        assert_eq!(p.pid(), None);
        assert!(p.kill().await.is_err(), "nothing left to kill");
        // The second incarnation exits on its own: not expected.
        p.start().await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while exits(&p).len() < 2 {
            assert!(Instant::now() < deadline, "the exit was never seen");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(
            exits(&p),
            vec![
                ("killed by signal 9 (SIGKILL)".into(), true),
                ("exit status 7".into(), false)
            ]
        );
        let mut kinds: Vec<&'static str> = p
            .events()
            .iter()
            .map(|e| match e.what {
                What::Started { .. } => "started",
                What::Ready { .. } => "ready",
                What::Exited { .. } => "exited",
                What::Paused { .. } => "paused",
                What::Resumed { .. } => "resumed",
            })
            .collect();
        // The second incarnation may exit before it is seen ready.
        assert_eq!(&kinds[..2], ["started", "ready"]);
        kinds.retain(|k| *k != "ready");
        assert_eq!(
            kinds,
            [
                "started", "paused", "resumed", "exited", "started", "exited"
            ]
        );
        let log = std::fs::read_to_string(p.stdout_log()).unwrap();
        assert_eq!(
            log.matches("--- dualwrite: starting the service").count(),
            2
        );
    }
}
