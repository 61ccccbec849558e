//! Connection settings of `[target]` and `[target.<side>]`: login, TLS, a MongoDB
//! connection string, the AWS region and profile. `[target]` holds defaults for
//! every side whose store takes the key; a side's own key wins. Which keys a store
//! takes is in its registry entry (`StoreSpec::connection_options`). Secrets are
//! refused wherever they appear: a scenario file is copied into every run's
//! results, so a password in it would be a password on disk, in CI artifacts and in
//! reports.

use std::net::IpAddr;

use super::super::connection::{Connection, MongoUri, TlsSettings, default_var};
use super::super::error::Locator;
use super::super::raw::{RawSide, RawTarget};
use super::super::{ScenarioError, StoreKind};
use super::Res;

/// Every connection key, in the order messages list them.
pub(super) const KEYS: [&str; 10] = [
    "username",
    "password_env",
    "tls",
    "tls_ca_file",
    "tls_cert_file",
    "tls_key_file",
    "tls_server_name",
    "uri",
    "region",
    "profile",
];

/// The connection keys of one table, as written.
#[derive(Default, Clone, Copy)]
pub(super) struct Keys<'a> {
    username: Option<&'a str>,
    password_env: Option<&'a str>,
    tls: Option<bool>,
    tls_ca_file: Option<&'a str>,
    tls_cert_file: Option<&'a str>,
    tls_key_file: Option<&'a str>,
    tls_server_name: Option<&'a str>,
    uri: Option<&'a str>,
    region: Option<&'a str>,
    profile: Option<&'a str>,
    /// Secret keys present (`password`, `secret_access_key`, ...).
    secrets: [(&'static str, bool); 4],
}

macro_rules! keys_of {
    ($raw:expr) => {
        Keys {
            username: $raw.username.as_deref(),
            password_env: $raw.password_env.as_deref(),
            tls: $raw.tls,
            tls_ca_file: $raw.tls_ca_file.as_deref(),
            tls_cert_file: $raw.tls_cert_file.as_deref(),
            tls_key_file: $raw.tls_key_file.as_deref(),
            tls_server_name: $raw.tls_server_name.as_deref(),
            uri: $raw.uri.as_deref(),
            region: $raw.region.as_deref(),
            profile: $raw.profile.as_deref(),
            secrets: [
                ("password", $raw.password.is_some()),
                ("access_key_id", $raw.access_key_id.is_some()),
                ("secret_access_key", $raw.secret_access_key.is_some()),
                ("session_token", $raw.session_token.is_some()),
            ],
        }
    };
}

impl<'a> Keys<'a> {
    pub(super) fn of_target(t: &'a RawTarget) -> Self {
        keys_of!(t)
    }

    pub(super) fn of_side(s: Option<&'a RawSide>) -> Self {
        s.map(|s| keys_of!(s)).unwrap_or_default()
    }

    /// Takes every key `other` writes (the relay inherits the primary's settings).
    pub(super) fn inherit(&mut self, other: &Keys<'a>) {
        macro_rules! take {
            ($($f:ident),*) => { $( if other.$f.is_some() { self.$f = other.$f; } )* };
        }
        take!(
            username,
            password_env,
            tls,
            tls_ca_file,
            tls_cert_file,
            tls_key_file,
            tls_server_name,
            uri,
            region,
            profile
        );
    }

    /// Whether `key` is written in this table.
    pub(super) fn has(&self, key: &str) -> bool {
        match key {
            "username" => self.username.is_some(),
            "password_env" => self.password_env.is_some(),
            "tls" => self.tls.is_some(),
            "tls_ca_file" => self.tls_ca_file.is_some(),
            "tls_cert_file" => self.tls_cert_file.is_some(),
            "tls_key_file" => self.tls_key_file.is_some(),
            "tls_server_name" => self.tls_server_name.is_some(),
            "uri" => self.uri.is_some(),
            "region" => self.region.is_some(),
            "profile" => self.profile.is_some(),
            _ => false,
        }
    }

    fn text(&self, key: &str) -> Option<&'a str> {
        match key {
            "username" => self.username,
            "password_env" => self.password_env,
            "tls_ca_file" => self.tls_ca_file,
            "tls_cert_file" => self.tls_cert_file,
            "tls_key_file" => self.tls_key_file,
            "tls_server_name" => self.tls_server_name,
            "uri" => self.uri,
            "region" => self.region,
            "profile" => self.profile,
            _ => None,
        }
    }

    /// Refuses any secret written in this table (`path` is `target` or `target.primary`).
    pub(super) fn refuse_secrets(
        &self,
        path: &str,
        store: Option<StoreKind>,
        at: &Locator,
    ) -> Res<()> {
        for (key, present) in self.secrets {
            if !present {
                continue;
            }
            let fix = if key == "password" {
                let var = default_var(store.map_or("<store>", StoreKind::name), "PASSWORD");
                format!(
                    "delete the line, put the password in an environment variable and name the variable here: password_env = \"{var}\" ({var} is also the default)"
                )
            } else {
                "delete the line: DynamoDB takes AWS credentials from the SDK (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN in the environment, or profile = \"name\" for the shared config and credentials files, SSO included)".to_string()
            };
            return Err(at.error(
                &format!("{path}.{key}"),
                "secrets are never read from scenario files: the file is copied into every run's results",
                fix,
            ));
        }
        Ok(())
    }
}

