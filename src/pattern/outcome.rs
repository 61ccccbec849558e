//! The outcome rule, in one place (docs/HISTORY.md "The outcome rule"): what the
//! attempts of one side add up to, and what the operation's outcome is given its
//! sides and what the caller was told. Every writer — the pattern engine, the
//! stores' atomic writes through it, the HTTP writer — reports through these.

use crate::history::{Outcome, SideOutcome};

/// A failed attempt as the application sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    /// Short error class (`timeout`, `refused`, `ConditionalCheckFailed`, ...).
    pub class: String,
    /// The full error text (kept once per class in the result).
    pub detail: String,
    /// Whether the application retries after it (store classification).
    pub retryable: bool,
    /// A transaction conflict (`on_conflict` decides what happens).
    pub conflict: bool,
}

impl Failure {
    pub fn new(class: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            class: class.into(),
            detail: detail.into(),
            retryable: false,
            conflict: false,
        }
    }

    pub fn retryable(mut self, yes: bool) -> Self {
        self.retryable = yes;
        self
    }

    pub fn conflict(mut self, yes: bool) -> Self {
        self.conflict = yes;
        self
    }
}

/// What one attempt of one write did.
#[derive(Debug, Clone, PartialEq)]
pub enum Attempt {
    /// Acknowledged by the store.
    Applied,
    /// Certainly not applied: the driver guarantees the request never reached the
    /// server, or the server answered that it rejected it.
    NotApplied(Failure),
    /// May or may not have been applied (a lost answer, a timeout after sending, a
    /// connection closed with the request on it, a 5xx).
    Indeterminate(Failure),
    /// The store refused it because the record is already there (a duplicate key,
    /// a failed `attribute_not_exists`): after an indeterminate attempt of the same
    /// operation this proves that attempt landed.
    AlreadyThere(Failure),
}

impl Attempt {
    pub fn failure(&self) -> Option<&Failure> {
        match self {
            Attempt::Applied => None,
            Attempt::NotApplied(f) | Attempt::Indeterminate(f) | Attempt::AlreadyThere(f) => {
                Some(f)
            }
        }
    }
}

/// The attempts of one side of one operation, added up by the rule: `ok` once any
/// attempt is acknowledged; otherwise `unknown` once any attempt was indeterminate
/// (it may have landed, whatever later attempts say); `fail` only when every
/// attempt certainly did not apply.
#[derive(Debug, Clone, Default)]
pub struct SideLedger {
    applied: bool,
    maybe_applied: bool,
    attempts: u32,
    last: Option<Failure>,
}

impl SideLedger {
    /// Adds one attempt; returns whether the side is now applied.
    pub fn add(&mut self, attempt: Attempt) -> bool {
        self.attempts += 1;
        match attempt {
            Attempt::Applied => self.applied = true,
            // An earlier attempt whose answer was lost did land.
            Attempt::AlreadyThere(_) if self.maybe_applied => self.applied = true,
            Attempt::AlreadyThere(f) | Attempt::NotApplied(f) => self.last = Some(f),
            Attempt::Indeterminate(f) => {
                self.maybe_applied = true;
                self.last = Some(f);
            }
        }
        self.applied
    }

    pub fn applied(&self) -> bool {
        self.applied
    }

    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    pub fn last_failure(&self) -> Option<&Failure> {
        self.last.as_ref()
    }

    pub fn outcome(&self) -> SideOutcome {
        if self.applied {
            SideOutcome::Ok
        } else if self.maybe_applied {
            SideOutcome::Unknown
        } else {
            SideOutcome::Fail
        }
    }
}

/// The operation's outcome: `ok` when the caller was told it succeeded (even if a
/// side is missing: that is what a lost ack is); otherwise `fail` only when no side
/// was or may have been applied, and `unknown` when any was — a caller told
/// "failed" about an order whose first write landed did not get a clean failure.
pub fn operation_outcome(told_ok: bool, primary: SideOutcome, secondary: SideOutcome) -> Outcome {
    let maybe = |s: SideOutcome| matches!(s, SideOutcome::Ok | SideOutcome::Unknown);
    if told_ok {
        Outcome::Ok
    } else if maybe(primary) || maybe(secondary) {
        Outcome::Unknown
    } else {
        Outcome::Fail
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lost() -> Attempt {
        Attempt::Indeterminate(Failure::new("timeout", "no answer"))
    }
    fn refused() -> Attempt {
        Attempt::NotApplied(Failure::new("refused", "connection refused"))
    }
    fn exists() -> Attempt {
        Attempt::AlreadyThere(Failure::new("duplicate-key", "E11000"))
    }

    #[test]
    fn a_lost_answer_then_refusals_is_unknown_never_fail() {
        let mut side = SideLedger::default();
        for a in [lost(), refused(), refused()] {
            side.add(a);
        }
        assert_eq!(side.outcome(), SideOutcome::Unknown);
        assert_eq!(side.attempts(), 3);
        assert_eq!(side.last_failure().unwrap().class, "refused");
    }

    #[test]
    fn only_refusals_is_fail_and_a_later_success_is_ok() {
        let mut side = SideLedger::default();
        side.add(refused());
        assert_eq!(side.outcome(), SideOutcome::Fail);
        assert!(side.add(Attempt::Applied));
        assert_eq!(side.outcome(), SideOutcome::Ok);
        let mut side = SideLedger::default();
        side.add(lost());
        side.add(Attempt::Applied);
        assert_eq!(side.outcome(), SideOutcome::Ok);
    }

    #[test]
    fn already_there_proves_an_earlier_lost_attempt_only_after_one() {
        let mut side = SideLedger::default();
        side.add(lost());
        assert!(side.add(exists()));
        assert_eq!(side.outcome(), SideOutcome::Ok);
        // Without an earlier ambiguous attempt, someone else's record: not ours.
        let mut side = SideLedger::default();
        assert!(!side.add(exists()));
        assert_eq!(side.outcome(), SideOutcome::Fail);
    }

    #[test]
    fn an_operation_fails_only_when_nothing_can_have_landed() {
        use SideOutcome::*;
        assert_eq!(operation_outcome(true, Ok, Fail), Outcome::Ok);
        assert_eq!(operation_outcome(false, Fail, Skipped), Outcome::Fail);
        assert_eq!(operation_outcome(false, Fail, Fail), Outcome::Fail);
        assert_eq!(operation_outcome(false, Unknown, Skipped), Outcome::Unknown);
        // The first write landed, the caller was told "failed": not a clean failure.
        assert_eq!(operation_outcome(false, Ok, Fail), Outcome::Unknown);
        assert_eq!(operation_outcome(false, Ok, Unknown), Outcome::Unknown);
        // An outbox order that may have landed carries its event: the relay may publish it.
        assert_eq!(operation_outcome(false, Unknown, Async), Outcome::Unknown);
    }
}
