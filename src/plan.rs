//! `dualwrite plan SCENARIO`: what a run of a validated scenario would do — where
//! each connection goes and how it logs in, what it creates, how much it writes,
//! which faults it injects, what it drops — without opening a single connection.
//! A pure function of the [`Scenario`] and the store registry.

use std::fmt::Write;

use crate::scenario::{
    Connection, FaultKind, Limit, Scenario, Side, SideEndpoint, default_var, fmt_duration,
};
use crate::store::spec::Support;
use crate::store::{StoreKind, placements};

/// The plan as text (the namespace of a new-per-run scenario is shown as a pattern).
pub fn render(s: &Scenario) -> String {
    let mut out = String::new();
    let t = &s.target;
    let ns = match &s.namespace.name {
        Some(name) => name.clone(),
        None => format!("{}_<time>_<hex>", s.namespace.prefix),
    };
    let _ = writeln!(out, "plan for {} ({})", s.file.display(), s.name);
    let _ = writeln!(
        out,
        "target: {} ({}), pattern {}",
        t.stores_label(),
        t.servers_label(),
        s.pattern.kind
    );
    let relay = s.pattern.kind.is_async();
    let sides: Vec<Side> = Side::ALL
        .into_iter()
        .filter(|side| *side != Side::Relay || relay)
        .collect();
    for side in &sides {
        let store = t.store_of(*side);
        let way = match t.endpoint(*side) {
            SideEndpoint::Proxy(p) => format!("Toxiproxy proxy {p} (API {})", t.toxiproxy),
            SideEndpoint::Direct(e) => format!("directly to {} (no network faults)", redact(e)),
            SideEndpoint::InProcess => "inside this process".to_string(),
        };
        let _ = writeln!(out, "  {:<9}  {store} via {way}", side.name());
    }
    // Each distinct login once, with the connections it applies to.
    let mut logins: Vec<(Vec<&str>, Vec<String>)> = Vec::new();
    for side in &sides {
        let lines = login(t.store_of(*side), t.connection(*side));
        if lines.is_empty() {
            continue;
        }
        match logins.iter_mut().find(|(_, l)| *l == lines) {
            Some((names, _)) => names.push(side.name()),
            None => logins.push((vec![side.name()], lines)),
        }
    }
    for (names, lines) in logins {
        let _ = writeln!(out, "login ({}):", names.join(", "));
        for line in lines {
            let _ = writeln!(out, "  {line}");
        }
    }
    if t.remote.is_empty() {
        let _ = writeln!(out, "endpoints: loopback only");
    } else {
        let list: Vec<String> = t
            .remote
            .iter()
            .map(|r| format!("{} ({})", r.host, r.field))
            .collect();
        let _ = writeln!(
            out,
            "endpoints: REMOTE {} (allowed: allow_remote or --allow-remote)",
            list.join(", ")
        );
    }
    let _ = writeln!(
        out,
        "namespace: {ns} ({})",
        match (&s.namespace.name, s.namespace.reuse) {
            (None, _) => "new per run",
            (Some(_), false) => "fixed; refused if it exists",
            (Some(_), true) => "fixed; reused if it exists, and what existed is never dropped",
        }
    );

    let _ = writeln!(out, "create:");
    let mut drops = Vec::new();
    for p in placements(s) {
        let layout = (p.store.spec().footprint)(s, &ns, &p.sides);
        for c in &layout.creates {
            let _ = writeln!(out, "  {:<9}  {c}", p.store.name());
        }
        drops.extend(layout.drops.into_iter().map(|d| (p.store, d)));
    }
    let _ = writeln!(
        out,
        "  (before creating anything a run checks that none of it exists{})",
        if s.namespace.reuse {
            "; reuse = true runs in what does"
        } else {
            ", and stops if any does"
        }
    );

    let w = &s.workload;
    let _ = writeln!(out, "write:");
    let amount = match w.limit {
        Limit::Duration(d) => format!(
            "{} operations = {}/s x {}",
            w.planned_ops(),
            w.rate,
            fmt_duration(d)
        ),
        Limit::Ops(n) => format!(
            "{n} operations at {}/s (about {})",
            w.rate,
            fmt_duration(w.planned_duration())
        ),
    };
    let _ = writeln!(
        out,
        "  {amount}, up to {} in flight, {} B payload, op_timeout {}",
        w.concurrency,
        w.payload_bytes,
        fmt_duration(w.op_timeout)
    );
    let _ = writeln!(out, "  each: {}", how(s));
    let retried = s.pattern.kind != crate::pattern::PatternKind::Naive
        || s.pattern.on_secondary_failure == crate::pattern::OnSecondaryFailure::Retry;
    if retried && s.pattern.retries > 0 {
        let _ = writeln!(
            out,
            "  retries: up to {} per operation (backoff {})",
            s.pattern.retries,
            fmt_duration(s.pattern.backoff)
        );
    }

    let _ = writeln!(out, "fault:");
    if s.faults.is_empty() {
        let _ = writeln!(out, "  none");
    }
    let run = w.planned_duration();
    for f in &s.faults {
        let windows = f.windows(run).len();
        let place = match (&f.kind, t.endpoint(f.side)) {
            (k, SideEndpoint::Proxy(p)) if k.is_network() => format!(" on proxy {p}"),
            (FaultKind::ProcessKill { server } | FaultKind::ProcessPause { server }, _) => {
                format!(" on the local server {server}")
            }
            _ => String::new(),
        };
        let _ = writeln!(out, "  {}{place}: {windows} window(s)", f.short());
    }

    let _ = writeln!(out, "drop (after the check):");
    if s.namespace.keep {
        let _ = writeln!(out, "  nothing: [namespace] keep = true");
    } else {
        for (store, d) in &drops {
            let _ = writeln!(out, "  {:<9}  {d}", store.name());
        }
        let _ = writeln!(
            out,
            "  (only what the run created; nothing with --keep-data)"
        );
    }
    out
}

