//! Fuzzing what arrives on a socket: arbitrary bytes, and valid encodings with bytes
//! flipped or cut off, fed to every decoder a node or client runs on received bytes (the
//! frame bodies `Hello`, `Welcome`, `Request`, `Reply` and the replication `Message`, and a
//! pushed batch's `wal::decode_frame`), and through the length-delimited codec itself on
//! an in-memory stream. None may panic or hang: each returns a value or an error. A length
//! prefix past the cap is refused at once, without waiting for the body it announces.
//!
//! The case count is bounded so that this runs in seconds; `PROPTEST_CASES=100000 cargo
//! test -p tidaldb --test wire_decoder_fuzz` searches longer.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use proptest::prelude::*;
use tidaldb::crdt::HlcTimestamp;
use tidaldb::event::ClientTag;
use tidaldb::event::IdempotencyKey;
use tidaldb::node::{Message, NodeRole};
use tidaldb::runtime::net::frame::{
    self, CLIENT_MAX_FRAME_BYTES, Dialer, HANDSHAKE_MAX_BYTES, Hello, PEER_MAX_FRAME_BYTES, Welcome,
};
use tidaldb::runtime::net::proto::{
    Answer, Concern, Op, PeerLag, Ranked, Refused, Reply, Request, Served,
};
use tidaldb::schema::SignalIdx;
use tidaldb::{
    EntityId, ErrorKind, Event, EventBody, EventId, NodeId, RegionId, ShardId, TenantId, Timestamp,
    VersionVector,
};
use tokio::io::AsyncWriteExt;

/// Cases per property: 2,000, or `PROPTEST_CASES`.
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000)
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
    })
}

fn vv() -> VersionVector {
    let mut vv = VersionVector::new();
    vv.advance(NodeId(1), 7);
    vv.advance(NodeId(3), 2);
    vv
}

fn events() -> Vec<Event> {
    (1..=3u64)
        .map(|seq| Event {
            id: EventId {
                origin: NodeId(2),
                seq,
            },
            hlc: HlcTimestamp {
                wall_ns: 1_700_000_000_000_000_000 + seq,
                logical: seq as u32,
                node_id: 2,
            },
            tenant: TenantId(0),
            body: match seq {
                1 => EventBody::Signal {
                    claims_entity: false,
                    signal: SignalIdx(0),
                    entity: EntityId(42),
                    weight: 1.5,
                    ts: Timestamp::from_nanos(1_700_000_000_000_000_000).expect("ts"),
                },
                2 => EventBody::Hide {
                    user: EntityId(1),
                    item: EntityId(2),
                    ts: Timestamp::from_nanos(1_600_000_000_000_000_000).expect("ts"),
                },
                _ => EventBody::Unhide {
                    user: EntityId(1),
                    item: EntityId(2),
                    ts: Timestamp::from_nanos(1_700_000_000_000_000_000).expect("ts"),
                },
            },
            client: (seq == 1).then_some(ClientTag::Key(IdempotencyKey(99))),
        })
        .collect()
}

/// A pushed batch, as a node puts it on the wire.
fn push_frame() -> Vec<u8> {
    tidaldb::wal::encode_frame(&events(), ShardId(0), RegionId(1), 5)
}

