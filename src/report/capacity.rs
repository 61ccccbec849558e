//! Capacity columns of the reports, and the optional price table that turns
//! units into money (`--prices FILE` of `compare` and `report`; none is built in).
//!
//! A price file (TOML), one table per store, each key a figure of the result's
//! `capacity` block priced per million units, or `node_hour` (with `nodes`, 1 by
//! default) for a store paid by the node:
//!
//! ```toml
//! currency = "USD"
//! [dynamodb]
//! write_units = 1.25          # per million WCU
//! read_units = 0.25           # per million RCU
//! stream_read_requests = 0.02 # per million GetRecords calls
//! [cassandra]
//! node_hour = 0.50
//! nodes = 3
//! ```

use anyhow::Context;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;
use toml::Spanned;

use crate::result::{CapacityFigure, CapacitySource, RunResult};

/// One capacity figure a column can show: (store, figure name, column key, header).
pub struct FigureColumn {
    pub store: &'static str,
    pub name: &'static str,
    pub key: &'static str,
    pub header: &'static str,
    pub unit: &'static str,
}

/// Every figure a store reports (`src/store/<store>/` fills them).
pub const FIGURES: [FigureColumn; 9] = [
    FigureColumn {
        store: "dynamodb",
        name: "write_units",
        key: "wcu_per_order",
        header: "WCU/order",
        unit: "WCU",
    },
    FigureColumn {
        store: "dynamodb",
        name: "read_units",
        key: "rcu_per_order",
        header: "RCU/order",
        unit: "RCU",
    },
    FigureColumn {
        store: "dynamodb",
        name: "stream_read_requests",
        key: "stream_reads_per_order",
        header: "stream reads/order",
        unit: "requests",
    },
    FigureColumn {
        store: "cassandra",
        name: "mutations",
        key: "mutations_per_order",
        header: "mutations/order",
        unit: "local writes",
    },
    FigureColumn {
        store: "cassandra",
        name: "batchlog_writes",
        key: "batchlog_per_order",
        header: "batchlog/order",
        unit: "batchlog writes",
    },
    FigureColumn {
        store: "cassandra",
        name: "paxos_writes",
        key: "paxos_per_order",
        header: "paxos writes/order",
        unit: "system.paxos writes",
    },
    FigureColumn {
        store: "mongodb",
        name: "documents_written",
        key: "docs_per_order",
        header: "docs/order",
        unit: "documents",
    },
    FigureColumn {
        store: "mongodb",
        name: "write_operations",
        key: "write_ops_per_order",
        header: "write ops/order",
        unit: "write operations",
    },
    FigureColumn {
        store: "mongodb",
        name: "transactions",
        key: "txns_per_order",
        header: "txns/order",
        unit: "transactions",
    },
];

/// The figure of column `i` in a run.
pub fn figure(r: &RunResult, i: usize) -> Option<&CapacityFigure> {
    let c = &FIGURES[i];
    r.capacity.as_ref()?.figure(c.store, c.name)
}

/// Whether any run has the figure of column `i` (shown by default then).
pub fn shown(runs: &[RunResult], i: usize) -> bool {
    runs.iter().any(|r| figure(r, i).is_some())
}

/// The sources of a run's figures, short: `WCU mixed, stream reads counted`.
pub fn sources(r: &RunResult) -> Option<String> {
    let c = r.capacity.as_ref()?;
    let parts: Vec<String> = c
        .figures
        .iter()
        .map(|f| {
            let label = FIGURES
                .iter()
                .find(|x| x.store == f.store && x.name == f.name)
                .map_or(f.name.as_str(), |x| x.header.trim_end_matches("/order"));
            let wide = if f.server_wide { ", server-wide" } else { "" };
            match (&f.missing, f.source) {
                (Some(why), _) => format!("{label}: {why}"),
                (None, s) => format!("{label} {}{wide}", s.as_str()),
            }
        })
        .collect();
    (!parts.is_empty()).then(|| parts.join("; "))
}

/// One line for the run's summary: `WCU 2 (modelled) | stream reads 0.15 (counted)`.
pub fn summary_line(r: &RunResult) -> Option<String> {
    let c = r.capacity.as_ref()?;
    let parts: Vec<String> = c
        .figures
        .iter()
        .map(|f| {
            let label = FIGURES
                .iter()
                .find(|x| x.store == f.store && x.name == f.name)
                .map_or(f.name.as_str(), |x| x.header.trim_end_matches("/order"));
            match (&f.missing, f.per_order) {
                (Some(why), _) => format!("{label}: {why}"),
                (None, Some(p)) => format!("{label} {p} ({})", f.source.as_str()),
                (None, None) => format!("{label} - ({})", f.source.as_str()),
            }
        })
        .collect();
    (!parts.is_empty()).then(|| parts.join(" | "))
}

