//! How a side's session is opened: through its proxy (or the cluster's per-node
//! proxies), at its levels, logged in and encrypted as its connection says.

use anyhow::Context;
use async_trait::async_trait;
use scylla::client::execution_profile::ExecutionProfile;
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::errors::TranslationError;
use scylla::policies::address_translator::{AddressTranslator, UntranslatedPeer};
use scylla::policies::retry::FallthroughRetryPolicy;
use scylla::statement::{Consistency, SerialConsistency};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use super::{SPEC, cluster};
use crate::scenario::{Connection, Side};

/// Maps every node address the driver learns to the side's proxy address, so that
/// all traffic of a session goes through its proxy (one node behind each proxy).
#[derive(Debug)]
pub struct ThroughProxy(pub SocketAddr);

#[async_trait]
impl AddressTranslator for ThroughProxy {
    async fn translate_address(
        &self,
        _peer: &UntranslatedPeer,
    ) -> Result<SocketAddr, TranslationError> {
        Ok(self.0)
    }
}

/// A validated consistency name (crate::scenario::CONSISTENCY_LEVELS).
pub(crate) fn consistency(name: &str) -> Consistency {
    match name {
        "any" => Consistency::Any,
        "one" => Consistency::One,
        "two" => Consistency::Two,
        "three" => Consistency::Three,
        "all" => Consistency::All,
        "local_quorum" => Consistency::LocalQuorum,
        "each_quorum" => Consistency::EachQuorum,
        "local_one" => Consistency::LocalOne,
        _ => Consistency::Quorum,
    }
}

/// A validated serial consistency name (crate::scenario::SERIAL_LEVELS).
pub(crate) fn serial_consistency(name: &str) -> SerialConsistency {
    match name {
        "serial" => SerialConsistency::Serial,
        _ => SerialConsistency::LocalSerial,
    }
}

/// How one connection is set up: its levels, and on the cluster how it reaches
/// each node and which node coordinates.
pub(super) struct Wiring {
    pub(super) level: Consistency,
    pub(super) serial: Option<SerialConsistency>,
    pub(super) per_node: Option<cluster::PerNodeProxies>,
    pub(super) pinned: Option<Arc<cluster::Pinned>>,
}

/// Opens a session through one proxy (`host:port`), logging in and encrypting as
/// the side's connection says.
pub(super) async fn open_session(
    side: Side,
    endpoint: &str,
    connection: &Connection,
    op_timeout: Duration,
    wiring: Wiring,
) -> anyhow::Result<Session> {
    let addr = tokio::net::lookup_host(endpoint)
        .await
        .ok()
        .and_then(|mut a| a.next())
        .with_context(|| format!("cannot resolve the {side} endpoint `{endpoint}`"))?;
    let mut profile = ExecutionProfile::builder()
        .request_timeout(Some(op_timeout))
        .consistency(wiring.level)
        .retry_policy(Arc::new(FallthroughRetryPolicy::new()));
    if let Some(serial) = wiring.serial {
        profile = profile.serial_consistency(Some(serial));
    }
    if let Some(pinned) = wiring.pinned {
        profile = profile.load_balancing_policy(pinned);
    }
    let profile = profile.build();
    let translator: Arc<dyn AddressTranslator> = match wiring.per_node {
        Some(per_node) => Arc::new(per_node),
        None => Arc::new(ThroughProxy(addr)),
    };
    let mut builder = SessionBuilder::new();
    let mut login = None;
    if let Some(user) = connection.user(SPEC.name) {
        let password = connection.password(SPEC.name, &user)?;
        builder = builder.user(user.clone(), password);
        login = Some((user, connection.password_var(SPEC.name)));
    }
    if let Some(tls) = &connection.tls {
        // The driver connects by address and sends no SNI: the certificate is
        // checked against the configured name, else the endpoint's host name.
        let host = crate::scenario::host_of(endpoint);
        let name = tls.server_name.clone().or_else(|| {
            let bare = host.trim_start_matches('[').trim_end_matches(']');
            bare.parse::<std::net::IpAddr>()
                .is_err()
                .then(|| bare.to_string())
        });
        let config = crate::store::tls::client_config(tls, name.as_deref())
            .with_context(|| format!("TLS for the Cassandra {side} side"))?;
        builder = builder.tls_context(Some(config));
    }
    let builder = builder
        .known_node_addr(addr)
        .address_translator(translator)
        .connection_timeout(Duration::from_secs(2))
        // Schema metadata is not needed (prepared statements carry their partition
        // key), and refreshing it after DDL fails when another run drops its
        // keyspace at the same moment.
        .fetch_schema_metadata(false)
        .refresh_metadata_on_auto_schema_agreement(false)
        .default_execution_profile_handle(profile.into_handle());
    let build = builder.build();
    let hint = "hint: is the local stack up (scripts/stack up) and the proxy enabled? see scripts/PORTS.md";
    match tokio::time::timeout(Duration::from_secs(10), build).await {
        Ok(Ok(s)) => Ok(s),
        Ok(Err(e)) => {
            let text = e.to_string();
            let hint = if text.contains("uthenticat") {
                match &login {
                    Some((user, var)) => format!(
                        "hint: check the user `{user}` and the password in {var} (PasswordAuthenticator)"
                    ),
                    None => "hint: the server requires a login: set [target] username and export its password (DUALWRITE_CASSANDRA_PASSWORD, or the variable named by password_env)".to_string(),
                }
            } else if text.to_ascii_lowercase().contains("certificate")
                || text.to_ascii_lowercase().contains("tls")
            {
                "hint: check tls_ca_file, tls_server_name (the name on the server's certificate) and the client certificate".to_string()
            } else {
                hint.to_string()
            };
            anyhow::bail!("Cassandra at {endpoint} ({side} side): {text}\n  {hint}")
        }
        Err(_) => {
            anyhow::bail!("Cassandra at {endpoint} ({side} side): no session within 10s\n  {hint}")
        }
    }
}
