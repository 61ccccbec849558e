//! The HTTP hop of `[app]`: dualwrite driving the example naive service against a
//! plain HTTP loop on the same service.

use super::*;

/// The example naive service (examples/apps/order_service.py) on one store, as
/// an `[app]` scenario: fresh tables per run (its namespace), no faults.
pub(super) fn app_scenario_text(
    store: StoreKind,
    ops: u64,
    concurrency: usize,
) -> anyhow::Result<String> {
    let (env, primary, secondary) = match store.name() {
        "dynamodb" => (
            "ORDERS_ENDPOINT = \"http://{primary}\"\nEVENTS_ENDPOINT = \"http://{secondary}\"\nAWS_ACCESS_KEY_ID = \"test\"\nAWS_SECRET_ACCESS_KEY = \"test\"",
            "table = \"{namespace}_orders\"",
            "table = \"{namespace}_order_events\"\nkey = \"eventId\"",
        ),
        "mongodb" => (
            "MONGODB_DATABASE = \"{namespace}\"\nMONGODB_ORDERS_URL = \"mongodb://{primary}/?directConnection=true\"\nMONGODB_EVENTS_URL = \"mongodb://{secondary}/?directConnection=true\"",
            "database = \"{namespace}\"\ncollection = \"{namespace}_orders\"",
            "database = \"{namespace}\"\ncollection = \"{namespace}_order_events\"",
        ),
        "cassandra" => (
            "CASSANDRA_KEYSPACE = \"{namespace}\"\nCASSANDRA_ORDERS_HOST = \"{primary}\"\nCASSANDRA_EVENTS_HOST = \"{secondary}\"",
            "keyspace = \"{namespace}\"\ntable = \"{namespace}_orders\"",
            "keyspace = \"{namespace}\"\ntable = \"{namespace}_order_events\"\nkey = \"event_id\"",
        ),
        other => anyhow::bail!("no example service for {other}"),
    };
    let (order_id, customer, amount) = match store.name() {
        "cassandra" => ("order_id", "customer_id", "total_cents"),
        "mongodb" => ("orderId", "customerId", "totalCents"),
        _ => ("orderId", "customerId", "totalCents"),
    };
    let primary_id = if store.name() == "mongodb" {
        "_id"
    } else {
        order_id
    };
    let server = store.spec().bench.server;
    Ok(format!(
        "name = \"bench-app-{store}\"\n[target]\nstore = \"{store}\"\nserver = \"{server}\"\n[workload]\nrate = 100000\nops = {ops}\nconcurrency = {concurrency}\n[app]\nurl = \"http://127.0.0.1:{{port}}/orders\"\ntimeout = \"10s\"\n[app.service]\ncommand = [\"examples/apps/run\", \"order_service.py\"]\nready = \"http://127.0.0.1:{{port}}/health\"\n[app.service.env]\nSTORE = \"{store}\"\nPORT = \"{{port}}\"\nTABLE_PREFIX = \"{{namespace}}\"\nCREATE_TABLES = \"true\"\n{env}\n[app.primary]\n{primary}\norder_id = \"{primary_id}\"\nfields = {{ customer_id = \"{customer}\", amount_cents = \"{amount}\" }}\n[app.secondary]\n{secondary}\norder_id = \"{order_id}\"\nfields = {{ customer_id = \"{customer}\", amount_cents = \"{amount}\" }}\n[expect]\ndivergence = \"any\"\norphans = \"any\"\nlost_acks = \"any\"\n"
    ))
}

