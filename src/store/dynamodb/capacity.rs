//! Capacity units per logical operation on DynamoDB: every attempt the workload's
//! and the relay's clients transmit is counted here, retries included (an
//! application retry is a new call, so it is counted as one; a request an
//! `sdk-error` fault failed before sending is not).
//!
//! Each figure is `reported` where the server answered with `ConsumedCapacity`
//! (asked for with `ReturnConsumedCapacity = TOTAL` on every call) and `modelled`
//! from DynamoDB's published sizing rules where it did not (no answer: a timeout
//! or a lost response; an error; a server that does not report, such as moto for
//! `TransactWriteItems` and `UpdateItem`). The model is beside every reported
//! figure, so a server that reports constants (moto: 1.0 per PutItem whatever
//! the size) shows next to what DynamoDB would charge.
//!
//! DynamoDB's rules, as modelled ([`item_size`], [`write_units`], [`read_units`]):
//! - item size = the sum over attributes of the name's UTF-8 bytes plus the
//!   value's: a string its UTF-8 bytes, a number 1 byte per two significant
//!   digits plus 1, binary its bytes, a boolean or null 1 byte, a list or map 3
//!   bytes plus 1 byte per element plus its elements, a set its elements;
//! - a write costs 1 WCU per started 1 KB of the item (the larger of the item
//!   before and after for an update; a failed condition still costs the write),
//!   a transactional write twice that, per item;
//! - a read costs 1 RCU per started 4 KB when strongly consistent, half when
//!   eventually consistent, twice when transactional; a read of a missing item
//!   still costs the minimum;
//! - a write of an item carrying a global secondary index's key costs 1 WCU more
//!   per index (the run's indexes project keys only, under 1 KB);
//! - each `GetRecords` call of DynamoDB Streams is one stream read request (the
//!   relay's reads), billed apart from table capacity; stream records cost no WCU.
//!
//! Scans (the relay's drain checks, the checker) are the harness's own work and
//! are not counted.

use aws_sdk_dynamodb::operation::delete_item::{DeleteItemInput, DeleteItemOutput};
use aws_sdk_dynamodb::operation::get_item::{GetItemInput, GetItemOutput};
use aws_sdk_dynamodb::operation::put_item::{PutItemInput, PutItemOutput};
use aws_sdk_dynamodb::operation::query::{QueryInput, QueryOutput};
use aws_sdk_dynamodb::operation::transact_write_items::{
    TransactWriteItemsInput, TransactWriteItemsOutput,
};
use aws_sdk_dynamodb::operation::update_item::{UpdateItemInput, UpdateItemOutput};
use aws_sdk_dynamodb::types::{AttributeValue, ConsumedCapacity, ReturnConsumedCapacity};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeSerializationInterceptorContextMut, BeforeTransmitInterceptorContextRef,
    FinalizerInterceptorContextRef, Input, Output,
};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::{ConfigBag, Storable, StoreReplace};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use crate::result::{CapacityFigure, CapacitySource};
use crate::scenario::Side;

/// Bytes in the write unit's size step.
const WRITE_STEP: usize = 1024;
/// Bytes in the read unit's size step.
const READ_STEP: usize = 4096;

/// How a read is made (what it costs per 4 KB).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadKind {
    Eventual,
    Strong,
    Transactional,
}

/// The size DynamoDB counts for one attribute value (its name not included).
pub fn value_size(v: &AttributeValue) -> usize {
    match v {
        AttributeValue::S(s) => s.len(),
        AttributeValue::N(n) => number_size(n),
        AttributeValue::B(b) => b.as_ref().len(),
        AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
        AttributeValue::Ss(v) => v.iter().map(String::len).sum(),
        AttributeValue::Ns(v) => v.iter().map(|n| number_size(n)).sum(),
        AttributeValue::Bs(v) => v.iter().map(|b| b.as_ref().len()).sum(),
        AttributeValue::L(v) => 3 + v.iter().map(|e| 1 + value_size(e)).sum::<usize>(),
        AttributeValue::M(m) => {
            3 + m
                .iter()
                .map(|(k, e)| 1 + k.len() + value_size(e))
                .sum::<usize>()
        }
        _ => 0,
    }
}