/// The price table of a user file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Prices {
    pub currency: String,
    /// Per store: figure name -> price per million units.
    pub per_million: BTreeMap<String, BTreeMap<String, f64>>,
    /// Per store: price of all its nodes for one hour.
    pub per_hour: BTreeMap<String, f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPrices {
    currency: Option<String>,
    dynamodb: Option<BTreeMap<Spanned<String>, Spanned<toml::Value>>>,
    cassandra: Option<BTreeMap<Spanned<String>, Spanned<toml::Value>>>,
    mongodb: Option<BTreeMap<Spanned<String>, Spanned<toml::Value>>>,
}

impl Prices {
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the price file {}", path.display()))?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses a price file; every error names the file, line, field and fix.
    pub fn parse(text: &str, file: &str) -> anyhow::Result<Self> {
        let at = |offset: usize| {
            let (line, col) = crate::scenario::line_col(text, offset);
            format!("{file}:{line}:{col}")
        };
        let raw: RawPrices = toml::from_str(text).map_err(|e| {
            let place = e.span().map_or(file.to_string(), |s| at(s.start));
            anyhow::anyhow!(
                "{place}: {}\n  fix: the price file has `currency = \"USD\"` and one table per store ([dynamodb], [cassandra], [mongodb]) of prices per million units or `node_hour`/`nodes`",
                e.message()
            )
        })?;
        let mut prices = Prices {
            currency: raw.currency.unwrap_or_else(|| "USD".into()),
            ..Self::default()
        };
        for (store, table) in [
            ("dynamodb", raw.dynamodb),
            ("cassandra", raw.cassandra),
            ("mongodb", raw.mongodb),
        ] {
            let Some(table) = table else { continue };
            let names: Vec<&str> = FIGURES
                .iter()
                .filter(|f| f.store == store)
                .map(|f| f.name)
                .collect();
            let mut nodes = 1.0;
            let mut node_hour = None;
            for (key, value) in table {
                let field = format!("{store}.{}", key.get_ref());
                let n = match value.get_ref() {
                    toml::Value::Float(f) => *f,
                    toml::Value::Integer(i) => *i as f64,
                    other => anyhow::bail!(
                        "{}: field `{field}` is a {}, not a price\n  fix: write a number, e.g. {} = 1.25",
                        at(value.span().start),
                        other.type_str(),
                        key.get_ref()
                    ),
                };
                if !n.is_finite() || n < 0.0 {
                    anyhow::bail!(
                        "{}: field `{field}` is {n}\n  fix: a price or node count is a number of zero or more",
                        at(value.span().start)
                    );
                }
                match key.get_ref().as_str() {
                    "node_hour" => node_hour = Some(n),
                    "nodes" => nodes = n,
                    name if names.contains(&name) => {
                        prices
                            .per_million
                            .entry(store.to_string())
                            .or_default()
                            .insert(name.to_string(), n);
                    }
                    other => anyhow::bail!(
                        "{}: unknown field `{store}.{other}`\n  fix: use one of {}, node_hour, nodes (prices per million units, or per node-hour)",
                        at(key.span().start),
                        names.join(", ")
                    ),
                }
            }
            if let Some(h) = node_hour {
                prices.per_hour.insert(store.to_string(), h * nodes);
            }
        }
        Ok(prices)
    }

    /// The cost of one million orders of a run: each priced figure's units per
    /// order times its price, plus the node-hours the run's load took per order.
    /// `None` when nothing of the run is priced or a priced figure is missing.
    pub fn per_million_orders(&self, r: &RunResult) -> Option<f64> {
        let cap = r.capacity.as_ref()?;
        let mut cost = 0.0;
        let mut priced = false;
        for f in &cap.figures {
            if let Some(price) = self.per_million.get(&f.store).and_then(|p| p.get(&f.name)) {
                // Per million orders, per million units: the per-order figure times the price.
                cost += f.per_order? * price;
                priced = true;
            }
        }
        let stores: std::collections::BTreeSet<&str> =
            cap.figures.iter().map(|f| f.store.as_str()).collect();
        for store in stores {
            if let Some(hourly) = self.per_hour.get(store)
                && cap.orders > 0
                && r.workload.load_s > 0.0
            {
                cost += hourly * r.workload.load_s / 3600.0 / cap.orders as f64 * 1e6;
                priced = true;
            }
        }
        priced.then(|| (cost * 1e4).round() / 1e4)
    }
}

