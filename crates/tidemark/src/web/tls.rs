//! Turns checked [`TlsSettings`] into a rustls server configuration: PEM
//! loading, versions, TLS 1.2 suites and key-exchange groups by their Go
//! names, client certificate policies, and ALPN for HTTP/2.
//!
//! rustls implements TLS 1.2 and 1.3 only, with AEAD suites only; TLS 1.3
//! suites are always all enabled (Go does the same: `cipher_suites` applies
//! to TLS 1.2). `prefer_server_cipher_suites` maps to rustls'
//! `ignore_client_order`.

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{ring, SupportedKxGroup, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{
    DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig, SignatureScheme, SupportedCipherSuite,
};

use super::config::{ClientAuth, PemSource, TlsSettings, TlsVersion, WebConfigError};

/// The TLS 1.2 suites rustls offers, by Go name.
pub(crate) const CIPHER_SUITE_NAMES: [&str; 6] = [
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
];

/// A TLS 1.2 suite by its Go name (Go also spells the ChaCha suites
/// without `_SHA256`).
pub(crate) fn cipher_suite(name: &str) -> Option<SupportedCipherSuite> {
    use ring::cipher_suite as cs;
    Some(match name {
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256" => cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384" => cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256" | "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305" => {
            cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
        }
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256" => cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384" => cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256" | "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305" => {
            cs::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256
        }
        _ => return None,
    })
}

/// A key-exchange group by its Go `tls.CurveID` name.
pub(crate) fn kx_group(name: &str) -> Option<&'static dyn SupportedKxGroup> {
    match name {
        "X25519" => Some(ring::kx_group::X25519),
        "CurveP256" => Some(ring::kx_group::SECP256R1),
        "CurveP384" => Some(ring::kx_group::SECP384R1),
        _ => None,
    }
}

fn read_pem(field: &'static str, src: &PemSource) -> Result<(Vec<u8>, String), WebConfigError> {
    match src {
        PemSource::File(p) => std::fs::read(p)
            .map(|b| (b, p.display().to_string()))
            .map_err(|source| WebConfigError::Read { what: field, path: p.clone(), source }),
        PemSource::Inline(s) => Ok((s.as_bytes().to_vec(), "<inline>".to_owned())),
    }
}

fn certs(field: &'static str, src: &PemSource) -> Result<Vec<CertificateDer<'static>>, WebConfigError> {
    let (bytes, path) = read_pem(field, src)?;
    let pem_err = |reason: String| WebConfigError::Pem { field, path: path.clone(), reason };
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_err(format!("cannot parse PEM: {e}")))?;
    if certs.is_empty() {
        return Err(pem_err("no CERTIFICATE block found".into()));
    }
    Ok(certs)
}

/// Builds the rustls configuration (reading the PEM files now).
pub fn server_config(t: &TlsSettings, http2: bool) -> Result<ServerConfig, WebConfigError> {
    let chain = certs("cert_file", &t.cert)?;
    let (key_bytes, key_path) = read_pem("key_file", &t.key)?;
    let key = PrivateKeyDer::from_pem_slice(&key_bytes).map_err(|e| WebConfigError::Pem {
        field: "key_file",
        path: key_path,
        reason: format!("no usable private key (PKCS#8, PKCS#1 or SEC1 PEM): {e}"),
    })?;

    let mut provider = ring::default_provider();
    if !t.cipher_suites.is_empty() {
        // TLS 1.3 suites stay; the TLS 1.2 ones are the listed, in order.
        let mut suites: Vec<SupportedCipherSuite> =
            provider.cipher_suites.iter().copied().filter(|s| s.version() == &rustls::version::TLS13).collect();
        suites.extend(t.cipher_suites.iter().filter_map(|n| cipher_suite(n)));
        provider.cipher_suites = suites;
    }
    if !t.curve_preferences.is_empty() {
        provider.kx_groups = t.curve_preferences.iter().filter_map(|n| kx_group(n)).collect();
    }
    let provider = Arc::new(provider);
    let mut versions: Vec<&'static rustls::SupportedProtocolVersion> = Vec::new();
    if t.min_version <= TlsVersion::Tls12 && t.max_version >= TlsVersion::Tls12 {
        versions.push(&rustls::version::TLS12);
    }
    if t.max_version >= TlsVersion::Tls13 {
        versions.push(&rustls::version::TLS13);
    }
    let algs = provider.signature_verification_algorithms;
    let verifier: Arc<dyn ClientCertVerifier> = match t.client_auth {
        ClientAuth::NoClientCert => WebPkiClientVerifier::no_client_auth(),
        ClientAuth::RequestClientCert => Arc::new(AnyClientCert { required: false, algs }),
        ClientAuth::RequireAnyClientCert => Arc::new(AnyClientCert { required: true, algs }),
        ClientAuth::VerifyClientCertIfGiven | ClientAuth::RequireAndVerifyClientCert => {
            let ca = t.client_ca.as_ref().ok_or_else(|| {
                WebConfigError::invalid("tls_server_config.client_ca_file", "required by client_auth_type")
            })?;
            let mut roots = RootCertStore::empty();
            for c in certs("client_ca_file", ca)? {
                roots.add(c).map_err(|e| WebConfigError::Pem {
                    field: "client_ca_file",
                    path: match ca {
                        PemSource::File(p) => p.display().to_string(),
                        PemSource::Inline(_) => "<inline>".into(),
                    },
                    reason: format!("not a usable CA certificate: {e}"),
                })?;
            }
            let builder = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
            let builder = if t.client_auth == ClientAuth::VerifyClientCertIfGiven {
                builder.allow_unauthenticated()
            } else {
                builder
            };
            builder.build().map_err(|e| WebConfigError::invalid("tls_server_config.client_ca_file", e.to_string()))?
        }
    };
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&versions)
        .map_err(|e| WebConfigError::invalid("tls_server_config", e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| WebConfigError::invalid("tls_server_config.key_file", format!("does not fit cert_file: {e}")))?;
    config.ignore_client_order = t.prefer_server_cipher_suites;
    config.alpn_protocols = if http2 { vec![b"h2".to_vec(), b"http/1.1".to_vec()] } else { vec![b"http/1.1".to_vec()] };
    Ok(config)
}

/// `RequestClientCert` and `RequireAnyClientCert`: a certificate is asked
/// for (and, for the latter, required), its signature over the handshake is
/// checked, but it is not verified against any CA, exactly Go's semantics.
#[derive(Debug)]
struct AnyClientCert {
    required: bool,
    algs: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for AnyClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        self.required
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}