/// A number: 1 byte per two significant digits (leading and trailing zeros
/// trimmed), plus 1.
pub fn number_size(n: &str) -> usize {
    let mantissa = n.split(['e', 'E']).next().unwrap_or(n);
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let significant = digits.trim_start_matches('0').trim_end_matches('0').len();
    significant.max(1).div_ceil(2) + 1
}

/// The size of an item: names plus values.
pub fn item_size(item: &HashMap<String, AttributeValue>) -> usize {
    item.iter().map(|(k, v)| k.len() + value_size(v)).sum()
}

/// Write capacity units of one write of an item of `size` bytes.
pub fn write_units(size: usize, transactional: bool) -> f64 {
    let units = size.max(1).div_ceil(WRITE_STEP) as f64;
    if transactional { 2.0 * units } else { units }
}

/// Read capacity units of one read of `size` bytes (0: a missing item, which
/// costs the minimum).
pub fn read_units(size: usize, kind: ReadKind) -> f64 {
    let units = size.max(1).div_ceil(READ_STEP) as f64;
    match kind {
        ReadKind::Eventual => units / 2.0,
        ReadKind::Strong => units,
        ReadKind::Transactional => 2.0 * units,
    }
}

/// An absent item or key.
static EMPTY: std::sync::LazyLock<HashMap<String, AttributeValue>> =
    std::sync::LazyLock::new(HashMap::new);

/// What the model says one call costs, computed from its input before it is
/// serialized and kept with the call for each of its attempts.
#[derive(Debug, Clone, Default, PartialEq)]
struct Modelled {
    /// `PutItem`, `TransactWriteItems`, `GetRecords`...
    op: &'static str,
    write: f64,
    read: f64,
    stream_requests: f64,
}

impl Storable for Modelled {
    type Storer = StoreReplace<Self>;
}

/// Whether the current attempt left the client (set before transmit, taken after).
#[derive(Debug, Clone)]
struct Transmitted;

impl Storable for Transmitted {
    type Storer = StoreReplace<Self>;
}

/// The counts of one operation on one side.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tally {
    pub attempts: u64,
    /// Attempts with no answer (timeout, lost response): modelled, and they may
    /// not have reached the server.
    pub unanswered: u64,
    /// Attempts whose answer carried `ConsumedCapacity`.
    pub reported_attempts: u64,
    /// The figure: reported where reported, modelled otherwise.
    pub write: f64,
    pub read: f64,
    /// The model's figure for every attempt, for comparison.
    pub write_modelled: f64,
    pub read_modelled: f64,
    /// The server's figures alone (reported attempts only).
    pub write_reported: f64,
    pub read_reported: f64,
    pub stream_requests: f64,
}

/// The capacity one store's clients used, shared by their interceptors.
#[derive(Debug, Default)]
pub struct CapacityCounter {
    tallies: Mutex<BTreeMap<(&'static str, Side), Tally>>,
    /// Last size written per `table\tkey`, so an update or a read of an item is
    /// modelled at its size.
    sizes: Mutex<HashMap<String, usize>>,
    /// Tables with a global secondary index, and the index key attribute.
    indexes: Vec<(String, String)>,
    /// Whether the server's `ConsumedCapacity` is DynamoDB's accounting. moto's
    /// is not (read in its dynamodb responses, 5.2.5: a constant 1.0 per PutItem,
    /// 0.5 per GetItem and UpdateItem whatever the size or consistency, none for
    /// TransactWriteItems), so on moto the figures are modelled and its report
    /// is kept beside them.
    trust_reports: bool,
}

impl CapacityCounter {
    pub fn new(indexes: Vec<(String, String)>, trust_reports: bool) -> Arc<Self> {
        Arc::new(Self {
            indexes,
            trust_reports,
            ..Self::default()
        })
    }

    pub fn tallies(&self) -> BTreeMap<(&'static str, Side), Tally> {
        self.tallies.lock().unwrap().clone()
    }

    fn remember(&self, table: &str, key: &HashMap<String, AttributeValue>, size: usize) {
        if let Some(k) = key_text(key) {
            self.sizes
                .lock()
                .unwrap()
                .insert(format!("{table}\t{k}"), size);
        }
    }

    fn known(&self, table: &str, key: &HashMap<String, AttributeValue>) -> Option<usize> {
        let k = key_text(key)?;
        self.sizes
            .lock()
            .unwrap()
            .get(&format!("{table}\t{k}"))
            .copied()
    }

