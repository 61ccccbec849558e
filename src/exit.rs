//! Exit codes, a contract with CI systems (README "Exit codes").

/// Expectations met.
pub const PASS: i32 = 0;
/// Divergence beyond what the scenario allows: the CI gate.
pub const DIVERGENCE: i32 = 1;
/// `bench --baseline`: a harness figure regressed beyond its tolerance (the same
/// gate, for the harness's own cost).
pub const REGRESSION: i32 = 1;
/// Bad input: scenario file or flags.
pub const BAD_INPUT: i32 = 2;
/// Infrastructure: store, proxy or results directory unusable; set-up failed.
pub const INFRA: i32 = 3;
/// Interrupted by Ctrl-C or SIGTERM (128 + SIGINT, as shells do).
pub const INTERRUPTED: i32 = 130;

/// The worst of several exit codes (for `run` over many scenarios).
pub fn worst(a: i32, b: i32) -> i32 {
    let rank = |c: i32| match c {
        PASS => 0,
        DIVERGENCE => 1,
        BAD_INPUT => 3,
        INFRA => 2,
        _ => 4,
    };
    if rank(b) > rank(a) { b } else { a }
}
