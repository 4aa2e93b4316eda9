//! Mutual TLS between nodes and from clients, with rustls. One CA signs every node's and
//! every client's certificate; each end of a connection proves it holds a certificate of
//! that CA, so a process without one is refused before it can send a single frame.
//!
//! `Security::Insecure` turns all of it off for local experiments. It is named as such on
//! the command line (`--insecure`) and logged as a warning at start, so that it cannot be
//! mistaken for a secure setup.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::{TlsAcceptor, TlsConnector, TlsStream};

use crate::error::{Result, TidalError};

/// Where a node's or a client's TLS material lives, as PEM files.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
pub struct TlsFiles {
    /// The cluster's CA certificate: every peer and client must present one it signed.
    pub ca: PathBuf,
    /// This process's certificate chain.
    pub cert: PathBuf,
    /// This process's private key.
    pub key: PathBuf,
}

/// How a process secures its connections.
#[derive(Clone)]
pub enum Security {
    /// Plain TCP: no authentication, no encryption. For local use only.
    Insecure,
    Tls(Arc<TlsContext>),
}

impl fmt::Debug for Security {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Security::Insecure => f.write_str("Insecure"),
            Security::Tls(_) => f.write_str("Tls"),
        }
    }
}

impl Security {
    /// Loads the PEM files and builds both ends' TLS configurations.
    pub fn from_files(files: &TlsFiles) -> Result<Security> {
        TlsContext::load(files).map(|c| Security::Tls(Arc::new(c)))
    }

    /// Secures a connection this process accepted.
    pub async fn accept(&self, tcp: TcpStream) -> io::Result<Stream> {
        match self {
            Security::Insecure => Ok(Stream::Plain(tcp)),
            Security::Tls(ctx) => {
                let tls = ctx.acceptor.accept(tcp).await?;
                Ok(Stream::Tls(Box::new(TlsStream::Server(tls))))
            }
        }
    }

    /// Secures a connection this process dialed to `host` (the name its certificate must
    /// carry: a DNS name or an IP address).
    pub async fn connect(&self, host: &str, tcp: TcpStream) -> io::Result<Stream> {
        match self {
            Security::Insecure => Ok(Stream::Plain(tcp)),
            Security::Tls(ctx) => {
                let name = ServerName::try_from(host.to_owned()).map_err(|e| {
                    io::Error::new(io::ErrorKind::InvalidInput, format!("{host:?}: {e}"))
                })?;
                let tls = ctx.connector.connect(name, tcp).await?;
                Ok(Stream::Tls(Box::new(TlsStream::Client(tls))))
            }
        }
    }
}

/// Both ends' rustls configurations, built once from the PEM files.
pub struct TlsContext {
    acceptor: TlsAcceptor,
    connector: TlsConnector,
}

impl TlsContext {
    fn load(files: &TlsFiles) -> Result<TlsContext> {
        let ca = read_certs(&files.ca)?;
        let chain = read_certs(&files.cert)?;
        let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| bad_pem(&files.key, e))?;
        let mut roots = RootCertStore::empty();
        for cert in ca {
            roots.add(cert).map_err(|e| bad_tls(&files.ca, e))?;
        }
        let roots = Arc::new(roots);
        let provider = Arc::new(ring_provider());
        let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
            .build()
            .map_err(|e| bad_tls(&files.ca, e))?;
        let server = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| bad_tls(&files.cert, e))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain.clone(), key.clone_key())
            .map_err(|e| bad_tls(&files.key, e))?;
        let client = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| bad_tls(&files.cert, e))?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .map_err(|e| bad_tls(&files.key, e))?;
        Ok(TlsContext {
            acceptor: TlsAcceptor::from(Arc::new(server)),
            connector: TlsConnector::from(Arc::new(client)),
        })
    }
}

/// ring's provider. rustls deprecates it because ring has no post-quantum key exchange;
/// aws-lc-rs has one, but its C build would double the time to build tidaldb from source.
/// Revisit when ring gains ML-KEM.
#[allow(deprecated)]
fn ring_provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::ring::default_provider()
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<std::result::Result<Vec<_>, _>>())
        .map_err(|e| bad_pem(path, e))?;
    if certs.is_empty() {
        return Err(TidalError::InvalidArgument {
            name: "tls",
            reason: format!("{} holds no PEM certificate", path.display()),
        });
    }
    Ok(certs)
}

fn bad_pem(path: &Path, e: rustls::pki_types::pem::Error) -> TidalError {
    TidalError::InvalidArgument {
        name: "tls",
        reason: format!("cannot read {}: {e}", path.display()),
    }
}

fn bad_tls(path: &Path, e: impl fmt::Display) -> TidalError {
    TidalError::InvalidArgument {
        name: "tls",
        reason: format!("{} is not usable: {e}", path.display()),
    }
}

/// A connection, encrypted or not.
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