/// One valid encoding of every kind of frame body, to mutate.
fn samples() -> Vec<Vec<u8>> {
    let enc = |r: tidaldb::Result<bytes::Bytes>| r.expect("encode").to_vec();
    let served = Served {
        node: NodeId(1),
        region: "us-east".into(),
        degraded: true,
        unreachable: vec![NodeId(2)],
    };
    let request = |op| Request {
        id: 9,
        tenant: TenantId(3),
        op,
    };
    let reply = |result| Reply {
        id: 9,
        served: served.clone(),
        result,
    };
    vec![
        enc(frame::encode(&Hello::new("prod", Dialer::Peer(NodeId(4))))),
        enc(frame::encode(&Hello::new("prod", Dialer::Client))),
        enc(frame::encode(&Welcome::Ok { node: NodeId(4) })),
        enc(frame::encode(&Welcome::Refused("no".into()))),
        enc(frame::encode(&request(Op::Write {
            signal: "view".into(),
            entities: vec![1, 2, 3],
            weights: vec![1.0, 0.5, 2.0],
            ts_ns: Some(vec![10, 20, 30]),
            concern: Concern::Replicated(1),
            idempotency_key: Some(77),
        }))),
        enc(frame::encode(&request(Op::Hide {
            user: 1,
            item: 2,
            hidden: true,
            ts_ns: Some(1_600_000_000_000_000_000),
            concern: Concern::Local,
            idempotency_key: None,
        }))),
        enc(frame::encode(&request(Op::Scores {
            signal: "view".into(),
            entities: vec![5; 40],
            at_ns: Some(-1),
            errors: tidaldb::ledger::ItemErrors::Nan,
        }))),
        enc(frame::encode(&request(Op::Window {
            signal: "view".into(),
            entity: 5,
            window: "1h".into(),
            at_ns: None,
        }))),
        enc(frame::encode(&request(Op::Retrieve {
            user: Some(1),
            candidates: vec![1, 2, 3],
            rank_by: vec![("view".into(), 1.0)],
            limit: 2,
            at_ns: None,
        }))),
        enc(frame::encode(&request(Op::IsHidden { user: 1, item: 2 }))),
        enc(frame::encode(&request(Op::Lag))),
        enc(frame::encode(&reply(Ok(Answer::Scores(vec![0.5; 8]))))),
        enc(frame::encode(&reply(Ok(Answer::Written {
            count: 3,
            first: EventId {
                origin: NodeId(1),
                seq: 4,
            },
            duplicate: false,
        })))),
        enc(frame::encode(&reply(Ok(Answer::Ranked {
            items: vec![Ranked {
                item: 3,
                score: 2.5,
            }],
            hidden_filtered: 1,
            candidates: 3,
        })))),
        enc(frame::encode(&reply(Ok(Answer::Lag(vec![PeerLag {
            peer: NodeId(2),
            events: 4,
            seconds: 0.5,
            reachable: false,
        }]))))),
        enc(frame::encode(&reply(Err(Refused {
            kind: ErrorKind::QuotaExceeded,
            message: "slow down".into(),
        })))),
        enc(frame::encode(&Message::Push {
            term: 3,
            frame: Arc::from(push_frame()),
        })),
        enc(frame::encode(&Message::Ack { term: 3, vv: vv() })),
        enc(frame::encode(&Message::Heartbeat {
            term: 3,
            vv: vv(),
            role: NodeRole::Leader,
        })),
        enc(frame::encode(&Message::SyncRequest { term: 3, vv: vv() })),
        enc(frame::encode(&Message::Snapshot {
            term: 3,
            vv: vv(),
            state: Arc::from(&b"state"[..]),
        })),
        enc(frame::encode(&Message::Fenced { term: 3 })),
        push_frame(),
    ]
}

/// Every decoder a node or client runs on received bytes. A pushed batch found inside a
/// decoded `Message` goes through the WAL frame decoder, as on a receiving node.
fn decode_everything(bytes: &[u8]) {
    if let Ok(Message::Push { frame, .. }) = frame::decode::<Message>(bytes) {
        let _ = tidaldb::wal::decode_frame(&frame);
    }
    let _ = frame::decode::<Request>(bytes);
    let _ = frame::decode::<Reply>(bytes);
    let _ = frame::decode::<Hello>(bytes);
    let _ = frame::decode::<Welcome>(bytes);
    let _ = tidaldb::wal::decode_frame(bytes);
}

/// Writes `bytes` into one end of an in-memory stream and reads frames from the other
/// through the codec capped at `cap`, until the stream ends or a frame is refused. Returns
/// how many frames were read; fails if reading stalls.
fn through_codec(bytes: Vec<u8>, cap: Option<usize>) -> Result<usize, TestCaseError> {
    runtime().block_on(async move {
        let (mut tx, rx) = tokio::io::duplex(8 * 1024);
        let mut conn = frame::framed(rx);
        if let Some(cap) = cap {
            frame::open_up(&mut conn, cap);
        }
        let writer = tokio::spawn(async move {
            let _ = tx.write_all(&bytes).await;
            // Dropping `tx` ends the stream.
        });
        let mut frames = 0;
        loop {
            let next =
                tokio::time::timeout(Duration::from_secs(5), frame::recv::<_, Message>(&mut conn))
                    .await
                    .map_err(|_| TestCaseError::fail("the codec stalled on a finished stream"))?;
            match next {
                Ok(Some(_)) => frames += 1,
                Ok(None) | Err(_) => break,
            }
        }
        drop(conn);
        let _ = writer.await;
        Ok(frames)
    })
}

/// Length-prefixed chunks whose prefixes may or may not tell the truth.
fn framed_noise() -> impl Strategy<Value = Vec<u8>> {
    let chunk = (
        prop_oneof![
            Just(None),
            (0u32..9000).prop_map(Some),
            any::<u32>().prop_map(Some)
        ],
        prop::collection::vec(any::<u8>(), 0..300),
    );
    prop::collection::vec(chunk, 0..6).prop_map(|chunks| {
        let mut out = Vec::new();
        for (prefix, body) in chunks {
            let len = prefix.unwrap_or(body.len() as u32);
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(&body);
        }
        out
    })
}

