//! TLS for `--tls-cert` / `--tls-key` (rustls with the ring provider): PEM files, TLS 1.2 and
//! 1.3, HTTP/2 and HTTP/1.1 offered by ALPN (h2 first).

use anyhow::Context as _;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;
use std::sync::Arc;

/// The server configuration from a certificate chain (leaf first) and its private key (PKCS#8,
/// PKCS#1 or SEC1), both PEM.
pub fn server_config(cert: &Path, key: &Path) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("reading the TLS certificate `{}` (PEM)", cert.display()))?;
    if certs.is_empty() {
        anyhow::bail!("the TLS certificate file `{}` holds no certificate", cert.display());
    }
    let key = PrivateKeyDer::from_pem_file(key).with_context(|| format!("reading the TLS private key `{}` (PEM)", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("the TLS certificate and key do not match, or the key is unsupported")?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
