//! How one side's MongoDB client is configured: where it connects, how it logs in,
//! TLS, and the bounds every call of this tool needs.
//!
//! - A direct `endpoint` or `uri` that is a connection string is the deployment:
//!   used as the driver parses it (`mongodb+srv`, replica sets, every option).
//! - Through a proxy (or a direct `host:port`), the side's `uri` gives the options
//!   (auth source and mechanism, TLS, ...) and the client talks to that one address
//!   with `directConnection=true`, or the driver would follow the server's own
//!   address and bypass the proxy. With TLS and a server name that is not the
//!   proxy's address, the client reaches the proxy through an in-process SOCKS5
//!   tunnel (`store/tunnel.rs`), so SNI and the certificate check use the name.
//!
//! The password comes from the environment, never from the scenario.

use anyhow::Context;
use mongodb::Client;
use mongodb::options::{ClientOptions, Credential, ServerAddress, Socks5Proxy, Tls, TlsOptions};
use std::time::Duration;

use super::SPEC;
use crate::scenario::{Connection, MongoUri, Side, SideEndpoint, split_host_port};
use crate::store::StoreContext;
use crate::store::tunnel::{Protocol, Tunnel};

/// A side's client settings, and the tunnel they may need (kept alive here).
pub(crate) struct MongoConn {
    options: ClientOptions,
    _tunnel: Option<Tunnel>,
}

impl MongoConn {
    /// A new client (its own pool: the checker's scans use a fresh one).
    pub(crate) fn client(&self) -> anyhow::Result<Client> {
        Ok(Client::with_options(self.options.clone())?)
    }

    pub(crate) async fn new(
        endpoint: &str,
        side: Side,
        ctx: &StoreContext,
    ) -> anyhow::Result<Self> {
        let connection = ctx.scenario.target.connection(side);
        let through_one_address = match ctx.scenario.target.endpoint(side) {
            SideEndpoint::Direct(e) => !e.starts_with("mongodb"),
            _ => true,
        };
        let (mut opts, tunnel) = if through_one_address {
            one_address(endpoint, connection).await?
        } else {
            // The deployment itself, as the connection string says.
            let opts = ClientOptions::parse(endpoint)
                .await
                .map_err(|e| anyhow::anyhow!("the {side} side's connection string: {e}"))?;
            (opts, None)
        };
        apply_tls_files(&mut opts, connection);
        apply_login(&mut opts, connection)?;
        bounds(&mut opts, side, ctx);
        Ok(Self {
            options: opts,
            _tunnel: tunnel,
        })
    }
}

/// Options for a client that talks to one address (`host:port`): a proxy or a
/// direct endpoint, in front of the deployment the side's `uri` describes.
async fn one_address(
    endpoint: &str,
    connection: &Connection,
) -> anyhow::Result<(ClientOptions, Option<Tunnel>)> {
    let uri = connection.uri.as_deref().unwrap_or("mongodb://localhost/");
    let parsed = MongoUri::parse(uri).map_err(anyhow::Error::msg)?;
    // Validated: one host, no SRV (that would resolve names here).
    let mut opts = ClientOptions::parse(uri)
        .await
        .map_err(|e| anyhow::anyhow!("the connection string in `uri`: {e}"))?;
    let (host, port) = split_host_port(endpoint);
    let port: u16 = port
        .and_then(|p| p.parse().ok())
        .with_context(|| format!("`{endpoint}` is not host:port"))?;
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    opts.direct_connection = Some(true);
    let tls_on = connection.tls.is_some() || matches!(opts.tls, Some(Tls::Enabled(_)));
    // The name the certificate must carry: the configured one, else the uri's host.
    let name = connection
        .tls
        .as_ref()
        .and_then(|t| t.server_name.clone())
        .or_else(|| {
            connection.uri.as_ref().map(|_| {
                let h = split_host_port(&parsed.hosts[0]).0;
                h.trim_start_matches('[').trim_end_matches(']').to_string()
            })
        });
    match name {
        Some(name) if tls_on && name != host => {
            let uri_port = split_host_port(&parsed.hosts[0])
                .1
                .and_then(|p| p.parse().ok())
                .unwrap_or(27017);
            let tunnel = Tunnel::start(Protocol::Socks5, format!("{host}:{port}"))
                .await
                .context("starting the loopback SOCKS5 tunnel to the proxy")?;
            opts.hosts = vec![ServerAddress::Tcp {
                host: name,
                port: Some(uri_port),
            }];
            opts.socks5_proxy = Some(
                Socks5Proxy::builder()
                    .host(tunnel.addr().ip().to_string())
                    .port(tunnel.addr().port())
                    .build(),
            );
            Ok((opts, Some(tunnel)))
        }
        _ => {
            opts.hosts = vec![ServerAddress::Tcp {
                host,
                port: Some(port),
            }];
            Ok((opts, None))
        }
    }
}

