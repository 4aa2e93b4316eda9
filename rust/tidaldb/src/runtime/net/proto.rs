//! The client protocol: what a client asks a node, and what the node answers. Each request
//! is one frame and gets exactly one reply frame with the same `id`, so a client may
//! pipeline.
//!
//! Names travel as strings (signals, windows) and are resolved by the node, against its
//! schema, with the same errors an embedded database gives. Bulk arrays (ids, weights,
//! timestamps, scores) travel as little-endian bytes, 8 per value (see [`le`]).

use serde::{Deserialize, Serialize};

use crate::error::{ErrorKind, QuotaBreach, TidalError};
use crate::event::{EventId, TenantId};
use crate::ledger::ItemErrors;
use crate::schema::NodeId;

/// When a write is acknowledged, as the wire carries it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Concern {
    /// After the append to the answering node's log.
    #[default]
    Local,
    /// After this many other replicas hold the write durably.
    Replicated(u8),
    /// After a majority of the replica group, the answering node included.
    Majority,
    /// After every other replica of the group.
    All,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Request {
    pub id: u64,
    pub tenant: TenantId,
    pub op: Op,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Op {
    /// Signals of one kind, validated as a whole and written whole or not at all.
    /// `ts_ns` is `None` for "now on the node", else one timestamp per entity.
    Write {
        signal: String,
        #[serde(with = "le")]
        entities: Vec<u64>,
        #[serde(with = "le")]
        weights: Vec<f64>,
        #[serde(with = "le::option")]
        ts_ns: Option<Vec<i64>>,
        concern: Concern,
        /// Names the write, so that a retry on another node is recognised there.
        idempotency_key: Option<u64>,
    },
    Hide {
        user: u64,
        item: u64,
        hidden: bool,
        /// When the user hid the item; `None` is the server's time now.
        ts_ns: Option<i64>,
        concern: Concern,
        idempotency_key: Option<u64>,
    },
    Scores {
        signal: String,
        #[serde(with = "le")]
        entities: Vec<u64>,
        at_ns: Option<i64>,
        /// Whether an entity whose score cannot be read fails the read or reads as NaN.
        errors: ItemErrors,
    },
    Window {
        signal: String,
        entity: u64,
        window: String,
        at_ns: Option<i64>,
    },
    IsHidden {
        user: u64,
        item: u64,
    },
    Retrieve {
        user: Option<u64>,
        #[serde(with = "le")]
        candidates: Vec<u64>,
        rank_by: Vec<(String, f64)>,
        limit: u32,
        at_ns: Option<i64>,
    },
    /// This node's replication lag behind each peer.
    Lag,
    /// The node's view of its replica group, as `ClusterHealth` JSON.
    Health,
    /// The schema this node serves, as JSON.
    Schema,
    /// The cluster's region names, indexed by region id, as a JSON list.
    Regions,
    /// What this node's control-plane voter knows (Raft term and leader, each group's
    /// committed leader and term), as JSON.
    Control,
    /// A command for the replicated control plane, answered once committed and applied
    /// (`Answer::Bool(true)`), or refused with nothing committed.
    Admin(AdminOp),
}

/// The operator's commands, by region name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AdminOp {
    /// Moves the leadership of the region's hosts away, and keeps it away.
    Drain { region: String },
    /// Lets a drained region's hosts lead again.
    Rejoin { region: String },
    /// Registers a tenant, with replicas on the processes of its regions.
    RegisterTenant(crate::cluster::TenantOptions),
    /// Moves a tenant's replica from region `from` to region `to`, without downtime. `from`
    /// may be left out when the tenant lives in one region.
    MigrateTenant {
        tenant: u64,
        from: Option<String>,
        to: String,
    },
    /// Lets a node whose config lists it as a voter vote again (`add`), or stops it voting.
    ChangeVoters { node: u16, add: bool },
}