/// The error for a key a store does not take.
pub(super) fn not_taken(path: &str, key: &str, store: StoreKind, at: &Locator) -> ScenarioError {
    let spec = store.spec();
    let takes = if spec.connection_options.is_empty() {
        "no connection settings".to_string()
    } else {
        spec.connection_options.join(", ")
    };
    at.error(
        &format!("{path}.{key}"),
        format!("`{key}` is not used by {store}"),
        format!("remove it; {store} takes {takes}. {}", spec.connection_note),
    )
}

/// One side's connection: its own keys over `[target]`'s, checked for its store.
pub(super) fn connection(
    path: &str,
    own: Keys,
    defaults: Keys,
    store: StoreKind,
    at: &Locator,
) -> Res<Connection> {
    let takes = |key: &str| store.spec().connection_options.contains(&key);
    for key in KEYS {
        if own.has(key) && !takes(key) {
            return Err(not_taken(path, key, store, at));
        }
    }
    // The value of a key and the field it came from (for errors).
    let pick = |key: &'static str| -> Option<(&str, String)> {
        if let Some(v) = own.text(key) {
            Some((v, format!("{path}.{key}")))
        } else if takes(key) {
            defaults.text(key).map(|v| (v, format!("target.{key}")))
        } else {
            None
        }
    };
    let tls_flag = match own.tls {
        Some(t) => Some((t, format!("{path}.tls"))),
        None if takes("tls") => defaults.tls.map(|t| (t, "target.tls".to_string())),
        None => None,
    };
    let nonempty = |key: &'static str| -> Res<Option<(String, String)>> {
        match pick(key) {
            Some((v, field)) if v.trim().is_empty() => Err(at.error(
                &field,
                "is empty",
                format!("give a value or remove `{key}`"),
            )),
            Some((v, field)) => Ok(Some((v.to_string(), field))),
            None => Ok(None),
        }
    };
    let username = nonempty("username")?.map(|(v, _)| v);
    let password_env = match nonempty("password_env")? {
        Some((v, field)) if !is_env_name(&v) => {
            return Err(at.error(
                &field,
                format!("`{v}` is not an environment variable name"),
                format!(
                    "name the variable that holds the password, e.g. password_env = \"{}\"",
                    default_var(store.name(), "PASSWORD")
                ),
            ));
        }
        other => other.map(|(v, _)| v),
    };
    let ca = nonempty("tls_ca_file")?;
    let cert = nonempty("tls_cert_file")?;
    let key = nonempty("tls_key_file")?;
    let server_name = match nonempty("tls_server_name")? {
        Some((v, field)) if !is_server_name(&v) => {
            return Err(at.error(
                &field,
                format!("`{v}` is not a host name or IP address"),
                "give the name on the server's certificate, e.g. tls_server_name = \"cassandra.internal.example.com\"",
            ));
        }
        other => other,
    };
    let tls_files = [&ca, &cert, &key, &server_name];
    let tls = match tls_flag {
        Some((false, field)) => {
            if let Some((_, f)) = tls_files.iter().copied().flatten().next() {
                return Err(at.error(
                    f,
                    "set while TLS is off",
                    format!("remove it, or remove `{field} = false`"),
                ));
            }
            None
        }
        flag => (flag.is_some() || tls_files.iter().any(|f| f.is_some())).then(|| TlsSettings {
            ca_file: ca.as_ref().map(|(v, _)| at.path_beside(v)),
            cert_file: cert.as_ref().map(|(v, _)| at.path_beside(v)),
            key_file: key.as_ref().map(|(v, _)| at.path_beside(v)),
            server_name: server_name.as_ref().map(|(v, _)| v.clone()),
        }),
    };
    // A client certificate needs its key, unless the store reads both from one file.
    if takes("tls_key_file") {
        match (&cert, &key) {
            (Some((_, field)), None) => {
                return Err(at.error(
                    field,
                    "a client certificate without its private key",
                    "add tls_key_file = \"client.key\" (PEM)",
                ));
            }
            (None, Some((_, field))) => {
                return Err(at.error(
                    field,
                    "a private key without its client certificate",
                    "add tls_cert_file = \"client.pem\" (PEM)",
                ));
            }
            _ => {}
        }
    }
    let uri = match nonempty("uri")? {
        Some((v, field)) => {
            let parsed = MongoUri::parse(&v).map_err(|problem| {
                at.error(&field, problem, "write mongodb://[user@]host[:port][/?options] or mongodb+srv://[user@]name[/?options]")
            })?;
            if parsed.has_password {
                // Never echo the value: it holds the password.
                return Err(at.error(
                    &field,
                    "the connection string holds a password (user:password@); secrets are never read from scenario files: the file is copied into every run's results",
                    format!(
                        "keep only the user (mongodb://user@host/...) and put the password in an environment variable named by password_env (default {})",
                        default_var(store.name(), "PASSWORD")
                    ),
                ));
            }
            if let Some(option) = parsed.secret_option() {
                return Err(at.error(
                    &field,
                    format!("the connection string option `{option}` holds a secret; secrets are never read from scenario files"),
                    "remove the option (the environment and the SDK provide credentials)",
                ));
            }
            Some(v)
        }
        None => None,
    };
    let region = match nonempty("region")? {
        Some((v, field))
            if !v
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-') =>
        {
            return Err(at.error(
                &field,
                format!("`{v}` is not an AWS region"),
                "write the region's code, e.g. region = \"eu-west-1\"",
            ));
        }
        other => other.map(|(v, _)| v),
    };
    let profile = nonempty("profile")?.map(|(v, _)| v);
    Ok(Connection {
        username,
        password_env,
        tls,
        uri,
        region,
        profile,
    })
}

