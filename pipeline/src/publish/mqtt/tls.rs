//! TLS to the broker: rustls with ring, trusting only the plant's CA, with a client
//! certificate when the broker asks for one. Read at start, so a wrong path is a startup error.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::MqttConfig;
use super::link::MqttError;

/// Trusts only `ca` (a plant CA, not the public web's).
pub(super) fn client_config(config: &MqttConfig) -> Result<rustls::ClientConfig, MqttError> {
    let ca = config.ca.as_deref().ok_or(MqttError::NoCa)?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in certificates("ca", ca)? {
        roots.add(cert).map_err(|e| tls_error("ca", ca, &e))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_error("ca", ca, &e))?
        .with_root_certificates(roots);
    match (&config.client_cert, &config.client_key) {
        (None, None) => Ok(builder.with_no_client_auth()),
        (Some(cert), Some(key)) => {
            let chain = certificates("client_cert", cert)?;
            let private =
                PrivateKeyDer::from_pem_file(key).map_err(|e| tls_error("client_key", key, &e))?;
            builder
                .with_client_auth_cert(chain, private)
                .map_err(|e| tls_error("client_cert", cert, &e))
        }
        _ => Err(MqttError::HalfClientAuth),
    }
}

fn certificates(key: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, MqttError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(Iterator::collect::<Result<Vec<_>, _>>)
        .map_err(|e| tls_error(key, path, &e))?;
    if certs.is_empty() {
        return Err(tls_error(key, path, &"no PEM certificate in the file"));
    }
    Ok(certs)
}

fn tls_error(key: &'static str, path: &Path, e: &dyn std::fmt::Display) -> MqttError {
    MqttError::Tls {
        key,
        path: path.to_owned(),
        reason: e.to_string(),
    }
}
