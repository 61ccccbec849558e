//! The pattern-overhead table's Kafka rows (`--stores kafka`): a topic as the
//! secondary side behind each primary store, against a single produce to the same
//! topic through the same driver (p50 and p99 at one rate; ops/s at saturation).
//! For relay patterns the operation is the primary write alone; the relay's
//! figure is its time to consistency (intended start until the event is on the
//! topic), shown beside it.

use super::*;
use crate::pattern::KeyPolicy;
use crate::pattern::outcome::Attempt;
use crate::scenario::Side;
use crate::store::SideStore;

const CASSANDRA: &str = "[target.primary]\nstore = \"cassandra\"\n";
const DYNAMODB: &str = "[target.primary]\nstore = \"dynamodb\"\n";
const MONGOECO: &str = "[target.primary]\nstore = \"mongodb\"\nserver = \"mongoeco\"\n";
const RELAY: &str = "[pattern.relay]\npoll_interval = \"20ms\"\n";

/// (row label, primary, pattern table).
fn rows() -> Vec<(&'static str, &'static str, String)> {
    let relay = |head: &str, extra: &str| format!("{head}{RELAY}{extra}");
    vec![
        (
            "naive, dynamodb primary",
            DYNAMODB,
            "name = \"naive\"\n".into(),
        ),
        (
            "naive, cassandra primary",
            CASSANDRA,
            "name = \"naive\"\n".into(),
        ),
        (
            "naive, mongodb (mongoeco) primary",
            MONGOECO,
            "name = \"naive\"\n".into(),
        ),
        (
            "naive, idempotent producer, cassandra primary",
            CASSANDRA,
            "name = \"naive\"\nidempotence = true\n".into(),
        ),
        (
            "outbox cassandra, at-least-once",
            CASSANDRA,
            relay("name = \"outbox\"\n", ""),
        ),
        (
            "outbox cassandra, exactly-once",
            CASSANDRA,
            relay("name = \"outbox\"\n", "delivery = \"exactly-once\"\n"),
        ),
        (
            "outbox mongodb poll (mongoeco), exactly-once",
            MONGOECO,
            relay(
                "name = \"outbox\"\n",
                "mode = \"poll\"\ndelivery = \"exactly-once\"\n",
            ),
        ),
        (
            "streams dynamodb, exactly-once",
            DYNAMODB,
            relay("name = \"streams\"\n", "delivery = \"exactly-once\"\n"),
        ),
    ]
}

fn text(primary: &str, pattern: &str, rate: f64, limit: &str, concurrency: usize) -> String {
    // A relay drains within the settle (the run stops waiting when it has);
    // a synchronous pattern sleeps through all of it.
    let settle = if pattern.contains("[pattern.relay]") {
        "60s"
    } else {
        "1s"
    };
    format!(
        "name = \"bench-kafka\"\n{primary}[target.secondary]\nstore = \"kafka\"\n[pattern]\n{pattern}[workload]\nrate = {rate}\n{limit}\nconcurrency = {concurrency}\nop_timeout = \"5s\"\n[check]\nsettle = \"{settle}\"\n[expect]\ndivergence = \"any\"\norphans = \"any\"\nlost_acks = \"any\"\nduplicates = \"any\"\nghosts = \"any\"\n"
    )
}

/// One produce per operation through dualwrite's own Kafka side.
struct Produce(Arc<dyn SideStore>);

#[async_trait]
impl PatternClient for Produce {
    async fn write(&self, order: &Order) -> OpReport {
        let a = self
            .0
            .write_event(&Record::of(order), KeyPolicy::Stable, 0)
            .await;
        OpReport::bare(a == Attempt::Applied)
    }
}

/// The single-produce baseline: (p50, p99) at `rate`, and max ops/s.
async fn single_produce(rate: f64, secs: u64) -> anyhow::Result<(f64, f64, f64)> {
    let probe = Arc::new(parse(&text(
        DYNAMODB,
        "name = \"naive\"\n",
        10.0,
        "ops = 1",
        16,
    ))?);
    let (stores, _) = store::connect_fresh(probe).await?;
    let client: Arc<dyn PatternClient> =
        Arc::new(Produce(stores.secondary.side(Side::Secondary).await?));
    let figures = single_write_figures(client, rate, secs, 2000).await;
    let _ = stores.drop_namespace().await;
    figures
}

pub(super) async fn figures(args: &BenchArgs, summary: &mut Summary) -> anyhow::Result<f64> {
    println!("\n## kafka (a topic as the secondary side)");
    let secs = if args.quick { 3 } else { 6 };
    let sat_ops: u64 = if args.quick { 300 } else { 1000 };
    // Below every primary's capacity here (moto ~150 ops/s), so the rows
    // compare the pattern's cost, not a saturated primary.
    let rate = 50.0;
    let single = single_produce(rate, secs).await?;
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED).set_header(vec![
        "pattern (secondary: kafka topic)",
        "p50 ms",
        "p99 ms",
        "p50 / single",
        "p99 / single",
        "max ops/s",
        "max / single",
        "ttc p50 / p99 ms",
    ]);
    table.add_row(vec![
        "single produce (baseline)".to_string(),
        format!("{:.2}", single.0),
        format!("{:.2}", single.1),
        "1.00".into(),
        "1.00".into(),
        format!("{:.0}", single.2),
        "1.00".into(),
        String::new(),
    ]);
    for (label, primary, pattern) in rows() {
        let limit = format!("duration = \"{secs}s\"");
        let at_rate = run_one(&text(primary, &pattern, rate, &limit, 64), args).await;
        let saturate = format!("ops = {sat_ops}");
        let max = run_one(&text(primary, &pattern, 100_000.0, &saturate, 16), args).await;
        match (at_rate, max) {
            (Ok(a), Ok(m)) => {
                let ttc = a.relay.as_ref().map_or_else(String::new, |r| {
                    format!(
                        "{:.1} / {:.1}",
                        r.time_to_consistency_ms.p50, r.time_to_consistency_ms.p99
                    )
                });
                table.add_row(vec![
                    label.to_string(),
                    format!("{:.2}", a.latency_ms.p50),
                    format!("{:.2}", a.latency_ms.p99),
                    format!("{:.2}", a.latency_ms.p50 / single.0),
                    format!("{:.2}", a.latency_ms.p99 / single.1),
                    format!("{:.0}", m.workload.achieved_tps),
                    format!("{:.2}", m.workload.achieved_tps / single.2),
                    ttc,
                ])
            }
            (Err(e), _) | (_, Err(e)) => table.add_row(vec![
                label.to_string(),
                format!("not run: {}", first_line(&e)),
            ]),
        };
    }
    println!(
        "pattern overhead (kafka, {rate}/s for {secs}s for latency; {sat_ops} ops at concurrency 16 for max):\n{table}"
    );
    summary.add(format!(
        "SUMMARY kafka single produce: p50 {:.2} ms, p99 {:.2} ms, max {:.0} ops/s (rows in the table above)",
        single.0, single.1, single.2
    ));
    Ok(single.2)
}
