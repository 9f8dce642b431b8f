//! TLS for an `https://` listener, with Kafka Connect's keys: `listeners.https.ssl.*` (or, when none is
//! set, the worker's `ssl.*` keys, as Kafka falls back to them). Certificates and keys are PEM (Kafka's
//! `ssl.keystore.type=PEM`): a keystore file holding the private key and the certificate chain
//! (`ssl.keystore.location`), or both inline (`ssl.keystore.key`, `ssl.keystore.certificate.chain`).
//! Clients may be asked for certificates signed by the truststore's CAs (`ssl.client.auth=requested`
//! or `required`; `ssl.truststore.location` or inline `ssl.truststore.certificates`).
//!
//! Handshakes run off the accept loop, each with a time limit, so a client that connects and says
//! nothing holds up no one.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use sluice_core::config::ConfigMap;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// The prefix of the HTTPS listener's own keys.
const HTTPS_PREFIX: &str = "listeners.https.";

/// How long a client has to complete its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the listener's TLS cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{key}={value}: Sluice reads PEM keystores and truststores only; convert it (keytool -importkeystore to PKCS12, then openssl pkcs12 -nodes) and set {key}=PEM")]
    NotPem { key: String, value: String },
    #[error("an https listener needs a certificate and its key: set {0}ssl.keystore.location (a PEM file with both), or {0}ssl.keystore.key and {0}ssl.keystore.certificate.chain")]
    NoKeystore(&'static str),
    #[error("{0}: encrypted private keys are not supported; decrypt it (openssl pkcs8 -nocrypt) and remove the key")]
    EncryptedKey(String),
    #[error("{key}: {why}")]
    Pem { key: String, why: String },
    #[error("{key}={value}: must be none, requested or required")]
    ClientAuth { key: String, value: String },
    #[error("{0}: client authentication needs the CAs to trust: set it")]
    NoTruststore(String),
    #[error("the certificate and key cannot serve TLS: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("the truststore cannot verify clients: {0}")]
    Verifier(String),
}

