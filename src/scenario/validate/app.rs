//! `[app]`: the user's service as the writer — its request, how its answers map
//! to the history, its processes, and where its records land on each side (in
//! the service's own names, checked against the side's store).

use std::collections::BTreeMap;
use std::time::Duration;

use super::super::app::{
    App, Body, DEFAULT_FAIL_STATUSES, Location, Proc, Request, StatusRange, Var, check_template,
};
use super::super::error::Locator;
use super::super::raw::{RawApp, RawCommand, RawLocation, RawProcess, RawStatus};
use super::super::*;
use super::{Res, duration};

pub(super) fn app(raw: &RawApp, target: &Target, op_timeout: Duration, at: &Locator) -> Res<App> {
    for side in [Side::Primary, Side::Secondary] {
        if matches!(target.endpoint(side), SideEndpoint::InProcess) {
            return Err(at.error(
                &format!("target.{side}.store"),
                "the in-memory store lives inside dualwrite, where a service cannot write",
                "put the side in a real store (dynamodb, mongodb, cassandra) the service writes to",
            ));
        }
    }
    let template = |text: &str, path: &str| {
        check_template(text).map_err(|e| {
            at.error(
                path,
                e,
                "templates: {primary}, {secondary}, {relay}, {namespace}, {port}, {relay_port}, {env:NAME}",
            )
        })
    };
    // Processes first: whether the service is attached decides what the URL may use.
    let service = match &raw.service {
        Some(p) => process(p, "service", at)?,
        None => {
            return Err(at.error(
                "app.service",
                "missing",
                "add [app.service] with command = [...] (dualwrite starts it) or attach = true (it is already running)",
            ));
        }
    };
    let relay = raw
        .relay
        .as_ref()
        .map(|p| process(p, "relay", at))
        .transpose()?;

    template(&raw.url, "app.url")?;
    if raw.url.starts_with("https://") {
        return Err(at.error(
            "app.url",
            "https is not supported: dualwrite is built without TLS",
            "point dualwrite at the service's plain-HTTP port (on this machine or a private network)",
        ));
    }
    if !raw.url.starts_with("http://") {
        return Err(at.error(
            "app.url",
            format!("`{}` is not an http:// URL", raw.url),
            "give the write endpoint, e.g. url = \"http://127.0.0.1:{port}/orders\"",
        ));
    }
    if service.attached() && (raw.url.contains("{port}") || raw.url.contains("{relay_port}")) {
        return Err(at.error(
            "app.url",
            "`{port}` is the port dualwrite gives a service it starts, and this one is attached",
            "write the running service's own port, e.g. url = \"http://127.0.0.1:8080/orders\"",
        ));
    }
    let method = raw.method.clone().unwrap_or_else(|| "POST".into());
    if !["POST", "PUT", "PATCH"].contains(&method.as_str()) {
        return Err(super::word(
            at,
            "app.method",
            &method,
            "\"POST\", \"PUT\" or \"PATCH\" (a write with a body)",
        ));
    }
    let mut headers = Vec::new();
    for (name, value) in raw.headers.iter().flatten() {
        let path = format!("app.headers.{name}");
        if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
            return Err(at.error(
                &path,
                format!("`{name}` is not an HTTP header name"),
                "use letters, digits and `-`, e.g. \"X-Request-Source\"",
            ));
        }
        template(value, &path)?;
        headers.push((name.clone(), value.clone()));
    }
    let json = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-type"))
        .is_none_or(|(_, v)| v.to_ascii_lowercase().contains("json"));
    if !headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("content-type"))
    {
        headers.push(("Content-Type".into(), "application/json".into()));
    }
    let body_text = raw.body.clone().unwrap_or_else(|| {
        r#"{"order_id": "{{order_id}}", "customer_id": {{customer_id}}, "amount_cents": {{amount_cents}}, "payload": "{{payload}}"}"#.into()
    });
    let body = Body::parse(&body_text).map_err(|e| {
        at.error(
            "app.body",
            e,
            "placeholders: {{order_id}}, {{customer_id}}, {{amount_cents}}, {{payload}}",
        )
    })?;
    if !body.uses(Var::OrderId) {
        return Err(at.error(
            "app.body",
            "the body does not carry {{order_id}}",
            "send the order id, e.g. body = '{\"order_id\": \"{{order_id}}\", ...}': the checker finds each order's records by it",
        ));
    }
    if json {
        let sample = body.render(|v, s| {
            s.push_str(match v {
                Var::OrderId => "dw_x-o000000000001",
                Var::CustomerId => "12",
                Var::AmountCents => "3456",
                Var::Payload => "abc",
            })
        });
        if let Err(e) = serde_json::from_str::<serde_json::Value>(&sample) {
            return Err(at.error(
                "app.body",
                format!("the body is not JSON once filled in ({e}): {sample}"),
                "quote the string placeholders (\"{{order_id}}\", \"{{payload}}\") and leave the numbers bare; or set a non-JSON Content-Type header",
            ));
        }
    }
    let timeout = match &raw.timeout {
        Some(t) => duration(t, "app.timeout", at)?,
        None => op_timeout,
    };
    if timeout.is_zero() {
        return Err(at.error(
            "app.timeout",
            "a request cannot time out at once",
            "give how long to wait for an answer, e.g. timeout = \"2s\"",
        ));
    }
    let fail_statuses = match &raw.fail_statuses {
        None => DEFAULT_FAIL_STATUSES
            .iter()
            .map(|s| StatusRange { from: *s, to: *s })
            .collect(),
        Some(list) => list
            .iter()
            .map(|s| status(s, at))
            .collect::<Res<Vec<_>>>()?,
    };
    let async_secondary = raw.async_secondary.unwrap_or(relay.is_some());
    let primary = location(raw.primary.as_ref(), Side::Primary, target, at)?;
    let secondary = location(raw.secondary.as_ref(), Side::Secondary, target, at)?;
    Ok(App {
        request: Request {
            method,
            url: raw.url.clone(),
            body,
            headers,
            timeout,
        },
        fail_statuses,
        service,
        relay,
        async_secondary,
        primary,
        secondary,
    })
}