/// Units of one figure as money: how it reads in the legend.
pub fn legend(prices: Option<&Prices>) -> String {
    let mut s = String::from(
        " Capacity per order over every attempt (retries and the relay included): WCU/RCU = \
         DynamoDB write/read capacity units, stream reads = GetRecords calls; mutations, \
         batchlog, paxos writes = Cassandra's local writes to the run's tables, system.batches and system.paxos; docs, write ops, txns = MongoDB serverStatus (documents, write operations or commands, transactions); \
         capacity = where each figure comes from (reported by the server, modelled from \
         the published sizing rules, server-wide counters include other clients).",
    );
    if let Some(p) = prices {
        s.push_str(&format!(
            " cost/M orders = {} per million orders from the price file.",
            p.currency
        ));
    }
    s
}

/// Whether a figure is a number to show (never a zero for what was not reported).
pub fn number(f: &CapacityFigure) -> Option<f64> {
    (f.source != CapacitySource::NotReported)
        .then_some(f.per_order)
        .flatten()
}

/// The HTML report's capacity section: one row per figure, with its source,
/// the attempts behind it, the model beside a reported figure, and the parts.
pub fn html_section(r: &RunResult, prices: Option<&Prices>) -> String {
    use super::junit::escape;
    let Some(c) = r.capacity.as_ref() else {
        return String::new();
    };
    let mut s = format!(
        "<h2>Capacity per order</h2>\n<p>Over every attempt of the {} issued operations (retries, failed and indeterminate operations, and the relay's work included).</p>\n<table>\n<tr><th>store</th><th>figure</th><th>per order</th><th>total</th><th>source</th><th>attempts</th><th>model</th><th>server's report</th><th>parts</th></tr>\n",
        c.orders
    );
    for f in &c.figures {
        let per = match (&f.missing, f.per_order) {
            (Some(why), _) => escape(why),
            (None, Some(p)) => format!("{p}"),
            (None, None) => "-".into(),
        };
        let wide = if f.server_wide {
            " (server-wide: includes other clients)"
        } else {
            ""
        };
        let attempts = match (f.attempts, f.reported_attempts, f.unanswered) {
            (Some(a), Some(rep), Some(u)) => {
                format!("{a} ({rep} reported, {u} unanswered)")
            }
            (Some(a), _, _) => a.to_string(),
            _ => "-".into(),
        };
        let parts: Vec<String> = f
            .parts
            .iter()
            .map(|(k, v)| format!("{}: {v}", escape(k)))
            .collect();
        s.push_str(&format!(
            "<tr><td>{}</td><td>{} ({})</td><td class=\"n\">{per}</td><td class=\"n\">{}</td><td>{}{wide}</td><td>{attempts}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td></tr>\n",
            escape(&f.store),
            escape(&f.name),
            escape(&f.unit),
            f.total.map_or("-".into(), |t| t.to_string()),
            f.source.as_str(),
            f.modelled_total.map_or("-".into(), |t| t.to_string()),
            f.reported_total.map_or("-".into(), |t| t.to_string()),
            parts.join("<br>")
        ));
    }
    s.push_str("</table>\n");
    if let Some(p) = prices {
        match p.per_million_orders(r) {
            Some(cost) => s.push_str(&format!(
                "<p>Cost of a million orders at the price table: {cost} {}.</p>\n",
                escape(&p.currency)
            )),
            None => {
                s.push_str("<p class=\"muted\">The price table prices none of these figures.</p>\n")
            }
        }
    }
    if !c.notes.is_empty() {
        s.push_str("<ul>\n");
        for n in &c.notes {
            s.push_str(&format!("<li>{}</li>\n", escape(n)));
        }
        s.push_str("</ul>\n");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_price_file_parses_and_bad_ones_name_file_line_field_and_fix() {
        let p = Prices::parse(
            "currency = \"EUR\"\n[dynamodb]\nwrite_units = 1.25\nread_units = 0.25\n[cassandra]\nnode_hour = 0.5\nnodes = 3\n",
            "p.toml",
        )
        .unwrap();
        assert_eq!(p.currency, "EUR");
        assert_eq!(p.per_million["dynamodb"]["write_units"], 1.25);
        assert_eq!(p.per_hour["cassandra"], 1.5);
        let e = Prices::parse("[dynamodb]\nwrite_units = 1\nwcu = 2\n", "p.toml").unwrap_err();
        let e = e.to_string();
        assert!(
            e.starts_with("p.toml:3:1: unknown field `dynamodb.wcu`"),
            "{e}"
        );
        assert!(e.contains("fix: use one of write_units, read_units"), "{e}");
        let e = Prices::parse("[dynamodb]\nwrite_units = \"cheap\"\n", "p.toml").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("p.toml:2:15: field `dynamodb.write_units` is a string"),
            "{e}"
        );
        let e = Prices::parse("[dynamodb]\nread_units = -1\n", "p.toml").unwrap_err();
        assert!(
            e.to_string()
                .contains("p.toml:2:14: field `dynamodb.read_units` is -1"),
            "{e}"
        );
        let e = Prices::parse("[redis]\nx = 1\n", "p.toml").unwrap_err();
        assert!(e.to_string().starts_with("p.toml:1:"), "{e}");
        assert!(e.to_string().contains("fix:"), "{e}");
    }

    fn with_wcu(mut r: RunResult, per_order: Option<f64>, missing: Option<&str>) -> RunResult {
        r.capacity = Some(crate::result::CapacityResult {
            orders: 10,
            figures: vec![CapacityFigure {
                store: "dynamodb".into(),
                name: "write_units".into(),
                unit: "WCU".into(),
                total: per_order.map(|p| p * 10.0),
                per_order,
                source: if missing.is_some() {
                    CapacitySource::NotReported
                } else {
                    CapacitySource::Modelled
                },
                server_wide: false,
                missing: missing.map(str::to_string),
                attempts: None,
                reported_attempts: None,
                unanswered: None,
                modelled_total: None,
                reported_total: None,
                parts: BTreeMap::new(),
            }],
            notes: Vec::new(),
        });
        r
    }

    #[test]
    fn compare_shows_a_column_per_figure_a_run_has_and_the_cost_with_prices() {
        use crate::report::compare::{self, Column, CompareOptions, Value};
        let runs = vec![
            with_wcu(crate::report::tests::naive(), Some(2.0), None),
            with_wcu(
                crate::report::tests::transaction(),
                None,
                Some("not reported by x"),
            ),
            crate::report::tests::streams(),
        ];
        let cmp = compare::compare(&runs, None, &CompareOptions::default());
        let i = cmp
            .columns
            .iter()
            .position(|c| *c == Column::Capacity(0))
            .unwrap();
        assert!(
            !cmp.columns.contains(&Column::Capacity(1)),
            "no run has RCU"
        );
        assert!(!cmp.columns.contains(&Column::Cost), "no price table");
        assert_eq!(cmp.rows[0][i], Value::Number(Some(2.0)));
        assert_eq!(
            cmp.rows[1][i],
            Value::Text("not reported".into()),
            "never a zero"
        );
        assert_eq!(
            cmp.rows[2][i],
            Value::Number(None),
            "a run without the figure"
        );
        let opts = CompareOptions {
            prices: Some(Prices::parse("[dynamodb]\nwrite_units = 1.25\n", "p").unwrap()),
            ..CompareOptions::default()
        };
        let cmp = compare::compare(&runs, None, &opts);
        let c = cmp.columns.iter().position(|c| *c == Column::Cost).unwrap();
        assert_eq!(cmp.rows[0][c], Value::Number(Some(2.5)));
        assert_eq!(cmp.rows[1][c], Value::Number(None));
        assert!(compare::legend(&cmp).contains("USD per million orders"));
        assert_eq!(Column::parse("wcu_per_order").unwrap(), Column::Capacity(0));
        assert_eq!(
            Column::parse("cost_per_million_orders").unwrap(),
            Column::Cost
        );
    }

    #[test]
    fn cost_is_units_per_order_times_price() {
        let mut r = crate::report::tests::naive();
        r.workload.load_s = 3600.0;
        r.capacity = Some(crate::result::CapacityResult {
            orders: 1000,
            figures: vec![CapacityFigure {
                store: "dynamodb".into(),
                name: "write_units".into(),
                unit: "WCU".into(),
                total: Some(2000.0),
                per_order: Some(2.0),
                source: CapacitySource::Reported,
                server_wide: false,
                missing: None,
                attempts: None,
                reported_attempts: None,
                unanswered: None,
                modelled_total: None,
                reported_total: None,
                parts: BTreeMap::new(),
            }],
            notes: Vec::new(),
        });
        let p = Prices::parse("[dynamodb]\nwrite_units = 1.25\n", "p").unwrap();
        // 2 WCU per order, 1.25 per million WCU: 2.5 per million orders.
        assert_eq!(p.per_million_orders(&r), Some(2.5));
        let p = Prices::parse("[dynamodb]\nnode_hour = 2\nnodes = 2\n", "p").unwrap();
        // 4 per hour, one hour for 1000 orders: 4000 per million orders.
        assert_eq!(p.per_million_orders(&r), Some(4000.0));
        let p = Prices::parse("[cassandra]\nmutations = 1\n", "p").unwrap();
        assert_eq!(p.per_million_orders(&r), None, "nothing of the run priced");
    }
}
