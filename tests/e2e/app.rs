//! `[app]` end to end: the example services of examples/apps as the writer,
//! against the real local stack, each test through Toxiproxy proxies of its own
//! (created here with random ports, deleted after), so it shares nothing with
//! other runs. Counts are checked against the history and against a direct scan
//! made with the services' own libraries (boto3, pymongo), not dualwrite's code.
//! Needs `scripts/stack up` and the examples' venv (`scripts/stack install --only
//! apps`; `DUALWRITE_CACHE` as scripts/stack).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use dualwrite::history::{History, HistoryEntry, OpSummary, Outcome, SideOutcome};
use dualwrite::scenario::Side;
use dualwrite::store::{self, Layout, Record, Stores};

use crate::common::*;

const TOXIPROXY: &str = "http://127.0.0.1:8474";

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// The example services' Python (its venv has boto3, pymongo, the Cassandra driver).
fn python() -> PathBuf {
    let cache = std::env::var_os("DUALWRITE_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(".cache"));
    let py = cache.join("venv-apps/bin/python");
    assert!(
        py.is_file(),
        "{} missing: scripts/stack install --only apps",
        py.display()
    );
    py
}

/// Runs a Python script with the services' libraries; its stdout is JSON.
fn direct(script: &str, args: &[&str]) -> serde_json::Value {
    let out = Command::new(python())
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "direct scan failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Order ids (as sent) of a run's orders and events, read with boto3 straight
/// from moto (not through a proxy, not through dualwrite).
fn dynamo_direct(namespace: &str) -> (Vec<String>, Vec<String>) {
    const SCAN: &str = r#"
import json, sys, boto3
ns = sys.argv[1]
c = boto3.client("dynamodb", endpoint_url="http://127.0.0.1:5000", region_name="us-east-1",
                 aws_access_key_id="test", aws_secret_access_key="test")
def scan(table):
    out, kw = [], {"TableName": table, "ConsistentRead": True}
    while True:
        page = c.scan(**kw)
        out += page["Items"]
        if "LastEvaluatedKey" not in page:
            return out
        kw["ExclusiveStartKey"] = page["LastEvaluatedKey"]
print(json.dumps({"orders": [i["orderId"]["S"] for i in scan(ns + "_orders")],
                  "events": [i["orderId"]["S"] for i in scan(ns + "_order_events")]}))
"#;
    ids(direct(SCAN, &[namespace]))
}

/// The same with pymongo, straight from mongoeco.
fn mongo_direct(namespace: &str) -> (Vec<String>, Vec<String>) {
    const SCAN: &str = r#"
import json, sys, pymongo
ns = sys.argv[1]
db = pymongo.MongoClient("mongodb://127.0.0.1:27018/?directConnection=true")[ns]
print(json.dumps({"orders": [d["_id"] for d in db[ns + "_orders"].find({}, {"_id": 1})],
                  "events": [d["orderId"] for d in db[ns + "_order_events"].find({}, {"orderId": 1})]}))
"#;
    ids(direct(SCAN, &[namespace]))
}

fn ids(v: serde_json::Value) -> (Vec<String>, Vec<String>) {
    let list = |k: &str| {
        v[k].as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect()
    };
    (list("orders"), list("events"))
}

/// The id the service was sent for operation `id` of a run.
fn sent(namespace: &str, id: u64) -> String {
    format!("{namespace}-o{id:012}")
}

/// Per store: the example's environment (store connections through the run's
/// proxies) and where its records land, in its names.
fn store_parts(store: &str) -> (&'static str, &'static str, &'static str) {
    match store {
        "dynamodb" => (
            "STORE = \"dynamodb\"\nORDERS_ENDPOINT = \"http://{primary}\"\nEVENTS_ENDPOINT = \"http://{secondary}\"\nAWS_ACCESS_KEY_ID = \"test\"\nAWS_SECRET_ACCESS_KEY = \"test\"\n",
            "table = \"{namespace}_orders\"\norder_id = \"orderId\"\nfields = { customer_id = \"customerId\", amount_cents = \"totalCents\" }\n",
            "table = \"{namespace}_order_events\"\nkey = \"eventId\"\norder_id = \"orderId\"\nfields = { customer_id = \"customerId\", amount_cents = \"totalCents\" }\n",
        ),
        "mongodb" => (
            "STORE = \"mongodb\"\nMONGODB_DATABASE = \"{namespace}\"\nMONGODB_ORDERS_URL = \"mongodb://{primary}/?directConnection=true\"\nMONGODB_EVENTS_URL = \"mongodb://{secondary}/?directConnection=true\"\n",
            "database = \"{namespace}\"\ncollection = \"{namespace}_orders\"\norder_id = \"_id\"\nfields = { customer_id = \"customerId\", amount_cents = \"totalCents\" }\n",
            "database = \"{namespace}\"\ncollection = \"{namespace}_order_events\"\norder_id = \"orderId\"\nfields = { customer_id = \"customerId\", amount_cents = \"totalCents\" }\n",
        ),
        "cassandra" => (
            "STORE = \"cassandra\"\nCASSANDRA_KEYSPACE = \"{namespace}\"\nCASSANDRA_ORDERS_HOST = \"{primary}\"\nCASSANDRA_EVENTS_HOST = \"{secondary}\"\n",
            "keyspace = \"{namespace}\"\ntable = \"{namespace}_orders\"\norder_id = \"order_id\"\nfields = { customer_id = \"customer_id\", amount_cents = \"total_cents\" }\n",
            "keyspace = \"{namespace}\"\ntable = \"{namespace}_order_events\"\nkey = \"event_id\"\norder_id = \"order_id\"\nfields = { customer_id = \"customer_id\", amount_cents = \"total_cents\" }\n",
        ),
        other => panic!("no example for {other}"),
    }
}

fn upstream(store: &str) -> (&'static str, &'static str) {
    match store {
        "dynamodb" => ("127.0.0.1:5000", ""),
        "mongodb" => ("127.0.0.1:27018", "mongoeco"),
        _ => ("127.0.0.1:9042", ""),
    }
}

/// A scenario with the example naive service on `store` through `proxies`:
/// `env` is added to the service's environment, `rest` (workload, faults,
/// expect) goes before `[app]`.
fn naive_app(name: &str, store: &str, proxies: &OwnProxies, env: &str, rest: &str) -> String {
    let (store_env, primary, secondary) = store_parts(store);
    format!(
        "name = \"{name}\"\n{}{rest}\n[app]\nurl = \"http://127.0.0.1:{{port}}/orders\"\ntimeout = \"5s\"\nfail_statuses = [400, 404, 405, 411, 413, 503]\n[app.service]\ncommand = [\"examples/apps/run\", \"order_service.py\"]\nready = \"http://127.0.0.1:{{port}}/health\"\nready_timeout = \"60s\"\n[app.service.env]\nPORT = \"{{port}}\"\nTABLE_PREFIX = \"{{namespace}}\"\nCREATE_TABLES = \"true\"\n{store_env}{env}\n[app.primary]\n{primary}\n[app.secondary]\n{secondary}",
        proxies.target(store, upstream(store).1)
    )
}

/// Connects to a finished run's stores (its namespace, kept) through its
/// proxies. The clients' background tasks live on the calling runtime: use the
/// stores within it.
async fn connect_run(scenario: &Arc<dualwrite::scenario::Scenario>, namespace: &str) -> Stores {
    let t = dualwrite::fault::toxiproxy::Toxiproxy::new(TOXIPROXY);
    let endpoints = store::resolve_endpoints(&scenario.target, &t)
        .await
        .unwrap();
    // The run's namespace exists now: connect as a run that reuses it (the
    // service's tables are still dropped by their layouts).
    let mut reused = (**scenario).clone();
    reused.namespace.reuse = true;
    Stores::connect(
        &Arc::new(reused),
        namespace,
        &endpoints,
        &dualwrite::store::stack_state_dir(),
    )
    .await
    .unwrap()
}

fn drop_run(scenario: &Arc<dualwrite::scenario::Scenario>, namespace: &str) {
    rt().block_on(async {
        let stores = connect_run(scenario, namespace).await;
        stores.drop_namespace().await.unwrap();
    });
}

fn history_of(entries: &[HistoryEntry]) -> History {
    let mut h = History::default();
    for e in entries {
        h.record(
            e.id,
            OpSummary::new(
                e.outcome,
                e.primary,
                e.secondary,
                (e.intended_us / 1000) as u32,
            ),
        );
    }
    h
}

fn run_dir(s: &Scratch, name: &str) -> PathBuf {
    std::fs::canonicalize(s.results().join(name).join("latest")).unwrap()
}

#[test]
fn naive_service_with_the_events_proxy_down_counts_what_the_history_and_a_direct_scan_show() {
    let proxies = OwnProxies::new("naive", upstream("dynamodb").0);
    let s = Scratch::new();
    let text = naive_app(
        "e2e-app-naive",
        "dynamodb",
        &proxies,
        "ON_SECONDARY_FAILURE = \"log-and-continue\"\n",
        "[namespace]\nkeep = true\n[workload]\nrate = 20\nops = 120\nconcurrency = 16\n[[faults]]\nkind = \"down\"\nside = \"secondary\"\nstart = \"2s\"\nduration = \"2s\"\n",
    );
    let file = s.write("naive.toml", &text);
    let run = s.run(&file);
    let ns = run.result.namespace.clone();
    let scenario = parse(&text);
    let c = run.checker().clone();
    let (orders, events) = dynamo_direct(&ns);
    drop_run(&scenario, &ns);
    assert_eq!(run.code, 1, "{}", run.explain());
    // The direct scan: orders without an event, events without an order.
    let (orders, events): (BTreeSet<String>, Vec<String>) = (orders.into_iter().collect(), events);
    let with_event: BTreeSet<&String> = events.iter().collect();
    let orphans: Vec<&String> = orders.iter().filter(|o| !with_event.contains(o)).collect();
    assert!(!orphans.is_empty(), "the down window left orphans");
    assert_eq!(c.orphans, orphans.len() as u64, "{}", run.explain());
    assert_eq!(c.ghosts, 0);
    assert_eq!(events.len(), with_event.len(), "no duplicate events");
    // Lost acks: the history's acknowledged orders missing a side, in the scan.
    let lost: Vec<u64> = run
        .history
        .iter()
        .filter(|e| e.outcome == Outcome::Ok)
        .map(|e| e.id)
        .filter(|id| {
            let sent = sent(&ns, *id);
            !orders.contains(&sent) || !with_event.contains(&sent)
        })
        .collect();
    assert_eq!(c.lost_acks, lost.len() as u64, "{}", run.explain());
    assert!(c.lost_acks > 0, "log-and-continue answered 201 for orphans");
    // Every orphan came from an acknowledged order: the service said 201.
    assert_eq!(c.orphans, c.lost_acks);
    // The history holds what the service answered: one `POST /orders 201` line
    // in its log per acknowledged operation.
    let dir = run_dir(&s, "e2e-app-naive");
    let log = std::fs::read_to_string(dir.join("service.stdout.log")).unwrap();
    assert_eq!(
        log.matches("POST /orders 201").count() as u64,
        run.count(|e| e.outcome == Outcome::Ok)
    );
    let errors = std::fs::read_to_string(dir.join("service.stderr.log")).unwrap();
    assert!(errors.contains("its event failed"), "{errors}");
    // Samples are the ids the service stored.
    assert!(
        c.samples["orphans"][0].starts_with(&format!("{ns}-o")),
        "{c:?}"
    );
    let app = run.result.app.as_ref().unwrap();
    assert_eq!(
        app.processes[0].logs,
        ["service.stdout.log", "service.stderr.log"]
    );
    assert!(app.processes[0].died.is_none());
    assert_eq!(
        app.processes[0].events.last().unwrap().event,
        "stopped",
        "{app:?}"
    );
    assert_eq!(proxy_state(&proxies.name(Side::Secondary)), (true, vec![]));
}

/// The example outbox service and its relay on mongoeco; the relay is killed
/// 2 s into the load and started again 2 s later. `idempotent`: the relay's
/// events are keyed by the order id; `mark_delay_ms` widens the window between
/// publishing an entry and marking it.
fn outbox_with_the_relay_killed(
    idempotent: bool,
    mark_delay_ms: u32,
) -> (Run, BTreeMap<String, usize>, Vec<String>) {
    let proxies = OwnProxies::new("outbox", upstream("mongodb").0);
    let s = Scratch::new();
    let name = format!("e2e-app-outbox-{idempotent}");
    let text = format!(
        "name = \"{name}\"\n{}[namespace]\nkeep = true\n[workload]\nrate = 10\nops = 60\nconcurrency = 8\n[check]\nsettle = \"90s\"\n[expect]\nduplicates = \"any\"\n[[faults]]\nkind = \"process-kill\"\nprocess = \"relay\"\nstart = \"2s\"\nduration = \"2s\"\n\n[app]\nurl = \"http://127.0.0.1:{{port}}/orders\"\ntimeout = \"5s\"\nfail_statuses = [400, 404, 405, 411, 413, 503]\n[app.service]\ncommand = [\"examples/apps/run\", \"outbox_service.py\"]\nready = \"http://127.0.0.1:{{port}}/health\"\nready_timeout = \"60s\"\n[app.service.env]\nSTORE = \"mongodb\"\nPORT = \"{{port}}\"\nTABLE_PREFIX = \"{{namespace}}\"\nCREATE_TABLES = \"true\"\nMONGODB_DATABASE = \"{{namespace}}\"\nMONGODB_ORDERS_URL = \"mongodb://{{primary}}/?directConnection=true\"\n[app.relay]\ncommand = [\"examples/apps/run\", \"outbox_relay.py\"]\nready = \"http://127.0.0.1:{{relay_port}}/health\"\nready_timeout = \"60s\"\n[app.relay.env]\nSTORE = \"mongodb\"\nRELAY_PORT = \"{{relay_port}}\"\nTABLE_PREFIX = \"{{namespace}}\"\nCREATE_TABLES = \"true\"\nRELAY_IDEMPOTENT = \"{idempotent}\"\nRELAY_MARK_DELAY_MS = \"{mark_delay_ms}\"\nRELAY_POLL_INTERVAL_MS = \"50\"\nMONGODB_DATABASE = \"{{namespace}}\"\nMONGODB_ORDERS_URL = \"mongodb://{{relay}}/?directConnection=true\"\nMONGODB_EVENTS_URL = \"mongodb://{{secondary}}/?directConnection=true\"\n[app.primary]\ndatabase = \"{{namespace}}\"\ncollection = \"{{namespace}}_orders\"\norder_id = \"_id\"\nfields = {{ customer_id = \"customerId\", amount_cents = \"totalCents\" }}\n[app.secondary]\ndatabase = \"{{namespace}}\"\ncollection = \"{{namespace}}_order_events\"\norder_id = \"orderId\"\nfields = {{ customer_id = \"customerId\", amount_cents = \"totalCents\" }}\n",
        proxies.target("mongodb", "mongoeco")
    );
    let file = s.write("outbox.toml", &text);
    let run = s.run(&file);
    let ns = run.result.namespace.clone();
    let (orders, events) = mongo_direct(&ns);
    drop_run(&parse(&text), &ns);
    let mut per_order: BTreeMap<String, usize> = orders.iter().map(|o| (o.clone(), 0)).collect();
    for e in &events {
        *per_order.entry(e.clone()).or_default() += 1;
    }
    // The relay was killed and started again, as the fault said.
    let app = run.result.app.as_ref().unwrap();
    let relay = app.processes.iter().find(|p| p.name == "relay").unwrap();
    let kinds: Vec<&str> = relay.events.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(
        kinds,
        ["started", "ready", "stopped", "started", "ready", "stopped"],
        "{relay:?}"
    );
    assert_eq!(
        relay.events[2].detail.as_deref(),
        Some("killed by signal 9 (SIGKILL)")
    );
    assert!(relay.died.is_none(), "{relay:?}");
    let window = &run.result.faults[0];
    assert_eq!(
        (window.kind.as_str(), window.server.as_deref()),
        ("process-kill", Some("relay"))
    );
    assert!(
        window.start_s.is_some() && window.end_s.is_some(),
        "{window:?}"
    );
    let dir = run_dir(&s, &name);
    let relay_log = std::fs::read_to_string(dir.join("relay.stdout.log")).unwrap();
    assert_eq!(
        relay_log
            .matches("--- dualwrite: starting the relay")
            .count(),
        2
    );
    (run, per_order, orders)
}

#[test]
fn outbox_service_with_its_relay_killed_and_restarted_has_no_orphans_and_no_duplicates() {
    let (run, per_order, orders) = outbox_with_the_relay_killed(true, 0);
    assert_eq!(run.code, 0, "{}", run.explain());
    let c = run.checker();
    assert_eq!(
        (c.orphans, c.ghosts, c.duplicates, c.lost_acks),
        (0, 0, 0, 0),
        "{}",
        run.explain()
    );
    // The store agrees: every order has exactly one event.
    assert_eq!(orders.len() as u64, run.count(|e| e.outcome == Outcome::Ok));
    assert!(per_order.values().all(|n| *n == 1), "{per_order:?}");
    assert!(
        run.result.notes.iter().any(|n| n.contains("caught up")),
        "{:?}",
        run.result.notes
    );
}

#[test]
fn outbox_with_a_non_idempotent_relay_killed_mid_run_counts_the_duplicates_the_store_holds() {
    // A fresh event id per publication: an entry published but not yet marked when
    // the relay is killed is published again on restart, as a second event. A
    // 200 ms pause between publishing and marking makes the relay slower than
    // the load, so the kill almost always lands in that window.
    let (run, per_order, _) = outbox_with_the_relay_killed(false, 200);
    let c = run.checker();
    assert_eq!(
        (c.orphans, c.ghosts, c.lost_acks),
        (0, 0, 0),
        "{}",
        run.explain()
    );
    let extra: usize = per_order.values().map(|n| n.saturating_sub(1)).sum();
    // Whether the kill hit an entry between publish and mark is up to timing;
    // whatever it left, the checker counts what the store holds.
    eprintln!("non-idempotent relay killed: {extra} duplicate event(s) in the store");
    assert_eq!(c.duplicates, extra as u64, "{}", run.explain());
    assert!(per_order.values().all(|n| *n >= 1), "{per_order:?}");
}

/// The naive example writes a few orders into its own tables (created by the
/// service, kept), then a known mix is planted straight into those tables in the
/// service's names: the checker must count it exactly, read this run's prefix
/// only, and skip a record of another run.
fn planted_divergence_in_the_services_tables(store: &str) {
    let proxies = OwnProxies::new(&format!("plant{}", &store[..3]), upstream(store).0);
    let s = Scratch::new();
    let name = format!("e2e-app-plant-{store}");
    let text = naive_app(
        &name,
        store,
        &proxies,
        "",
        "[namespace]\nkeep = true\n[workload]\nrate = 10\nops = 5\n",
    );
    let run = s.run(&s.write("plant.toml", &text));
    assert_eq!(run.code, 0, "{}", run.explain());
    assert_eq!(run.checker().divergence, 0);
    let ns = run.result.namespace.clone();
    let scenario = parse(&text);
    let mut history = history_of(&run.history);
    let c = rt().block_on(async {
        let stores = connect_run(&scenario, &ns).await;
        let (p, sd) = stores.sides().await.unwrap();
        let rec = |id: u64, amount: u64| Record {
            order_id: id,
            customer_id: 3,
            amount_cents: amount,
        };
        for id in 10..16 {
            history.record(
                id,
                OpSummary::new(Outcome::Ok, SideOutcome::Ok, SideOutcome::Ok, 0),
            );
        }
        p.plant(rec(10, 100), 1).await.unwrap();
        p.plant(rec(11, 100), 1).await.unwrap();
        sd.plant(rec(12, 100), 1).await.unwrap();
        p.plant(rec(13, 100), 1).await.unwrap();
        sd.plant(rec(13, 100), 3).await.unwrap();
        p.plant(rec(14, 100), 1).await.unwrap();
        sd.plant(rec(14, 999), 1).await.unwrap();
        // This run's prefix: an id no operation wrote, and one that is no id.
        p.plant(rec(20, 100), 1).await.unwrap();
        sd.plant_foreign("garbage").await.unwrap();
        // Another run's order in the same table: not this run's business.
        let [layout, _] = stores.app.as_ref().unwrap();
        let other = Arc::new(Layout {
            prefix: "dw_20000101000000_beef-".into(),
            ..(**layout).clone()
        });
        let theirs = stores.primary.app_side(Side::Primary, other).await.unwrap();
        theirs.plant(rec(1, 5), 1).await.unwrap();
        theirs.plant(rec(99, 5), 1).await.unwrap();
        let c = check(&stores, &history, &scenario).await;
        stores.drop_namespace().await.unwrap();
        c
    });
    let label = format!("{store}: {c:?}");
    assert_eq!(c.orphans, 2, "{label}");
    assert_eq!(c.ghosts, 1, "{label}");
    assert_eq!(c.duplicates, 2, "{label}");
    assert_eq!(c.mismatches, 1, "{label}");
    // 10, 11, 12 (one side missing) and 15 (planted nowhere).
    assert_eq!(c.lost_acks, 4, "{label}");
    assert_eq!(c.strays, 2, "{label}");
    assert_eq!(c.divergence, 10, "{label}");
    // 5 written by the service + 10, 11, 13, 14, 20 / + 12, 13 x3, 14, the foreign one.
    assert_eq!(
        (c.scanned_primary, c.scanned_secondary),
        (10, 11),
        "{label}"
    );
}

#[test]
fn planted_divergence_in_the_services_dynamodb_tables_is_counted_exactly() {
    planted_divergence_in_the_services_tables("dynamodb");
}

#[test]
fn planted_divergence_in_the_services_mongodb_collections_is_counted_exactly() {
    planted_divergence_in_the_services_tables("mongodb");
}

#[test]
fn planted_divergence_in_the_services_cassandra_tables_is_counted_exactly() {
    planted_divergence_in_the_services_tables("cassandra");
}

#[test]
fn a_service_that_never_becomes_ready_exits_3_naming_the_command_and_its_stderr() {
    let proxies = OwnProxies::new("ready", upstream("dynamodb").0);
    let s = Scratch::new();
    // The events store is a closed port: /health stays 503, the service logs why.
    let text = naive_app(
        "e2e-app-never-ready",
        "dynamodb",
        &proxies,
        "",
        "[workload]\nrate = 10\nops = 5\n",
    )
    .replace("http://{secondary}", "http://127.0.0.1:1")
    .replace("ready_timeout = \"60s\"", "ready_timeout = \"15s\"");
    let file = s.write("ready.toml", &text);
    let out = Command::new(bin())
        .args(["run", file.to_str().unwrap(), "--results-dir"])
        .arg(s.results())
        .env("DW_PLANTED_SECRET", "planted-secret-app-ready-77e1")
        .current_dir(repo())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("did not become ready within 15.0s"), "{err}");
    assert!(
        err.contains("command: examples/apps/run order_service.py"),
        "{err}"
    );
    assert!(err.contains("last lines of its stderr"), "{err}");
    assert!(err.contains("store not ready yet"), "{err}");
    assert!(!err.contains("planted-secret-app-ready-77e1"));
    // The error result is written, with the process killed after the bound.
    let dir = run_dir(&s, "e2e-app-never-ready");
    let r = dualwrite::result::RunResult::read(&dir).unwrap();
    assert_eq!(r.verdict, dualwrite::result::Verdict::Error);
    let service = &r.app.as_ref().unwrap().processes[0];
    let last = service.events.last().unwrap();
    assert_eq!(
        (last.event.as_str(), last.detail.as_deref()),
        ("stopped", Some("killed by signal 9 (SIGKILL)")),
        "{service:?}"
    );
    assert!(dir.join("service.stderr.log").is_file());
    // The orders table the service created before giving up is dropped.
    const TABLES: &str = r#"
import json, sys, boto3
c = boto3.client("dynamodb", endpoint_url="http://127.0.0.1:5000", region_name="us-east-1",
                 aws_access_key_id="test", aws_secret_access_key="test")
print(json.dumps([t for t in c.list_tables()["TableNames"] if t.startswith(sys.argv[1])]))
"#;
    assert_eq!(direct(TABLES, &[&r.namespace]), serde_json::json!([]));
}

#[test]
fn a_service_that_crashes_mid_run_is_reported_and_the_run_finishes() {
    let proxies = OwnProxies::new("crash", upstream("dynamodb").0);
    let s = Scratch::new();
    // The example service, SIGKILLed by its own wrapper after 30 acknowledged
    // orders: from dualwrite's side, the service dies on its own.
    let wrapper = s.write(
        "crashy.sh",
        r#"fifo="$(mktemp -u)"; mkfifo "$fifo"
examples/apps/run order_service.py > "$fifo" 2>&1 &
svc=$!
n=0
while IFS= read -r line; do
  printf '%s\n' "$line"
  case "$line" in *"POST /orders 201"*) n=$((n+1)) ;; esac
  if [ "$n" -ge 30 ]; then
    echo "crash-test: the service crashes after 30 orders" >&2
    kill -9 "$svc"; rm -f "$fifo"; exit 70
  fi
done < "$fifo"
"#,
    );
    let text = naive_app(
        "e2e-app-crash",
        "dynamodb",
        &proxies,
        "",
        "[workload]\nrate = 20\nops = 120\nconcurrency = 8\n[expect]\ndivergence = \"any\"\norphans = \"any\"\n",
    )
    .replace(
        "command = [\"examples/apps/run\", \"order_service.py\"]",
        &format!("command = [\"/bin/sh\", \"{}\"]", wrapper.display()),
    );
    let run = s.run(&s.write("crash.toml", &text));
    assert!(run.code == 0 || run.code == 1, "{}", run.explain());
    assert_eq!(
        run.result.workload.ops.total, 120,
        "the load ran to its end"
    );
    let c = run.checker();
    assert_eq!(c.lost_acks, 0, "{}", run.explain());
    let service = &run.result.app.as_ref().unwrap().processes[0];
    let died = service.died.as_ref().expect("the death is in the result");
    assert_eq!(died.status, "exit status 70");
    assert!(
        died.at_s > 0.0 && died.at_s < run.result.workload.load_s + 5.0,
        "{died:?}"
    );
    assert!(
        died.stderr_tail
            .iter()
            .any(|l| l.contains("crashes after 30 orders")),
        "{died:?}"
    );
    assert!(
        run.result
            .warnings
            .iter()
            .any(|w| w.contains("the service died")),
        "{:?}",
        run.result.warnings
    );
    // Nothing sent after the death was acknowledged; some was sent, and refused.
    let after: Vec<&HistoryEntry> = run
        .history
        .iter()
        .filter(|e| e.start_us as f64 > died.at_s * 1e6)
        .collect();
    assert!(!after.is_empty());
    assert!(after.iter().all(|e| e.outcome != Outcome::Ok), "{after:?}");
    assert!(
        after
            .iter()
            .any(|e| e.outcome == Outcome::Fail && e.error.as_deref() == Some("refused")),
        "{after:?}"
    );
    // It died after logging its 30th acknowledgement, sent before the log line.
    assert!(
        run.count(|e| e.outcome == Outcome::Ok) >= 30,
        "{}",
        run.explain()
    );
}

