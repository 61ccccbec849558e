//! `[app]`, validated: the user's own service as the writer. dualwrite sends each
//! order to the service's write endpoint, maps the answer to the history, starts
//! and stops the service (and its relay) or attaches to it, and scans where the
//! service's records land, named as the service names them.
//!
//! Templates: process commands, environments and URLs take `{primary}`,
//! `{secondary}`, `{relay}` (the connections' listen addresses: the run's
//! proxies), `{namespace}`, `{port}` / `{relay_port}` (free ports dualwrite picks
//! for the service and its relay) and `{env:NAME}` (dualwrite's own environment,
//! so secrets stay out of scenario files). The request body takes the order's
//! fields: `{{order_id}}`, `{{customer_id}}`, `{{amount_cents}}`, `{{payload}}`.

use serde::{Serialize, Serializer};
use std::path::PathBuf;
use std::time::Duration;

use super::{Field, Side};

/// The `[app]` section.
#[derive(Debug, Clone, Serialize)]
pub struct App {
    pub request: Request,
    /// Statuses meaning "the service did not write it" (history `fail`).
    pub fail_statuses: Vec<StatusRange>,
    /// The service's process, or `None` when dualwrite attaches to a running one.
    pub service: Proc,
    pub relay: Option<Proc>,
    /// The secondary side is written after the answer (an outbox relay): the
    /// history records it `async`, and the settle phase waits for it.
    pub async_secondary: bool,
    pub primary: Location,
    pub secondary: Location,
}

impl App {
    /// Whether any template names the relay connection (its proxy is then the run's).
    pub fn uses_relay_connection(&self) -> bool {
        let mut texts: Vec<&str> = vec![&self.request.url];
        for p in [Some(&self.service), self.relay.as_ref()]
            .into_iter()
            .flatten()
        {
            texts.extend(p.texts());
        }
        texts.iter().any(|t| t.contains("{relay}"))
    }

    /// The processes dualwrite starts (not attached ones), by name.
    pub fn started(&self) -> impl Iterator<Item = &Proc> {
        [Some(&self.service), self.relay.as_ref()]
            .into_iter()
            .flatten()
            .filter(|p| p.command.is_some())
    }

    pub fn location(&self, side: Side) -> &Location {
        match side {
            Side::Secondary => &self.secondary,
            _ => &self.primary,
        }
    }

    /// Fields both sides store, so the checker can compare them.
    pub fn comparable_fields(&self) -> Vec<Field> {
        [Field::CustomerId, Field::AmountCents]
            .into_iter()
            .filter(|f| self.primary.field(*f).is_some() && self.secondary.field(*f).is_some())
            .collect()
    }
}

/// How each order is sent.
#[derive(Debug, Clone, Serialize)]
pub struct Request {
    pub method: String,
    /// A template (`http://127.0.0.1:{port}/orders`).
    pub url: String,
    pub body: Body,
    /// Header names and value templates; values are never printed (tokens).
    #[serde(serialize_with = "names_only")]
    pub headers: Vec<(String, String)>,
    #[serde(with = "super::duration_ms")]
    pub timeout: Duration,
}

/// The request body: literal text and the order's fields, parsed once.
#[derive(Debug, Clone, PartialEq)]
pub struct Body(pub Vec<Piece>);

impl Serialize for Body {
    /// As the template was written.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.render(|v, out| {
            out.push_str("{{");
            out.push_str(v.name());
            out.push_str("}}");
        }))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Var {
    OrderId,
    CustomerId,
    AmountCents,
    Payload,
}

