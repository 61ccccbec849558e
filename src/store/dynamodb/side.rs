//! A DynamoDB table as a side: the orders table (key `order_id`) or the events
//! table (key `event_id`, `order_id` an attribute, so a non-idempotent writer can
//! duplicate). Writes go through the side's own client (its proxy, its SDK fault
//! source, the workload's op_timeout); scans and plants through an admin client
//! that neither times out with the workload nor gets injected errors.
//!
//! With `[app]` a side is the service's table, read and planted through its
//! [`Layout`] (the service's key and attribute names, this run's id prefix).

use anyhow::Context;
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::AttributeValue;
use aws_smithy_runtime_api::http::Response as HttpResponse;
use aws_smithy_types::timeout::TimeoutConfig;
use std::collections::HashMap;
use std::time::Duration;

use super::faults::{INJECTED_AFTER_HEADER, injected_in};
use crate::order::{Order, order_key, parse_order_key};
use crate::pattern::KeyPolicy;
use crate::pattern::outcome::{Attempt, Failure};
use crate::store::layout::{Layout, number, service_writes};
use crate::store::{ReadOptions, ReadOutcome, Record, ScanSink, SideStore};
use std::sync::Arc;

/// The events table's index on `order_id`, created in prepare when readers look
/// up events with fresh ids (`mod.rs`); index reads are eventually consistent.
pub const ORDER_INDEX: &str = "order_id-index";

/// Bound on one page of a checker scan.
const SCAN_PAGE_TIMEOUT: Duration = Duration::from_secs(60);

/// Which table of the run a side is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    Orders,
    Events,
}

pub struct DynamoSide {
    pub(crate) client: Client,
    pub(crate) admin: Client,
    pub(crate) table: Table,
    pub(crate) name: String,
    /// `[app]`: the service's layout of this table (`name` is its table).
    pub(crate) app: Option<Arc<Layout>>,
}

impl DynamoSide {
    fn key(&self) -> &'static str {
        match self.table {
            Table::Orders => "order_id",
            Table::Events => "event_id",
        }
    }

    async fn put(&self, item: HashMap<String, AttributeValue>) -> Attempt {
        match self
            .client
            .put_item()
            .table_name(&self.name)
            .set_item(Some(item))
            .send()
            .await
        {
            Ok(_) => Attempt::Applied,
            Err(e) => classify(&e),
        }
    }
}

#[async_trait]
impl SideStore for DynamoSide {
    fn describe(&self) -> String {
        format!("dynamodb table {}", self.name)
    }

    async fn write_order(&self, order: &Order, _timestamp_us: i64) -> Attempt {
        if self.app.is_some() {
            return service_writes();
        }
        self.put(order_item(order)).await
    }

    async fn write_event(&self, record: &Record, key: KeyPolicy, _timestamp_us: i64) -> Attempt {
        if self.app.is_some() {
            return service_writes();
        }
        self.put(event_item(record, event_id(record.order_id, key)))
            .await
    }

    async fn read(&self, record: &Record, how: &ReadOptions) -> ReadOutcome {
        let strong = how.consistency.consistency.as_deref() == Some("strong");
        let (key, value) = match (self.table, how.key) {
            (Table::Orders, _) => ("order_id", order_key(record.order_id)),
            (Table::Events, KeyPolicy::Stable) => {
                ("event_id", event_id(record.order_id, KeyPolicy::Stable))
            }
            // Fresh event ids: the index on order_id (validation allows no strong read here).
            (Table::Events, KeyPolicy::Fresh) => {
                return match self
                    .client
                    .query()
                    .table_name(&self.name)
                    .index_name(ORDER_INDEX)
                    .key_condition_expression("order_id = :o")
                    .expression_attribute_values(
                        ":o",
                        AttributeValue::S(order_key(record.order_id)),
                    )
                    .select(aws_sdk_dynamodb::types::Select::Count)
                    .send()
                    .await
                {
                    Ok(out) => ReadOutcome::Ok(out.count().max(0) as u32),
                    Err(e) => ReadOutcome::failed(classify(&e)),
                };
            }
        };
        match self
            .client
            .get_item()
            .table_name(&self.name)
            .key(key, AttributeValue::S(value))
            .consistent_read(strong)
            .projection_expression("#k")
            .expression_attribute_names("#k", key)
            .send()
            .await
        {
            Ok(out) => ReadOutcome::Ok(u32::from(out.item().is_some())),
            Err(e) => ReadOutcome::failed(classify(&e)),
        }
    }

