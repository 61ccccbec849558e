//! How one side's DynamoDB clients reach the server and sign: the endpoint, TLS,
//! credentials and region, resolved once per connection and shared by its clients
//! (the workload's, the administrative one and the Streams one).
//!
//! Credentials, in order: the side's `profile` (the shared config and credentials
//! files, `AWS_CONFIG_FILE` / `AWS_SHARED_CREDENTIALS_FILE` honoured; a profile may
//! itself use SSO, a role, web identity or credential_process); static keys in the
//! environment; with `allow_remote`, the SDK's whole default chain (web identity,
//! SSO, container and instance roles); otherwise the local stack's placeholder key
//! (moto checks no signature). The last step keeps a run that may only reach
//! loopback from ever asking the instance metadata service, a non-loopback
//! address. They are never read from the scenario, and never printed.
//!
//! Through a proxy with TLS and a `tls_server_name`, requests go to
//! `https://<name>` through an in-process HTTP CONNECT tunnel to the proxy
//! (`store/tunnel.rs`): SNI, the certificate check and the signed Host header are
//! the real server's.

use anyhow::Context;
use aws_config::SdkConfig;
use aws_config::meta::region::ProvideRegion;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::{
    BehaviorVersion, Credentials, ProvideCredentials, Region, SharedCredentialsProvider,
};
use aws_smithy_http_client::proxy::ProxyConfig;
use aws_smithy_http_client::tls::{self, TlsContext, TrustStore};
use aws_smithy_http_client::{Builder as HttpBuilder, Connector};
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::retry::RetryConfig;
use aws_smithy_types::timeout::TimeoutConfig;
use std::sync::Arc;
use std::time::Duration;

use super::capacity::{CapacityCounter, CapacityInterceptor};
use super::faults::{FaultInterceptor, SideFaults};
use crate::scenario::{AWS_ENDPOINT, Connection, Scenario, Side, SideEndpoint, host_of};
use crate::store::tunnel::{Protocol, Tunnel};

/// Where the local stack's region defaults to (moto serves any).
const LOCAL_REGION: &str = "us-east-1";

/// One connection's SDK settings (and its tunnel, kept alive here).
pub struct DynamoConn {
    config: SdkConfig,
    /// Where the credentials came from, for messages (never the key).
    pub credentials_source: String,
    _tunnel: Option<Tunnel>,
}

impl DynamoConn {
    /// `endpoint`: the proxy's listen address, or the side's direct endpoint.
    pub async fn new(endpoint: &str, side: Side, scenario: &Scenario) -> anyhow::Result<Self> {
        let connection = scenario.target.connection(side);
        let allow_remote = scenario.target.allow_remote;
        let (url, http, tunnel) = route(endpoint, scenario.target.endpoint(side), connection)
            .await
            .with_context(|| format!("the DynamoDB {side} side's endpoint"))?;
        let (provider, credentials_source) = credentials(connection, allow_remote).await;
        // Resolved now, so a missing or broken source is named before the run.
        provider.provide_credentials().await.map_err(|e| {
            anyhow::anyhow!(
                "no AWS credentials for the DynamoDB {side} side from {credentials_source}: {}",
                DisplayErrorContext(&e)
            )
        })?;
        let region = region(connection, allow_remote, url.is_none())
            .await
            .with_context(|| format!("the DynamoDB {side} side's region"))?;
        let mut builder = SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(region)
            .credentials_provider(provider);
        if let Some(url) = url {
            builder = builder.endpoint_url(url);
        }
        if let Some(http) = http {
            builder = builder.http_client(http);
        }
        Ok(Self {
            config: builder.build(),
            credentials_source,
            _tunnel: tunnel,
        })
    }

