//! The user's service as the writer (`[app]`): one HTTP request per order to the
//! service's write endpoint, its answer mapped to the history by the outcome rule
//! (`crate::pattern::outcome`):
//!
//! - 2xx: the service acknowledged: applied (`ok`);
//! - a status of `fail_statuses` (default: bad requests and refusals, not 409):
//!   the service said it did not write it: not applied (`fail`);
//! - anything else — other 4xx/5xx, 3xx, a timeout, a connection reset or closed
//!   with the request sent: indeterminate (`unknown`);
//! - a connection that could not be made (refused, the connect timeout): the
//!   request was never sent: not applied (`fail`).
//!
//! The service does not say which of its stores it wrote, so both sides get the
//! operation's outcome (the secondary `async` when a relay writes it).

use async_trait::async_trait;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use std::time::Duration;

use crate::history::{OpReport, SideOutcome};
use crate::order::Order;
use crate::pattern::outcome::{Attempt, Failure, SideLedger, operation_outcome};
use crate::scenario::app::{App, Body, StatusRange, Var, Vars, fill};
use crate::store::layout::run_prefix;
use crate::writer::Writer;

/// The longest piece of a response body kept as an error's detail.
const DETAIL_CHARS: usize = 300;

pub struct HttpWriter {
    client: reqwest::Client,
    method: reqwest::Method,
    url: String,
    headers: HeaderMap,
    body: Body,
    fail: Vec<StatusRange>,
    async_secondary: bool,
    /// This run's order-id prefix (`<namespace>-`).
    prefix: String,
}

impl HttpWriter {
    /// `vars`: the run's template values (the URL and header values take them).
    pub fn new(app: &App, vars: &Vars, concurrency: usize) -> anyhow::Result<Self> {
        let r = &app.request;
        let mut headers = HeaderMap::new();
        for (name, value) in &r.headers {
            let value =
                fill(value, vars).map_err(|e| anyhow::anyhow!("[app] header {name}: {e}"))?;
            headers.insert(
                HeaderName::from_bytes(name.as_bytes())?,
                // Never echo the value: it may be a token.
                HeaderValue::from_str(&value).map_err(|_| {
                    anyhow::anyhow!("[app] header {name}: not a valid header value")
                })?,
            );
        }
        let client = reqwest::Client::builder()
            // Straight to the service: never through an HTTP(S)_PROXY from the
            // environment, never following a redirect (a 3xx is not an answer).
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(1).min(r.timeout))
            .timeout(r.timeout)
            .pool_max_idle_per_host(concurrency)
            .tcp_nodelay(true)
            .build()?;
        Ok(Self {
            client,
            method: reqwest::Method::from_bytes(r.method.as_bytes())?,
            url: fill(&r.url, vars).map_err(|e| anyhow::anyhow!("[app] url: {e}"))?,
            headers,
            body: r.body.clone(),
            fail: app.fail_statuses.clone(),
            async_secondary: app.async_secondary,
            prefix: run_prefix(&vars.namespace),
        })
    }

    /// The request body of one order.
    pub fn body_of(&self, order: &Order) -> String {
        self.body.render(|v, out| match v {
            Var::OrderId => {
                out.push_str(&self.prefix);
                out.push_str(&order.key());
            }
            Var::CustomerId => out.push_str(itoa::Buffer::new().format(order.customer_id)),
            Var::AmountCents => out.push_str(itoa::Buffer::new().format(order.amount_cents)),
            Var::Payload => out.push_str(&order.payload),
        })
    }

    /// One request, as the outcome rule reads it.
    async fn attempt(&self, order: &Order) -> Attempt {
        let sent = self
            .client
            .request(self.method.clone(), &self.url)
            .headers(self.headers.clone())
            .body(self.body_of(order))
            .send()
            .await;
        let response = match sent {
            Ok(r) => r,
            Err(e) => return classify_error(&e),
        };
        let status = response.status().as_u16();
        // Read the body (bounded by the request timeout) so the connection is
        // reused; its beginning is the error's detail.
        let text = response.text().await.unwrap_or_default();
        answer(status, &text, &self.fail)
    }
}

/// An answer, by its status.
pub fn answer(status: u16, body: &str, fail: &[StatusRange]) -> Attempt {
    if (200..300).contains(&status) {
        return Attempt::Applied;
    }
    let detail: String = format!("HTTP {status}: {}", body.trim())
        .chars()
        .take(DETAIL_CHARS)
        .collect();
    let f = Failure::new(format!("http-{status}"), detail);
    if fail.iter().any(|r| r.contains(status)) {
        Attempt::NotApplied(f)
    } else {
        Attempt::Indeterminate(f)
    }
}