/// What one operation does: the store's own words for its pattern.
fn how(s: &Scenario) -> String {
    let t = &s.target;
    if t.shared_store()
        && let Support::Yes { how, .. } = t.primary.store.spec().support(s.pattern.kind)
    {
        return how.to_string();
    }
    if s.pattern.kind.is_async() {
        format!(
            "the order into {} ({}), then a relay writes it into {}",
            t.primary.store, s.pattern.kind, t.secondary.store
        )
    } else {
        format!(
            "the order into {}, then its event into {}",
            t.primary.store, t.secondary.store
        )
    }
}

/// How a connection logs in and encrypts, naming variables and files, never values.
fn login(store: StoreKind, c: &Connection) -> Vec<String> {
    let mut lines = Vec::new();
    let name = store.name();
    if let Some(uri) = &c.uri {
        lines.push(format!("connection string: {}", redact(uri)));
    }
    match (&c.username, name) {
        (Some(u), _) => lines.push(format!(
            "login: user `{u}`, password from ${}",
            c.password_var(name)
        )),
        (None, "cassandra" | "mongodb") => lines.push(format!(
            "login: ${} if set (password from ${}), else none",
            default_var(name, "USER"),
            c.password_var(name)
        )),
        _ => {}
    }
    if name == "dynamodb" {
        let creds = match &c.profile {
            Some(p) => format!("credentials: profile `{p}` of the shared files"),
            None => "credentials: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY if set; with allow_remote the SDK's default chain; else the local stack's placeholder key".to_string(),
        };
        lines.push(creds);
        lines.push(match &c.region {
            Some(r) => format!("region: {r}"),
            None => "region: the profile's or AWS_REGION, else us-east-1 locally".to_string(),
        });
    }
    if let Some(tls) = &c.tls {
        let mut parts = vec!["TLS".to_string()];
        match &tls.ca_file {
            Some(ca) => parts.push(format!("CA {}", ca.display())),
            None => parts.push("public roots".into()),
        }
        if let Some(cert) = &tls.cert_file {
            parts.push(format!("client certificate {}", cert.display()));
        }
        if let Some(n) = &tls.server_name {
            parts.push(format!("certificate checked for {n}"));
        }
        lines.push(parts.join(", "));
    }
    lines
}

/// A connection string without its user (the plan is for sharing).
fn redact(endpoint: &str) -> String {
    match endpoint.split_once("://") {
        Some((scheme, rest)) => match rest.split_once('@') {
            Some((_, after)) if !after.contains('/') || rest.find('@') < rest.find('/') => {
                format!("{scheme}://{after}")
            }
            _ => endpoint.to_string(),
        },
        None => endpoint.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn the_plan_names_what_is_created_written_faulted_and_dropped() {
        let s = crate::scenario::parse(
            Path::new("p.toml"),
            "name = \"p\"\n[target]\nstore = \"dynamodb\"\n[target.primary]\nprofile = \"staging\"\n[pattern]\nname = \"naive\"\n[workload]\nrate = 50\nduration = \"10s\"\n[[faults]]\nkind = \"down\"\nside = \"secondary\"\nstart = \"3s\"\nduration = \"3s\"\nevery = \"4s\"\n",
        )
        .unwrap();
        let plan = render(&s);
        for part in [
            "table dw_<time>_<hex>_orders (key order_id, on-demand)",
            "table dw_<time>_<hex>_events",
            "500 operations = 50/s x 10s",
            "down@secondary/downstream 3s+3s every 4s on proxy dynamodb_secondary: 2 window(s)",
            "credentials: profile `staging`",
            "endpoints: loopback only",
        ] {
            assert!(plan.contains(part), "{part}\n{plan}");
        }
    }

    #[test]
    fn connection_strings_lose_their_user() {
        assert_eq!(
            redact("mongodb://dw@db.example.com:27017/?tls=true"),
            "mongodb://db.example.com:27017/?tls=true"
        );
        assert_eq!(redact("127.0.0.1:9042"), "127.0.0.1:9042");
    }
}
