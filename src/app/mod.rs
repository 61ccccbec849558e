//! `[app]` at run time: the service (and its relay) that dualwrite starts — or
//! attaches to — with every template filled in (the run's proxies, namespace,
//! free ports), waited for until ready, signalled by process faults, stopped at
//! the end, and what happened to them for the result. Supervision of one process
//! is `process.rs`; the writer that sends the orders is `crate::writer::http`.

pub mod process;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::checker::CollectedScan;
use crate::result::{AppDeath, AppEvent, AppProcess, AppResult};
use crate::scenario::Side;
use crate::scenario::app::{App, Proc, Vars, fill};
use crate::store::Stores;
use process::{Ready, Spec, Supervised, What, tail_lines};

/// The processes of one run.
pub struct AppRun {
    /// The URL orders are sent to, templates filled in.
    pub url: String,
    /// The URL for the result: as filled in, unless it takes a value from the
    /// environment (then as written: it may carry a token).
    shown_url: String,
    pub vars: Vars,
    procs: Vec<Member>,
}

/// One declared process: supervised when dualwrite starts it.
struct Member {
    name: &'static str,
    supervised: Option<Arc<Supervised>>,
    /// An attached process's readiness URL (filled in).
    attached_ready: Option<String>,
    ready_timeout: Duration,
    shown: Option<String>,
}

impl AppRun {
    /// Fills every template (choosing free ports) and prepares the supervisors;
    /// nothing is started yet. `endpoints`: each connection's listen address.
    pub fn prepare(
        app: &App,
        endpoints: &BTreeMap<Side, String>,
        namespace: &str,
        logs: &Path,
    ) -> anyhow::Result<Self> {
        let address = |side: Side| endpoints.get(&side).cloned().unwrap_or_default();
        let vars = Vars {
            primary: address(Side::Primary),
            secondary: address(Side::Secondary),
            relay: address(Side::Relay),
            namespace: namespace.to_string(),
            port: free_port()?,
            relay_port: free_port()?,
        };
        let url = fill(&app.request.url, &vars).map_err(|e| anyhow::anyhow!("[app] url: {e}"))?;
        let mut procs = Vec::new();
        for p in [Some(&app.service), app.relay.as_ref()]
            .into_iter()
            .flatten()
        {
            procs.push(member(p, &vars, &url, logs)?);
        }
        let shown_url = if app.request.url.contains("{env:") {
            app.request.url.clone()
        } else {
            url.clone()
        };
        Ok(Self {
            url,
            shown_url,
            vars,
            procs,
        })
    }

    /// Starts the service, then the relay (each until ready); attached ones are
    /// waited for through their readiness URL when they have one.
    pub async fn start(&self) -> anyhow::Result<()> {
        for m in &self.procs {
            match (&m.supervised, &m.attached_ready) {
                (Some(s), _) => s.start().await?,
                (None, Some(url)) => wait_attached(m.name, url, m.ready_timeout).await?,
                (None, None) => {}
            }
        }
        Ok(())
    }

    fn supervised(&self, name: &str) -> anyhow::Result<&Arc<Supervised>> {
        self.procs
            .iter()
            .find(|m| m.name == name)
            .and_then(|m| m.supervised.as_ref())
            .ok_or_else(|| anyhow::anyhow!("dualwrite did not start a {name} it could signal"))
    }

    /// A process fault: `kill` (SIGKILL, then started again at the window's end)
    /// or pause (SIGSTOP, SIGCONT at the end); `apply` opens the window.
    pub async fn fault(&self, name: &str, kill: bool, apply: bool) -> anyhow::Result<()> {
        let p = self.supervised(name)?;
        match (kill, apply) {
            (true, true) => p.kill().await,
            (true, false) => p.start().await,
            (false, pause) => p.pause(pause),
        }
    }

    /// Stops every started process (the relay first: it may be mid-publication).
    /// Returns one note per process that had to be killed.
    pub async fn stop(&self) -> Vec<String> {
        let mut notes = Vec::new();
        for m in self.procs.iter().rev() {
            if let Some(s) = &m.supervised
                && s.stop().await
            {
                notes.push(format!(
                    "the {} did not exit within {:.0}s of SIGTERM and was killed",
                    m.name,
                    s.spec().stop_timeout.as_secs_f64()
                ));
            }
        }
        notes
    }

