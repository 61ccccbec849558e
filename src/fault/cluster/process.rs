//! What the cluster's faults do to the machine: commands inside the nodes'
//! namespaces, signals to the nodes' JVMs (checked against /proc), the NFQUEUE
//! delayer's process, restarts through the stack script, and the cluster's lock.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::io::AsyncWriteExt;

use super::NFT_TABLE;
use super::rules;
use super::state::{ClusterState, NodeId, NodeInfo};

/// A command inside a namespace (nft, iptables) answers in milliseconds.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);
/// A restart through the stack script: one node's start and its health checks.
const RESTART_TIMEOUT: Duration = Duration::from_secs(300);
/// Another `scripts/stack` command may hold the stack's lock for a while.
const LOCK_WAIT: Duration = Duration::from_secs(120);
/// Time for a signalled process to reach the state the fault promises.
pub(super) const SIGNAL_TIMEOUT: Duration = Duration::from_secs(10);
const DELAYER_READY_TIMEOUT: Duration = Duration::from_secs(5);

/// A delayer process started for one node of a delay.
#[derive(Debug)]
pub(super) struct Delayer {
    pub(super) node: NodeId,
    pub(super) pid: i32,
    pub(super) pid_file: PathBuf,
    pub(super) child: std::process::Child,
}

/// The pid of a node's JVM from its pid file, checked against /proc (the pid must
/// be that node's Cassandra, not a process that reused the number).
pub fn node_pid(node: &NodeInfo) -> anyhow::Result<i32> {
    let text = std::fs::read_to_string(&node.pid_file).with_context(|| {
        format!(
            "no pid file for cassandra-{} at {} (scripts/stack up --only cassandra-cluster)",
            node.id,
            node.pid_file.display()
        )
    })?;
    let pid: i32 = text
        .trim()
        .parse()
        .map_err(|_| anyhow::anyhow!("{} does not hold a pid", node.pid_file.display()))?;
    match cmdline(pid) {
        Some(c) if is_node_cmdline(&c, node.id) && !gone(pid) => Ok(pid),
        _ => bail!("cassandra-{} (pid {pid}) is not running", node.id),
    }
}

/// Whether a /proc cmdline (NULs as spaces) is the JVM of `node`.
pub fn is_node_cmdline(cmdline: &str, node: NodeId) -> bool {
    cmdline.contains("CassandraDaemon")
        && cmdline
            .split(' ')
            .any(|a| a == format!("-Ddualwrite.node={node}"))
}

pub(super) fn cmdline(pid: i32) -> Option<String> {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .ok()
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
}

/// The one-letter state of /proc/PID/status (`T` stopped, `Z` zombie); `None` if gone.
pub fn proc_state(pid: i32) -> Option<char> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_proc_state(&status)
}

pub(super) fn parse_proc_state(status: &str) -> Option<char> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("State:"))
        .and_then(|s| s.trim().chars().next())
}

/// Gone for good: no such process, or a zombie waiting for its parent.
pub(super) fn gone(pid: i32) -> bool {
    matches!(proc_state(pid), None | Some('Z') | Some('X'))
}

pub(super) fn signal(pid: i32, sig: i32, what: &str) -> anyhow::Result<()> {
    // SAFETY: kill(2) on a pid read from the stack's pid files and checked in /proc.
    if unsafe { libc::kill(pid, sig) } != 0 {
        bail!(
            "signal {sig} to {what} (pid {pid}) failed: {}",
            std::io::Error::last_os_error()
        );
    }
    Ok(())
}

