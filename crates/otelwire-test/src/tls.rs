//! A throwaway certificate authority and server certificate, so clients'
//! `https` support can be tested against the collector; with client
//! authentication, client certificates signed by the same CA.

use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::StartError;

pub(crate) struct Tls {
    pub(crate) acceptor: tokio_rustls::TlsAcceptor,
    pub(crate) ca_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl Tls {
    /// A client certificate for `common_name` signed by the CA, and its
    /// private key (PKCS#8), both PEM.
    pub(crate) fn client_certificate(
        &self,
        common_name: &str,
    ) -> Result<(String, String), StartError> {
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let key = KeyPair::generate().map_err(err)?;
        let cert = params.signed_by(&key, &self.issuer).map_err(err)?;
        Ok((cert.pem(), key.serialize_pem()))
    }
}

fn err(e: impl std::fmt::Display) -> StartError {
    StartError::Tls(e.to_string())
}

/// A CA (returned as PEM for clients to trust) and a certificate it signed
/// for `localhost` and `127.0.0.1`, served with ALPN `h2` and `http/1.1`.
/// With `require_client_certificate`, a client must present a certificate
/// signed by the same CA, or the handshake fails.
pub(crate) fn self_signed(require_client_certificate: bool) -> Result<Tls, StartError> {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "otelwire-test CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_key = KeyPair::generate().map_err(err)?;
    let ca_cert = ca_params.self_signed(&ca_key).map_err(err)?;
    let issuer = Issuer::new(ca_params, ca_key);

    let mut leaf_params =
        CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .map_err(err)?;
    leaf_params
        .distinguished_name
        .push(DnType::CommonName, "otelwire-test collector");
    let leaf_key = KeyPair::generate().map_err(err)?;
    let leaf = leaf_params.signed_by(&leaf_key, &issuer).map_err(err)?;

    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(err)?;
    let builder = if require_client_certificate {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca_cert.der().clone()).map_err(err)?;
        let verifier =
            rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(err)?;
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    let mut config = builder
        .with_single_cert(vec![leaf.der().clone()], key)
        .map_err(err)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Tls {
        acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
        ca_pem: ca_cert.pem(),
        issuer,
    })
}

/// The common name of a DER certificate's subject (its last `CN`: the
/// issuer's comes first), or the whole certificate's length if it has none.
pub(crate) fn subject_common_name(der: &[u8]) -> String {
    // OID 2.5.4.3 (commonName), then a string: tag, short length, bytes.
    const CN: [u8; 5] = [0x06, 0x03, 0x55, 0x04, 0x03];
    let found = der
        .windows(CN.len())
        .enumerate()
        .filter(|(_, w)| *w == CN)
        .rev()
        .find_map(|(i, _)| {
            let rest = der.get(i + CN.len()..)?;
            let (&tag, rest) = rest.split_first()?;
            let (&len, rest) = rest.split_first()?;
            let text = rest.get(..usize::from(len))?;
            (matches!(tag, 0x0c | 0x13 | 0x16) && len < 0x80)
                .then(|| String::from_utf8_lossy(text).into_owned())
        });
    found.unwrap_or_else(|| format!("<a certificate of {} bytes, no common name>", der.len()))
}