/// A request that got no answer: never sent when no connection could be made,
/// otherwise it may have been processed.
fn classify_error(e: &reqwest::Error) -> Attempt {
    let detail = chain(e);
    if e.is_connect() {
        let class = if detail.contains("refused") {
            "refused"
        } else if e.is_timeout() {
            "connect-timeout"
        } else {
            "connect"
        };
        return Attempt::NotApplied(Failure::new(class, detail));
    }
    let class = if e.is_timeout() {
        "timeout"
    } else if detail.contains("reset") {
        "reset"
    } else if detail.contains("closed") || detail.contains("incomplete") {
        "closed"
    } else {
        "io"
    };
    Attempt::Indeterminate(Failure::new(class, detail))
}

fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let more = s.to_string();
        if !text.contains(&more) {
            text = format!("{text}: {more}");
        }
        cur = s.source();
    }
    text
}

#[async_trait]
impl Writer for HttpWriter {
    async fn write(&self, order: &Order) -> OpReport {
        let mut service = SideLedger::default();
        service.add(self.attempt(order).await);
        let outcome = service.outcome();
        let secondary = if self.async_secondary && outcome != SideOutcome::Fail {
            SideOutcome::Async
        } else {
            outcome
        };
        let failure = service.last_failure();
        OpReport {
            outcome: operation_outcome(service.applied(), outcome, secondary),
            error: failure.map(|f| f.class.clone()),
            primary: outcome,
            secondary,
            retries: 0,
            detail: failure.map(|f| f.detail.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::Outcome;
    use crate::scenario::app::DEFAULT_FAIL_STATUSES;

    fn defaults() -> Vec<StatusRange> {
        DEFAULT_FAIL_STATUSES
            .iter()
            .map(|s| StatusRange { from: *s, to: *s })
            .collect()
    }

    #[test]
    fn statuses_map_to_applied_not_applied_or_indeterminate() {
        let f = defaults();
        assert_eq!(answer(201, "", &f), Attempt::Applied);
        assert!(matches!(answer(400, "bad", &f), Attempt::NotApplied(_)));
        assert!(matches!(answer(429, "", &f), Attempt::NotApplied(_)));
        // Exists already: something with that id may be stored.
        assert!(matches!(answer(409, "", &f), Attempt::Indeterminate(_)));
        assert!(matches!(answer(500, "", &f), Attempt::Indeterminate(_)));
        assert!(matches!(answer(503, "", &f), Attempt::Indeterminate(_)));
        assert!(matches!(answer(302, "", &f), Attempt::Indeterminate(_)));
        let with_503 = vec![StatusRange { from: 503, to: 503 }];
        match answer(503, "orders store: connection refused", &with_503) {
            Attempt::NotApplied(f) => {
                assert_eq!(f.class, "http-503");
                assert_eq!(f.detail, "HTTP 503: orders store: connection refused");
            }
            other => panic!("{other:?}"),
        }
        let long = "x".repeat(1000);
        let Attempt::Indeterminate(f) = answer(500, &long, &f) else {
            panic!()
        };
        assert_eq!(f.detail.chars().count(), DETAIL_CHARS);
    }

    #[tokio::test]
    async fn a_refused_connection_is_a_clean_failure_and_a_silent_server_unknown() {
        // Refused: bind a port, then close it.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let app = crate::scenario::tests::app_scenario(&format!(
            "url = \"http://127.0.0.1:{port}/orders\"\ntimeout = \"300ms\""
        ));
        let a = app.app.as_ref().unwrap();
        let vars = Vars {
            namespace: "dw_t".into(),
            ..Vars::default()
        };
        let w = HttpWriter::new(a, &vars, 4).unwrap();
        let order = Order::generate(1, 7, 10, 4);
        assert!(
            w.body_of(&order)
                .contains("\"order_id\": \"dw_t-o000000000007\"")
        );
        let r = w.write(&order).await;
        assert_eq!(r.outcome, Outcome::Fail, "{r:?}");
        assert_eq!(r.error.as_deref(), Some("refused"));
        assert_eq!(
            (r.primary, r.secondary),
            (SideOutcome::Fail, SideOutcome::Fail)
        );
        // A server that accepts and never answers: the request was sent.
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = silent.local_addr().unwrap().port();
        let app = crate::scenario::tests::app_scenario(&format!(
            "url = \"http://127.0.0.1:{port}/orders\"\ntimeout = \"300ms\""
        ));
        let w = HttpWriter::new(app.app.as_ref().unwrap(), &vars, 4).unwrap();
        let r = w.write(&order).await;
        assert_eq!(r.outcome, Outcome::Unknown, "{r:?}");
        assert_eq!(r.error.as_deref(), Some("timeout"));
        drop(silent);
    }
}
