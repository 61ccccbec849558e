//! DynamoDB's atomic writes (what the pattern engine retries): `transaction`, one
//! TransactWriteItems over both tables with `attribute_not_exists` conditions and
//! a client request token; `outbox`, the order item carrying its event and an
//! `outbox_pending` flag in one PutItem. And the bench's bare client.

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};
use std::collections::HashMap;
use std::sync::Arc;

use super::side::{classify, event_id, event_item, order_item};
use crate::history::OpReport;
use crate::order::{Order, splitmix64};
use crate::pattern::atomic::{AtomicWrite, AttemptContext, Covers};
use crate::pattern::outcome::Attempt;
use crate::pattern::{KeyPolicy, Pattern};
use crate::store::Record;
use crate::writer::Writer;

/// The longest `ClientRequestToken` DynamoDB accepts.
const TOKEN_MAX: usize = 36;

/// The stable token of one order of one run: a 64-bit hash of the namespace and
/// the order id written out in full (29 characters), so two orders of a run never
/// share a token whatever the namespace prefix, and two runs share one only if
/// their namespaces' hashes collide.
pub fn stable_token(namespace: &str, order_id: u64) -> String {
    let ns = namespace.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        splitmix64(h ^ u64::from(b))
    });
    let token = format!("{ns:016x}-{order_id:012}");
    debug_assert!(token.len() <= TOKEN_MAX);
    token
}

pub(crate) struct TransactionWrite {
    pub(crate) client: Client,
    pub(crate) orders: String,
    pub(crate) events: String,
    pub(crate) namespace: String,
    pub(crate) pattern: Pattern,
}

impl TransactionWrite {
    fn token(&self, order: &Order) -> String {
        match self.pattern.idempotency_token {
            // Deterministic from the run and the order: a retry is the same request.
            KeyPolicy::Stable => stable_token(&self.namespace, order.id),
            KeyPolicy::Fresh => format!("{:032x}", rand::random::<u128>()),
        }
    }

    fn put(
        &self,
        table: &str,
        item: HashMap<String, AttributeValue>,
        key: &str,
    ) -> TransactWriteItem {
        let put = Put::builder().table_name(table).set_item(Some(item));
        let put = if self.pattern.conditions {
            put.condition_expression(format!("attribute_not_exists({key})"))
        } else {
            put // relies on the token alone to make a retry harmless
        };
        let put = put.build().expect("table and item are set");
        TransactWriteItem::builder().put(put).build()
    }
}

#[async_trait]
impl AtomicWrite for TransactionWrite {
    fn covers(&self) -> Covers {
        Covers::Both
    }

    async fn attempt(&self, order: &Order, _ctx: &mut AttemptContext) -> Attempt {
        let record = Record::of(order);
        let event = event_item(&record, event_id(order.id, self.pattern.secondary_key));
        let result = self
            .client
            .transact_write_items()
            .transact_items(self.put(&self.orders, order_item(order), "order_id"))
            .transact_items(self.put(&self.events, event, "event_id"))
            .client_request_token(self.token(order))
            .send()
            .await;
        match result {
            Ok(_) => Attempt::Applied,
            // A failed `attribute_not_exists`: an AlreadyThere, which proves an
            // earlier attempt whose answer was lost did commit.
            Err(e) => classify(&e),
        }
    }
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

/// `outbox`: one PutItem of the order with its event. Unless `rearm`, the put is
/// conditional on the order not being there yet, so an application retry after
/// the relay published (and cleared the flag) cannot set the flag again and make
/// the relay publish a second time; with `rearm` it is the unconditional put that
/// does exactly that (the hazard, reproduced on purpose).
pub(crate) struct OutboxWrite {
    pub(crate) client: Client,
    pub(crate) orders: String,
    pub(crate) rearm: bool,
}

#[async_trait]
impl AtomicWrite for OutboxWrite {
    fn covers(&self) -> Covers {
        Covers::PrimaryThenRelay
    }

    async fn attempt(&self, order: &Order, _ctx: &mut AttemptContext) -> Attempt {
        let mut put = self
            .client
            .put_item()
            .table_name(&self.orders)
            .set_item(Some(outbox_item(order)));
        if !self.rearm {
            put = put.condition_expression("attribute_not_exists(order_id)");
        }
        match put.send().await {
            Ok(_) => Attempt::Applied,
            Err(e) => classify(&e),
        }
    }
}

/// Benchmark only: the same PutItems as `naive`, with no error policy at all.
pub(crate) struct BareClient {
    pub(crate) primary: Client,
    pub(crate) secondary: Client,
    pub(crate) orders: String,
    pub(crate) events: String,
    pub(crate) writes: u8,
}

impl BareClient {
    pub(crate) fn writer(self) -> Arc<dyn Writer> {
        Arc::new(self)
    }
}

#[async_trait]
impl Writer for BareClient {
    async fn write(&self, order: &Order) -> OpReport {
        let ok = self
            .primary
            .put_item()
            .table_name(&self.orders)
            .set_item(Some(order_item(order)))
            .send()
            .await
            .is_ok();
        let ok = ok
            && (self.writes < 2
                || self
                    .secondary
                    .put_item()
                    .table_name(&self.events)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_tokens_are_unique_per_order_for_the_longest_prefix() {
        // The longest namespace validation allows: a 12-character prefix.
        let (_, namespace) = crate::run::new_run_id("abcdefghijkl");
        let mut seen = std::collections::HashSet::with_capacity(1_000_000);
        for id in 0..1_000_000u64 {
            let t = stable_token(&namespace, id);
            assert!(t.len() <= TOKEN_MAX, "{t} is {} characters", t.len());
            assert!(seen.insert(t), "order {id} shares its token");
        }
        // The largest order id a run can have (1e9 operations) fits too.
        assert!(stable_token(&namespace, 999_999_999_999).len() <= TOKEN_MAX);
        // Same order, same run: the same token (a retry is the same request);
        // another run: another token.
        assert_eq!(stable_token(&namespace, 7), stable_token(&namespace, 7));
        let (_, other) = crate::run::new_run_id("abcdefghijkl");
        assert_ne!(
            stable_token(&namespace, 7),
            stable_token(&format!("{other}x"), 7)
        );
    }
}