impl Var {
    pub const ALL: [Var; 4] = [
        Var::OrderId,
        Var::CustomerId,
        Var::AmountCents,
        Var::Payload,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Var::OrderId => "order_id",
            Var::CustomerId => "customer_id",
            Var::AmountCents => "amount_cents",
            Var::Payload => "payload",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Piece {
    Text(String),
    Var(Var),
}

impl Body {
    /// Splits a template at `{{name}}`; an unknown name is an error (its text).
    pub fn parse(template: &str) -> Result<Self, String> {
        let mut pieces = Vec::new();
        let mut rest = template;
        while let Some(open) = rest.find("{{") {
            let Some(len) = rest[open + 2..].find("}}") else {
                return Err(format!(
                    "`{{{{` at byte {} is never closed",
                    template.len() - rest.len() + open
                ));
            };
            let name = rest[open + 2..open + 2 + len].trim();
            let var = Var::ALL
                .into_iter()
                .find(|v| v.name() == name)
                .ok_or_else(|| format!("unknown placeholder `{{{{{name}}}}}`"))?;
            if open > 0 {
                pieces.push(Piece::Text(rest[..open].to_string()));
            }
            pieces.push(Piece::Var(var));
            rest = &rest[open + 2 + len + 2..];
        }
        if !rest.is_empty() {
            pieces.push(Piece::Text(rest.to_string()));
        }
        Ok(Self(pieces))
    }

    pub fn uses(&self, var: Var) -> bool {
        self.0.contains(&Piece::Var(var))
    }

    /// The body for one order; `value` gives each placeholder's text.
    pub fn render(&self, mut value: impl FnMut(Var, &mut String)) -> String {
        let mut out = String::with_capacity(128);
        for p in &self.0 {
            match p {
                Piece::Text(t) => out.push_str(t),
                Piece::Var(v) => value(*v, &mut out),
            }
        }
        out
    }
}

/// A status code or a class (`4xx`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusRange {
    pub from: u16,
    pub to: u16,
}

impl Serialize for StatusRange {
    /// `503`, or `4xx`.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.from == self.to {
            s.serialize_u16(self.from)
        } else {
            s.serialize_str(&format!("{}xx", self.from / 100))
        }
    }
}

impl StatusRange {
    pub fn contains(&self, status: u16) -> bool {
        (self.from..=self.to).contains(&status)
    }
}

/// What a service says when it did not write the order: bad requests and refusals.
/// 409 (already exists) is not among them: something with that id may be stored.
pub const DEFAULT_FAIL_STATUSES: [u16; 12] =
    [400, 401, 403, 404, 405, 411, 413, 414, 415, 422, 429, 431];

/// A process: started by dualwrite (`command`), or attached to (`command` = None).
#[derive(Debug, Clone, Serialize)]
pub struct Proc {
    /// `service` or `relay`: names its log files and its faults.
    pub name: &'static str,
    /// argv (templates); `None` = attached, not started by dualwrite.
    pub command: Option<Vec<String>>,
    pub dir: Option<PathBuf>,
    /// Variables set on top of dualwrite's own environment; values never printed.
    #[serde(serialize_with = "names_only")]
    pub env: Vec<(String, String)>,
    /// GET until 2xx; without it, until the URL's port accepts connections.
    pub ready: Option<String>,
    #[serde(with = "super::duration_ms")]
    pub ready_timeout: Duration,
    #[serde(with = "super::duration_ms")]
    pub stop_timeout: Duration,
}

impl Proc {
    pub fn attached(&self) -> bool {
        self.command.is_none()
    }

    fn texts(&self) -> Vec<&str> {
        let mut t: Vec<&str> = self.env.iter().map(|(_, v)| v.as_str()).collect();
        t.extend(self.command.iter().flatten().map(String::as_str));
        t.extend(self.ready.as_deref());
        t
    }
}

/// Where one side's records land, in the service's own names.
#[derive(Debug, Clone, Serialize)]
pub struct Location {
    /// MongoDB database / Cassandra keyspace (templates); DynamoDB has none.
    pub database: Option<String>,
    /// Table or collection (a template, e.g. `{namespace}_orders`).
    pub table: String,
    /// The record's own key attribute (the partition key, `_id`).
    pub key: String,
    /// The attribute holding the order id (the key itself on an orders table).
    pub order_id: String,
    /// Compared fields, by their names in the service's schema.
    pub customer_id: Option<String>,
    pub amount_cents: Option<String>,
    /// dualwrite creates the table/collection before the service starts.
    pub create: bool,
    /// dualwrite drops it at the end (unless data is kept).
    pub drop: bool,
}

impl Location {
    pub fn field(&self, f: Field) -> Option<&str> {
        match f {
            Field::CustomerId => self.customer_id.as_deref(),
            Field::AmountCents => self.amount_cents.as_deref(),
        }
    }
}