pub(super) async fn wait_for(
    limit: Duration,
    mut done: impl FnMut() -> bool,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + limit;
    while !done() {
        if Instant::now() >= deadline {
            bail!("not reached within {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

/// Runs `program args` in namespace `ns` with `stdin`; returns its standard output.
pub(super) async fn in_netns(
    ns: &str,
    program: &str,
    args: &[&str],
    stdin: &str,
) -> anyhow::Result<String> {
    let mut cmd = tokio::process::Command::new("ip");
    cmd.args(["netns", "exec", ns, program])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let shown = format!("ip netns exec {ns} {program} {}", args.join(" "));
    let mut child = cmd.spawn().with_context(|| {
        format!("cannot run `{shown}` (needs iproute2, nftables and iptables, and root)")
    })?;
    let mut input = child.stdin.take().expect("stdin is piped");
    input.write_all(stdin.as_bytes()).await?;
    drop(input);
    let out = tokio::time::timeout(COMMAND_TIMEOUT, child.wait_with_output())
        .await
        .map_err(|_| anyhow::anyhow!("`{shown}` did not finish within {COMMAND_TIMEOUT:?}"))??;
    if !out.status.success() {
        bail!(
            "`{shown}` failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim(),
            if stdin.is_empty() {
                String::new()
            } else {
                format!("\n  input:\n{stdin}")
            }
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

pub(super) async fn table_has_chains(ns: &str) -> bool {
    in_netns(ns, "nft", &["list", "table", "inet", NFT_TABLE], "")
        .await
        .map(|t| t.contains("chain "))
        .unwrap_or(false)
}

/// Removes a delay's iptables chains; a chain already gone is not an error.
pub(super) async fn remove_iptables_chains(ns: &str, id: &str) -> anyhow::Result<()> {
    let listing = in_netns(ns, "iptables", &["-S"], "").await?;
    let present = rules::iptables_chains(id)
        .iter()
        .any(|c| listing.lines().any(|l| l == format!("-N {c}")));
    if present {
        in_netns(
            ns,
            "iptables-restore",
            &["--noflush"],
            &rules::iptables_heal_script(id),
        )
        .await?;
    }
    // iptables leaves its table behind; with no delay left in the namespace it holds
    // nothing of ours (nothing else uses the cluster's namespaces), so it goes too.
    let listing = in_netns(ns, "iptables", &["-S"], "").await?;
    if !listing.lines().any(|l| l.starts_with("-N ")) {
        let _ = in_netns(ns, "nft", &["delete", "table", "ip", "filter"], "").await;
    }
    Ok(())
}

pub(super) fn delayer_pid_file(state: &ClusterState, id: &str, node: NodeId) -> PathBuf {
    state
        .state_dir
        .join("pids")
        .join(format!("nfq-delay-{id}-{node}.pid"))
}

/// The delayers' pid files: `nfq-delay-*.pid` in the stack's pid directory.
pub(super) fn delayer_pids(state_dir: &Path) -> Vec<(i32, PathBuf)> {
    let Ok(dir) = std::fs::read_dir(state_dir.join("pids")) else {
        return Vec::new();
    };
    dir.flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("nfq-delay-") && n.ends_with(".pid"))
        })
        .filter_map(|p| {
            let pid = std::fs::read_to_string(&p).ok()?.trim().parse().ok()?;
            Some((pid, p))
        })
        .collect()
}

pub(super) fn start_delayer(
    state: &ClusterState,
    bin: &Path,
    id: &str,
    node: &NodeInfo,
    queue: u16,
    delay_ms: u32,
) -> anyhow::Result<Delayer> {
    use std::os::unix::process::CommandExt;
    let log = state
        .state_dir
        .join("logs")
        .join(format!("nfq-delay-{}.log", node.id));
    let out = std::fs::File::create(&log)
        .with_context(|| format!("cannot write the delayer's log {}", log.display()))?;
    let child = std::process::Command::new("ip")
        .args(["netns", "exec", &node.netns])
        .arg(bin)
        .args([
            "--queue",
            &queue.to_string(),
            "--delay-ms",
            &delay_ms.to_string(),
        ])
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        // Its own process group: a Ctrl-C to dualwrite must not stop it before
        // heal has removed the rules that feed it.
        .process_group(0)
        .spawn()
        .with_context(|| format!("cannot start the delayer {}", bin.display()))?;
    let pid = child.id() as i32;
    let pid_file = delayer_pid_file(state, id, node.id);
    std::fs::write(&pid_file, pid.to_string())?;
    Ok(Delayer {
        node: node.id,
        pid,
        pid_file,
        child,
    })
}

pub(super) async fn wait_ready(d: &mut Delayer) -> anyhow::Result<()> {
    let log = d
        .pid_file
        .parent()
        .and_then(Path::parent)
        .map(|s| s.join("logs").join(format!("nfq-delay-{}.log", d.node)))
        .context("no state dir")?;
    let deadline = Instant::now() + DELAYER_READY_TIMEOUT;
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("ready ") {
            return Ok(());
        }
        if let Ok(Some(status)) = d.child.try_wait() {
            bail!(
                "the delayer for {} exited ({status}): {}",
                d.node,
                text.trim()
            );
        }
        if Instant::now() >= deadline {
            bail!(
                "the delayer for {} is not ready after {DELAYER_READY_TIMEOUT:?} (log {})",
                d.node,
                log.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Starts every node that is not running, through the stack script (which waits for
/// CQL, and for three Up/Normal nodes when no other fault is in force).
pub(super) async fn restart(state: &ClusterState) -> anyhow::Result<()> {
    let script = &state.stack_script;
    let deadline = Instant::now() + LOCK_WAIT;
    loop {
        let run = tokio::process::Command::new(script)
            .args(["up", "--only", "cassandra-cluster"])
            .env("DUALWRITE_STATE", &state.state_dir)
            .env("DUALWRITE_CACHE", &state.cache_dir)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output();
        let out = tokio::time::timeout(RESTART_TIMEOUT, run)
            .await
            .map_err(|_| {
                anyhow::anyhow!(
                    "`{} up --only cassandra-cluster` took over {RESTART_TIMEOUT:?}",
                    script.display()
                )
            })?
            .with_context(|| format!("cannot run {}", script.display()))?;
        if out.status.success() {
            return Ok(());
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        // Another stack command holds the lock: it ends soon, try again.
        if stderr.contains("another 'scripts/stack' command is running")
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        bail!(
            "`{} up --only cassandra-cluster` failed ({}):\n{}{}",
            script.display(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            stderr
        );
    }
}

/// An exclusive `flock` on `$DUALWRITE_STATE/cassandra-cluster.lock`, released when
/// dropped or when the process dies (even by `kill -9`).
#[derive(Debug)]
pub(super) struct ClusterLock {
    _file: std::fs::File,
}

impl ClusterLock {
    /// `Ok(Ok(lock))`, or `Ok(Err(holder))` when another open file holds it.
    pub(super) fn try_take(state_dir: &Path) -> anyhow::Result<Result<Self, String>> {
        use std::io::{Read, Seek, Write};
        use std::os::fd::AsRawFd;
        let path = state_dir.join("cassandra-cluster.lock");
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .with_context(|| format!("cannot open the cluster's lock {}", path.display()))?;
        // SAFETY: flock on a descriptor we own.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim();
            return Ok(Err(if holder.is_empty() {
                "unknown".to_string()
            } else {
                holder.to_string()
            }));
        }
        file.set_len(0)?;
        file.rewind()?;
        let exe = std::env::current_exe()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        write!(file, "pid {}, {exe}", std::process::id())?;
        file.flush()?;
        Ok(Ok(Self { _file: file }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(i: u8) -> NodeId {
        NodeId::new(i).unwrap()
    }

    #[test]
    fn a_node_is_known_by_its_marker_not_its_pid() {
        let c3 =
            "java -Ddualwrite.node=c3 -Xms256m -cp x org.apache.cassandra.service.CassandraDaemon";
        assert!(is_node_cmdline(c3, n(3)));
        assert!(!is_node_cmdline(c3, n(1)));
        // c1 must not match c13's marker, nor a process that merely names the node.
        assert!(!is_node_cmdline(
            "java -Ddualwrite.node=c13 CassandraDaemon",
            n(1)
        ));
        assert!(!is_node_cmdline("tail -Ddualwrite.node=c3", n(3)));
    }

    #[test]
    fn proc_status_state_letter() {
        let status = "Name:\tjava\nUmask:\t0022\nState:\tT (stopped)\nTgid:\t42\n";
        assert_eq!(parse_proc_state(status), Some('T'));
        assert_eq!(parse_proc_state("Name:\tx\n"), None);
        // This very process exists and is not stopped.
        assert!(matches!(proc_state(std::process::id() as i32), Some(c) if c != 'T'));
    }
}
