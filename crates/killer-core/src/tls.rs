//! TLS to Redis: `ssl_params` as Sidekiq takes them, read into what the
//! redis crate's rustls support takes. Built without the `tls` feature
//! (CI type-checks the macOS code that way: ring's C does not
//! cross-compile here), any TLS setting is an error saying so.

use std::fmt;
use std::path::PathBuf;

use redis::sentinel::SentinelClientBuilder;
#[cfg(feature = "tls")]
use redis::ConnectionAddr;
use redis::ConnectionInfo;

use crate::error::{Error, Result};
#[cfg(feature = "tls")]
use crate::redact::redact_text;
use crate::redact::REDACTED;

/// `ssl_params` as Sidekiq takes them.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Tls {
    /// PEM file of the CA(s) to trust instead of the system's roots.
    pub ca_file: Option<PathBuf>,
    /// Directory of PEM files of CAs to trust instead of the system's roots.
    pub ca_path: Option<PathBuf>,
    /// Client certificate (chain) and key, PEM, for servers that ask for one.
    pub cert_pem: Option<String>,
    pub key_pem: Option<String>,
    /// false: `verify_mode: OpenSSL::SSL::VERIFY_NONE` (no certificate or
    /// hostname check), as Heroku Redis documents.
    pub verify: bool,
}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tls")
            .field("ca_file", &self.ca_file)
            .field("ca_path", &self.ca_path)
            .field("cert", &self.cert_pem.is_some())
            .field("key", &self.key_pem.as_ref().map(|_| REDACTED))
            .field("verify", &self.verify)
            .finish()
    }
}

/// CA and client certificates read at boot, for the connections that
/// need them beyond the system's roots.
#[cfg(feature = "tls")]
#[derive(Clone)]
pub(crate) struct Certificates(redis::TlsCertificates);

/// A build without TLS has no certificates to hold.
#[cfg(not(feature = "tls"))]
#[derive(Clone)]
pub(crate) enum Certificates {}

impl Tls {
    /// The CA certificates and the client certificate, read and checked
    /// now so that a wrong path is an error at boot, not at each connect;
    /// None when the system's roots do and no client certificate is asked.
    #[cfg(feature = "tls")]
    pub(crate) fn certificates(&self) -> Result<Option<Certificates>> {
        // One provider for rustls, whatever else the process has loaded.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut roots: Vec<u8> = Vec::new();
        if let Some(file) = &self.ca_file {
            roots.extend(read_pem(file, "ssl_params[:ca_file]")?);
        }
        if let Some(dir) = &self.ca_path {
            roots.extend(read_pem_dir(dir)?);
        }
        let client_tls = match (&self.cert_pem, &self.key_pem) {
            (Some(cert), Some(key)) => Some(redis::ClientTlsConfig {
                client_cert: cert.as_bytes().to_vec(),
                client_key: key.as_bytes().to_vec(),
            }),
            (None, None) => None,
            _ => return Err(Error::InvalidArgument(
                "redis ssl_params needs both :cert and :key for a client certificate, or neither"
                    .into(),
            )),
        };
        let certs = redis::TlsCertificates {
            client_tls,
            root_cert: (!roots.is_empty()).then_some(roots),
        };
        // Parsed here too, so a bad PEM names its option.
        redis::Client::build_with_tls(
            ConnectionAddr::TcpTls {
                host: "localhost".into(),
                port: 6379,
                insecure: false,
                tls_params: None,
            },
            certs.clone(),
        )
        .map_err(|e| {
            Error::InvalidArgument(format!(
                "redis ssl_params are not usable: {}",
                redact_text(
                    &e.to_string(),
                    &self.key_pem.iter().cloned().collect::<Vec<_>>()
                )
            ))
        })?;
        let custom = certs.root_cert.is_some() || certs.client_tls.is_some();
        Ok(custom.then_some(Certificates(certs)))
    }

    #[cfg(not(feature = "tls"))]
    pub(crate) fn certificates(&self) -> Result<Option<Certificates>> {
        Err(Error::InvalidArgument(
            "redis TLS (rediss://, ssl: true) needs sidekiq-killer built with its `tls` feature"
                .into(),
        ))
    }
}

#[cfg(feature = "tls")]
impl Certificates {
    pub(crate) fn client(self, info: ConnectionInfo) -> redis::RedisResult<redis::Client> {
        redis::Client::build_with_tls(info, self.0)
    }

    /// For the master, and for the sentinels when they talk TLS too.
    pub(crate) fn apply(
        &self,
        b: SentinelClientBuilder,
        sentinels_too: bool,
    ) -> SentinelClientBuilder {
        let b = b.set_client_to_redis_certificates(self.0.clone());
        if sentinels_too {
            b.set_client_to_sentinel_certificates(self.0.clone())
        } else {
            b
        }
    }
}

#[cfg(not(feature = "tls"))]
impl Certificates {
    pub(crate) fn client(self, _info: ConnectionInfo) -> redis::RedisResult<redis::Client> {
        match self {}
    }

    pub(crate) fn apply(
        &self,
        _b: SentinelClientBuilder,
        _sentinels_too: bool,
    ) -> SentinelClientBuilder {
        match *self {}
    }
}

#[cfg(feature = "tls")]
fn read_pem(file: &PathBuf, option: &str) -> Result<Vec<u8>> {
    let bytes = std::fs::read(file).map_err(|e| {
        Error::InvalidArgument(format!(
            "redis {option} {} cannot be read: {e}",
            file.display()
        ))
    })?;
    if !String::from_utf8_lossy(&bytes).contains("-----BEGIN CERTIFICATE-----") {
        return Err(Error::InvalidArgument(format!(
            "redis {option} {} holds no PEM certificate",
            file.display()
        )));
    }
    let mut bytes = bytes;
    bytes.push(b'\n');
    Ok(bytes)
}

#[cfg(feature = "tls")]
/// Every PEM certificate in the directory (as OpenSSL's `ca_path` would
/// trust them), in name order.
fn read_pem_dir(dir: &PathBuf) -> Result<Vec<u8>> {
    let entries = std::fs::read_dir(dir).map_err(|e| {
        Error::InvalidArgument(format!(
            "redis ssl_params[:ca_path] {} cannot be read: {e}",
            dir.display()
        ))
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        if let Ok(bytes) = std::fs::read(&f) {
            if String::from_utf8_lossy(&bytes).contains("-----BEGIN CERTIFICATE-----") {
                out.extend(bytes);
                out.push(b'\n');
            }
        }
    }
    if out.is_empty() {
        return Err(Error::InvalidArgument(format!(
            "redis ssl_params[:ca_path] {} holds no PEM certificate",
            dir.display()
        )));
    }
    Ok(out)
}