    /// Deaths (exits nobody asked for), one warning line each.
    pub fn deaths(&self, t0: Instant) -> Vec<String> {
        self.result(t0)
            .processes
            .iter()
            .filter_map(|p| {
                let d = p.died.as_ref()?;
                Some(format!(
                    "the {} died {} ({}); operations sent after that were refused or unanswered; its stderr is in {}",
                    p.name,
                    when(d.at_s),
                    d.status,
                    p.logs.last().map_or("-", String::as_str)
                ))
            })
            .collect()
    }

    /// What happened to the processes, times in seconds since the load started
    /// (negative: during set-up).
    pub fn result(&self, t0: Instant) -> AppResult {
        let secs = |at: Instant| {
            let s = if at >= t0 {
                at.duration_since(t0).as_secs_f64()
            } else {
                -t0.duration_since(at).as_secs_f64()
            };
            (s * 1000.0).round() / 1000.0
        };
        let mut processes = Vec::new();
        for m in &self.procs {
            let Some(s) = &m.supervised else {
                processes.push(AppProcess {
                    name: m.name.to_string(),
                    command: None,
                    logs: Vec::new(),
                    events: Vec::new(),
                    died: None,
                });
                continue;
            };
            let mut events = Vec::new();
            let mut died = None;
            for e in s.events() {
                let (event, pid, detail) = match e.what {
                    What::Started { pid } => ("started", pid, None),
                    What::Ready { pid } => ("ready", pid, None),
                    What::Paused { pid } => ("paused", pid, None),
                    What::Resumed { pid } => ("resumed", pid, None),
                    What::Exited {
                        pid,
                        status,
                        expected,
                    } => {
                        if !expected && died.is_none() {
                            died = Some(AppDeath {
                                at_s: secs(e.at),
                                status: status.clone(),
                                stderr_tail: tail_lines(&s.stderr_log(), 10)
                                    .lines()
                                    .map(str::to_string)
                                    .collect(),
                            });
                        }
                        (if expected { "stopped" } else { "died" }, pid, Some(status))
                    }
                };
                events.push(AppEvent {
                    at_s: secs(e.at),
                    event: event.to_string(),
                    pid,
                    detail,
                });
            }
            let file = |p: std::path::PathBuf| {
                p.file_name()
                    .map(|n| n.to_string_lossy().to_string())
                    .unwrap_or_default()
            };
            processes.push(AppProcess {
                name: m.name.to_string(),
                command: m.shown.clone(),
                logs: vec![file(s.stdout_log()), file(s.stderr_log())],
                events,
                died,
            });
        }
        AppResult {
            url: self.shown_url.clone(),
            processes,
        }
    }
}

/// The settle phase with a relay of the service's own (its backlog is not
/// dualwrite's to watch): scans both sides each second until every order on the
/// primary has its secondary record, at most `settle`. Returns the note for the
/// result; `load_ended` times the catch-up.
pub async fn wait_caught_up(stores: &Stores, settle: Duration, load_ended: Instant) -> String {
    let deadline = Instant::now() + settle;
    let (mut missing, mut last_error) = (None, None);
    loop {
        match secondary_missing(stores).await {
            Ok(0) => {
                return format!(
                    "the service's relay caught up {} ms after the load",
                    load_ended.elapsed().as_millis()
                );
            }
            Ok(n) => missing = Some(n),
            Err(e) => last_error = Some(format!("{e:#}")),
        }
        if Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1).min(settle)).await;
    }
    let why = match (missing, last_error) {
        (Some(n), _) => format!("{n} order(s) on the primary still had no secondary record"),
        (None, Some(e)) => format!("the sides could not be scanned ({e})"),
        (None, None) => "unknown".to_string(),
    };
    format!(
        "the service's relay did not catch up within the settle time ({}): {why}",
        crate::scenario::fmt_duration(settle)
    )
}

/// How many of this run's orders on the primary side have no record on the
/// secondary yet (the relay's backlog, as the stores show it).
async fn secondary_missing(stores: &Stores) -> anyhow::Result<usize> {
    let (primary, secondary) = stores.sides().await?;
    let mut p = CollectedScan::default();
    primary.scan(&mut p).await?;
    let mut s = CollectedScan::default();
    secondary.scan(&mut s).await?;
    let on_secondary: std::collections::HashSet<u64> =
        s.records.iter().map(|r| r.order_id).collect();
    Ok(p.records
        .iter()
        .filter(|r| !on_secondary.contains(&r.order_id))
        .count())
}