impl Op {
    /// Whether the op writes: a write is not retried on another node once sent.
    pub fn is_write(&self) -> bool {
        matches!(self, Op::Write { .. } | Op::Hide { .. })
    }

    /// Whether the op only reads, so any node may answer it, as often as asked: a read
    /// that a node refuses as unavailable goes on to the next node. Operator commands are
    /// not reads (a retry could apply one twice).
    pub fn is_read(&self) -> bool {
        !self.is_write() && !matches!(self, Op::Admin(_))
    }
}

/// Which node answered, and whether its answer may miss writes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Served {
    pub node: NodeId,
    /// The answering node's region, by name.
    pub region: String,
    /// Some replica of the shard has not been heard within its peer timeout: the answer
    /// stands for what reached this node.
    pub degraded: bool,
    pub unreachable: Vec<NodeId>,
}

/// One ranked item of a retrieve.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Ranked {
    pub item: u64,
    pub score: f64,
}

/// Replication lag of one peer as this node sees it.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct PeerLag {
    pub peer: NodeId,
    /// Events this node holds that the peer has not acknowledged.
    pub events: u64,
    /// Age of the oldest of those events, in seconds.
    pub seconds: f64,
    pub reachable: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Answer {
    Written {
        count: u64,
        /// The first event written, or the original when this was a recognised retry.
        first: EventId,
        duplicate: bool,
    },
    Scores(#[serde(with = "le")] Vec<f64>),
    Window {
        count: u64,
        weight: f64,
    },
    Bool(bool),
    Ranked {
        items: Vec<Ranked>,
        hidden_filtered: u64,
        candidates: u64,
    },
    Lag(Vec<PeerLag>),
    Json(String),
}

/// A refusal: the error's class (which picks the client's exception) and its message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refused {
    pub kind: ErrorKind,
    pub message: String,
    /// Set when a quota refused the write: its limit and when a retry can pass.
    pub quota: Option<QuotaBreach>,
}