    /// Index writes of putting `item` into `table`.
    fn index_writes(&self, table: &str, item: &HashMap<String, AttributeValue>) -> f64 {
        self.indexes
            .iter()
            .filter(|(t, key)| t == table && item.contains_key(key))
            .count() as f64
    }

    /// One put of `item`, remembered by its key (the run's events table keys on
    /// `event_id`, the orders table on `order_id`).
    fn put(&self, table: &str, item: &HashMap<String, AttributeValue>, txn: bool) -> f64 {
        let size = item_size(item);
        let key = ["event_id", "order_id"].iter().find_map(|k| {
            item.get(*k)
                .map(|v| HashMap::from([(k.to_string(), v.clone())]))
        });
        if let Some(key) = key {
            self.remember(table, &key, size);
        }
        write_units(size, txn) + self.index_writes(table, item)
    }

    /// The model of one DynamoDB call, from its input.
    fn model_dynamodb(&self, input: &Input) -> Option<Modelled> {
        if let Some(i) = input.downcast_ref::<PutItemInput>() {
            // Borrowed, not cloned: this runs on every call of the workload.
            let item = i.item.as_ref().unwrap_or(&EMPTY);
            let table = i.table_name.as_deref().unwrap_or_default();
            return Some(Modelled {
                op: "PutItem",
                write: self.put(table, item, false),
                ..Modelled::default()
            });
        }
        if let Some(i) = input.downcast_ref::<TransactWriteItemsInput>() {
            let mut write = 0.0;
            for t in i.transact_items.iter().flatten() {
                if let Some(p) = t.put() {
                    write += self.put(p.table_name(), p.item(), true);
                } else if let Some(u) = t.update() {
                    let size = self
                        .known(u.table_name(), u.key())
                        .unwrap_or(item_size(u.key()));
                    write += write_units(size, true);
                } else if let Some(d) = t.delete() {
                    let size = self
                        .known(d.table_name(), d.key())
                        .unwrap_or(item_size(d.key()));
                    write += write_units(size, true);
                } else if let Some(c) = t.condition_check() {
                    // A condition check is a transactional read of the item.
                    let size = self.known(c.table_name(), c.key()).unwrap_or(0);
                    write += read_units(size, ReadKind::Transactional);
                }
            }
            return Some(Modelled {
                op: "TransactWriteItems",
                write,
                ..Modelled::default()
            });
        }
        if let Some(i) = input.downcast_ref::<UpdateItemInput>() {
            let table = i.table_name.as_deref().unwrap_or_default();
            let key = i.key.as_ref().unwrap_or(&EMPTY);
            // The larger of before and after: the stored item, grown by the new values.
            let added: usize = i
                .expression_attribute_values
                .iter()
                .flatten()
                .map(|(_, v)| value_size(v))
                .max()
                .unwrap_or(0);
            let size = self
                .known(table, key)
                .map_or(item_size(key) + added, |s| s.max(item_size(key)));
            return Some(Modelled {
                op: "UpdateItem",
                write: write_units(size, false),
                ..Modelled::default()
            });
        }
        if let Some(i) = input.downcast_ref::<DeleteItemInput>() {
            let table = i.table_name.as_deref().unwrap_or_default();
            let key = i.key.as_ref().unwrap_or(&EMPTY);
            let size = self.known(table, key).unwrap_or(item_size(key));
            return Some(Modelled {
                op: "DeleteItem",
                write: write_units(size, false),
                ..Modelled::default()
            });
        }
        if let Some(i) = input.downcast_ref::<GetItemInput>() {
            let table = i.table_name.as_deref().unwrap_or_default();
            let key = i.key.as_ref().unwrap_or(&EMPTY);
            let kind = if i.consistent_read == Some(true) {
                ReadKind::Strong
            } else {
                ReadKind::Eventual
            };
            return Some(Modelled {
                op: "GetItem",
                read: read_units(self.known(table, key).unwrap_or(0), kind),
                ..Modelled::default()
            });
        }
        if let Some(i) = input.downcast_ref::<QueryInput>() {
            // The run's queries read one keys-only index entry (well under 4 KB).
            let kind = if i.consistent_read == Some(true) {
                ReadKind::Strong
            } else {
                ReadKind::Eventual
            };
            return Some(Modelled {
                op: "Query",
                read: read_units(0, kind),
                ..Modelled::default()
            });
        }
        None
    }

