//! Retry pacing shared by every store's pattern clients: exponential backoff with
//! jitter, so retries after a fault window do not arrive in lockstep.

use std::time::Duration;

/// The longest wait between two attempts, whatever the base and the attempt.
pub const CAP: Duration = Duration::from_secs(1);

/// The wait before retry number `attempt` (1 = first retry): `base` doubled per
/// attempt, times a jitter factor in ×0.5..×1.5, capped at [`CAP`].
pub fn delay(base: Duration, attempt: u32) -> Duration {
    let exp = base.saturating_mul(1u32 << attempt.min(10));
    let jitter = 0.5 + rand::random::<f64>();
    // Beyond 2 x CAP even the lowest jitter reaches the cap; clamping first keeps
    // `mul_f64` from overflowing (a panic) on an absurd base.
    exp.min(CAP * 2).mul_f64(jitter).min(CAP)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_per_attempt_within_the_jitter_band_and_stops_at_the_cap() {
        let base = Duration::from_millis(20);
        for attempt in 0..4 {
            let nominal = base * (1 << attempt);
            for _ in 0..200 {
                let d = delay(base, attempt);
                assert!(d >= nominal / 2 && d <= nominal * 3 / 2, "{attempt}: {d:?}");
            }
        }
        for attempt in [10, 11, 40, u32::MAX] {
            assert!(delay(base, attempt) <= CAP);
            assert!(delay(Duration::MAX, attempt) <= CAP);
        }
    }
}