fn status(raw: &RawStatus, at: &Locator) -> Res<StatusRange> {
    let bad = |what: String| {
        at.error(
            "app.fail_statuses",
            what,
            "list the statuses that mean \"not written\": codes (503) or classes (\"4xx\"); 2xx is always ok",
        )
    };
    let range = match raw {
        RawStatus::Code(c) if (100..=599).contains(c) => StatusRange {
            from: *c as u16,
            to: *c as u16,
        },
        RawStatus::Code(c) => return Err(bad(format!("{c} is not an HTTP status"))),
        RawStatus::Class(c) => match c.to_ascii_lowercase().as_str() {
            "1xx" => StatusRange { from: 100, to: 199 },
            "3xx" => StatusRange { from: 300, to: 399 },
            "4xx" => StatusRange { from: 400, to: 499 },
            "5xx" => StatusRange { from: 500, to: 599 },
            "2xx" => return Err(bad("2xx is the service's acknowledgement".into())),
            _ => return Err(bad(format!("`{c}` is not a status class"))),
        },
    };
    if (200..=299).contains(&range.from) {
        return Err(bad(format!(
            "{} is a 2xx: the service acknowledged",
            range.from
        )));
    }
    Ok(range)
}

fn process(raw: &RawProcess, name: &'static str, at: &Locator) -> Res<Proc> {
    let p = |field: &str| format!("app.{name}.{field}");
    let attach = raw.attach.unwrap_or(false);
    let command = match (&raw.command, attach) {
        (Some(_), true) => {
            return Err(at.error(
                &p("attach"),
                "both `command` and `attach = true` are set",
                "remove `command` to attach to a running service, or `attach` to have dualwrite start it",
            ));
        }
        (None, false) => {
            return Err(at.error(
                &format!("app.{name}"),
                "neither `command` nor `attach = true`",
                format!(
                    "set command = [\"./my-{name}\", \"--flag\"] (dualwrite starts and stops it), or attach = true (already running)"
                ),
            ));
        }
        (None, true) => None,
        (Some(RawCommand::Shell(s)), false) if !s.trim().is_empty() => {
            Some(vec!["/bin/sh".into(), "-c".into(), s.clone()])
        }
        (Some(RawCommand::Argv(v)), false) if v.first().is_some_and(|c| !c.is_empty()) => {
            Some(v.clone())
        }
        (Some(_), false) => {
            return Err(at.error(
                &p("command"),
                "empty command",
                "give the program and its arguments, e.g. command = [\"python\", \"app.py\"]",
            ));
        }
    };
    if attach {
        for (field, set) in [
            ("dir", raw.dir.is_some()),
            ("env", raw.env.is_some()),
            ("stop_timeout", raw.stop_timeout.is_some()),
        ] {
            if set {
                return Err(at.error(
                    &p(field),
                    format!(
                        "`{field}` applies to a process dualwrite starts, and this one is attached"
                    ),
                    "remove it, or replace attach = true with command = [...]".to_string(),
                ));
            }
        }
    }
    let tmpl = |text: &str, path: String| {
        check_template(text).map_err(|e| {
            at.error(
                &path,
                e,
                "templates: {primary}, {secondary}, {relay}, {namespace}, {port}, {relay_port}, {env:NAME}",
            )
        })
    };
    for arg in command.iter().flatten() {
        tmpl(arg, p("command"))?;
    }
    let mut env = Vec::new();
    for (k, v) in raw.env.iter().flatten() {
        let valid = k.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(at.error(
                &p(&format!("env.{k}")),
                format!("`{k}` is not an environment variable name"),
                "use letters, digits and `_`, not starting with a digit",
            ));
        }
        tmpl(v, p(&format!("env.{k}")))?;
        env.push((k.clone(), v.clone()));
    }
    if let Some(r) = &raw.ready {
        tmpl(r, p("ready"))?;
        if !r.starts_with("http://") {
            return Err(at.error(
                &p("ready"),
                format!("`{r}` is not an http:// URL"),
                "give a URL that answers 2xx once the process can serve, e.g. ready = \"http://127.0.0.1:{port}/health\"",
            ));
        }
        if attach && (r.contains("{port}") || r.contains("{relay_port}")) {
            return Err(at.error(
                &p("ready"),
                "`{port}` is the port dualwrite gives a process it starts, and this one is attached",
                "write the running process's own port",
            ));
        }
    }
    let bound = |field: &str, v: &Option<String>, default: u64| -> Res<Duration> {
        let d = match v {
            Some(t) => duration(t, &p(field), at)?,
            None => Duration::from_secs(default),
        };
        if d.is_zero() || d > Duration::from_secs(600) {
            return Err(at.error(
                &p(field),
                format!("{} is out of range", fmt_duration(d)),
                "use more than 0 and at most 10m",
            ));
        }
        Ok(d)
    };
    Ok(Proc {
        name,
        command,
        dir: raw.dir.as_ref().map(std::path::PathBuf::from),
        env,
        ready: raw.ready.clone(),
        ready_timeout: bound("ready_timeout", &raw.ready_timeout, 30)?,
        stop_timeout: bound("stop_timeout", &raw.stop_timeout, 10)?,
    })
}