impl From<&TidalError> for Refused {
    fn from(e: &TidalError) -> Refused {
        Refused {
            kind: e.kind(),
            message: e.to_string(),
            quota: e.quota_breach().cloned(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    pub id: u64,
    pub served: Served,
    pub result: Result<Answer, Refused>,
}

/// Serde for the bulk arrays as one byte string of little-endian values, 8 bytes each.
/// Serde's own impl goes element by element: postcard then varint-encoded every id with
/// a call to extend its buffer per element (about 5 ns an id: 55 µs of a 10K-candidate
/// retrieve on the client, and 0.7 ms of a 64K-event write), and decoded them one by one.
/// As bytes, encoding is one copy (no copy of the array on little-endian machines) and
/// decoding one pass; ids under 2^21 take 8 bytes instead of 3, which costs less than the
/// calls did.
pub(crate) mod le {
    use std::fmt;
    use std::marker::PhantomData;

    use serde::de::{self, Visitor};
    use serde::{Deserializer, Serializer};

    /// An 8-byte value that travels little-endian.
    pub trait Elem: bytemuck::Pod {
        fn from_le(bytes: [u8; 8]) -> Self;
    }

    impl Elem for u64 {
        fn from_le(bytes: [u8; 8]) -> Self {
            u64::from_le_bytes(bytes)
        }
    }

    impl Elem for i64 {
        fn from_le(bytes: [u8; 8]) -> Self {
            i64::from_le_bytes(bytes)
        }
    }

    impl Elem for f64 {
        fn from_le(bytes: [u8; 8]) -> Self {
            f64::from_le_bytes(bytes)
        }
    }

    pub fn serialize<T: Elem, S: Serializer>(values: &[T], s: S) -> Result<S::Ok, S::Error> {
        if cfg!(target_endian = "little") {
            s.serialize_bytes(bytemuck::cast_slice(values))
        } else {
            let mut bytes: Vec<u8> = bytemuck::cast_slice(values).to_vec();
            bytes.chunks_exact_mut(8).for_each(<[u8]>::reverse);
            s.serialize_bytes(&bytes)
        }
    }

    pub fn deserialize<'de, T: Elem, D: Deserializer<'de>>(d: D) -> Result<Vec<T>, D::Error> {
        d.deserialize_bytes(LeVisitor(PhantomData))
    }

    struct LeVisitor<T>(PhantomData<T>);

    impl<T: Elem> Visitor<'_> for LeVisitor<T> {
        type Value = Vec<T>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an array of 8-byte little-endian values")
        }

        fn visit_bytes<E: de::Error>(self, bytes: &[u8]) -> Result<Vec<T>, E> {
            let chunks = bytes.chunks_exact(8);
            if !chunks.remainder().is_empty() {
                return Err(E::custom(format!(
                    "an array of {} bytes is not a whole number of 8-byte values",
                    bytes.len()
                )));
            }
            Ok(chunks
                .map(|c| {
                    let mut b = [0u8; 8];
                    b.copy_from_slice(c);
                    T::from_le(b)
                })
                .collect())
        }
    }

    /// The same for an optional array.
    pub mod option {
        use super::*;

        struct Wrap<'a, T>(&'a [T]);

        impl<T: Elem> serde::Serialize for Wrap<'_, T> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                super::serialize(self.0, s)
            }
        }

        pub fn serialize<T: Elem, S: Serializer>(
            values: &Option<Vec<T>>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            match values {
                Some(v) => s.serialize_some(&Wrap(v)),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, T: Elem, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Option<Vec<T>>, D::Error> {
            d.deserialize_option(OptionVisitor(PhantomData))
        }

        struct OptionVisitor<T>(PhantomData<T>);

        impl<'de, T: Elem> Visitor<'de> for OptionVisitor<T> {
            type Value = Option<Vec<T>>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an optional array of 8-byte little-endian values")
            }

            fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(None)
            }

            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
                super::deserialize(d).map(Some)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::net::frame::{decode, encode};

    #[test]
    fn bulk_arrays_travel_as_little_endian_bytes_and_round_trip() {
        let op = Op::Write {
            signal: "view".into(),
            entities: vec![1, u64::MAX, 300],
            weights: vec![0.5, -0.0, f64::MAX],
            ts_ns: Some(vec![i64::MIN, 0, 7]),
            concern: Concern::Local,
            idempotency_key: None,
        };
        let req = Request {
            id: 9,
            tenant: TenantId(0),
            op,
        };
        let bytes = encode(&req).unwrap();
        assert_eq!(decode::<Request>(&bytes).unwrap(), req);
        // The ids are there as 24 raw bytes behind their length.
        let mut ids = vec![24u8];
        for id in [1u64, u64::MAX, 300] {
            ids.extend_from_slice(&id.to_le_bytes());
        }
        assert!(bytes.windows(ids.len()).any(|w| w == ids), "ids not raw LE");
        for ts in [None, Some(vec![])] {
            let op = Op::Write {
                signal: "v".into(),
                entities: vec![],
                weights: vec![],
                ts_ns: ts,
                concern: Concern::All,
                idempotency_key: Some(3),
            };
            assert_eq!(decode::<Op>(&encode(&op).unwrap()).unwrap(), op);
        }
        let answer = Answer::Scores(vec![1.5, f64::MIN_POSITIVE]);
        assert_eq!(decode::<Answer>(&encode(&answer).unwrap()).unwrap(), answer);
    }

    #[test]
    fn an_array_cut_mid_value_is_refused() {
        let answer = Answer::Scores(vec![1.0, 2.0]);
        let mut bytes = encode(&answer).unwrap().to_vec();
        // Variant 1, length 16: claim 15 bytes and drop the last one.
        assert_eq!(&bytes[..2], &[1, 16]);
        bytes[1] = 15;
        bytes.pop();
        // (postcard reports a visitor's error without its text)
        let err = decode::<Answer>(&bytes).unwrap_err();
        assert!(err.to_string().contains("malformed frame"), "{err}");
    }
}
