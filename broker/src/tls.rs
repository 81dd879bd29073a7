//! TLS for the mqtts and https listeners: rustls on the `ring` provider, a certificate chain
//! and its key read from PEM files.

use std::path::Path;
use std::sync::Arc;

use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use crate::config::ConfigError;

/// Client certificates: verified against these CA certificates, and required or not.
pub(crate) struct ClientCertificates<'a> {
    pub(crate) ca: &'a Path,
    pub(crate) required: bool,
}

/// A TLS acceptor (TLS 1.2 and 1.3) presenting the chain in `cert` with the key in `key`,
/// asking for client certificates if `clients` says so.
pub(crate) fn acceptor(
    cert: &Path,
    key: &Path,
    clients: Option<ClientCertificates<'_>>,
) -> Result<TlsAcceptor, ConfigError> {
    let named =
        |path: &Path, e: &dyn std::fmt::Display| ConfigError(format!("{}: {e}", path.display()));
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|e| named(cert, &e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| named(cert, &e))?;
    if chain.is_empty() {
        return Err(named(cert, &"no PEM certificate in the file"));
    }
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| match e {
        rustls_pki_types::pem::Error::NoItemsFound => named(
            key,
            &"no PEM private key (PKCS#8, PKCS#1 or SEC1) in the file",
        ),
        e => named(key, &e),
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| ConfigError(format!("TLS: {e}")))?;
    let builder = match clients {
        None => builder.with_no_client_auth(),
        Some(clients) => {
            let ca = clients.ca;
            let mut roots = RootCertStore::empty();
            for certificate in CertificateDer::pem_file_iter(ca).map_err(|e| named(ca, &e))? {
                let certificate = certificate.map_err(|e| named(ca, &e))?;
                roots.add(certificate).map_err(|e| named(ca, &e))?;
            }
            if roots.is_empty() {
                return Err(named(ca, &"no PEM certificate in the file"));
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = if clients.required {
                verifier
            } else {
                verifier.allow_unauthenticated()
            };
            let verifier = verifier.build().map_err(|e| named(ca, &e))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let config = builder
        .with_single_cert(chain, key_der)
        .map_err(|e| ConfigError(format!("{} and {}: {e}", cert.display(), key.display())))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}