    async fn scan(&self, sink: &mut dyn ScanSink) -> anyhow::Result<()> {
        let (table, key) = (
            &self.name,
            self.app.as_ref().map_or(self.key(), |l| l.key.as_str()),
        );
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        loop {
            let page = self
                .admin
                .scan()
                .table_name(table)
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .customize()
                // A scan page of a large table takes far longer than one write: the
                // checker must not inherit the workload's op_timeout.
                .config_override(
                    aws_sdk_dynamodb::config::Builder::default().timeout_config(
                        TimeoutConfig::builder()
                            .operation_timeout(SCAN_PAGE_TIMEOUT)
                            .operation_attempt_timeout(SCAN_PAGE_TIMEOUT)
                            .build(),
                    ),
                )
                .send()
                .await
                .map_err(|e| anyhow::anyhow!("scan of {table} failed: {}", error_text(&e)))?;
            for item in page.items() {
                if let Some(layout) = &self.app {
                    read_app_item(layout, item, sink);
                    continue;
                }
                match record_of(item) {
                    Some(r) => sink.record(r),
                    None => sink.foreign(
                        item.get(key)
                            .and_then(|v| v.as_s().ok())
                            .map_or("?", |s| s.as_str()),
                    ),
                }
            }
            match page.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => return Ok(()),
            }
        }
    }

    async fn plant(&self, record: Record, copies: u32) -> anyhow::Result<()> {
        for copy in 0..copies.max(1) {
            let item = match (&self.app, self.table) {
                (Some(layout), _) => {
                    app_item(layout, &record, layout.plant_key(record.order_id, copy))
                }
                (None, table) => match table {
                    Table::Orders => order_item(&Order {
                        id: record.order_id,
                        customer_id: record.customer_id,
                        amount_cents: record.amount_cents,
                        payload: String::new(),
                    }),
                    Table::Events => {
                        event_item(&record, event_id(record.order_id, KeyPolicy::Fresh))
                    }
                },
            };
            self.admin
                .put_item()
                .table_name(&self.name)
                .set_item(Some(item))
                .send()
                .await
                .map_err(|e| anyhow::anyhow!("planting into {}: {}", self.name, error_text(&e)))?;
        }
        Ok(())
    }

    async fn plant_foreign(&self, key: &str) -> anyhow::Result<()> {
        let mut item =
            HashMap::from([(self.key().to_string(), AttributeValue::S(key.to_string()))]);
        if let Some(layout) = &self.app {
            // This run's prefix on an id this tool never makes: a stray.
            let id = AttributeValue::S(format!("{}{key}", layout.prefix));
            item = HashMap::from([
                (layout.key.clone(), id.clone()),
                (layout.order_id.clone(), id),
            ]);
        }
        self.admin
            .put_item()
            .table_name(&self.name)
            .set_item(Some(item))
            .send()
            .await
            .context("planting a foreign record")?;
        Ok(())
    }
}

/// How a failed call is seen by the application, by the outcome rule: certainly
/// not applied only when nothing reached the server (connection refused, the
/// connect timeout, the request not even built, an `sdk-error` raised before
/// sending) or the server answered a 4xx that rejects the request; indeterminate
/// when it may have applied (timeouts after sending, I/O errors, unreadable
/// answers, 5xx, and any answer replaced after the server applied the request).
/// Retryable: indeterminate outcomes, refusals, throttling, transaction conflicts.
pub fn classify<E: ProvideErrorMetadata + std::error::Error + 'static>(
    err: &SdkError<E, HttpResponse>,
) -> Attempt {
    let detail = error_text(err);
    // An `sdk-error` fault raised before sending: certainly not applied.
    if let Some(injected) = injected_in(err) {
        return Attempt::NotApplied(failure_of_code(&injected.code, detail));
    }
    let not_sent =
        |class: &str| Attempt::NotApplied(Failure::new(class, detail.clone()).retryable(true));
    let unknown =
        |class: String| Attempt::Indeterminate(Failure::new(class, detail.clone()).retryable(true));
    match err {
        SdkError::ConstructionFailure(_) => {
            Attempt::NotApplied(Failure::new("construction", detail.clone()))
        }
        SdkError::TimeoutError(_) => unknown("timeout".into()),
        SdkError::DispatchFailure(d) => {
            if chain_mentions(err, "refused") {
                not_sent("refused")
            } else if d.is_timeout() {
                // The connect timeout: nothing was sent.
                not_sent("connect-timeout")
            } else {
                unknown("io".into())
            }
        }
        SdkError::ResponseError(_) => unknown("response".into()),
        SdkError::ServiceError(s) => {
            let status = s.raw().status().as_u16();
            let code = s
                .err()
                .code()
                .map_or_else(|| format!("http-{status}"), str::to_string);
            // An answer dualwrite replaced after the server applied the request.
            if s.raw().headers().get(INJECTED_AFTER_HEADER).is_some() {
                return unknown(code);
            }
            // The server broke mid-request (moto answers HTML 500s under concurrent
            // transactions): the write may or may not have been applied.
            if status >= 500 || code == "InternalServerError" || code.contains("ServiceUnavailable")
            {
                return unknown(code);
            }
            let failure = failure_of_code(&code, detail.clone());
            if code == "ConditionalCheckFailedException" || condition_failed(err) {
                return Attempt::AlreadyThere(failure);
            }
            Attempt::NotApplied(failure)
        }
        _ => unknown("other".into()),
    }
}

