//! Side-by-side cost of Cassandra's write shapes, in one run, through the primary
//! proxy (no faults): a single INSERT, a LOGGED BATCH within one partition, a
//! LOGGED BATCH across two partitions, and an LWT insert (IF NOT EXISTS).
//!
//! For each: latency with one request at a time (p50/p99), then the maximum
//! throughput with `--concurrency` requests in flight for `--seconds` (closed loop).
//!
//!     cargo run --release --example cassandra_latency -- [seconds] [concurrency]

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use dualwrite::store::cassandra::ThroughProxy;
use hdrhistogram::Histogram;
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::statement::batch::{Batch, BatchType};
use scylla::statement::prepared::PreparedStatement;

const SCENARIO: &str = r#"
name = "cassandra-latency"
[target]
store = "cassandra"
[pattern]
name = "naive"
[workload]
rate = 1
ops = 1
"#;

#[derive(Clone, Copy, Debug)]
enum Shape {
    Single,
    BatchSame,
    BatchCross,
    LwtInsert,
}

struct Statements {
    orders: PreparedStatement,
    lwt: PreparedStatement,
    same: Batch,
    cross: Batch,
}

async fn once(s: &Session, st: &Statements, shape: Shape, id: u64) -> anyhow::Result<()> {
    let key = format!("o{id:012}");
    let (c, a) = ((id % 1000) as i64, 100i64);
    match shape {
        Shape::Single => {
            s.execute_unpaged(&st.orders, (&key, c, a)).await?;
        }
        Shape::LwtInsert => {
            s.execute_unpaged(&st.lwt, (&key, c, a)).await?;
        }
        Shape::BatchSame => {
            let audit = format!("a-{key}");
            s.batch(&st.same, ((&key, c, a), (&key, &audit, c, a)))
                .await?;
        }
        Shape::BatchCross => {
            s.batch(&st.cross, ((&key, c, a), (c, &key, a))).await?;
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let seconds: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(5);
    let concurrency: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(64);
    let scenario = Arc::new(dualwrite::scenario::parse(
        Path::new("latency.toml"),
        SCENARIO,
    )?);
    let (store, ks) = dualwrite::store::connect_fresh(scenario).await?;
    let proxy: std::net::SocketAddr = "127.0.0.1:29042".parse()?;
    let session = Arc::new(
        SessionBuilder::new()
            .known_node_addr(proxy)
            .address_translator(Arc::new(ThroughProxy(proxy)))
            .build()
            .await?,
    );
    let prep = |cql: String| {
        let session = session.clone();
        async move { session.prepare(cql).await }
    };
    let orders =
        format!("INSERT INTO {ks}.orders (order_id, customer_id, amount_cents) VALUES (?, ?, ?)");
    let mut same = Batch::new(BatchType::Logged);
    same.append_statement(prep(orders.clone()).await?);
    same.append_statement(
        prep(format!("INSERT INTO {ks}.order_audit (order_id, audit_id, customer_id, amount_cents) VALUES (?, ?, ?, ?)")).await?,
    );
    let mut cross = Batch::new(BatchType::Logged);
    cross.append_statement(prep(orders.clone()).await?);
    cross.append_statement(
        prep(format!("INSERT INTO {ks}.orders_by_customer (customer_id, order_id, amount_cents) VALUES (?, ?, ?)")).await?,
    );
    let st = Arc::new(Statements {
        orders: prep(orders.clone()).await?,
        lwt: prep(format!("{orders} IF NOT EXISTS")).await?,
        same,
        cross,
    });
    let next = Arc::new(AtomicU64::new(0));
    println!(
        "| shape | p50 ms (1 in flight) | p99 ms (1 in flight) | max ops/s ({concurrency} in flight) | p50 ms at max | p99 ms at max |"
    );
    println!("|---|---|---|---|---|---|");
    for shape in [
        Shape::Single,
        Shape::BatchSame,
        Shape::BatchCross,
        Shape::LwtInsert,
    ] {
        // Warm-up, then one at a time.
        for _ in 0..200 {
            once(&session, &st, shape, next.fetch_add(1, Ordering::Relaxed)).await?;
        }
        let mut alone = Histogram::<u64>::new(3)?;
        let until = Instant::now() + Duration::from_secs(seconds);
        while Instant::now() < until {
            let t = Instant::now();
            once(&session, &st, shape, next.fetch_add(1, Ordering::Relaxed)).await?;
            alone.record(t.elapsed().as_micros() as u64)?;
        }
        // Closed loop at `concurrency`.
        let until = Instant::now() + Duration::from_secs(seconds);
        let mut tasks = Vec::new();
        for _ in 0..concurrency {
            let (session, st, next) = (session.clone(), st.clone(), next.clone());
            tasks.push(tokio::spawn(async move {
                let mut h = Histogram::<u64>::new(3).unwrap();
                let mut errors = 0u64;
                while Instant::now() < until {
                    let t = Instant::now();
                    match once(&session, &st, shape, next.fetch_add(1, Ordering::Relaxed)).await {
                        Ok(()) => h.record(t.elapsed().as_micros() as u64).unwrap(),
                        Err(_) => errors += 1,
                    }
                }
                (h, errors)
            }));
        }
        let mut loaded = Histogram::<u64>::new(3)?;
        let mut errors = 0;
        for t in tasks {
            let (h, e) = t.await?;
            loaded.add(h)?;
            errors += e;
        }
        let ms = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
        println!(
            "| {shape:?} | {:.2} | {:.2} | {:.0}{} | {:.2} | {:.2} |",
            ms(&alone, 0.5),
            ms(&alone, 0.99),
            loaded.len() as f64 / seconds as f64,
            if errors > 0 {
                format!(" ({errors} errors)")
            } else {
                String::new()
            },
            ms(&loaded, 0.5),
            ms(&loaded, 0.99),
        );
    }
    store.drop_namespace().await?;
    Ok(())
}
