//! The DynamoDB pattern clients: what the application does for one order, per
//! pattern (`naive`, `transaction`, and the primary-only write of `streams` and
//! `outbox`), with its failure-mode options (retries, token and key policies,
//! log-and-continue, log-and-drop).

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};
use std::collections::HashMap;

use super::dynamodb::{Tables, classify, error_text, event_id, event_item, order_item};
use super::{PatternClient, Record};
use crate::backoff;
use crate::history::{OpReport, Outcome, SideOutcome};
use crate::order::Order;
use crate::pattern::{KeyPolicy, OnConflict, OnSecondaryFailure, Pattern, PatternKind};

/// What every DynamoDB pattern client holds.
#[derive(Clone)]
pub(crate) struct DynamoWriter {
    pub(crate) primary: Client,
    pub(crate) secondary: Client,
    pub(crate) tables: Tables,
    pub(crate) namespace: String,
    pub(crate) pattern: Pattern,
}

impl DynamoWriter {
    async fn put(
        &self,
        client: &Client,
        table: &str,
        item: HashMap<String, AttributeValue>,
    ) -> (SideOutcome, Option<String>, Option<String>) {
        match client
            .put_item()
            .table_name(table)
            .set_item(Some(item))
            .send()
            .await
        {
            Ok(_) => (SideOutcome::Ok, None, None),
            Err(e) => {
                let (outcome, class) = classify(&e);
                (outcome, Some(class), Some(error_text(&e)))
            }
        }
    }
}

fn outcome_of(side: SideOutcome) -> Outcome {
    match side {
        SideOutcome::Ok | SideOutcome::Async => Outcome::Ok,
        SideOutcome::Fail | SideOutcome::Skipped => Outcome::Fail,
        SideOutcome::Unknown => Outcome::Unknown,
    }
}

/// PutItem into orders, then into events; what happens when the second fails is
/// the application's policy (`on_secondary_failure`).
pub(crate) struct NaiveClient(pub(crate) DynamoWriter);

#[async_trait]
impl PatternClient for NaiveClient {
    async fn write(&self, order: &Order) -> OpReport {
        let w = &self.0;
        let (primary, error, detail) = w.put(&w.primary, &w.tables.orders, order_item(order)).await;
        if primary != SideOutcome::Ok {
            return OpReport {
                outcome: outcome_of(primary),
                error,
                primary,
                secondary: SideOutcome::Skipped,
                retries: 0,
                detail,
            };
        }
        let record = Record::of(order);
        let mut retries = 0;
        loop {
            let item = event_item(&record, event_id(order.id, w.pattern.secondary_key));
            let (secondary, error, detail) = w.put(&w.secondary, &w.tables.events, item).await;
            if secondary == SideOutcome::Ok {
                return OpReport::ok(primary, secondary).with_retries(retries);
            }
            let policy = w.pattern.on_secondary_failure;
            if policy == OnSecondaryFailure::Retry && retries < w.pattern.retries {
                retries += 1;
                tokio::time::sleep(backoff::delay(w.pattern.backoff, retries)).await;
                continue;
            }
            let outcome = match policy {
                // The error is logged and the caller hears "ok": the silent orphan.
                OnSecondaryFailure::LogAndContinue => Outcome::Ok,
                _ => outcome_of(secondary),
            };
            return OpReport {
                outcome,
                error,
                primary,
                secondary,
                retries,
                detail,
            };
        }
    }
}

/// Whether the application retries after this outcome: unknown outcomes, refused
/// connections, throttling and transaction conflicts.
fn retryable(side: SideOutcome, class: &str) -> bool {
    side == SideOutcome::Unknown
        || class.contains("TransactionConflict")
        || class.contains("TransactionInProgress")
        || class.contains("Throughput")
        || class.contains("Throttling")
        || class == "refused"
        || class == "connect-timeout"
}

/// The order item of the `outbox` pattern: the order, `outbox_pending = true` and
/// the event to publish, all in one item (one PutItem: atomic).
pub fn outbox_item(order: &Order) -> HashMap<String, AttributeValue> {
    let mut item = order_item(order);
    item.insert("outbox_pending".into(), AttributeValue::Bool(true));
    item.insert(
        "outbox_event".into(),
        AttributeValue::M(HashMap::from([
            (
                "type".to_string(),
                AttributeValue::S("order-created".into()),
            ),
            (
                "customer_id".to_string(),
                AttributeValue::N(order.customer_id.to_string()),
            ),
            (
                "amount_cents".to_string(),
                AttributeValue::N(order.amount_cents.to_string()),
            ),
        ])),
    );
    item
}

/// `streams` and `outbox`: the application writes only the orders table (the
/// outbox item carries its event); the relay writes the secondary later. A PutItem
/// of the same order overwrites, so retrying it is safe.
pub(crate) struct PrimaryOnlyClient(pub(crate) DynamoWriter);

