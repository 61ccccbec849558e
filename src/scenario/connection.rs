//! How one connection logs in and encrypts ([`Connection`]), and where the
//! scenario's endpoints are ([`Remote`]: anything outside the loopback range).
//! Pure text handling: nothing here resolves a name or opens a socket, so the
//! guard rail on remote endpoints is decided before any client exists.

use serde::Serialize;
use std::net::IpAddr;
use std::path::PathBuf;

/// Login and TLS settings of one connection (validated for its store).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Connection {
    /// The user to log in as (Cassandra, MongoDB). `None`: the store's
    /// `DUALWRITE_<STORE>_USER` variable, else no login.
    pub username: Option<String>,
    /// The environment variable holding the password, read at connect time.
    /// `None`: `DUALWRITE_<STORE>_PASSWORD`.
    pub password_env: Option<String>,
    /// TLS on this connection (`None`: plain TCP, or what a MongoDB URI says).
    pub tls: Option<TlsSettings>,
    /// MongoDB: the deployment's connection string (never with a password).
    pub uri: Option<String>,
    /// DynamoDB: the region (else the SDK's region chain).
    pub region: Option<String>,
    /// DynamoDB: the profile of the shared config and credentials files.
    pub profile: Option<String>,
}

impl Connection {
    /// The user, from the scenario or the store's environment variable.
    pub fn user(&self, store: &str) -> Option<String> {
        self.username
            .clone()
            .or_else(|| std::env::var(default_var(store, "USER")).ok())
            .filter(|u| !u.is_empty())
    }

    /// The name of the variable the password is read from.
    pub fn password_var(&self, store: &str) -> String {
        self.password_env
            .clone()
            .unwrap_or_else(|| default_var(store, "PASSWORD"))
    }

    /// The password from the environment, for `user`: an error names the variable
    /// (never a value) when it is not set.
    pub fn password(&self, store: &str, user: &str) -> anyhow::Result<String> {
        let var = self.password_var(store);
        match std::env::var(&var) {
            Ok(p) if !p.is_empty() => Ok(p),
            _ => anyhow::bail!(
                "{store} logs in as `{user}`, but the environment variable {var} (its password) is not set\n  hint: export {var}=...; passwords are never read from scenario files"
            ),
        }
    }
}

/// `DUALWRITE_CASSANDRA_PASSWORD`, `DUALWRITE_MONGODB_USER`.
pub fn default_var(store: &str, what: &str) -> String {
    format!("DUALWRITE_{}_{what}", store.to_ascii_uppercase())
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TlsSettings {
    /// PEM CA bundle the server's certificate must chain to (else the public roots).
    pub ca_file: Option<PathBuf>,
    /// Client certificate (PEM); MongoDB: certificate and key in this one file.
    pub cert_file: Option<PathBuf>,
    /// The client certificate's private key (PEM), where separate.
    pub key_file: Option<PathBuf>,
    /// The name the server's certificate is checked against, and sent as SNI where
    /// the driver sends one, instead of the address connected to (a proxy).
    pub server_name: Option<String>,
}

/// DynamoDB's `endpoint = "aws"`: the SDK's own endpoint for the region.
pub const AWS_ENDPOINT: &str = "aws";

/// An endpoint of the scenario outside the loopback range.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Remote {
    /// The scenario field that names it (`target.primary.endpoint`).
    pub field: String,
    /// The host, as written (never with credentials).
    pub host: String,
    /// The connection that would reach it (`None`: the Toxiproxy API).
    pub side: Option<crate::scenario::Side>,
}

/// A host as written in an endpoint: an IP address or a name.
pub fn is_loopback_host(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    match bare.parse::<IpAddr>() {
        Ok(IpAddr::V4(v4)) => v4.is_loopback(),
        Ok(IpAddr::V6(v6)) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
        // Only the one name that never needs a resolver: any other name may
        // resolve anywhere, and resolving it would already be network traffic.
        Err(_) => bare.eq_ignore_ascii_case("localhost"),
    }
}

/// The host of `host:port`, `[v6]:port`, a bare host, or a URL
/// (`scheme://[user@]host[:port][/...]`).
pub fn host_of(endpoint: &str) -> String {
    let rest = endpoint
        .split_once("://")
        .map_or(endpoint, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    split_host_port(authority).0.to_string()
}

/// `host:port` -> (host, Some(port)); `[::1]:9042` -> ("[::1]", ...); a bare IPv6
/// address keeps its colons.
pub fn split_host_port(authority: &str) -> (&str, Option<&str>) {
    if authority.starts_with('[') {
        return match authority.find(']') {
            Some(end) => {
                let port = authority[end + 1..].strip_prefix(':');
                (&authority[..=end], port)
            }
            None => (authority, None),
        };
    }
    match authority.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => (h, Some(p)),
        _ => (authority, None),
    }
}

