//! How a failed Cassandra request is classified by the outcome rule.

use scylla::errors::{DbError, ExecutionError, RequestAttemptError};

use crate::pattern::outcome::{Attempt, Failure};

/// How a failed request is seen by the application, by the outcome rule: certainly
/// not applied when the driver never sent it (no connection, no node, no stream
/// id, a request it could not serialize or prepare) or the coordinator refused it
/// before writing (Unavailable, Overloaded, IsBootstrapping, rate limit, invalid);
/// indeterminate when it may have applied (timeouts, a connection closed with the
/// request on it, write timeouts and failures, server errors). Every failure is
/// retryable: each write carries the operation's timestamp, so a replay is the
/// same write.
pub(crate) fn classify(err: &ExecutionError) -> Attempt {
    let (applied_maybe, class) = if schema_disagreement(err) {
        // A node without the table yet (schema not agreed): the write may have
        // reached replicas that have it, so it is never a certain `fail`.
        (true, "schema-disagreement".to_string())
    } else {
        class_of(err)
    };
    let failure = Failure::new(class, err.to_string()).retryable(true);
    if applied_maybe {
        Attempt::Indeterminate(failure)
    } else {
        Attempt::NotApplied(failure)
    }
}

/// (may have applied, error class).
fn class_of(err: &ExecutionError) -> (bool, String) {
    const SENT: bool = true;
    const NOT_SENT: bool = false;
    match err {
        // Nothing was sent: no connection to send it on, or it never got that far.
        ExecutionError::ConnectionPoolError(_) => (NOT_SENT, "no-connection".into()),
        ExecutionError::EmptyPlan => (NOT_SENT, "no-node".into()),
        ExecutionError::BadQuery(_) => (NOT_SENT, "bad-query".into()),
        ExecutionError::PrepareError(_) => (NOT_SENT, "prepare".into()),
        ExecutionError::RequestTimeout(_) => (SENT, "timeout".into()),
        ExecutionError::LastAttemptError(e) => match e {
            RequestAttemptError::UnableToAllocStreamId => (NOT_SENT, "no-stream-id".into()),
            RequestAttemptError::SerializationError(_)
            | RequestAttemptError::CqlRequestSerialization(_) => (NOT_SENT, "serialization".into()),
            // The connection died with this request on it: sent or not, we cannot tell.
            RequestAttemptError::BrokenConnectionError(_) => (SENT, "connection-closed".into()),
            RequestAttemptError::DbError(db, _) => match db {
                // Batch, Cas, BatchLog...: which step timed out, kept in the class.
                DbError::WriteTimeout { write_type, .. } => {
                    (SENT, format!("WriteTimeout-{write_type:?}"))
                }
                DbError::ReadTimeout { .. } => (SENT, "ReadTimeout".into()),
                DbError::WriteFailure { .. } => (SENT, "WriteFailure".into()),
                DbError::ServerError => (SENT, "ServerError".into()),
                DbError::Unavailable { .. } => (NOT_SENT, "Unavailable".into()),
                DbError::Overloaded => (NOT_SENT, "Overloaded".into()),
                DbError::IsBootstrapping => (NOT_SENT, "IsBootstrapping".into()),
                DbError::RateLimitReached { .. } => (NOT_SENT, "RateLimitReached".into()),
                other => (NOT_SENT, db_error_name(other)),
            },
            _ => (SENT, "response".into()),
        },
        _ => (SENT, "other".into()),
    }
}

/// An error a node without the run's table (or keyspace) gives: its schema has
/// not caught up with the others'.
fn schema_disagreement(err: &ExecutionError) -> bool {
    let text = err.to_string().to_ascii_lowercase();
    text.contains("unconfigured table")
        || text.contains("unknown table")
        || text.contains("keyspace") && text.contains("does not exist")
}

fn db_error_name(e: &DbError) -> String {
    let debug = format!("{e:?}");
    debug
        .split(|c: char| !c.is_alphanumeric())
        .next()
        .unwrap_or("DbError")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use scylla::errors::{ConnectionPoolError, WriteType};
    use scylla::statement::Consistency;
    use std::time::Duration;

    fn class(a: Attempt) -> (bool, String) {
        match a {
            Attempt::Indeterminate(f) => (true, f.class),
            Attempt::NotApplied(f) => (false, f.class),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn errors_are_not_applied_when_nothing_was_sent_and_indeterminate_when_it_may_have_applied() {
        let pool = ExecutionError::ConnectionPoolError(ConnectionPoolError::Initializing);
        assert!(!class(classify(&pool)).0);
        let timeout = ExecutionError::RequestTimeout(Duration::from_secs(1));
        assert_eq!(class(classify(&timeout)), (true, "timeout".into()));
        let db = |e: DbError| {
            class(classify(&ExecutionError::LastAttemptError(
                RequestAttemptError::DbError(e, String::new()),
            )))
        };
        assert_eq!(
            db(DbError::WriteTimeout {
                consistency: Consistency::Quorum,
                received: 0,
                required: 1,
                write_type: WriteType::Cas,
            }),
            (true, "WriteTimeout-Cas".into())
        );
        let unavailable = DbError::Unavailable {
            consistency: Consistency::Quorum,
            required: 2,
            alive: 1,
        };
        assert_eq!(db(unavailable), (false, "Unavailable".into()));
        assert_eq!(db(DbError::Overloaded), (false, "Overloaded".into()));
        assert_eq!(db(DbError::Invalid), (false, "Invalid".into()));
        // A node without the table yet: it may have reached replicas that have it.
        let unconfigured = ExecutionError::LastAttemptError(RequestAttemptError::DbError(
            DbError::Invalid,
            "unconfigured table orders".into(),
        ));
        assert_eq!(
            class(classify(&unconfigured)),
            (true, "schema-disagreement".into())
        );
    }
}