/// A DynamoDB error code as the application sees it: retried after backoff when
/// it is throttling or a transaction conflict, and a conflict for `on_conflict`.
fn failure_of_code(code: &str, detail: String) -> Failure {
    let conflict = code.contains("TransactionConflict") || code.contains("TransactionInProgress");
    let retryable = conflict
        || code.contains("Throughput")
        || code.contains("Throttling")
        || code.contains("RequestLimitExceeded");
    Failure::new(code, detail)
        .retryable(retryable)
        .conflict(conflict)
}

/// A cancelled transaction whose reason is a failed condition (`attribute_not_exists`).
fn condition_failed<E: std::error::Error + 'static>(err: &SdkError<E, HttpResponse>) -> bool {
    match err {
        SdkError::ServiceError(s) => format!("{:?}", s.err()).contains("ConditionalCheckFailed"),
        _ => false,
    }
}

fn chain_mentions(err: &(dyn std::error::Error + 'static), needle: &str) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::ConnectionRefused
        {
            return true;
        }
        if e.to_string().to_ascii_lowercase().contains(needle)
            || format!("{e:?}").to_ascii_lowercase().contains(needle)
        {
            return true;
        }
        cur = e.source();
    }
    false
}

pub fn error_text<E: std::error::Error + 'static, R: std::fmt::Debug + 'static>(
    err: &SdkError<E, R>,
) -> String {
    let mut text = err.to_string();
    let mut cur = std::error::Error::source(err);
    while let Some(e) = cur {
        text.push_str(": ");
        text.push_str(&e.to_string());
        cur = e.source();
    }
    text
}

pub fn order_item(order: &Order) -> HashMap<String, AttributeValue> {
    HashMap::from([
        ("order_id".to_string(), AttributeValue::S(order.key())),
        (
            "customer_id".to_string(),
            AttributeValue::N(order.customer_id.to_string()),
        ),
        (
            "amount_cents".to_string(),
            AttributeValue::N(order.amount_cents.to_string()),
        ),
        (
            "payload".to_string(),
            AttributeValue::S(order.payload.clone()),
        ),
    ])
}

/// The event id: derived from the order (a replay overwrites) or fresh per attempt.
pub fn event_id(order_id: u64, policy: KeyPolicy) -> String {
    match policy {
        KeyPolicy::Stable => format!("e-{}", order_key(order_id)),
        KeyPolicy::Fresh => format!("e-{}-{:016x}", order_key(order_id), rand::random::<u64>()),
    }
}

pub fn event_item(record: &Record, event_id: String) -> HashMap<String, AttributeValue> {
    HashMap::from([
        ("event_id".to_string(), AttributeValue::S(event_id)),
        (
            "order_id".to_string(),
            AttributeValue::S(order_key(record.order_id)),
        ),
        (
            "customer_id".to_string(),
            AttributeValue::N(record.customer_id.to_string()),
        ),
        (
            "amount_cents".to_string(),
            AttributeValue::N(record.amount_cents.to_string()),
        ),
    ])
}

/// Reads a record's compared fields back from an item.
pub fn record_of(item: &HashMap<String, AttributeValue>) -> Option<Record> {
    let order_id = item
        .get("order_id")?
        .as_s()
        .ok()
        .and_then(|s| parse_order_key(s))?;
    let n = |k: &str| {
        item.get(k)
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse().ok())
            .unwrap_or(u64::MAX)
    };
    Some(Record {
        order_id,
        customer_id: n("customer_id"),
        amount_cents: n("amount_cents"),
    })
}

/// `[app]`: one item of the service's table to the checker: this run's orders
/// as records, this run's prefix on anything else as a stray, other runs' items
/// skipped. Numbers are read numerically (N, or digits in an S).
fn read_app_item(layout: &Layout, item: &HashMap<String, AttributeValue>, sink: &mut dyn ScanSink) {
    let text = |v: &AttributeValue| match v {
        AttributeValue::S(s) | AttributeValue::N(s) => Some(s.clone()),
        _ => None,
    };
    let Some(id) = item.get(&layout.order_id).and_then(text) else {
        return;
    };
    let field = |name: &Option<String>| match name {
        None => 0,
        Some(n) => item.get(n).and_then(text).map_or(u64::MAX, |t| number(&t)),
    };
    match layout.read_id(&id) {
        crate::store::layout::Id::Mine(order_id) => sink.record(Record {
            order_id,
            customer_id: field(&layout.customer_id),
            amount_cents: field(&layout.amount_cents),
        }),
        crate::store::layout::Id::Stray => sink.foreign(&id),
        crate::store::layout::Id::Other => {}
    }
}

/// `[app]`: a planted item in the service's names (numbers as N).
fn app_item(layout: &Layout, record: &Record, key: String) -> HashMap<String, AttributeValue> {
    let mut item = HashMap::from([
        (layout.key.clone(), AttributeValue::S(key)),
        (
            layout.order_id.clone(),
            AttributeValue::S(layout.stored_id(record.order_id)),
        ),
    ]);
    if let Some(c) = &layout.customer_id {
        item.insert(c.clone(), AttributeValue::N(record.customer_id.to_string()));
    }
    if let Some(a) = &layout.amount_cents {
        item.insert(
            a.clone(),
            AttributeValue::N(record.amount_cents.to_string()),
        );
    }
    item
}