#[async_trait]
impl PatternClient for PrimaryOnlyClient {
    async fn write(&self, order: &Order) -> OpReport {
        let w = &self.0;
        let mut retries = 0;
        let mut ambiguous = false;
        loop {
            let item = match w.pattern.kind {
                PatternKind::Outbox => outbox_item(order),
                _ => order_item(order),
            };
            let (primary, error, detail) = w.put(&w.primary, &w.tables.orders, item).await;
            if primary == SideOutcome::Ok {
                return OpReport::ok(primary, SideOutcome::Async).with_retries(retries);
            }
            let class = error.clone().unwrap_or_default();
            ambiguous |= primary == SideOutcome::Unknown;
            if retryable(primary, &class) && retries < w.pattern.retries {
                retries += 1;
                tokio::time::sleep(backoff::delay(w.pattern.backoff, retries)).await;
                continue;
            }
            // An earlier attempt may have landed: then the relay still delivers it.
            let primary = if ambiguous {
                SideOutcome::Unknown
            } else {
                primary
            };
            return OpReport {
                outcome: outcome_of(primary),
                error,
                primary,
                secondary: if primary == SideOutcome::Unknown {
                    SideOutcome::Async
                } else {
                    SideOutcome::Skipped
                },
                retries,
                detail,
            };
        }
    }
}

/// One TransactWriteItems with `attribute_not_exists` conditions (unless
/// `conditions = false`) and a client request token; retried with backoff and
/// jitter on retryable errors.
pub(crate) struct TransactionClient(pub(crate) DynamoWriter);

impl TransactionClient {
    fn token(&self, order: &Order) -> String {
        match self.0.pattern.idempotency_token {
            // Deterministic from the run and the order: a retry is the same request.
            KeyPolicy::Stable => {
                let mut t = format!("{}-{}", self.0.namespace, order.key());
                t.truncate(36);
                t
            }
            KeyPolicy::Fresh => format!("{:032x}", rand::random::<u128>()),
        }
    }
}

#[async_trait]
impl PatternClient for TransactionClient {
    async fn write(&self, order: &Order) -> OpReport {
        let w = &self.0;
        let record = Record::of(order);
        let mut retries = 0;
        let mut ambiguous = false;
        let mut detail;
        loop {
            let put = |table: &str, item, key: &str| -> TransactWriteItem {
                let put = Put::builder().table_name(table).set_item(Some(item));
                let put = if w.pattern.conditions {
                    put.condition_expression(format!("attribute_not_exists({key})"))
                } else {
                    put // relies on the token alone to make a retry harmless
                };
                let put = put.build().expect("table and item are set");
                TransactWriteItem::builder().put(put).build()
            };
            let result = w
                .primary
                .transact_write_items()
                .transact_items(put(&w.tables.orders, order_item(order), "order_id"))
                .transact_items(put(
                    &w.tables.events,
                    event_item(&record, event_id(order.id, w.pattern.secondary_key)),
                    "event_id",
                ))
                .client_request_token(self.token(order))
                .send()
                .await;
            let (side, class) = match result {
                Ok(_) => {
                    return OpReport::ok(SideOutcome::Ok, SideOutcome::Ok).with_retries(retries);
                }
                Err(e) => {
                    let (side, class) = classify(&e);
                    detail = Some(error_text(&e));
                    let condition_failed = e
                        .as_service_error()
                        .map(|s| format!("{s:?}").contains("ConditionalCheckFailed"))
                        .unwrap_or(false);
                    if condition_failed && ambiguous {
                        // An earlier attempt whose answer was lost did commit.
                        return OpReport::ok(SideOutcome::Ok, SideOutcome::Ok)
                            .with_retries(retries);
                    }
                    (side, class)
                }
            };
            ambiguous |= side == SideOutcome::Unknown;
            let conflict =
                class.contains("TransactionConflict") || class.contains("TransactionInProgress");
            let drop = conflict && w.pattern.on_conflict == OnConflict::Drop;
            if retryable(side, &class) && !drop && retries < w.pattern.retries {
                retries += 1;
                tokio::time::sleep(backoff::delay(w.pattern.backoff, retries)).await;
                continue;
            }
            let side = if ambiguous && side == SideOutcome::Fail {
                SideOutcome::Unknown
            } else {
                side
            };
            // Log-and-drop: the handler logs the conflict and answers success, so
            // the order is silently lost (a lost ack on both sides).
            let outcome = if drop { Outcome::Ok } else { outcome_of(side) };
            return OpReport {
                outcome,
                error: Some(class),
                primary: side,
                secondary: side,
                retries,
                detail,
            };
        }
    }
}

/// Benchmark only: the same PutItems as `naive`, with no error policy at all.
pub(crate) struct BareClient {
    pub(crate) primary: Client,
    pub(crate) secondary: Client,
    pub(crate) tables: Tables,
    pub(crate) writes: u8,
}

#[async_trait]
impl PatternClient for BareClient {
    async fn write(&self, order: &Order) -> OpReport {
        let ok = self
            .primary
            .put_item()
            .table_name(&self.tables.orders)
            .set_item(Some(order_item(order)))
            .send()
            .await
            .is_ok();
        let ok = ok
            && (self.writes < 2
                || self
                    .secondary
                    .put_item()
                    .table_name(&self.tables.events)
                    .set_item(Some(event_item(
                        &Record::of(order),
                        event_id(order.id, KeyPolicy::Stable),
                    )))
                    .send()
                    .await
                    .is_ok());
        OpReport::bare(ok)
    }
}
