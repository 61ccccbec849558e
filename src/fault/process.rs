//! Process faults: SIGKILL (restarted by the local stack's script at the window's
//! end) or SIGSTOP/SIGCONT of a server the local stack manages, found by the pid
//! file `scripts/stack` keeps in its state directory.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::store::spec::StoreSpec;

/// Where the local stack's pids and script are, checked before the run starts.
#[derive(Debug, Clone)]
pub struct ProcessControl {
    state: PathBuf,
    script: PathBuf,
}

impl ProcessControl {
    /// Resolves the stack for `servers`: the state directory must hold their pid
    /// files, and the script is the one named by `DUALWRITE_STACK_SCRIPT`, else the
    /// one `scripts/stack up` recorded in the state directory, else `script`.
    /// An error here stops the run before the load (exit 3), not mid-run.
    pub fn resolve(state: &Path, script: &Path, servers: &[&str]) -> anyhow::Result<Self> {
        let state = std::path::absolute(state).unwrap_or_else(|_| state.to_path_buf());
        for server in servers {
            server_pid(&state, server)?;
        }
        let recorded = std::fs::read_to_string(state.join("stack-script"))
            .ok()
            .map(|s| PathBuf::from(s.trim()));
        let script = std::env::var_os("DUALWRITE_STACK_SCRIPT")
            .map(PathBuf::from)
            .or(recorded)
            .unwrap_or_else(|| script.to_path_buf());
        if !script.is_file() {
            anyhow::bail!(
                "process faults restart servers with the local stack's script, and {} does not exist; run from the repository, or set DUALWRITE_STACK_SCRIPT to scripts/stack",
                script.display()
            );
        }
        Ok(Self { state, script })
    }

    /// Applies (`apply`) or removes a kill (`kill`) or pause of `server`.
    pub async fn act(&self, server: &str, kill: bool, apply: bool) -> anyhow::Result<()> {
        match (kill, apply) {
            (true, true) => self.signal(server, libc::SIGKILL),
            (true, false) => self.restart(server).await,
            (false, true) => self.signal(server, libc::SIGSTOP),
            (false, false) => self.signal(server, libc::SIGCONT),
        }
    }

    fn signal(&self, server: &str, signal: i32) -> anyhow::Result<()> {
        let pid = server_pid(&self.state, server)?;
        // SAFETY: kill(2) with a pid read from the stack's own pid file.
        let rc = unsafe { libc::kill(pid, signal) };
        if rc != 0 {
            anyhow::bail!(
                "signal {signal} to {server} (pid {pid}) failed: {}",
                std::io::Error::last_os_error()
            );
        }
        Ok(())
    }

    async fn restart(&self, server: &str) -> anyhow::Result<()> {
        let component = StoreSpec::local_servers()
            .find(|(_, s)| s.name == server)
            .and_then(|(_, s)| s.local.as_ref())
            .map_or(server, |l| l.component);
        let out = tokio::time::timeout(
            Duration::from_secs(240),
            tokio::process::Command::new(&self.script)
                .args(["up", "--only", component])
                .env("DUALWRITE_STATE", &self.state)
                // Another run's restart may hold the stack's lock: wait for it.
                .env("DUALWRITE_STACK_WAIT", "200")
                .output(),
        )
        .await
        .map_err(|_| anyhow::anyhow!("restarting {server} took over 240s"))??;
        if !out.status.success() {
            anyhow::bail!(
                "`{} up --only {component}` failed: {}",
                self.script.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }
}

fn server_pid(state: &Path, server: &str) -> anyhow::Result<i32> {
    let file = state.join("pids").join(format!("{server}.pid"));
    let text = std::fs::read_to_string(&file).map_err(|e| {
        anyhow::anyhow!(
            "no pid for `{server}` at {} ({e}); process faults need the local stack (scripts/stack up), and DUALWRITE_STATE or --stack-state pointing at its state directory",
            file.display()
        )
    })?;
    text.trim()
        .parse()
        .map_err(|_| anyhow::anyhow!("{} does not hold a pid", file.display()))
}