    /// Adds one transmitted attempt.
    fn add(&self, side: Side, m: &Modelled, answered: bool, reported: Option<(f64, f64)>) {
        let mut tallies = self.tallies.lock().unwrap();
        let t = tallies.entry((m.op, side)).or_default();
        t.attempts += 1;
        t.unanswered += u64::from(!answered);
        t.write_modelled += m.write;
        t.read_modelled += m.read;
        t.stream_requests += m.stream_requests;
        match reported {
            Some((w, r)) => {
                t.reported_attempts += 1;
                t.write += w;
                t.read += r;
                t.write_reported += w;
                t.read_reported += r;
            }
            None => {
                t.write += m.write;
                t.read += m.read;
            }
        }
    }

    /// The store's figures for the result: write units, read units, stream read
    /// requests (each only when some call was made), per `orders`.
    pub fn figures(&self, orders: u64) -> Vec<CapacityFigure> {
        figures_of(&self.tallies(), orders, self.trust_reports)
    }
}

/// The figures of a set of tallies (pure: tested below). `trust`: the server's
/// reports are DynamoDB's accounting, so they win over the model where present.
pub fn figures_of(
    tallies: &BTreeMap<(&'static str, Side), Tally>,
    orders: u64,
    trust: bool,
) -> Vec<CapacityFigure> {
    /// (figure where reported, modelled, the server's alone)
    type Pick = fn(&Tally) -> (f64, f64, f64);
    let kinds: [(&str, &str, Pick); 3] = [
        ("write_units", "WCU", |t| {
            (t.write, t.write_modelled, t.write_reported)
        }),
        ("read_units", "RCU", |t| {
            (t.read, t.read_modelled, t.read_reported)
        }),
        ("stream_read_requests", "requests", |t| {
            (t.stream_requests, t.stream_requests, 0.0)
        }),
    ];
    let mut out = Vec::new();
    for (name, unit, pick) in kinds {
        let used: Vec<_> = tallies
            .iter()
            .filter(|(_, t)| pick(t).1 > 0.0 || pick(t).0 > 0.0)
            .collect();
        if used.is_empty() {
            continue;
        }
        let counted = name == "stream_read_requests";
        let attempts: u64 = used.iter().map(|(_, t)| t.attempts).sum();
        let reported: u64 = if counted {
            0
        } else {
            used.iter().map(|(_, t)| t.reported_attempts).sum()
        };
        let use_reports = trust && !counted;
        let value = |t: &Tally| if use_reports { pick(t).0 } else { pick(t).1 };
        let total: f64 = used.iter().map(|(_, t)| value(t)).sum();
        let modelled: f64 = used.iter().map(|(_, t)| pick(t).1).sum();
        let server: f64 = used.iter().map(|(_, t)| pick(t).2).sum();
        let source = if counted {
            CapacitySource::Counted
        } else if !use_reports || reported == 0 {
            CapacitySource::Modelled
        } else if reported == attempts {
            CapacitySource::Reported
        } else {
            CapacitySource::Mixed
        };
        let parts = used
            .iter()
            .map(|((op, side), t)| (format!("{op}@{side}"), round(value(t))))
            .collect();
        let unanswered: u64 = used.iter().map(|(_, t)| t.unanswered).sum();
        out.push(CapacityFigure {
            store: "dynamodb".into(),
            name: name.into(),
            unit: unit.into(),
            total: Some(round(total)),
            per_order: (orders > 0).then(|| round(total / orders as f64)),
            source,
            server_wide: false,
            missing: None,
            attempts: Some(attempts),
            reported_attempts: (!counted).then_some(reported),
            unanswered: Some(unanswered),
            modelled_total: (source != CapacitySource::Modelled && !counted)
                .then(|| round(modelled)),
            reported_total: (reported > 0).then(|| round(server)),
            parts,
        });
    }
    out
}

fn round(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// A key map as text (one attribute: the run's tables have hash keys only).
fn key_text(key: &HashMap<String, AttributeValue>) -> Option<String> {
    let (name, value) = key.iter().next()?;
    let v = match value {
        AttributeValue::S(s) => s.clone(),
        AttributeValue::N(n) => n.clone(),
        _ => return None,
    };
    Some(format!("{name}={v}"))
}

/// What a DynamoDB answer reported: (write units, read units).
fn reported_dynamodb(output: &Output) -> Option<(f64, f64)> {
    fn one(c: Option<&ConsumedCapacity>, read: bool) -> Option<(f64, f64)> {
        let c = c?;
        let units = c.capacity_units()?;
        Some(if read { (0.0, units) } else { (units, 0.0) })
    }
    if let Some(o) = output.downcast_ref::<PutItemOutput>() {
        return one(o.consumed_capacity(), false);
    }
    if let Some(o) = output.downcast_ref::<UpdateItemOutput>() {
        return one(o.consumed_capacity(), false);
    }
    if let Some(o) = output.downcast_ref::<DeleteItemOutput>() {
        return one(o.consumed_capacity(), false);
    }
    if let Some(o) = output.downcast_ref::<GetItemOutput>() {
        return one(o.consumed_capacity(), true);
    }
    if let Some(o) = output.downcast_ref::<QueryOutput>() {
        return one(o.consumed_capacity(), true);
    }
    if let Some(o) = output.downcast_ref::<TransactWriteItemsOutput>() {
        let all = o.consumed_capacity();
        if all.is_empty() {
            return None;
        }
        let units: Option<f64> = all.iter().map(ConsumedCapacity::capacity_units).sum();
        return units.map(|u| (u, 0.0));
    }
    None
}

/// Whether an attempt's error proves the request never reached the server: the
/// connection was refused (a proxy that is down), so it cost nothing.
fn never_sent(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::ConnectionRefused
        {
            return true;
        }
        cur = err.source();
    }
    false
}

/// Installed on every workload and relay client of one side (never the admin's).
#[derive(Debug, Clone)]
pub struct CapacityInterceptor {
    counter: Arc<CapacityCounter>,
    side: Side,
}

impl CapacityInterceptor {
    pub fn new(counter: Arc<CapacityCounter>, side: Side) -> Self {
        Self { counter, side }
    }
}

/// Asks the server to report what a call consumed.
fn ask_consumed(input: &mut Input) {
    let total = Some(ReturnConsumedCapacity::Total);
    if let Some(i) = input.downcast_mut::<PutItemInput>() {
        i.return_consumed_capacity = i.return_consumed_capacity.take().or(total);
    } else if let Some(i) = input.downcast_mut::<TransactWriteItemsInput>() {
        i.return_consumed_capacity = i.return_consumed_capacity.take().or(total);
    } else if let Some(i) = input.downcast_mut::<UpdateItemInput>() {
        i.return_consumed_capacity = i.return_consumed_capacity.take().or(total);
    } else if let Some(i) = input.downcast_mut::<DeleteItemInput>() {
        i.return_consumed_capacity = i.return_consumed_capacity.take().or(total);
    } else if let Some(i) = input.downcast_mut::<GetItemInput>() {
        i.return_consumed_capacity = i.return_consumed_capacity.take().or(total);
    } else if let Some(i) = input.downcast_mut::<QueryInput>() {
        i.return_consumed_capacity = i.return_consumed_capacity.take().or(total);
    }
}

impl Intercept for CapacityInterceptor {
    fn name(&self) -> &'static str {
        "dualwrite-capacity"
    }

    fn modify_before_serialization(
        &self,
        context: &mut BeforeSerializationInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let input = context.input_mut();
        let modelled = if input
            .downcast_ref::<aws_sdk_dynamodbstreams::operation::get_records::GetRecordsInput>()
            .is_some()
        {
            Some(Modelled {
                op: "GetRecords",
                stream_requests: 1.0,
                ..Modelled::default()
            })
        } else {
            ask_consumed(input);
            self.counter.model_dynamodb(input)
        };
        if let Some(m) = modelled {
            cfg.interceptor_state().store_put(m);
        }
        Ok(())
    }

    fn read_before_transmit(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        cfg.interceptor_state().store_put(Transmitted);
        Ok(())
    }

    fn read_after_attempt(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if cfg.load::<Transmitted>().is_none() {
            return Ok(()); // failed before sending: no cost
        }
        cfg.interceptor_state().unset::<Transmitted>();
        let Some(m) = cfg.load::<Modelled>().cloned() else {
            return Ok(());
        };
        let answered = context.response().is_some();
        if !answered
            && let Some(Err(e)) = context.output_or_error()
            && never_sent(e)
        {
            return Ok(()); // the connection was refused: nothing reached the server
        }
        let reported = match context.output_or_error() {
            Some(Ok(output)) => reported_dynamodb(output),
            _ => None,
        };
        self.counter.add(self.side, &m, answered, reported);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> AttributeValue {
        AttributeValue::S(v.into())
    }

    /// DynamoDB's documented examples (Developer Guide, "Read/write capacity
    /// mode" and "Item sizes and formats"), written out with their sizes.
    #[test]
    fn the_model_matches_dynamodbs_documented_examples() {
        // Writes are rounded up to the next 1 KB: a 500-byte item costs 1 WCU,
        // a 1 KB item 1, a 1.5 KB item 2, a 3.5 KB item 4.
        assert_eq!(write_units(500, false), 1.0);
        assert_eq!(write_units(1024, false), 1.0);
        assert_eq!(write_units(1536, false), 2.0);
        assert_eq!(write_units(3584, false), 4.0);
        // Transactional writes cost 2 WCU per 1 KB: 2 for a 500-byte item, 8 for 3.5 KB.
        assert_eq!(write_units(500, true), 2.0);
        assert_eq!(write_units(3584, true), 8.0);
        // Reads are rounded up to the next 4 KB: a 3.5 KB item costs 1 RCU
        // strongly consistent, 0.5 eventually consistent, 2 transactional;
        // a 10 KB item is counted as 12 KB: 3 RCU strong, 1.5 eventual.
        assert_eq!(read_units(3584, ReadKind::Strong), 1.0);
        assert_eq!(read_units(3584, ReadKind::Eventual), 0.5);
        assert_eq!(read_units(3584, ReadKind::Transactional), 2.0);
        assert_eq!(read_units(10 * 1024, ReadKind::Strong), 3.0);
        assert_eq!(read_units(10 * 1024, ReadKind::Eventual), 1.5);
        // A read of an item that does not exist still costs the minimum:
        // 1 RCU strongly consistent, 0.5 eventually consistent.
        assert_eq!(read_units(0, ReadKind::Strong), 1.0);
        assert_eq!(read_units(0, ReadKind::Eventual), 0.5);
        // An 8 KB item read strongly: 2 RCU; a 4 KB + 1 byte one: 2 RCU.
        assert_eq!(read_units(8192, ReadKind::Strong), 2.0);
        assert_eq!(read_units(4097, ReadKind::Strong), 2.0);
    }

    #[test]
    fn item_sizes_follow_the_attribute_rules() {
        // A string: the name's bytes plus the value's UTF-8 bytes ("é" is 2 bytes).
        let item = HashMap::from([("name".to_string(), s("café"))]);
        assert_eq!(item_size(&item), 4 + 5);
        // A number: 1 byte per two significant digits plus 1; zeros at either
        // end do not count.
        assert_eq!(number_size("123"), 3);
        assert_eq!(number_size("1234"), 3);
        assert_eq!(number_size("12300"), 3);
        assert_eq!(number_size("0.0012"), 2);
        assert_eq!(number_size("0"), 2);
        // Booleans and null: 1 byte.
        assert_eq!(value_size(&AttributeValue::Bool(true)), 1);
        assert_eq!(value_size(&AttributeValue::Null(true)), 1);
        // A map: 3 bytes, 1 per element, and each element's name and value.
        let m = AttributeValue::M(HashMap::from([("a".to_string(), s("xy"))]));
        assert_eq!(value_size(&m), 3 + 1 + 1 + 2);
        assert_eq!(value_size(&AttributeValue::L(vec![])), 3);
        // The run's order item, by hand: order_id (8) + "o-000000000042" (14),
        // customer_id (11) + 7 (2), amount_cents (12) + 1999 (3), payload (7)
        // + 64 bytes = 121 bytes: one WCU, two in a transaction.
        let order = HashMap::from([
            ("order_id".to_string(), s("o-000000000042")),
            ("customer_id".to_string(), AttributeValue::N("7".into())),
            ("amount_cents".to_string(), AttributeValue::N("1999".into())),
            ("payload".to_string(), s(&"x".repeat(64))),
        ]);
        assert_eq!(item_size(&order), 8 + 14 + 11 + 2 + 12 + 3 + 7 + 64);
        assert_eq!(write_units(item_size(&order), false), 1.0);
        // A 3 KB payload: 4 WCU (moto reports 1.0 for it).
        let mut big = order.clone();
        big.insert("payload".into(), s(&"x".repeat(3 * 1024)));
        assert_eq!(write_units(item_size(&big), false), 4.0);
    }

    fn tally(attempts: u64, reported: u64, write: f64, modelled: f64) -> Tally {
        Tally {
            attempts,
            reported_attempts: reported,
            write,
            write_modelled: modelled,
            ..Tally::default()
        }
    }

    #[test]
    fn figures_say_where_each_number_comes_from_and_divide_by_orders() {
        let mut t = BTreeMap::new();
        t.insert(("PutItem", Side::Primary), tally(10, 10, 10.0, 10.0));
        t.insert(("PutItem", Side::Secondary), tally(12, 12, 12.0, 12.0));
        let f = figures_of(&t, 10, true);
        assert_eq!(f.len(), 1, "no reads, no stream: only write units");
        assert_eq!(f[0].source, CapacitySource::Reported);
        assert_eq!(f[0].per_order, Some(2.2));
        assert_eq!(f[0].parts["PutItem@secondary"], 12.0);
        t.insert(
            ("TransactWriteItems", Side::Primary),
            tally(5, 0, 20.0, 20.0),
        );
        let f = figures_of(&t, 10, true);
        assert_eq!(f[0].source, CapacitySource::Mixed);
        assert_eq!(f[0].total, Some(42.0));
        // A server whose reports are not DynamoDB's (moto): the model, with the
        // server's own figures beside it.
        t.get_mut(&("PutItem", Side::Primary)).unwrap().write = 5.0;
        t.get_mut(&("PutItem", Side::Primary))
            .unwrap()
            .write_reported = 5.0;
        let f = figures_of(&t, 10, false);
        assert_eq!(f[0].source, CapacitySource::Modelled);
        assert_eq!(f[0].total, Some(42.0));
        assert_eq!(f[0].reported_total, Some(5.0));
        let only: BTreeMap<_, _> = [(
            ("TransactWriteItems", Side::Primary),
            tally(5, 0, 20.0, 20.0),
        )]
        .into();
        assert_eq!(
            figures_of(&only, 5, true)[0].source,
            CapacitySource::Modelled
        );
        assert_eq!(figures_of(&only, 5, true)[0].per_order, Some(4.0));
        assert_eq!(
            figures_of(&only, 0, true)[0].per_order,
            None,
            "no orders: no ratio"
        );
    }

    #[test]
    fn counting_adds_attempts_and_prefers_the_reported_figure() {
        let c = CapacityCounter::new(vec![("ev".into(), "order_id".into())], true);
        let put = |table: &str, item: HashMap<String, AttributeValue>| {
            let input = PutItemInput::builder()
                .table_name(table)
                .set_item(Some(item))
                .build()
                .unwrap();
            c.model_dynamodb(&Input::erase(input)).unwrap()
        };
        let m = put(
            "orders",
            HashMap::from([("order_id".to_string(), s("o-1"))]),
        );
        assert_eq!(m.write, 1.0);
        // The events table carries an index on order_id: one more unit.
        let e = put(
            "ev",
            HashMap::from([
                ("event_id".to_string(), s("e-1")),
                ("order_id".to_string(), s("o-1")),
            ]),
        );
        assert_eq!(e.write, 2.0);
        c.add(Side::Primary, &m, true, Some((1.0, 0.0)));
        c.add(Side::Primary, &m, false, None); // a retry after a lost answer
        let t = &c.tallies()[&("PutItem", Side::Primary)];
        assert_eq!((t.attempts, t.unanswered, t.reported_attempts), (2, 1, 1));
        assert_eq!(t.write, 2.0);
        // A later update of the item is modelled at the item's size.
        let big = HashMap::from([
            ("order_id".to_string(), s("o-2")),
            ("p".to_string(), s(&"x".repeat(2000))),
        ]);
        put("orders", big);
        let u = UpdateItemInput::builder()
            .table_name("orders")
            .key("order_id", s("o-2"))
            .expression_attribute_values(":f", AttributeValue::Bool(false))
            .build()
            .unwrap();
        let mu = c.model_dynamodb(&Input::erase(u)).unwrap();
        assert_eq!(mu.write, 2.0);
    }
}