/// Where a side's records land, named per store: DynamoDB `table`; MongoDB
/// `database` + `collection` (key `_id`); Cassandra `keyspace` + `table`.
fn location(raw: Option<&RawLocation>, side: Side, target: &Target, at: &Locator) -> Res<Location> {
    let base = format!("app.{side}");
    let p = |field: &str| format!("{base}.{field}");
    let store = target.store_of(side).name();
    let Some(raw) = raw else {
        return Err(at.error(
            &base,
            "missing",
            format!(
                "add [app.{side}]: where the service writes this side's records on {store}, e.g. table = \"{{namespace}}_orders\", order_id = \"orderId\""
            ),
        ));
    };
    let (table_field, db_field) = match store {
        "mongodb" => ("collection", Some("database")),
        "cassandra" => ("table", Some("keyspace")),
        _ => ("table", None),
    };
    let given = [
        ("table", raw.table.as_ref()),
        ("collection", raw.collection.as_ref()),
        ("database", raw.database.as_ref()),
        ("keyspace", raw.keyspace.as_ref()),
    ];
    for (field, value) in given {
        if value.is_some() && field != table_field && Some(field) != db_field {
            let wanted = match db_field {
                Some(db) => format!("`{db}` and `{table_field}`"),
                None => format!("`{table_field}`"),
            };
            return Err(at.error(
                &p(field),
                format!("`{field}` does not name a location on {store}"),
                format!("on {store} a side is named by {wanted}"),
            ));
        }
    }
    let named = |field: &str, value: Option<&String>| -> Res<String> {
        match value {
            Some(v) if !v.trim().is_empty() => {
                check_template(v).map_err(|e| {
                    at.error(
                        &p(field),
                        e,
                        "names take {namespace} (this run's own, e.g. \"{namespace}_orders\") or a fixed name",
                    )
                })?;
                Ok(v.clone())
            }
            _ => Err(at.error(
                &p(field),
                "missing",
                format!("name the {field} the service writes this side to"),
            )),
        }
    };
    let table = named(
        table_field,
        if table_field == "collection" {
            raw.collection.as_ref()
        } else {
            raw.table.as_ref()
        },
    )?;
    let database = match db_field {
        Some("database") => Some(named("database", raw.database.as_ref())?),
        Some(_) => Some(named("keyspace", raw.keyspace.as_ref())?),
        None => None,
    };
    let order_id = match &raw.order_id {
        Some(a) if !a.is_empty() => a.clone(),
        _ => {
            return Err(at.error(
                &p("order_id"),
                "missing",
                "name the attribute that holds the order id the service was sent, e.g. order_id = \"orderId\"",
            ));
        }
    };
    let key = match (store, &raw.key) {
        ("mongodb", Some(k)) if k != "_id" => {
            return Err(at.error(
                &p("key"),
                format!("a MongoDB document's key is `_id`, not `{k}`"),
                "remove `key` (it is `_id`)",
            ));
        }
        ("mongodb", _) => "_id".to_string(),
        (_, Some(k)) if !k.is_empty() => k.clone(),
        (_, _) => order_id.clone(),
    };
    let mut fields: BTreeMap<Field, String> = BTreeMap::new();
    for (name, attr) in raw.fields.iter().flatten() {
        let field = match name.as_str() {
            "customer_id" => Field::CustomerId,
            "amount_cents" => Field::AmountCents,
            other => {
                return Err(at.error(
                    &p(&format!("fields.{other}")),
                    format!("`{other}` is not a field dualwrite sends"),
                    "map customer_id and/or amount_cents to the service's attribute names, e.g. fields = { customer_id = \"customerId\", amount_cents = \"totalCents\" }",
                ));
            }
        };
        if attr.is_empty() {
            return Err(at.error(
                &p(&format!("fields.{name}")),
                "empty attribute name",
                "give the service's name for the field",
            ));
        }
        fields.insert(field, attr.clone());
    }
    let create = raw.create.unwrap_or(false);
    if create && store == "cassandra" {
        return Err(at.error(
            &p("create"),
            "dualwrite cannot create a Cassandra table in the service's schema (it does not know its other columns)",
            "let the service create its tables (e.g. CREATE_TABLES=true in its env), or create them before the run; remove `create`",
        ));
    }
    let own = table.contains("{namespace}")
        || database
            .as_deref()
            .is_some_and(|d| d.contains("{namespace}"));
    Ok(Location {
        database,
        table,
        key,
        order_id,
        customer_id: fields.get(&Field::CustomerId).cloned(),
        amount_cents: fields.get(&Field::AmountCents).cloned(),
        create,
        drop: raw.drop.unwrap_or(create || own),
    })
}
