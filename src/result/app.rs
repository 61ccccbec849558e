//! `[app]`: the processes of the service under test.

use super::*;

/// `[app]`: the processes of the service under test.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct AppResult {
    /// The write endpoint orders were sent to.
    pub url: String,
    pub processes: Vec<AppProcess>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct AppProcess {
    /// `service` or `relay`.
    pub name: String,
    /// The command as the scenario wrote it; absent when attached (not started
    /// by dualwrite).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// Its stdout and stderr, in the run directory.
    #[serde(default)]
    pub logs: Vec<String>,
    /// Starts, readiness, pauses and exits, in order.
    #[serde(default)]
    pub events: Vec<AppEvent>,
    /// The first exit dualwrite did not ask for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub died: Option<AppDeath>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct AppEvent {
    /// Seconds since the load started (negative: during set-up).
    pub at_s: f64,
    /// `started`, `ready`, `paused`, `resumed`, `stopped` (dualwrite stopped or
    /// killed it), `died` (it exited by itself).
    pub event: String,
    pub pid: i32,
    /// The exit status of `stopped` and `died`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct AppDeath {
    pub at_s: f64,
    pub status: String,
    /// Its last lines on stderr.
    pub stderr_tail: Vec<String>,
}