fn names_only<S: Serializer>(pairs: &[(String, String)], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(pairs.iter().map(|(k, _)| k))
}

/// The values templates are filled with at run time.
#[derive(Debug, Clone, Default)]
pub struct Vars {
    pub primary: String,
    pub secondary: String,
    pub relay: String,
    pub namespace: String,
    pub port: u16,
    pub relay_port: u16,
}

/// Template names accepted in `{...}` (besides `env:NAME`).
pub const TEMPLATE_NAMES: [&str; 6] = [
    "primary",
    "secondary",
    "relay",
    "namespace",
    "port",
    "relay_port",
];

/// Fills `{name}` templates. Braces that do not enclose a template name (JSON in
/// a value) are left as they are; an unknown name is an error (a typo).
pub fn fill(text: &str, vars: &Vars) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let close = after.find('}');
        let name = close.map(|c| &after[..c]);
        match name {
            Some(n) if is_template_name(n) => {
                match n {
                    "primary" => out.push_str(&vars.primary),
                    "secondary" => out.push_str(&vars.secondary),
                    "relay" => out.push_str(&vars.relay),
                    "namespace" => out.push_str(&vars.namespace),
                    "port" => out.push_str(&vars.port.to_string()),
                    "relay_port" => out.push_str(&vars.relay_port.to_string()),
                    _ => {
                        let var = &n["env:".len()..];
                        match std::env::var(var) {
                            Ok(v) => out.push_str(&v),
                            Err(_) => {
                                return Err(format!(
                                    "`{{env:{var}}}`: {var} is not set in dualwrite's environment"
                                ));
                            }
                        }
                    }
                }
                rest = &after[n.len() + 1..];
            }
            Some(n) if looks_like_name(n) => {
                return Err(format!(
                    "unknown template `{{{n}}}`; use {}, or {{env:NAME}}",
                    TEMPLATE_NAMES.map(|t| format!("{{{t}}}")).join(", ")
                ));
            }
            _ => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn is_template_name(n: &str) -> bool {
    TEMPLATE_NAMES.contains(&n)
        || n.strip_prefix("env:").is_some_and(|v| {
            !v.is_empty() && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
}

fn looks_like_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 40
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Checks a template at validation time: every `{name}` is known.
pub fn check_template(text: &str) -> Result<(), String> {
    let vars = Vars::default();
    match fill(text, &vars) {
        Ok(_) => Ok(()),
        // An unset variable is a run-time matter (CI sets it later).
        Err(e) if e.contains("is not set in dualwrite's environment") => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_template_splits_at_placeholders_and_renders_each_order() {
        let b = Body::parse(r#"{"id": "{{order_id}}", "n": {{ amount_cents }}}"#).unwrap();
        assert!(b.uses(Var::OrderId) && b.uses(Var::AmountCents) && !b.uses(Var::Payload));
        let out = b.render(|v, s| s.push_str(if v == Var::OrderId { "x-1" } else { "42" }));
        assert_eq!(out, r#"{"id": "x-1", "n": 42}"#);
        assert!(Body::parse("{{orderid}}").unwrap_err().contains("unknown"));
        assert!(
            Body::parse("{{order_id")
                .unwrap_err()
                .contains("never closed")
        );
    }

    #[test]
    fn templates_fill_known_names_and_leave_other_braces_alone() {
        let vars = Vars {
            primary: "127.0.0.1:25000".into(),
            namespace: "dw_1".into(),
            port: 8080,
            ..Vars::default()
        };
        assert_eq!(
            fill("http://{primary}/{namespace}:{port}", &vars).unwrap(),
            "http://127.0.0.1:25000/dw_1:8080"
        );
        assert_eq!(fill(r#"{"a": 1}"#, &vars).unwrap(), r#"{"a": 1}"#);
        assert!(
            fill("{primay}", &vars)
                .unwrap_err()
                .contains("unknown template")
        );
        assert!(
            fill("{env:DUALWRITE_SURELY_UNSET_VAR}", &vars)
                .unwrap_err()
                .contains("not set")
        );
        assert!(check_template("{env:DUALWRITE_SURELY_UNSET_VAR}").is_ok());
        assert!(check_template("{nope}").is_err());
    }
}
