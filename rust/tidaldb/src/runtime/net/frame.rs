//! The bytes on a tidaldb connection: length-delimited frames, each one postcard value,
//! and the handshake that opens every connection.
//!
//! A connection starts with one small `Hello` frame each way, read with a decoder capped at
//! [`HANDSHAKE_MAX_BYTES`], so that a stranger cannot make the process allocate before it
//! has named a protocol version and cluster this node speaks. Only then does the cap rise
//! to what the link needs. Every length prefix is checked against the cap before anything
//! is allocated for the frame.

use std::fmt;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::codec::{Framed, LengthDelimitedCodec};

use crate::error::{Result, TidalError};
use crate::schema::NodeId;

/// Raised whenever the bytes on the wire change meaning. Both ends must agree exactly.
/// 2: the client protocol's bulk arrays are little-endian bytes, no longer varints.
pub const PROTOCOL_VERSION: u32 = 5;

/// The first bytes of every hello, so that a stray client of some other protocol is told
/// apart from a tidaldb node of another version.
pub const MAGIC: [u8; 4] = *b"TDB\x01";

/// The largest hello frame: a few dozen bytes in practice.
pub const HANDSHAKE_MAX_BYTES: usize = 4 * 1024;

/// The largest frame between replicas. A frame carries at most `max_frame_events` events,
/// or one full-state snapshot, so this also bounds the state a snapshot can resync.
pub const PEER_MAX_FRAME_BYTES: usize = 512 << 20;

/// The largest frame between a client and a node: one bulk call's arrays.
pub const CLIENT_MAX_FRAME_BYTES: usize = 64 << 20;

/// A framed connection.
pub type Conn<S> = Framed<S, LengthDelimitedCodec>;

/// Wraps a stream in the frame codec, capped for the handshake.
pub fn framed<S: AsyncRead + AsyncWrite>(stream: S) -> Conn<S> {
    let codec = LengthDelimitedCodec::builder()
        .length_field_type::<u32>()
        .max_frame_length(HANDSHAKE_MAX_BYTES)
        .new_codec();
    Framed::new(stream, codec)
}

/// Who opens a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Dialer {
    /// A replica that will send replication messages on this connection.
    Peer(NodeId),
    /// A client that will send requests and read replies.
    Client,
}

/// The first frame the dialer sends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    pub magic: [u8; 4],
    pub version: u32,
    pub cluster_id: String,
    pub dialer: Dialer,
}

impl Hello {
    pub fn new(cluster_id: &str, dialer: Dialer) -> Hello {
        Hello {
            magic: MAGIC,
            version: PROTOCOL_VERSION,
            cluster_id: cluster_id.to_owned(),
            dialer,
        }
    }
}

/// The acceptor's answer: `Ok` with its own node id, or the reason it refused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Welcome {
    Ok { node: NodeId },
    Refused(String),
}

/// Why a hello was refused; the text goes to both the log and the dialer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal(pub String);

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Checks a hello against this node's cluster, and the dialer against what this listener
/// takes (`accept` says which dialers are welcome).
pub fn check_hello(
    hello: &Hello,
    cluster_id: &str,
    accept: impl Fn(Dialer) -> std::result::Result<(), String>,
) -> std::result::Result<(), Refusal> {
    if hello.magic != MAGIC {
        return Err(Refusal(format!(
            "not a tidaldb hello (magic {:?}, expected {:?})",
            hello.magic, MAGIC
        )));
    }
    if hello.version != PROTOCOL_VERSION {
        return Err(Refusal(format!(
            "protocol version {} is not this node's {}; run the same tidaldb release on both ends",
            hello.version, PROTOCOL_VERSION
        )));
    }
    if hello.cluster_id != cluster_id {
        return Err(Refusal(format!(
            "cluster id {:?} is not this node's {:?}; check cluster_id in both configs",
            hello.cluster_id, cluster_id
        )));
    }
    accept(hello.dialer).map_err(Refusal)
}

/// Encodes one value as a frame's body.
pub fn encode<T: Serialize>(value: &T) -> Result<Bytes> {
    postcard::to_stdvec(value)
        .map(Bytes::from)
        .map_err(|e| TidalError::InvalidArgument {
            name: "message",
            reason: format!("cannot encode: {e}"),
        })
}

/// Decodes a frame's body; any bytes that are not exactly one value are refused.
pub fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T> {
    match postcard::take_from_bytes::<T>(body) {
        Ok((value, [])) => Ok(value),
        Ok((_, rest)) => Err(malformed(format!(
            "{} trailing bytes after the message",
            rest.len()
        ))),
        Err(e) => Err(malformed(e.to_string())),
    }
}

fn malformed(detail: String) -> TidalError {
    TidalError::InvalidArgument {
        name: "frame",
        reason: format!("malformed frame: {detail}"),
    }
}

/// Sends one value as a frame.
pub async fn send<S, T>(conn: &mut Conn<S>, value: &T) -> Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
    T: Serialize,
{
    let body = encode(value)?;
    conn.send(body)
        .await
        .map_err(TidalError::io("sending a frame"))
}

/// Reads the next frame and decodes it; `Ok(None)` when the other end closed cleanly.
pub async fn recv<S, T>(conn: &mut Conn<S>) -> Result<Option<T>>
where
    S: AsyncRead + AsyncWrite + Unpin,
    T: DeserializeOwned,
{
    match conn.next().await {
        None => Ok(None),
        // A peer that exits without TLS's close_notify (a CLI run, a killed client) ends
        // the stream here. Every frame carries its length, so a cut inside one is still
        // refused as a damaged frame; at a frame boundary this is an ordinary close.
        Some(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(None),
        Some(Ok(body)) => decode(&body).map(Some),
        Some(Err(e)) => Err(TidalError::io("reading a frame")(e)),
    }
}

/// Raises the frame cap once the handshake is done.
pub fn open_up<S>(conn: &mut Conn<S>, max_frame: usize) {
    conn.codec_mut().set_max_frame_length(max_frame);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::VersionVector;
    use crate::node::Message;

    #[test]
    fn a_message_survives_the_round_trip() {
        let msg = Message::Push {
            term: 3,
            frame: std::sync::Arc::from(&b"events"[..]),
        };
        assert_eq!(decode::<Message>(&encode(&msg).unwrap()).unwrap(), msg);
        let ack = Message::Ack {
            term: 1,
            vv: VersionVector::default(),
        };
        assert_eq!(decode::<Message>(&encode(&ack).unwrap()).unwrap(), ack);
    }

    #[test]
    fn trailing_bytes_are_refused() {
        let mut body = encode(&Message::Fenced { term: 1 }).unwrap().to_vec();
        body.push(0);
        let err = decode::<Message>(&body).unwrap_err();
        assert!(err.to_string().contains("trailing"), "{err}");
    }

    #[test]
    fn hellos_of_another_cluster_or_version_are_refused() {
        let ok = |_| Ok(());
        let hello = Hello::new("prod", Dialer::Client);
        assert_eq!(check_hello(&hello, "prod", ok), Ok(()));
        let other = check_hello(&hello, "staging", ok).unwrap_err();
        assert!(other.0.contains("cluster id"), "{other}");
        let old = Hello {
            version: PROTOCOL_VERSION + 1,
            ..hello.clone()
        };
        assert!(
            check_hello(&old, "prod", ok)
                .unwrap_err()
                .0
                .contains("version")
        );
        let stray = Hello {
            magic: *b"HTTP",
            ..hello
        };
        assert!(
            check_hello(&stray, "prod", ok)
                .unwrap_err()
                .0
                .contains("magic")
        );
    }
}