    /// The settings of one client: no SDK retries (retrying is the pattern's
    /// decision), every attempt bounded by `op_timeout`.
    fn tuned(&self, op_timeout: Duration) -> SdkConfig {
        self.config
            .to_builder()
            .retry_config(RetryConfig::disabled())
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(1))
                    .operation_attempt_timeout(op_timeout)
                    .operation_timeout(op_timeout)
                    .build(),
            )
            .build()
    }

    /// A DynamoDB client, with the side's SDK fault source installed.
    pub fn client(&self, op_timeout: Duration, faults: Option<&Arc<SideFaults>>) -> Client {
        self.counted_client(op_timeout, faults, None)
    }

    /// A DynamoDB client that also counts its capacity (the workload's and the
    /// relay's clients, `capacity.rs`).
    pub(crate) fn counted_client(
        &self,
        op_timeout: Duration,
        faults: Option<&Arc<SideFaults>>,
        capacity: Option<(&Arc<CapacityCounter>, Side)>,
    ) -> Client {
        let mut config = aws_sdk_dynamodb::config::Builder::from(&self.tuned(op_timeout));
        if let Some(f) = faults {
            config = config.interceptor(FaultInterceptor::new(f.clone()));
        }
        if let Some((c, side)) = capacity {
            config = config.interceptor(CapacityInterceptor::new(c.clone(), side));
        }
        Client::from_conf(config.build())
    }

    /// A DynamoDB Streams client (moto serves Streams on the same endpoint),
    /// counting its GetRecords calls when given a counter.
    pub(crate) fn streams_client(
        &self,
        op_timeout: Duration,
        faults: Option<&Arc<SideFaults>>,
        capacity: Option<(&Arc<CapacityCounter>, Side)>,
    ) -> aws_sdk_dynamodbstreams::Client {
        let mut config = aws_sdk_dynamodbstreams::config::Builder::from(&self.tuned(op_timeout));
        if let Some(f) = faults {
            config = config.interceptor(FaultInterceptor::new(f.clone()));
        }
        if let Some((c, side)) = capacity {
            config = config.interceptor(CapacityInterceptor::new(c.clone(), side));
        }
        aws_sdk_dynamodbstreams::Client::from_conf(config.build())
    }
}

type Route = (
    Option<String>,
    Option<aws_smithy_runtime_api::client::http::SharedHttpClient>,
    Option<Tunnel>,
);

/// The endpoint URL (`None`: the SDK's own for the region), the HTTP client when
/// the default one will not do (a private CA, the tunnel), and the tunnel.
async fn route(
    endpoint: &str,
    target: &SideEndpoint,
    connection: &Connection,
) -> anyhow::Result<Route> {
    let tls = connection.tls.as_ref();
    let trust = match tls.and_then(|t| t.ca_file.as_ref()) {
        Some(path) => {
            let pem = std::fs::read(path).with_context(|| {
                format!("cannot read the CA file (tls_ca_file) {}", path.display())
            })?;
            Some(
                TrustStore::empty()
                    .with_native_roots(false)
                    .with_pem_certificate(pem),
            )
        }
        None => None,
    };
    if matches!(target, SideEndpoint::Direct(e) if e == AWS_ENDPOINT) {
        return Ok((None, trust.map(|t| https_client(t, None)), None));
    }
    // The address to connect to, and the URL as a direct client would write it.
    let (address, url) = if endpoint.contains("://") {
        let rest = endpoint.split_once("://").map_or(endpoint, |(_, r)| r);
        let authority = rest.split(['/', '?']).next().unwrap_or(rest);
        let port = if endpoint.starts_with("https://") {
            443
        } else {
            80
        };
        let address = match crate::scenario::split_host_port(authority) {
            (h, Some(p)) => format!("{h}:{p}"),
            (h, None) => format!("{h}:{port}"),
        };
        (address, endpoint.to_string())
    } else {
        let scheme = if tls.is_some() { "https" } else { "http" };
        (endpoint.to_string(), format!("{scheme}://{endpoint}"))
    };
    let https = url.starts_with("https://");
    let name = tls.and_then(|t| t.server_name.clone());
    match name {
        Some(name) if https && name != host_of(&url) => {
            let tunnel = Tunnel::start(Protocol::HttpConnect, address)
                .await
                .context("starting the loopback CONNECT tunnel to the proxy")?;
            let port = crate::scenario::split_host_port(
                url.split_once("://")
                    .map_or("", |(_, r)| r)
                    .split('/')
                    .next()
                    .unwrap_or(""),
            )
            .1
            .map(|p| format!(":{p}"))
            // Through a proxy the URL is the real server's: its default port.
            .filter(|_| !matches!(target, SideEndpoint::Proxy(_)))
            .unwrap_or_default();
            let proxy = ProxyConfig::https(format!("http://{}", tunnel.addr()))
                .map_err(|e| anyhow::anyhow!("the tunnel's proxy address: {e}"))?;
            let trust = trust.unwrap_or_default();
            Ok((
                Some(format!("https://{name}{port}")),
                Some(https_client(trust, Some(proxy))),
                Some(tunnel),
            ))
        }
        _ => Ok((
            Some(url),
            trust.filter(|_| https).map(|t| https_client(t, None)),
            None,
        )),
    }
}