/// The TLS settings of an `https://` listener, from the worker's keys.
pub fn server_config(worker: &ConfigMap) -> Result<Arc<ServerConfig>, TlsError> {
    let prefix = match worker.keys().any(|k| k.starts_with(HTTPS_PREFIX)) {
        true => HTTPS_PREFIX,
        false => "",
    };
    let key = |name: &str| format!("{prefix}{name}");
    let get = |name: &str| worker.get(&key(name)).filter(|v| !v.trim().is_empty());
    for name in ["ssl.keystore.type", "ssl.truststore.type"] {
        if let Some(kind) = get(name).filter(|t| !t.eq_ignore_ascii_case("PEM")) {
            return Err(TlsError::NotPem {
                key: key(name),
                value: kind.clone(),
            });
        }
    }
    if get("ssl.key.password").is_some() {
        return Err(TlsError::EncryptedKey(key("ssl.key.password")));
    }
    let pem_error = |name: &str| {
        let key = key(name);
        move |e: rustls_pki_types::pem::Error| TlsError::Pem {
            key: key.clone(),
            why: e.to_string(),
        }
    };
    let (chain, private_key) = match (
        get("ssl.keystore.location"),
        get("ssl.keystore.key"),
        get("ssl.keystore.certificate.chain"),
    ) {
        (Some(location), _, _) => {
            let path = Path::new(location);
            let chain = CertificateDer::pem_file_iter(path)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(pem_error("ssl.keystore.location"))?;
            let private_key =
                PrivateKeyDer::from_pem_file(path).map_err(pem_error("ssl.keystore.location"))?;
            (chain, private_key)
        }
        (None, Some(private_key), Some(chain)) => (
            CertificateDer::pem_slice_iter(inline_pem(chain).as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .map_err(pem_error("ssl.keystore.certificate.chain"))?,
            PrivateKeyDer::from_pem_slice(inline_pem(private_key).as_bytes())
                .map_err(pem_error("ssl.keystore.key"))?,
        ),
        _ => return Err(TlsError::NoKeystore(prefix)),
    };
    if chain.is_empty() {
        return Err(TlsError::Pem {
            key: key("ssl.keystore.location"),
            why: "no certificate in it".into(),
        });
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let client_auth = get("ssl.client.auth").map_or("none", String::as_str);
    let builder = match client_auth.to_ascii_lowercase().as_str() {
        "none" => builder.with_no_client_auth(),
        mode @ ("requested" | "required") => {
            let roots = truststore(worker, prefix)?
                .ok_or_else(|| TlsError::NoTruststore(key("ssl.truststore.location")))?;
            let verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
            let verifier = match mode {
                "requested" => verifier.allow_unauthenticated(),
                _ => verifier,
            };
            builder.with_client_cert_verifier(
                verifier
                    .build()
                    .map_err(|e| TlsError::Verifier(e.to_string()))?,
            )
        }
        _ => {
            return Err(TlsError::ClientAuth {
                key: key("ssl.client.auth"),
                value: client_auth.to_owned(),
            })
        }
    };
    let mut config = builder.with_single_cert(chain, private_key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// PEM written inline in a config value, as Kafka takes it: its lines may have been joined with spaces
/// (a `.properties` value continued over lines with `\`). Each `-----BEGIN ...-----` block comes back
/// with its base64 on lines of its own.
fn inline_pem(value: &str) -> String {
    let mut pem = String::new();
    let mut rest = value;
    while let Some(begin) = rest.find("-----BEGIN ") {
        let after_begin = &rest[begin + "-----BEGIN ".len()..];
        let Some(label_end) = after_begin.find("-----") else {
            break;
        };
        let label = &after_begin[..label_end];
        let body_and_rest = &after_begin[label_end + "-----".len()..];
        let end_marker = format!("-----END {label}-----");
        let Some(end) = body_and_rest.find(&end_marker) else {
            break;
        };
        let body: String = body_and_rest[..end]
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        pem.push_str(&format!("-----BEGIN {label}-----\n"));
        for line in body.as_bytes().chunks(64) {
            pem.push_str(&String::from_utf8_lossy(line));
            pem.push('\n');
        }
        pem.push_str(&end_marker);
        pem.push('\n');
        rest = &body_and_rest[end + end_marker.len()..];
    }
    pem
}

/// The CAs client certificates must be signed by, if a truststore is given.
fn truststore(worker: &ConfigMap, prefix: &str) -> Result<Option<RootCertStore>, TlsError> {
    let key = |name: &str| format!("{prefix}{name}");
    let certs = match (
        worker.get(&key("ssl.truststore.location")),
        worker.get(&key("ssl.truststore.certificates")),
    ) {
        (Some(location), _) => CertificateDer::pem_file_iter(location)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>()),
        (None, Some(inline)) => CertificateDer::pem_slice_iter(inline_pem(inline).as_bytes())
            .collect::<Result<Vec<_>, _>>(),
        (None, None) => return Ok(None),
    }
    .map_err(|e| TlsError::Pem {
        key: key("ssl.truststore.location"),
        why: e.to_string(),
    })?;
    let mut roots = RootCertStore::empty();
    for cert in certs {
        roots.add(cert).map_err(|e| TlsError::Pem {
            key: key("ssl.truststore.location"),
            why: e.to_string(),
        })?;
    }
    Ok(Some(roots))
}

/// A listener whose connections have completed their TLS handshake. Connections are accepted, and
/// their handshakes run, by a task of its own that ends with it.
pub struct TlsListener {
    address: SocketAddr,
    handshaken: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    acceptor: JoinHandle<()>,
}

impl TlsListener {
    pub fn new(listener: TcpListener, config: Arc<ServerConfig>) -> std::io::Result<TlsListener> {
        let address = listener.local_addr()?;
        let (done, handshaken) = mpsc::channel(64);
        let tls = TlsAcceptor::from(config);
        let acceptor = tokio::spawn(async move {
            loop {
                let (stream, peer) = match listener.accept().await {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        tracing::debug!(error = %e, "accepting a connection failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let (tls, done) = (tls.clone(), done.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.accept(stream)).await {
                        Ok(Ok(stream)) => {
                            let _ = done.send((stream, peer)).await;
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "TLS handshake failed")
                        }
                        Err(_) => {
                            tracing::debug!(%peer, timeout = ?HANDSHAKE_TIMEOUT, "TLS handshake timed out")
                        }
                    }
                });
            }
        });
        Ok(TlsListener {
            address,
            handshaken,
            acceptor,
        })
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.acceptor.abort();
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.handshaken.recv().await {
            Some(connection) => connection,
            // The accepting task holds a sender for as long as the listener lives.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.address)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_pem_comes_back_in_lines_whether_or_not_its_lines_were_joined() {
        let pem = "-----BEGIN CERTIFICATE-----\nQUJD\nREVG\n-----END CERTIFICATE-----\n";
        assert_eq!(
            inline_pem(pem),
            "-----BEGIN CERTIFICATE-----\nQUJDREVG\n-----END CERTIFICATE-----\n"
        );
        assert_eq!(inline_pem(&pem.replace('\n', " ")), inline_pem(pem));
        let two = format!("{pem}{}", pem.replace("CERTIFICATE", "PRIVATE KEY"));
        assert_eq!(
            inline_pem(&two.replace('\n', " "))
                .matches("-----BEGIN")
                .count(),
            2
        );
    }

    #[test]
    fn the_workers_ssl_keys_serve_when_the_listener_has_none_of_its_own() {
        let keystore = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/fixtures/tls/server-keystore.pem"
        );
        let worker = ConfigMap::from([("ssl.keystore.location".to_owned(), keystore.to_owned())]);
        assert!(server_config(&worker).is_ok());
        let mut both = worker.clone();
        both.insert("listeners.https.ssl.client.auth".into(), "none".into());
        assert!(matches!(
            server_config(&both),
            Err(TlsError::NoKeystore(HTTPS_PREFIX))
        ));
    }
}
