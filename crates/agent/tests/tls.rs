//! `ca_file`: the agent trusts a server whose certificate a private CA signed only when told to.
#![allow(clippy::unwrap_used, missing_docs)]

use std::sync::Arc;

use hotpatch_agent::client::{http_client, http_client_trusting};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A private CA (its PEM) and an HTTPS server for `localhost` with a certificate it signed,
/// answering every request with 204; returns the CA and the server's port.
async fn server_signed_by_a_private_ca() -> (String, u16) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().unwrap();
    let cert =
        CertificateParams::new(vec!["localhost".to_owned()]).unwrap().signed_by(&key, &issuer).unwrap();

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.der().clone()], key.serialize_der().try_into().unwrap())
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else { return };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                // A refused handshake (the client does not trust the CA) just ends here.
                let Ok(mut tls) = acceptor.accept(tcp).await else { return };
                let mut request = [0u8; 4096];
                let _ = tls.read(&mut request).await;
                let _ = tls.write_all(b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n").await;
                let _ = tls.shutdown().await;
            });
        }
    });
    (ca_cert.pem(), port)
}

#[tokio::test]
async fn a_server_signed_by_a_private_ca_is_trusted_with_ca_file_and_refused_without() {
    let (ca, port) = server_signed_by_a_private_ca().await;
    let url = format!("https://localhost:{port}/healthz");
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca).unwrap();

    let refused = http_client().unwrap().get(&url).send().await.unwrap_err();
    assert!(refused.is_connect(), "{refused:?}");

    let trusted = http_client_trusting(&ca_file).unwrap().get(&url).send().await.unwrap();
    assert_eq!(trusted.status(), 204);
}

#[test]
fn an_unusable_ca_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = http_client_trusting(&dir.path().join("nope.pem")).unwrap_err().to_string();
    assert!(missing.contains("cannot read the CA file"), "{missing}");
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a certificate").unwrap();
    let text = http_client_trusting(&garbage).unwrap_err().to_string();
    assert!(text.contains("holds no") && text.contains("garbage.pem"), "{text}");
}