/// The SDK's own rustls client, with this trust store and, optionally, a proxy.
fn https_client(
    trust: TrustStore,
    proxy: Option<ProxyConfig>,
) -> aws_smithy_runtime_api::client::http::SharedHttpClient {
    let context = TlsContext::builder()
        .with_trust_store(trust)
        .build()
        .expect("a TLS context from a trust store");
    HttpBuilder::new().build_with_connector_fn(move |settings, components| {
        let mut builder = Connector::builder();
        builder.set_connector_settings(settings.cloned());
        if let Some(c) = components {
            builder.set_sleep_impl(c.sleep_impl());
        }
        if let Some(p) = &proxy {
            builder = builder.proxy_config(p.clone());
        }
        builder
            .tls_provider(tls::Provider::Rustls(
                tls::rustls_provider::CryptoMode::AwsLc,
            ))
            .tls_context(context.clone())
            .build()
    })
}

/// The credentials provider, and where it reads from (for messages).
async fn credentials(
    connection: &Connection,
    allow_remote: bool,
) -> (SharedCredentialsProvider, String) {
    if let Some(profile) = &connection.profile {
        let provider = aws_config::profile::ProfileFileCredentialsProvider::builder()
            .profile_name(profile)
            .build();
        return (
            SharedCredentialsProvider::new(provider),
            format!("profile `{profile}` of the shared config and credentials files"),
        );
    }
    if std::env::var_os("AWS_ACCESS_KEY_ID").is_some() {
        return (
            SharedCredentialsProvider::new(
                aws_config::environment::EnvironmentVariableCredentialsProvider::new(),
            ),
            "the environment (AWS_ACCESS_KEY_ID)".into(),
        );
    }
    if allow_remote {
        let mut chain =
            aws_config::default_provider::credentials::DefaultCredentialsChain::builder();
        if let Some(r) = &connection.region {
            chain = chain.region(Region::new(r.clone()));
        }
        return (
            SharedCredentialsProvider::new(chain.build().await),
            "the AWS SDK's default chain (environment, shared files, web identity, SSO, container and instance roles)".into(),
        );
    }
    (
        SharedCredentialsProvider::new(Credentials::new(
            "dualwrite-local",
            "dualwrite-local",
            None,
            None,
            "local-stack",
        )),
        "the local stack's placeholder key".into(),
    )
}

/// The region: the scenario's, else the profile's or the environment's, else (with
/// `allow_remote`) the SDK's chain; the local stack's default for loopback only.
async fn region(
    connection: &Connection,
    allow_remote: bool,
    aws_endpoint: bool,
) -> anyhow::Result<Region> {
    if let Some(r) = &connection.region {
        return Ok(Region::new(r.clone()));
    }
    let found = if allow_remote {
        let mut chain = aws_config::default_provider::region::DefaultRegionChain::builder();
        if let Some(p) = &connection.profile {
            chain = chain.profile_name(p);
        }
        chain.build().region().await
    } else {
        let from_profile = match &connection.profile {
            Some(p) => {
                aws_config::profile::ProfileFileRegionProvider::builder()
                    .profile_name(p)
                    .build()
                    .region()
                    .await
            }
            None => None,
        };
        match from_profile {
            Some(r) => Some(r),
            None => {
                aws_config::environment::EnvironmentVariableRegionProvider::new()
                    .region()
                    .await
            }
        }
    };
    match found {
        Some(r) => Ok(r),
        None if !aws_endpoint && !allow_remote => Ok(Region::new(LOCAL_REGION)),
        None => anyhow::bail!(
            "no AWS region: set region = \"eu-west-1\" in [target], AWS_REGION, or the profile's region"
        ),
    }
}