/// A valid sample with some bytes flipped and perhaps its tail cut off.
fn mutated() -> impl Strategy<Value = Vec<u8>> {
    let n = samples().len();
    (
        0..n,
        prop::collection::vec((any::<usize>(), 1u8..=255), 0..4),
        prop::option::of(any::<usize>()),
    )
        .prop_map(|(which, flips, cut)| {
            let mut bytes = samples().swap_remove(which);
            for (at, xor) in flips {
                let at = at % bytes.len();
                bytes[at] ^= xor;
            }
            if let Some(cut) = cut {
                bytes.truncate(cut % (bytes.len() + 1));
            }
            bytes
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic_a_decoder(bytes in prop::collection::vec(any::<u8>(), 0..1024)) {
        decode_everything(&bytes);
    }

    #[test]
    fn mutated_encodings_decode_to_a_value_or_an_error(bytes in mutated()) {
        decode_everything(&bytes);
        // Whatever decodes re-encodes.
        if let Ok(request) = frame::decode::<Request>(&bytes) {
            prop_assert!(frame::encode(&request).is_ok());
        }
        if let Ok(msg) = frame::decode::<Message>(&bytes) {
            prop_assert!(frame::encode(&msg).is_ok());
        }
    }

    #[test]
    fn the_codec_reads_any_stream_to_an_end(
        bytes in prop_oneof![framed_noise(), prop::collection::vec(any::<u8>(), 0..2048)],
        cap in prop_oneof![
            Just(None),
            Just(Some(CLIENT_MAX_FRAME_BYTES)),
            Just(Some(PEER_MAX_FRAME_BYTES)),
        ],
    ) {
        through_codec(bytes, cap)?;
    }

    #[test]
    fn mutated_frames_through_the_codec_never_panic(body in mutated(), honest in any::<bool>()) {
        let len = if honest { body.len() } else { body.len() / 2 };
        let mut bytes = (len as u32).to_be_bytes().to_vec();
        bytes.extend_from_slice(&body);
        through_codec(bytes, Some(PEER_MAX_FRAME_BYTES))?;
    }
}

/// Every valid sample survives the round trip through the codec as one frame.
#[test]
fn valid_frames_pass_the_codec_whole() {
    for body in samples() {
        let mut bytes = (body.len() as u32).to_be_bytes().to_vec();
        bytes.extend_from_slice(&body);
        let read = runtime().block_on(async move {
            let (mut tx, rx) = tokio::io::duplex(64 * 1024);
            let mut conn = frame::framed(rx);
            frame::open_up(&mut conn, PEER_MAX_FRAME_BYTES);
            tx.write_all(&bytes).await.expect("write");
            drop(tx);
            let mut n = 0;
            while let Some(f) = futures_util::StreamExt::next(&mut conn).await {
                assert_eq!(f.expect("a whole frame").as_ref(), &body[..]);
                n += 1;
            }
            n
        });
        assert_eq!(read, 1);
    }
}

/// A prefix past the cap fails the read at once, while the sender is still connected and
/// could send the body: the codec does not wait for it (or buffer it).
#[test]
fn an_oversized_prefix_is_refused_without_waiting_for_the_body() {
    let caps = [
        (None, HANDSHAKE_MAX_BYTES),
        (Some(CLIENT_MAX_FRAME_BYTES), CLIENT_MAX_FRAME_BYTES),
        (Some(PEER_MAX_FRAME_BYTES), PEER_MAX_FRAME_BYTES),
    ];
    for (raise, cap) in caps {
        for prefix in [cap as u32 + 1, u32::MAX] {
            runtime().block_on(async {
                let (mut tx, rx) = tokio::io::duplex(64);
                let mut conn = frame::framed(rx);
                if let Some(cap) = raise {
                    frame::open_up(&mut conn, cap);
                }
                tx.write_all(&prefix.to_be_bytes()).await.expect("write");
                let read = tokio::time::timeout(
                    Duration::from_secs(2),
                    frame::recv::<_, Message>(&mut conn),
                )
                .await
                .unwrap_or_else(|_| panic!("cap {cap}: waited for a {prefix} byte body"));
                let err = read.expect_err("an oversized frame");
                assert!(err.to_string().contains("frame size too big"), "{err}");
                drop(tx);
            });
        }
    }
}
