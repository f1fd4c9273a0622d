//! TLS for the gRPC and HTTP listeners (`server.tls`): the certificate and
//! key are read and checked once at start, then handed to tonic for gRPC
//! ([`crate::grpc::tls_config`]) and to the HTTP accept loop
//! ([`crate::http::serve`]) as a rustls acceptor.
//! With TLS configured those listeners speak nothing else: a plaintext
//! client's bytes fail the handshake and it is closed. SSH is unchanged.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;
use tracing::warn;

use crate::config::Config;

/// The server's TLS identity, ready for both listeners.
pub struct Tls {
    /// The PEM files as read, for tonic (which builds its own rustls config).
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
    /// How long a handshake may take.
    pub handshake: Duration,
    /// For the HTTP listeners (ALPN `http/1.1`).
    pub http: TlsAcceptor,
}

impl Tls {
    /// The identity `server.tls` names, if any. A handshake must finish
    /// within `server.http_header_timeout`, as a request's headers must.
    pub fn from_config(config: &Config) -> anyhow::Result<Option<Self>> {
        let Some(tls) = &config.server.tls else {
            return Ok(None);
        };
        let cert = config.data_dir.join(&tls.cert);
        let key = config.data_dir.join(&tls.key);
        Self::load(&cert, &key, config.server.http_header_timeout).map(Some)
    }

    fn load(cert_path: &Path, key_path: &Path, handshake: Duration) -> anyhow::Result<Self> {
        let cert_pem = read(cert_path, "certificate")?;
        let key_pem = read(key_path, "private key")?;
        warn_if_readable_by_others(key_path);
        let certs = CertificateDer::pem_slice_iter(&cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .with_context(|| format!("{} is not a PEM certificate chain", cert_path.display()))?;
        if certs.is_empty() {
            bail!(
                "{} holds no certificate (expected -----BEGIN CERTIFICATE-----)",
                cert_path.display()
            );
        }
        let key = PrivateKeyDer::from_pem_slice(&key_pem).with_context(|| {
            format!(
                "{} holds no private key (PKCS#8, PKCS#1 or SEC1 PEM)",
                key_path.display()
            )
        })?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut http = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("TLS protocol versions")?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .with_context(|| {
                format!(
                    "the TLS key {} does not go with the certificate {}",
                    key_path.display(),
                    cert_path.display()
                )
            })?;
        http.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            cert_pem,
            key_pem,
            handshake,
            http: TlsAcceptor::from(Arc::new(http)),
        })
    }
}

fn read(path: &Path, what: &str) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| {
        format!(
            "reading the TLS {what} {} (server.tls; relative paths are under data_dir)",
            path.display()
        )
    })
}

/// A private key others can read is a key others may have copied.
fn warn_if_readable_by_others(path: &Path) {
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        warn!(path = %path.display(), mode = format!("{:o}", meta.permissions().mode() & 0o777),
              "the TLS private key is readable by other users: chmod 600 it");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_and_malformed_files_are_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cert = dir.path().join("cert.pem");
        let key = dir.path().join("key.pem");
        let err = Tls::load(&cert, &key, Duration::from_secs(1))
            .err()
            .expect("no files")
            .to_string();
        assert!(err.contains("cert.pem"), "{err}");

        std::fs::write(&cert, "not a certificate\n").expect("write");
        std::fs::write(&key, "not a key\n").expect("write");
        let err = format!(
            "{:#}",
            Tls::load(&cert, &key, Duration::from_secs(1))
                .err()
                .expect("garbage")
        );
        assert!(err.contains("holds no certificate"), "{err}");
    }
}