/// The HTTP hop's cost: dualwrite driving the example naive service (`[app]`:
/// open-loop driver at a rate above capacity, concurrency cap, history, the HTTP
/// writer) versus a plain closed loop of HTTP requests against the same service,
/// same concurrency and orders, a fresh service and fresh tables per turn, A B B
/// A. The ratio is what dualwrite itself costs on top of the service.
pub(super) async fn app_overhead(
    store: StoreKind,
    args: &BenchArgs,
    summary: &mut Summary,
) -> anyhow::Result<()> {
    println!("\n## app: the example naive service on {store}");
    let ops: u64 = if args.quick { 300 } else { 1000 };
    let concurrency = 16;
    let text = app_scenario_text(store, ops, concurrency)?;
    let (mut dw, mut plain) = (Vec::new(), Vec::new());
    for round in 0..2 {
        for dualwrite_turn in [round == 0, round != 0] {
            if dualwrite_turn {
                let r = run_one(&text, args).await?;
                if r.workload.ops.ok < ops * 9 / 10 {
                    anyhow::bail!(
                        "the service acknowledged {} of {ops} orders ({:?})",
                        r.workload.ops.ok,
                        r.workload.errors
                    );
                }
                println!(
                    "  dualwrite:        {:.1} orders/s",
                    r.workload.achieved_tps
                );
                dw.push(r.workload.achieved_tps);
            } else {
                let tps = plain_http_loop(&text, ops, concurrency, args).await?;
                println!("  plain HTTP loop:  {tps:.1} orders/s");
                plain.push(tps);
            }
        }
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let ratio = mean(&dw) / mean(&plain);
    summary.add(format!(
        "SUMMARY app HTTP hop ({store}, example naive service, concurrency {concurrency}, {ops} orders x2, A B B A): dualwrite {:.0} orders/s vs a plain HTTP loop {:.0} orders/s = {ratio:.3}; goal >= 0.95: {}",
        mean(&dw),
        mean(&plain),
        met(ratio >= 0.95)
    ));
    Ok(())
}

/// The same service started the same way, driven by `concurrency` tasks posting
/// the same orders back to back; returns orders per second.
pub(super) async fn plain_http_loop(
    text: &str,
    ops: u64,
    concurrency: usize,
    args: &BenchArgs,
) -> anyhow::Result<f64> {
    let scenario = Arc::new(parse(text)?);
    let app_spec = scenario.app.as_ref().expect("an [app] scenario");
    let toxiproxy = crate::fault::toxiproxy::Toxiproxy::new(&scenario.target.toxiproxy);
    let endpoints = store::resolve_endpoints(&scenario.target, &toxiproxy).await?;
    let (_, namespace) = run::new_run_id(&scenario.namespace.prefix);
    let stores =
        store::Stores::connect(&scenario, &namespace, &endpoints, &store::stack_state_dir())
            .await?;
    stores.prepare().await?;
    let logs = args.results_dir.join("plain-http-loop");
    std::fs::create_dir_all(&logs)?;
    let app = crate::app::AppRun::prepare(app_spec, &endpoints, &namespace, &logs)?;
    let measured = async {
        app.start().await?;
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(10))
            .pool_max_idle_per_host(concurrency)
            .build()?;
        let prefix = crate::store::layout::run_prefix(&namespace);
        let next = Arc::new(AtomicU64::new(0));
        let acked = Arc::new(AtomicU64::new(0));
        let started = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..concurrency {
            let (client, next, acked, url) =
                (client.clone(), next.clone(), acked.clone(), app.url.clone());
            let prefix = prefix.clone();
            tasks.push(tokio::spawn(async move {
                loop {
                    let id = next.fetch_add(1, Ordering::Relaxed);
                    if id >= ops {
                        return;
                    }
                    let o = Order::generate(1, id, 1000, 64);
                    let body = format!(
                        r#"{{"order_id": "{prefix}{}", "customer_id": {}, "amount_cents": {}, "payload": "{}"}}"#,
                        o.key(),
                        o.customer_id,
                        o.amount_cents,
                        o.payload
                    );
                    let sent = client
                        .post(&url)
                        .header("Content-Type", "application/json")
                        .body(body)
                        .send()
                        .await;
                    if let Ok(r) = sent {
                        if r.status().is_success() {
                            acked.fetch_add(1, Ordering::Relaxed);
                        }
                        let _ = r.bytes().await;
                    }
                }
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
        let elapsed = started.elapsed().as_secs_f64();
        let acked = acked.load(Ordering::Relaxed);
        if acked < ops * 9 / 10 {
            anyhow::bail!("the service acknowledged {acked} of {ops} orders in the plain loop");
        }
        anyhow::Ok(ops as f64 / elapsed)
    }
    .await;
    app.stop().await;
    let _ = stores.drop_namespace().await;
    measured
}
