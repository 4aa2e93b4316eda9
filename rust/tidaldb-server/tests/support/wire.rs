//! Raw connections for the bad-input tests: frames built by hand (a 4-byte big-endian
//! length, then postcard bytes), sent over plain TCP or over TLS with a chosen identity.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tidaldb::runtime::net::frame::{self, Dialer, Hello, Welcome};
use tidaldb::runtime::net::{Security, Stream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{CLUSTER_ID, runtime};

/// One frame: the length prefix, then `body`.
pub fn frame_bytes(body: &[u8]) -> Vec<u8> {
    let mut out = (body.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(body);
    out
}

/// A hello frame, as a node or client would send it, for this test cluster.
pub fn hello_bytes(dialer: Dialer) -> Vec<u8> {
    encoded_hello(&Hello::new(CLUSTER_ID, dialer))
}

pub fn encoded_hello(hello: &Hello) -> Vec<u8> {
    frame_bytes(&frame::encode(hello).expect("encode a hello"))
}

/// An open connection, and the local port the node logs it under (`from=127.0.0.1:PORT`).
pub struct Raw {
    pub stream: Stream,
    pub port: u16,
}

impl Raw {
    /// Connects to `addr` and secures the connection as `security` says (plain TCP for
    /// `Insecure`); TLS that the node refuses may still "succeed" here, and fail on the
    /// first read.
    pub fn open(addr: SocketAddr, security: &Security) -> io::Result<Raw> {
        runtime().block_on(async {
            let tcp = TcpStream::connect(addr).await?;
            let port = tcp.local_addr()?.port();
            let stream = security.connect("127.0.0.1", tcp).await?;
            Ok(Raw { stream, port })
        })
    }

    pub fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        runtime().block_on(async {
            self.stream.write_all(bytes).await?;
            self.stream.flush().await
        })
    }

    /// Closes our sending side (a TLS close_notify, then FIN).
    pub fn finish(&mut self) {
        let _ = runtime().block_on(self.stream.shutdown());
    }

    /// The node's answer to a hello: one frame holding a `Welcome`.
    pub fn read_welcome(&mut self) -> io::Result<Welcome> {
        runtime().block_on(async {
            let read = async {
                let mut len = [0u8; 4];
                self.stream.read_exact(&mut len).await?;
                let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
                self.stream.read_exact(&mut body).await?;
                frame::decode::<Welcome>(&body)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))
            };
            tokio::time::timeout(Duration::from_secs(5), read)
                .await
                .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no welcome"))?
        })
    }

    /// True when the node closes the connection (EOF or an error) within `within`,
    /// whatever it sends first; false when it keeps it open that long.
    pub fn closed_by_node(&mut self, within: Duration) -> bool {
        runtime().block_on(async {
            let drain = async {
                let mut buf = [0u8; 4096];
                loop {
                    match self.stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {}
                    }
                }
            };
            tokio::time::timeout(within, drain).await.is_ok()
        })
    }
}

/// `n` bytes from a fixed seed (splitmix64), so that a failure replays.
pub fn noise(seed: u64, n: usize) -> Vec<u8> {
    let mut state = seed;
    let mut out = Vec::with_capacity(n + 8);
    while out.len() < n {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        out.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    out.truncate(n);
    out
}