/// A MongoDB connection string, split without resolving anything.
#[derive(Debug, Clone, PartialEq)]
pub struct MongoUri {
    pub srv: bool,
    pub user: Option<String>,
    /// Whether the user part carries a password (`user:pass@`): always refused.
    pub has_password: bool,
    pub hosts: Vec<String>,
    /// `key=value` pairs after `?`, in order.
    pub options: Vec<(String, String)>,
}

impl MongoUri {
    pub fn parse(uri: &str) -> Result<Self, String> {
        let (srv, rest) = if let Some(r) = uri.strip_prefix("mongodb+srv://") {
            (true, r)
        } else if let Some(r) = uri.strip_prefix("mongodb://") {
            (false, r)
        } else {
            return Err(
                "a MongoDB connection string starts with mongodb:// or mongodb+srv://".into(),
            );
        };
        let (authority, tail) = match rest.find(['/', '?']) {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        let (userinfo, hosts) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let (user, has_password) = match userinfo {
            Some(u) => match u.split_once(':') {
                Some((name, _)) => (Some(name.to_string()), true),
                None => (Some(u.to_string()), false),
            },
            None => (None, false),
        };
        let hosts: Vec<String> = hosts
            .split(',')
            .filter(|h| !h.is_empty())
            .map(str::to_string)
            .collect();
        if hosts.is_empty() {
            return Err("the connection string names no host".into());
        }
        if srv && (hosts.len() > 1 || split_host_port(&hosts[0]).1.is_some()) {
            return Err("mongodb+srv:// takes one host name without a port".into());
        }
        let query = tail.split_once('?').map_or("", |(_, q)| q);
        let options = query
            .split('&')
            .filter(|kv| !kv.is_empty())
            .map(|kv| match kv.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (kv.to_string(), String::new()),
            })
            .collect();
        Ok(Self {
            srv,
            user: user.map(|u| percent_decode(&u)),
            has_password,
            hosts,
            options,
        })
    }

    /// The value of an option (MongoDB option names are case-insensitive).
    pub fn option(&self, name: &str) -> Option<&str> {
        self.options
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Options that carry a secret (refused in scenario files).
    pub fn secret_option(&self) -> Option<&str> {
        self.options.iter().find_map(|(k, v)| {
            let secret = k.eq_ignore_ascii_case("tlsCertificateKeyFilePassword")
                || k.eq_ignore_ascii_case("proxyPassword")
                || (k.eq_ignore_ascii_case("authMechanismProperties")
                    && v.to_ascii_uppercase().contains("AWS_SESSION_TOKEN"));
            secret.then_some(k.as_str())
        })
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_127_8_the_ipv6_loopback_and_localhost_only() {
        for local in [
            "127.0.0.1",
            "127.3.2.1",
            "[::1]",
            "::1",
            "localhost",
            "LOCALHOST",
            "::ffff:127.0.0.1",
        ] {
            assert!(is_loopback_host(local), "{local}");
        }
        for remote in [
            "10.0.0.5",
            "0.0.0.0",
            "db.internal",
            "localhost.example.com",
            "[2001:db8::1]",
            "169.254.169.254",
            "",
        ] {
            assert!(!is_loopback_host(remote), "{remote}");
        }
    }

    #[test]
    fn hosts_come_out_of_every_endpoint_form() {
        assert_eq!(host_of("127.0.0.1:9042"), "127.0.0.1");
        assert_eq!(host_of("[::1]:9042"), "[::1]");
        assert_eq!(host_of("db.internal"), "db.internal");
        assert_eq!(
            host_of("https://dynamodb.eu-west-1.amazonaws.com"),
            "dynamodb.eu-west-1.amazonaws.com"
        );
        assert_eq!(host_of("http://user@10.1.2.3:8000/x?y"), "10.1.2.3");
    }

    #[test]
    fn mongodb_uris_split_without_resolving() {
        let u = MongoUri::parse(
            "mongodb+srv://dw%40ops@cluster0.example.net/?authSource=admin&tls=true",
        )
        .unwrap();
        assert!(u.srv);
        assert_eq!(u.user.as_deref(), Some("dw@ops"));
        assert!(!u.has_password);
        assert_eq!(u.hosts, ["cluster0.example.net"]);
        assert_eq!(u.option("AUTHSOURCE"), Some("admin"));
        let u = MongoUri::parse("mongodb://a:secret@h1:27017,h2:27018/db?replicaSet=rs0").unwrap();
        assert!(u.has_password);
        assert_eq!(u.hosts, ["h1:27017", "h2:27018"]);
        assert!(
            MongoUri::parse("mongodb://h/?tlsCertificateKeyFilePassword=x")
                .unwrap()
                .secret_option()
                .is_some()
        );
        assert!(MongoUri::parse("mongodb+srv://h:27017/").is_err());
        assert!(MongoUri::parse("http://h/").is_err());
    }
}