#[test]
fn a_malformed_app_section_exits_2_with_file_line_field_and_fix() {
    let s = Scratch::new();
    let proxies_free = "[target]\nstore = \"dynamodb\"\n[workload]\nrate = 1\nops = 1\n";
    let file = s.write(
        "bad.toml",
        &format!(
            "name = \"bad\"\n{proxies_free}[app]\nurl = \"http://127.0.0.1:{{port}}/orders\"\nbody = '{{\"id\": {{{{order_id}}}}}}'\n[app.service]\ncommand = [\"x\"]\n[app.primary]\ntable = \"t\"\norder_id = \"id\"\n[app.secondary]\ntable = \"u\"\norder_id = \"id\"\n"
        ),
    );
    for cmd in ["validate", "run"] {
        let out = s.dualwrite(&[cmd, file.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{cmd}: {err}");
        assert!(
            err.contains("bad.toml:9:1: field `app.body`"),
            "{cmd}: {err}"
        );
        assert!(err.contains("not JSON once filled in"), "{cmd}: {err}");
        assert!(
            err.contains("fix: quote the string placeholders"),
            "{cmd}: {err}"
        );
    }
}

#[test]
fn secrets_from_the_services_environment_never_reach_any_output() {
    let proxies = OwnProxies::new("secret", upstream("dynamodb").0);
    let s = Scratch::new();
    let (key, secret, token) = (
        "AKIADUALWRITEAPPPLANT1",
        "planted-app-secret-5d2e",
        "planted-app-token-91c4",
    );
    // The service takes its AWS credentials from dualwrite's environment (not the
    // scenario), and a token through {env:...} in its env and a header.
    let text = naive_app(
        "e2e-app-secrets",
        "dynamodb",
        &proxies,
        "API_TOKEN = \"{env:DW_APP_TOKEN}\"\n",
        "[workload]\nrate = 10\nops = 10\n",
    )
    .replace(
        "AWS_ACCESS_KEY_ID = \"test\"\nAWS_SECRET_ACCESS_KEY = \"test\"\n",
        "",
    )
    .replace(
        "timeout = \"5s\"",
        "timeout = \"5s\"\nheaders = { Authorization = \"Bearer {env:DW_APP_TOKEN}\" }",
    );
    let file = s.write("sec.toml", &text);
    let out = Command::new(bin())
        .args(["run", file.to_str().unwrap(), "--verbose", "--results-dir"])
        .arg(s.results())
        .env("AWS_ACCESS_KEY_ID", key)
        .env("AWS_SECRET_ACCESS_KEY", secret)
        .env("DW_APP_TOKEN", token)
        .current_dir(repo())
        .output()
        .unwrap();
    let mut haystack =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{haystack}");
    let mut files = Vec::new();
    for entry in walk(&s.results()) {
        haystack.push_str(&std::fs::read_to_string(&entry).unwrap_or_default());
        files.push(entry.file_name().unwrap().to_string_lossy().to_string());
    }
    for f in [
        "result.json",
        "history.jsonl",
        "scenario.toml",
        "service.stdout.log",
        "service.stderr.log",
    ] {
        assert!(files.iter().any(|n| n == f), "{f} written: {files:?}");
    }
    for planted in [key, secret, token] {
        assert!(!haystack.contains(planted), "`{planted}` leaked");
    }
    // The names are recorded, never the values.
    let r = dualwrite::result::RunResult::read(&run_dir(&s, "e2e-app-secrets")).unwrap();
    let options = r.pattern_options.to_string();
    assert!(
        options.contains("API_TOKEN") && options.contains("Authorization"),
        "{options}"
    );
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() && !p.is_symlink() {
            out.extend(walk(&p));
        } else if p.is_file() {
            out.push(p);
        }
    }
    out
}
