//! tidaldb between processes: replication over TCP, the client protocol, and mutual TLS for
//! both. See `frame` for the bytes on the wire.

mod backoff;
pub mod frame;
mod peers;
mod tls;

pub use peers::{DEFAULT_QUEUE_LEN, LinkReading, PeerAddress, PeerNetConfig, PeerNetwork};
pub use tls::{Security, Stream, TlsFiles};
