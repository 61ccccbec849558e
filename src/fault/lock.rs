//! One run at a time per proxy. Two runs faulting the same proxy would corrupt each
//! other's results (and the second's start-up cleanup would remove the first's
//! toxics), so a run holds an exclusive `flock` per proxy for its whole life. The
//! kernel releases it when the process dies, even on `kill -9`.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::path::PathBuf;

/// Held locks; released on drop.
#[derive(Debug)]
pub struct ProxyLocks {
    _files: Vec<File>,
}

fn lock_dir() -> PathBuf {
    std::env::var_os("DUALWRITE_LOCK_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("dualwrite-locks"))
}

/// Takes every proxy's lock or none; `holder` describes this run for the message
/// another run will print.
pub fn acquire(toxiproxy: &str, proxies: &[String], holder: &str) -> anyhow::Result<ProxyLocks> {
    let dir = lock_dir();
    std::fs::create_dir_all(&dir)?;
    let server: String = toxiproxy
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let mut files = Vec::new();
    for proxy in proxies {
        let path = dir.join(format!("{server}-{proxy}.lock"));
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)?;
        // SAFETY: flock on a descriptor we own.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            let mut other = String::new();
            let _ = file.read_to_string(&mut other);
            anyhow::bail!(
                "proxy `{proxy}` is in use by another dualwrite run ({}); two runs on the same proxies would corrupt each other's results.\n  hint: wait for it to finish, or point this scenario at other proxies ([target.<side>] proxy = \"...\")",
                if other.trim().is_empty() {
                    "unknown".to_string()
                } else {
                    other.trim().to_string()
                }
            );
        }
        file.set_len(0)?;
        file.rewind()?;
        write!(file, "{holder}, pid {}", std::process::id())?;
        file.flush()?;
        files.push(file);
    }
    Ok(ProxyLocks { _files: files })
}
