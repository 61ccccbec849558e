//! `[namespace]`: where a run's tables, collections or keyspace go. By default a
//! new namespace per run (`<prefix>_<time>_<hex>`); `name` fixes it (a keyspace or
//! database made by an administrator, say), and `reuse` allows it to exist already.

use super::super::error::Locator;
use super::super::raw::RawScenario;
use super::super::*;
use super::Res;

pub(super) fn namespace(raw: &RawScenario, at: &Locator) -> Res<NamespaceSpec> {
    let ns = raw.namespace.as_ref();
    let spec = NamespaceSpec {
        prefix: ns
            .and_then(|n| n.prefix.clone())
            .unwrap_or_else(|| "dw".into()),
        keep: ns.and_then(|n| n.keep).unwrap_or(false),
        name: ns.and_then(|n| n.name.clone()),
        reuse: ns.and_then(|n| n.reuse).unwrap_or(false),
    };
    if spec.prefix.is_empty()
        || spec.prefix.len() > 12
        || !spec
            .prefix
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        || !spec.prefix.starts_with(|c: char| c.is_ascii_lowercase())
    {
        return Err(at.error(
            "namespace.prefix",
            format!(
                "`{}` cannot prefix table, keyspace and database names",
                spec.prefix
            ),
            "use 1 to 12 lowercase letters or digits, starting with a letter, e.g. prefix = \"dw\"",
        ));
    }
    if let Some(name) = &spec.name {
        if ns.is_some_and(|n| n.prefix.is_some()) {
            return Err(at.error(
                "namespace.prefix",
                "`prefix` and `name` are both set; a fixed name has no prefix",
                "keep `name` (the same namespace every run) or `prefix` (a new one per run)",
            ));
        }
        // What a Cassandra keyspace, a MongoDB database and a DynamoDB table
        // prefix all accept.
        let ok = (1..=40).contains(&name.len())
            && name.starts_with(|c: char| c.is_ascii_lowercase())
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !ok {
            return Err(at.error(
                "namespace.name",
                format!("`{name}` cannot name a keyspace, a database and tables"),
                "use 1 to 40 lowercase letters, digits or `_`, starting with a letter, e.g. name = \"dualwrite\"",
            ));
        }
    }
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use crate::scenario::parse;
    use std::path::Path;

    fn text(ns: &str) -> String {
        format!(
            "name = \"n\"\n[target]\nstore = \"memory\"\n[namespace]\n{ns}\n[pattern]\nname = \"naive\"\n[workload]\nrate = 10\nduration = \"1s\"\n"
        )
    }

    #[test]
    fn a_fixed_name_replaces_the_prefix_and_reuse_is_explicit() {
        let s = parse(
            Path::new("n.toml"),
            &text("name = \"dualwrite\"\nreuse = true"),
        )
        .unwrap();
        assert_eq!(s.namespace.for_run("dw_x_1"), "dualwrite");
        assert!(s.namespace.reuse);
        let s = parse(Path::new("n.toml"), &text("prefix = \"ci\"")).unwrap();
        assert_eq!(s.namespace.for_run("ci_x_1"), "ci_x_1");
        assert!(!s.namespace.reuse);
        let e = parse(Path::new("n.toml"), &text("name = \"dw\"\nprefix = \"dw\"")).unwrap_err();
        assert_eq!(e.field, "namespace.prefix");
        let e = parse(Path::new("n.toml"), &text("name = \"Bad-Name\"")).unwrap_err();
        assert_eq!(e.field, "namespace.name");
    }
}