fn when(at_s: f64) -> String {
    if at_s < 0.0 {
        "during set-up".to_string()
    } else {
        format!("{at_s:.3}s into the load")
    }
}

/// A process's spec with its templates filled in.
fn member(p: &Proc, vars: &Vars, url: &str, logs: &Path) -> anyhow::Result<Member> {
    let what = |field: &str| format!("[app.{}] {field}", p.name);
    let fill_in = |text: &str, field: &str| {
        fill(text, vars).map_err(|e| anyhow::anyhow!("{}: {e}", what(field)))
    };
    let ready = p
        .ready
        .as_deref()
        .map(|r| fill_in(r, "ready"))
        .transpose()?;
    let Some(command) = &p.command else {
        return Ok(Member {
            name: p.name,
            supervised: None,
            attached_ready: ready,
            ready_timeout: p.ready_timeout,
            shown: None,
        });
    };
    let argv = command
        .iter()
        .map(|a| fill_in(a, "command"))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let env = p
        .env
        .iter()
        .map(|(k, v)| Ok((k.clone(), fill_in(v, &format!("env.{k}"))?)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let ready = match ready {
        Some(url) => Ready::Http(url),
        // The service is ready when its write endpoint's port takes connections.
        None if p.name == "service" => Ready::Tcp(host_port(url)?),
        None => Ready::Started,
    };
    // Shown as written in the scenario: `{env:NAME}` stays a name, not its value.
    let shown = match command.as_slice() {
        [sh, c, script] if sh == "/bin/sh" && c == "-c" => script.clone(),
        argv => argv
            .iter()
            .map(|a| {
                if a.contains(char::is_whitespace) {
                    format!("'{a}'")
                } else {
                    a.clone()
                }
            })
            .collect::<Vec<_>>()
            .join(" "),
    };
    let spec = Spec {
        name: p.name.to_string(),
        argv,
        shown: shown.clone(),
        dir: p.dir.clone(),
        env,
        ready,
        ready_timeout: p.ready_timeout,
        stop_timeout: p.stop_timeout,
        logs: logs.to_path_buf(),
    };
    Ok(Member {
        name: p.name,
        supervised: Some(Arc::new(Supervised::new(spec))),
        attached_ready: None,
        ready_timeout: p.ready_timeout,
        shown: Some(shown),
    })
}

/// `host:port` of an http:// URL (port 80 when none).
fn host_port(url: &str) -> anyhow::Result<String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| anyhow::anyhow!("`{url}` is not an http:// URL"))?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let authority = authority.rsplit('@').next().unwrap_or(authority);
    if authority.is_empty() {
        anyhow::bail!("`{url}` has no host");
    }
    Ok(if authority.contains(':') && !authority.ends_with(']') {
        authority.to_string()
    } else {
        format!("{authority}:80")
    })
}

/// A port nobody listens on now (the OS's choice), for the service to take.
fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// An attached process: its readiness URL must answer 2xx within the bound.
async fn wait_attached(name: &str, url: &str, bound: Duration) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(1))
        .build()?;
    let deadline = tokio::time::Instant::now() + bound;
    loop {
        let last = match client.get(url).send().await {
            Ok(r) if r.status().is_success() => return Ok(()),
            Ok(r) => format!("answered {}", r.status().as_u16()),
            Err(e) => format!("{e}"),
        };
        if tokio::time::Instant::now() >= deadline {
            anyhow::bail!(
                "the attached {name} was not ready within {:.1}s: GET {url} {last} (it is attach = true: start it before the run)",
                bound.as_secs_f64()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_write_endpoints_address_is_where_readiness_is_probed() {
        assert_eq!(
            host_port("http://127.0.0.1:8080/orders").unwrap(),
            "127.0.0.1:8080"
        );
        assert_eq!(
            host_port("http://localhost/orders?x=1").unwrap(),
            "localhost:80"
        );
        assert_eq!(host_port("http://u:p@h:1/").unwrap(), "h:1");
        assert!(host_port("ftp://x").is_err());
    }
}
