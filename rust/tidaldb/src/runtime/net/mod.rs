//! tidaldb between processes: replication over TCP, the client protocol, and mutual TLS for
//! both. See `frame` for the bytes on the wire.

mod backoff;
mod client;
mod control_admin;
pub mod control_host;
pub mod control_status;
mod drain;
pub mod frame;
mod majority;
mod migration_steps;
mod peers;
mod placed_by;
pub mod placement;
pub mod proto;
mod server;
mod service;
mod tls;

pub use client::{Answered, Client, ClientOptions, Retrieved, Written};
pub use peers::{DEFAULT_QUEUE_LEN, LinkReading, PeerAddress, PeerNetConfig, PeerNetwork};
pub use server::{PeerSpec, Server, ServerSpec, replica_dir};
pub use service::{ClientService, ServiceStats};
pub use tls::{Security, Stream, TlsFiles};
