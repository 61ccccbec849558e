//! TLS client settings built from a side's [`TlsSettings`] (rustls, the `ring`
//! provider that the MongoDB driver also uses). Used where dualwrite builds the
//! TLS configuration itself (Cassandra); the MongoDB driver and the AWS SDK take
//! the same files through their own options.
//!
//! A configured server name replaces the address in certificate verification:
//! through a proxy the driver connects to 127.0.0.1, and the certificate is the
//! real server's. Messages name files, never their contents.

use anyhow::Context;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::path::Path;
use std::sync::Arc;

use crate::scenario::TlsSettings;

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The trust roots: the CA file's certificates, else the public (Mozilla) roots.
pub fn roots(ca_file: Option<&Path>) -> anyhow::Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let certs = read_certs(path, "CA file (tls_ca_file)")?;
            let (added, _) = roots.add_parsable_certificates(certs);
            anyhow::ensure!(
                added > 0,
                "the CA file (tls_ca_file) {} holds no usable CA certificate",
                path.display()
            );
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    Ok(roots)
}

fn read_certs(path: &Path, what: &str) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .with_context(|| format!("cannot read the {what} {}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            anyhow::anyhow!("the {what} {} is not PEM certificates: {e}", path.display())
        })?;
    anyhow::ensure!(
        !certs.is_empty(),
        "the {what} {} holds no PEM certificate",
        path.display()
    );
    Ok(certs)
}

/// A rustls client configuration: roots, an optional client certificate, and the
/// name the server's certificate must carry (`server_name`, else the address).
pub fn client_config(
    tls: &TlsSettings,
    server_name: Option<&str>,
) -> anyhow::Result<Arc<ClientConfig>> {
    let roots = Arc::new(roots(tls.ca_file.as_deref())?);
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?;
    let builder = match server_name {
        Some(name) => {
            let name = ServerName::try_from(name.to_string())
                .map_err(|_| anyhow::anyhow!("`{name}` is not a server name"))?;
            let inner = WebPkiServerVerifier::builder_with_provider(roots, provider())
                .build()
                .context("the TLS certificate verifier")?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(NamedVerifier { inner, name }))
        }
        None => builder.with_root_certificates(roots),
    };
    let config = match (&tls.cert_file, &tls.key_file) {
        (Some(cert), Some(key)) => {
            let chain = read_certs(cert, "client certificate (tls_cert_file)")?;
            let key = PrivateKeyDer::from_pem_file(key).map_err(|e| {
                anyhow::anyhow!(
                    "cannot read a PEM private key from the key file (tls_key_file) {}: {e}",
                    key.display()
                )
            })?;
            builder.with_client_auth_cert(chain, key).with_context(|| {
                format!(
                    "the client certificate {} and its key do not form a usable pair",
                    cert.display()
                )
            })?
        }
        _ => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// Verifies the server's certificate for a fixed name, whatever address the
/// connection went to; everything else is the standard WebPKI verification.
#[derive(Debug)]
struct NamedVerifier {
    inner: Arc<WebPkiServerVerifier>,
    name: ServerName<'static>,
}

impl ServerCertVerifier for NamedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _connected_to: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.inner
            .verify_server_cert(end_entity, intermediates, &self.name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