fn is_env_name(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A DNS name (letters, digits, `-`, dots; labels of 1 to 63) or an IP address.
fn is_server_name(s: &str) -> bool {
    if s.parse::<IpAddr>().is_ok() {
        return true;
    }
    s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

#[cfg(test)]
mod tests {
    use crate::scenario::{LoadOptions, ScenarioError, SideEndpoint, parse, parse_with};
    use std::path::Path;

    fn scenario(store: &str, target: &str) -> String {
        format!(
            "name = \"c\"\n[target]\nstore = \"{store}\"\n{target}\n[pattern]\nname = \"naive\"\n[workload]\nrate = 10\nduration = \"2s\"\n"
        )
    }

    fn err(text: &str) -> ScenarioError {
        parse(Path::new("dir/c.toml"), text).expect_err("must be rejected")
    }

    #[test]
    fn secrets_are_refused_wherever_written_and_never_echoed() {
        for (store, target, field) in [
            (
                "cassandra",
                "password = \"hunter2-secret\"",
                "target.password",
            ),
            (
                "cassandra",
                "[target.secondary]\npassword = \"hunter2-secret\"",
                "target.secondary.password",
            ),
            ("cassandra", "password = 42", "target.password"),
            (
                "dynamodb",
                "secret_access_key = \"hunter2-secret\"",
                "target.secret_access_key",
            ),
            (
                "dynamodb",
                "[target.primary]\nsession_token = \"hunter2-secret\"",
                "target.primary.session_token",
            ),
            (
                "mongodb",
                "uri = \"mongodb://dw:hunter2-secret@db.example.com/\"",
                "target.uri",
            ),
            (
                "mongodb",
                "uri = \"mongodb://db.example.com/?tlsCertificateKeyFilePassword=hunter2-secret\"",
                "target.uri",
            ),
        ] {
            let e = err(&scenario(store, target));
            assert_eq!(e.field, field, "{e}");
            assert!(e.line > 0, "{e}");
            assert!(
                !e.to_string().contains("hunter2"),
                "the secret is echoed: {e}"
            );
            assert!(
                e.problem.contains("secret") || e.problem.contains("password"),
                "{e}"
            );
        }
        let e = err(&scenario("cassandra", "password = \"x\""));
        assert!(
            e.fix
                .contains("password_env = \"DUALWRITE_CASSANDRA_PASSWORD\""),
            "{e}"
        );
    }

    #[test]
    fn remote_endpoints_need_allow_remote_from_the_file_or_the_command_line() {
        for (store, target, field, host) in [
            (
                "cassandra",
                "[target.primary]\nendpoint = \"10.0.0.5:9042\"",
                "target.primary.endpoint",
                "10.0.0.5",
            ),
            (
                "dynamodb",
                "[target.secondary]\nendpoint = \"aws\"",
                "target.secondary.endpoint",
                "the AWS endpoint",
            ),
            (
                "dynamodb",
                "[target.primary]\nendpoint = \"https://dynamodb.eu-west-1.amazonaws.com\"",
                "target.primary.endpoint",
                "dynamodb.eu-west-1.amazonaws.com",
            ),
            (
                "mongodb",
                "uri = \"mongodb+srv://dw@cluster0.example.net/\"",
                "target.uri",
                "cluster0.example.net (DNS SRV)",
            ),
            (
                "dynamodb",
                "toxiproxy = \"http://toxiproxy.internal:8474\"",
                "target.toxiproxy",
                "toxiproxy.internal",
            ),
        ] {
            let text = scenario(store, target);
            let e = err(&text);
            assert_eq!(e.field, field, "{e}");
            assert!(e.problem.contains(host), "{e}");
            assert!(
                e.fix.contains("allow_remote = true") && e.fix.contains("--allow-remote"),
                "{e}"
            );
            let allowed = parse_with(
                Path::new("c.toml"),
                &text,
                LoadOptions { allow_remote: true },
            )
            .unwrap();
            assert!(allowed.target.allow_remote && !allowed.target.remote.is_empty());
            let in_file = text.replace("[target]\n", "[target]\nallow_remote = true\n");
            parse(Path::new("c.toml"), &in_file).unwrap();
        }
        // Loopback in every spelling is local.
        for local in [
            "127.0.0.1:9042",
            "localhost:9042",
            "[::1]:9042",
            "127.9.9.9:1",
        ] {
            let s = parse(
                Path::new("c.toml"),
                &scenario(
                    "cassandra",
                    &format!("[target.primary]\nendpoint = \"{local}\""),
                ),
            )
            .unwrap();
            assert!(s.target.remote.is_empty(), "{local}");
        }
        // A remote relay endpoint matters only where there is a relay.
        let relay = "[target.relay]\nendpoint = \"10.0.0.5:9042\"";
        parse(Path::new("c.toml"), &scenario("cassandra", relay)).unwrap();
        let e = err(&scenario("cassandra", relay).replace("\"naive\"", "\"outbox\""));
        assert_eq!(e.field, "target.relay.endpoint");
    }

    #[test]
    fn each_store_takes_its_own_keys_and_says_which() {
        let e = err(&scenario("dynamodb", "[target.primary]\nusername = \"dw\""));
        assert_eq!(e.field, "target.primary.username");
        assert!(e.fix.contains("region, profile"), "{e}");
        let e = err(&scenario(
            "mongodb",
            "tls_cert_file = \"c.pem\"\ntls_key_file = \"c.key\"",
        ));
        assert_eq!(e.field, "target.tls_key_file");
        assert!(e.fix.contains("one PEM file"), "{e}");
        let e = err(&scenario("cassandra", "profile = \"staging\""));
        assert_eq!(e.field, "target.profile");
        // A [target] key applies to the sides whose store takes it.
        let s = parse(
            Path::new("c.toml"),
            "name = \"c\"\n[target]\ntls_ca_file = \"/ca.pem\"\nusername = \"dw\"\n[target.primary]\nstore = \"cassandra\"\n[target.secondary]\nstore = \"dynamodb\"\n[pattern]\nname = \"naive\"\nsecondary_key = \"fresh\"\n[workload]\nrate = 10\nduration = \"2s\"\n",
        )
        .unwrap();
        assert_eq!(s.target.primary.connection.username.as_deref(), Some("dw"));
        assert_eq!(s.target.secondary.connection.username, None);
        assert!(s.target.secondary.connection.tls.is_some());
    }

    #[test]
    fn tls_settings_are_consistent_and_files_are_read_beside_the_scenario() {
        let e = err(&scenario(
            "cassandra",
            "tls = false\ntls_ca_file = \"ca.pem\"",
        ));
        assert_eq!(e.field, "target.tls_ca_file");
        let e = err(&scenario("cassandra", "tls_cert_file = \"client.pem\""));
        assert!(e.problem.contains("without its private key"), "{e}");
        let e = err(&scenario("cassandra", "tls_server_name = \"not a name\""));
        assert_eq!(e.field, "target.tls_server_name");
        let s = parse(
            Path::new("dir/c.toml"),
            &scenario(
                "cassandra",
                "tls_ca_file = \"certs/ca.pem\"\n[target.primary]\ntls_server_name = \"db.example.com\"",
            ),
        )
        .unwrap();
        let tls = s.target.primary.connection.tls.clone().unwrap();
        assert_eq!(tls.ca_file.unwrap(), Path::new("dir/certs/ca.pem"));
        assert_eq!(tls.server_name.as_deref(), Some("db.example.com"));
        // The relay reads the primary's store: it takes the primary's settings.
        let s = parse(
            Path::new("c.toml"),
            &scenario(
                "cassandra",
                "[target.primary]\ntls_server_name = \"db.example.com\"",
            )
            .replace("\"naive\"", "\"outbox\""),
        )
        .unwrap();
        assert_eq!(s.target.relay_connection, s.target.primary.connection);
    }

    #[test]
    fn a_mongodb_uri_is_the_address_unless_a_proxy_stands_in_front_of_one_server() {
        let s = parse(
            Path::new("c.toml"),
            &scenario(
                "mongodb",
                "allow_remote = true\nuri = \"mongodb://dw@db.example.com:27017/?tls=true\"",
            ),
        )
        .unwrap();
        assert!(
            matches!(&s.target.primary.endpoint, SideEndpoint::Direct(u) if u.starts_with("mongodb://"))
        );
        let s = parse(
            Path::new("c.toml"),
            &scenario(
                "mongodb",
                "uri = \"mongodb://dw@db.example.com:27017/?tls=true\"\n[target.primary]\nproxy = \"mine_primary\"\n[target.secondary]\nproxy = \"mine_secondary\"",
            ),
        )
        .unwrap();
        assert_eq!(
            s.target.primary.endpoint,
            SideEndpoint::Proxy("mine_primary".into())
        );
        assert!(
            s.target.remote.is_empty(),
            "the uri's host is a name, not a destination"
        );
        let e = err(&scenario(
            "mongodb",
            "uri = \"mongodb+srv://cluster0.example.net/\"\n[target.primary]\nproxy = \"p\"",
        ));
        assert!(e.problem.contains("reaches one server"), "{e}");
    }

    #[test]
    fn tls_settings_the_way_in_would_ignore_are_refused() {
        let e = err(&scenario(
            "dynamodb",
            "tls_ca_file = \"ca.pem\"\n[target.primary]\nendpoint = \"http://127.0.0.1:5000\"",
        ));
        assert_eq!(e.field, "target.primary.endpoint");
        let e = err(&scenario(
            "dynamodb",
            "allow_remote = true\ntls_server_name = \"x.example.com\"\n[target.primary]\nendpoint = \"aws\"",
        ));
        assert_eq!(e.field, "target.tls_server_name");
        let e = err(&scenario(
            "mongodb",
            "allow_remote = true\nuri = \"mongodb://db.example.com/?tls=true\"\n[target.primary]\ntls_server_name = \"x.example.com\"",
        ));
        assert_eq!(e.field, "target.primary.tls_server_name");
        // Through a proxy, or to https://, the name is what makes TLS work.
        parse(
            Path::new("c.toml"),
            &scenario(
                "dynamodb",
                "tls_server_name = \"dynamodb.example.com\"\n[target.primary]\nendpoint = \"https://127.0.0.1:5443\"",
            ),
        )
        .unwrap();
    }
}