/// The scenario's TLS keys, over what the connection string says.
fn apply_tls_files(opts: &mut ClientOptions, connection: &Connection) {
    let Some(tls) = &connection.tls else {
        return;
    };
    let mut t = match opts.tls.take() {
        Some(Tls::Enabled(t)) => t,
        _ => TlsOptions::default(),
    };
    if tls.ca_file.is_some() {
        t.ca_file_path = tls.ca_file.clone();
    }
    if tls.cert_file.is_some() {
        t.cert_key_file_path = tls.cert_file.clone();
    }
    opts.tls = Some(Tls::Enabled(t));
}

/// The user (scenario, connection string or `DUALWRITE_MONGODB_USER`) and its
/// password from the environment; the mechanism and source are the connection
/// string's. X.509 and AWS logins need no password.
fn apply_login(opts: &mut ClientOptions, connection: &Connection) -> anyhow::Result<()> {
    let mut credential = opts.credential.take().unwrap_or_default();
    if let Some(user) = connection.username.clone() {
        credential.username = Some(user);
    }
    if credential.username.is_none() {
        credential.username = connection.user(SPEC.name);
    }
    // X.509 logs in with the client certificate, MONGODB-AWS with AWS credentials.
    let passwordless = credential
        .mechanism
        .as_ref()
        .is_some_and(|m| matches!(m.as_str(), "MONGODB-X509" | "MONGODB-AWS"));
    if let Some(user) = credential.username.clone()
        && !passwordless
    {
        credential.password = Some(connection.password(SPEC.name, &user)?);
    }
    if credential != Credential::default() {
        opts.credential = Some(credential);
    }
    Ok(())
}

/// What every client of this tool needs whatever the deployment: short server
/// selection (a down proxy reads as "not sent"), bounded connects, no driver
/// retries (retrying is the pattern's decision), a pool for the workload.
fn bounds(opts: &mut ClientOptions, side: Side, ctx: &StoreContext) {
    let op_timeout = ctx.scenario.workload.op_timeout;
    opts.app_name = Some(format!("dualwrite-{side}"));
    opts.server_selection_timeout = Some(op_timeout.mul_f64(0.8).max(Duration::from_millis(200)));
    opts.connect_timeout = Some(if side == Side::Relay {
        // The relay is a background worker with its own bound (at least 2 s), not
        // the timed workload. The monitor's hello is bounded by this timeout, and
        // one slow hello under load clears the pool, interrupting the relay's
        // batch in flight.
        Duration::from_secs(2)
    } else {
        op_timeout
            .mul_f64(0.5)
            .clamp(Duration::from_millis(100), Duration::from_secs(2))
    });
    opts.heartbeat_freq = Some(Duration::from_millis(500));
    opts.retry_writes = Some(false);
    opts.max_pool_size = Some((ctx.scenario.workload.concurrency as u32).clamp(4, 256));
}
