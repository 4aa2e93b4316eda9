//! Snapshots: the whole ledger at one log position, so that recovery replays only the tail.
//!
//! A snapshot file is a 32-byte header (magic "TSNP", version, the log seq it covers,
//! payload length, crc32c of the payload) and a postcard payload. It is written to a
//! temporary name, synced, and renamed into place, so a crash never leaves half of one.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::segment::sync_dir_on;
use super::snapshot_v1::SnapshotV1;
use super::storage::Storage;
use super::untimed_hides::UntimedHiddenSet;
use crate::crdt::HlcTimestamp;
use crate::error::{Result, TidalError};
use crate::event::VersionVector;
use crate::ledger::{
    ClientTable, Escrow, HiddenSet, Ledger, SignalLedger, SignalParts, SignalPartsRef,
};
use crate::schema::{Schema, ShardId, Timestamp};

const MAGIC: [u8; 4] = *b"TSNP";
/// Version 2 added the client table (idempotency keys and sessions) at the end and each
/// decay partial's progress marker; version 3 gave each hide its event time. Versions 1
/// and 2 still read (see `snapshot_v1` and `untimed_hides`). Version 4 added the hard
/// caps' bounded counters at the end; older files read with no grant and no claim made.
pub const CURRENT_VERSION: u16 = 4;
const VERSION: u16 = CURRENT_VERSION;
const HEADER_LEN: usize = 32;
const CRC_AT: usize = 24;
/// Log positions stay far below this; a larger one in a file is damage, not history.
const MAX_LSN: u64 = 1 << 62;

/// crc32c over the header (its crc field zeroed) and the payload: every byte is covered.
fn checksum(header: &[u8; HEADER_LEN], payload: &[u8]) -> u32 {
    let mut h = *header;
    h[CRC_AT..CRC_AT + 4].fill(0);
    crc32c::crc32c_append(crc32c::crc32c(&h), payload)
}

#[derive(Serialize)]
struct SnapshotRef<'a> {
    schema: &'a Schema,
    vv: &'a VersionVector,
    clock: HlcTimestamp,
    hidden: &'a HiddenSet,
    signals: Vec<SignalPartsRef<'a>>,
    clients: &'a ClientTable,
    escrow: &'a Escrow,
}

/// Field for field the same as [`SnapshotRef`] up to the escrow, which version 4 files
/// follow with (postcard is positional, so a struct and a tuple of its fields encode
/// alike). `Hidden` is the hidden set's shape, which differs in version 2 files.
#[derive(Deserialize)]
struct SnapshotOwned<Hidden = HiddenSet> {
    schema: Schema,
    vv: VersionVector,
    clock: HlcTimestamp,
    hidden: Hidden,
    signals: Vec<SignalParts>,
    clients: ClientTable,
}

/// A ledger restored from a snapshot, with the log position it covers.
pub struct Restored {
    pub lsn: u64,
    pub ledger: Ledger,
    pub clock: HlcTimestamp,
}

fn snapshot_name(shard: ShardId, lsn: u64) -> String {
    format!("snapshot-{:05}-{lsn:020}.snap", shard.0)
}

/// Existing snapshots of a shard in `dir`, oldest first.
pub fn list_snapshots(fs: &dyn Storage, dir: &Path, shard: ShardId) -> Result<Vec<(u64, PathBuf)>> {
    let prefix = format!("snapshot-{:05}-", shard.0);
    let mut out = Vec::new();
    let entries = fs
        .list_dir(dir)
        .map_err(TidalError::io(format!("listing {}", dir.display())))?;
    for entry in entries {
        let lsn = (entry.name.strip_prefix(&prefix))
            .and_then(|n| n.strip_suffix(".snap"))
            .and_then(|d| d.parse::<u64>().ok());
        if let Some(lsn) = lsn {
            out.push((lsn, entry.path));
        }
    }
    out.sort();
    Ok(out)
}

/// The file bytes: the 32-byte header, checksummed together with the payload, then it.
fn frame(lsn: u64, payload: &[u8]) -> Vec<u8> {
    frame_version(VERSION, lsn, payload)
}

fn frame_version(version: u16, lsn: u64, payload: &[u8]) -> Vec<u8> {
    let mut header = [0u8; HEADER_LEN];
    header[0..4].copy_from_slice(&MAGIC);
    header[4..6].copy_from_slice(&version.to_le_bytes());
    header[8..16].copy_from_slice(&lsn.to_le_bytes());
    header[16..24].copy_from_slice(&(payload.len() as u64).to_le_bytes());
    let crc = checksum(&header, payload);
    header[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_le_bytes());
    let mut bytes = Vec::with_capacity(HEADER_LEN + payload.len());
    bytes.extend_from_slice(&header);
    bytes.extend_from_slice(payload);
    bytes
}

/// The ledger's whole state as bytes, for a snapshot file or a full resync of a peer.
pub fn encode_state(ledger: &Ledger, clock: HlcTimestamp) -> Result<Vec<u8>> {
    let body = SnapshotRef {
        schema: ledger.schema(),
        vv: ledger.version_vector(),
        clock,
        hidden: ledger.hidden(),
        signals: ledger
            .signal_ledgers()
            .iter()
            .map(SignalLedger::parts)
            .collect(),
        clients: ledger.clients(),
        escrow: ledger.escrow(),
    };
    postcard::to_stdvec(&body).map_err(|e| TidalError::InvalidArgument {
        name: "snapshot",
        reason: format!("the ledger could not be encoded: {e}"),
    })
}

/// Writes a snapshot of `ledger` covering the log through `lsn`, atomically.
pub fn write(
    fs: &dyn Storage,
    dir: &Path,
    shard: ShardId,
    lsn: u64,
    ledger: &Ledger,
    clock: HlcTimestamp,
) -> Result<PathBuf> {
    let payload = encode_state(ledger, clock)?;
    let bytes = frame(lsn, &payload);
    let tmp = dir.join("snapshot.tmp");
    let path = dir.join(snapshot_name(shard, lsn));
    let io = |what: &str| TidalError::io(format!("{what} {}", tmp.display()));
    let mut file = fs.create(&tmp).map_err(io("creating"))?;
    file.write_all(&bytes).map_err(io("writing"))?;
    file.sync().map_err(io("syncing"))?;
    fs.rename(&tmp, &path).map_err(io("renaming"))?;
    sync_dir_on(fs, dir)?;
    Ok(path)
}

/// Reads and verifies a snapshot, and rebuilds the ledger it holds. `expected_lsn` is the
/// position its file name gives, which the header must repeat.
pub fn read(
    fs: &dyn Storage,
    path: &Path,
    expected_lsn: u64,
    schema: &std::sync::Arc<Schema>,
) -> Result<Restored> {
    let bytes = fs
        .read(path)
        .map_err(TidalError::io(format!("reading {}", path.display())))?;
    let (version, lsn) = check_frame(path, &bytes, expected_lsn)?;
    let payload = &bytes[HEADER_LEN..];
    let (ledger, clock) = decode_state(payload, version, schema).map_err(|e| match e {
        TidalError::Corruption { detail, .. } => TidalError::Corruption {
            path: path.to_path_buf(),
            offset: HEADER_LEN as u64,
            detail,
        },
        TidalError::SchemaMismatch { detail, .. } => TidalError::SchemaMismatch {
            path: path.to_path_buf(),
            detail,
        },
        other => other,
    })?;
    Ok(Restored { lsn, ledger, clock })
}

/// Checks a snapshot file's frame: magic, checksum (which covers every byte), version,
/// the position its name gives, and the payload length. Returns the version and the log
/// position it covers. Separate from [`read`] so that `tidaldb verify` can check every
/// checksum of a directory whose schema it may not know.
pub fn check_frame(path: &Path, bytes: &[u8], expected_lsn: u64) -> Result<(u16, u64)> {
    let corruption = |offset: u64, detail: &str| TidalError::Corruption {
        path: path.to_path_buf(),
        offset,
        detail: detail.to_owned(),
    };
    let Some(header) = bytes.first_chunk::<HEADER_LEN>() else {
        return Err(corruption(0, "not a tidaldb snapshot (too short)"));
    };
    if header[0..4] != MAGIC {
        return Err(corruption(0, "not a tidaldb snapshot (bad magic)"));
    }
    let payload = &bytes[HEADER_LEN..];
    let stored_crc = u32::from_le_bytes([header[24], header[25], header[26], header[27]]);
    if checksum(header, payload) != stored_crc {
        return Err(corruption(0, "snapshot checksum mismatch"));
    }
    let u64_at = |at: usize| {
        let mut x = [0u8; 8];
        x.copy_from_slice(&header[at..at + 8]);
        u64::from_le_bytes(x)
    };
    let version = u16::from_le_bytes([header[4], header[5]]);
    if !(1..=VERSION).contains(&version) {
        return Err(corruption(4, "unknown snapshot version; upgrade tidaldb"));
    }
    let lsn = u64_at(8);
    if lsn != expected_lsn || lsn > MAX_LSN {
        return Err(corruption(
            8,
            &format!("the snapshot says it covers seq {lsn}, its name says {expected_lsn}"),
        ));
    }
    if u64_at(16) != payload.len() as u64 {
        return Err(corruption(16, "payload length differs from the file's"));
    }
    Ok((version, lsn))
}

/// Rebuilds a ledger from [`encode_state`]'s bytes, checking every invariant the ledger
/// keeps: the bytes may come from a damaged file or a peer. Errors carry no path; the
/// caller says where the bytes came from.
pub fn decode_state(
    payload: &[u8],
    version: u16,
    schema: &std::sync::Arc<Schema>,
) -> Result<(Ledger, HlcTimestamp)> {
    let corruption = |detail: &str| TidalError::Corruption {
        path: PathBuf::new(),
        offset: 0,
        detail: detail.to_owned(),
    };
    let undecodable = |e: postcard::Error| corruption(&format!("snapshot does not decode: {e}"));
    let (body, escrow): (SnapshotOwned, Option<Escrow>) = match version {
        1 => {
            let mut v1: SnapshotV1 = postcard::from_bytes(payload).map_err(undecodable)?;
            let signals = v1.take_signals();
            let body = SnapshotOwned {
                schema: v1.schema,
                vv: v1.vv,
                clock: v1.clock,
                hidden: v1.hidden.into(),
                clients: ClientTable::default(),
                signals,
            };
            (body, None)
        }
        2 => {
            let v2: SnapshotOwned<UntimedHiddenSet> =
                postcard::from_bytes(payload).map_err(undecodable)?;
            let body = SnapshotOwned {
                schema: v2.schema,
                vv: v2.vv,
                clock: v2.clock,
                hidden: v2.hidden.into(),
                clients: v2.clients,
                signals: v2.signals,
            };
            (body, None)
        }
        3 => (postcard::from_bytes(payload).map_err(undecodable)?, None),
        _ => {
            let (body, rest): (SnapshotOwned, &[u8]) =
                postcard::take_from_bytes(payload).map_err(undecodable)?;
            // A full resync carries no version, and a peer not yet upgraded ships the
            // version 3 body. (A file's payload cannot lose its tail unnoticed: its length
            // and checksum are checked first.)
            let escrow = if rest.is_empty() {
                None
            } else {
                Some(postcard::from_bytes(rest).map_err(undecodable)?)
            };
            (body, escrow)
        }
    };
    if body.schema != **schema {
        return Err(TidalError::SchemaMismatch {
            path: PathBuf::new(),
            detail: "the snapshot was taken under another schema".into(),
        });
    }
    if !body.vv.is_well_formed() {
        return Err(corruption("the version vector is malformed"));
    }
    if body.clock.wall_ns > Timestamp::MAX_NANOS as u64 {
        return Err(corruption("the clock is past the largest valid time"));
    }
    if body.signals.len() != schema.signals().len() {
        return Err(corruption("snapshot holds a different number of signals"));
    }
    if !body.clients.is_well_formed() {
        return Err(corruption("the client table is malformed"));
    }
    let signals = schema
        .signals()
        .iter()
        .zip(body.signals)
        .map(|(def, parts)| SignalLedger::from_parts(def, parts))
        .collect::<Result<Vec<_>>>()
        .map_err(|e| corruption(&e.to_string()))?;
    let escrow = escrow.unwrap_or_else(|| Escrow::before_caps(&body.vv));
    if !escrow.storage_matches(&body.vv) {
        return Err(corruption(
            "the storage rights spent differ from the events applied",
        ));
    }
    let ledger = Ledger::from_parts(
        schema.clone(),
        signals,
        body.hidden,
        body.clients,
        body.vv,
        escrow,
    );
    Ok((ledger, body.clock))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crdt::{ExpAccumulator, LinearState, Partial, Seq48};
    use crate::ledger::WindowSet;
    use crate::schema::{DecaySpec, EntityId, EntityKind, NodeId};
    use crate::wal::storage::RealFs;

    /// Field for field a snapshot body, but with every value the test's to choose.
    #[derive(Serialize)]
    struct Body<'a> {
        schema: &'a Schema,
        vv: VersionVector,
        clock: HlcTimestamp,
        hidden: HiddenSet,
        signals: Vec<Parts>,
        clients: ClientTable,
        escrow: Escrow,
    }
    #[derive(Serialize)]
    struct Parts {
        keys: Vec<EntityId>,
        exp: Vec<State>,
        linear: Vec<LinearState>,
        window_sets: Vec<WindowSet>,
    }
    #[derive(Serialize)]
    struct State {
        partials: Vec<Partial>,
    }

    fn body(schema: &Schema) -> Body<'_> {
        let mut vv = VersionVector::new();
        vv.advance(NodeId(0), 2);
        let partial = |t_ref| Partial {
            origin: NodeId(0),
            through: Seq48::new(1),
            acc: ExpAccumulator { sum: 1.0, t_ref },
        };
        Body {
            schema,
            escrow: Escrow::before_caps(&vv),
            vv,
            clock: HlcTimestamp::default(),
            hidden: HiddenSet::default(),
            signals: vec![Parts {
                keys: vec![EntityId(1), EntityId(2)],
                exp: vec![
                    State {
                        partials: vec![partial(5)],
                    },
                    State {
                        partials: vec![partial(6)],
                    },
                ],
                linear: vec![],
                window_sets: vec![],
            }],
            clients: ClientTable::default(),
        }
    }

    /// One permanent signal, "v".
    fn one_signal() -> std::sync::Arc<Schema> {
        std::sync::Arc::new(
            Schema::builder()
                .signal("v", EntityKind::Item, DecaySpec::Permanent)
                .add()
                .build()
                .unwrap(),
        )
    }

    /// Each impossible value is refused with `Corruption`, though the checksum is valid.
    #[test]
    fn a_checksummed_snapshot_with_impossible_state_is_corruption() {
        let schema = one_signal();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.snap");
        let write = |b: &Body<'_>| {
            std::fs::write(&path, frame(2, &postcard::to_stdvec(b).unwrap())).unwrap()
        };

        write(&body(&schema));
        assert!(
            read(&RealFs, &path, 2, &schema).is_ok(),
            "the unmodified body reads"
        );

        let mut bad_time = body(&schema);
        bad_time.signals[0].exp[0].partials[0].acc.t_ref = -5;
        let mut duplicate_key = body(&schema);
        duplicate_key.signals[0].keys[1] = EntityId(1);
        let mut huge_seq = body(&schema);
        huge_seq.vv.advance(NodeId(3), u64::MAX);
        let mut future_clock = body(&schema);
        future_clock.clock.wall_ns = u64::MAX;
        let mut unsorted = body(&schema);
        unsorted.signals[0].exp[0].partials = vec![
            Partial {
                origin: NodeId(2),
                through: Seq48::new(1),
                acc: ExpAccumulator::default(),
            },
            Partial {
                origin: NodeId(1),
                through: Seq48::new(1),
                acc: ExpAccumulator::default(),
            },
        ];
        let mut missing_state = body(&schema);
        missing_state.signals[0].exp.pop();
        let mut unspent_storage = body(&schema);
        unspent_storage.escrow = Escrow::default();
        for (what, b) in [
            ("negative t_ref", bad_time),
            ("duplicate key", duplicate_key),
            ("seq past 2^62", huge_seq),
            ("clock past 2^62", future_clock),
            ("unsorted partials", unsorted),
            ("a key without state", missing_state),
            ("storage rights unspent", unspent_storage),
        ] {
            write(&b);
            let err = read(&RealFs, &path, 2, &schema).err();
            assert!(
                matches!(err, Some(TidalError::Corruption { .. })),
                "{what}: {err:?}"
            );
        }
    }

    /// A version 3 file (no bounded counters), or a version 3 body a peer not yet
    /// upgraded ships, reads as if no grant or claim was ever made, with each event's
    /// storage spent by its origin.
    #[test]
    fn a_version_3_snapshot_reads_with_storage_spent_and_nothing_granted() {
        let schema = one_signal();
        let b = body(&schema);
        let mut payload = postcard::to_stdvec(&b).unwrap();
        let escrow_len = postcard::to_stdvec(&b.escrow).unwrap().len();
        payload.truncate(payload.len() - escrow_len);
        for version in [3, CURRENT_VERSION] {
            let (ledger, _) = decode_state(&payload, version, &schema).unwrap();
            assert_eq!(ledger.escrow(), &Escrow::before_caps(&b.vv));
            let storage = ledger.escrow().counter(crate::event::CapKind::Storage);
            assert_eq!(storage.consumed(NodeId(0)), 2);
            assert_eq!(storage.given(NodeId(0)), 0);
        }
        payload.push(0xff);
        assert!(
            decode_state(&payload, CURRENT_VERSION, &schema).is_err(),
            "counters that do not decode are corruption, not absent"
        );
    }

    /// Files written before version 2 (no client table, partials without progress) still
    /// read, with the same scores.
    #[test]
    fn a_version_1_snapshot_still_reads() {
        #[derive(Serialize)]
        struct PartialV1 {
            origin: NodeId,
            acc: ExpAccumulator,
        }
        #[derive(Serialize)]
        struct StateV1 {
            partials: Vec<PartialV1>,
        }
        #[derive(Serialize)]
        struct PartsV1 {
            keys: Vec<EntityId>,
            exp: Vec<StateV1>,
            linear: Vec<LinearState>,
            window_sets: Vec<WindowSet>,
        }
        #[derive(Serialize)]
        struct BodyV1<'a> {
            schema: &'a Schema,
            vv: VersionVector,
            clock: HlcTimestamp,
            hidden: HiddenSet,
            signals: Vec<PartsV1>,
        }
        let schema = one_signal();
        let mut vv = VersionVector::new();
        vv.advance(NodeId(0), 1);
        let body = BodyV1 {
            schema: &schema,
            vv,
            clock: HlcTimestamp::default(),
            hidden: HiddenSet::default(),
            signals: vec![PartsV1 {
                keys: vec![EntityId(7)],
                exp: vec![StateV1 {
                    partials: vec![PartialV1 {
                        origin: NodeId(0),
                        acc: ExpAccumulator {
                            sum: 2.5,
                            t_ref: 10,
                        },
                    }],
                }],
                linear: vec![],
                window_sets: vec![],
            }],
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.snap");
        std::fs::write(
            &path,
            frame_version(1, 1, &postcard::to_stdvec(&body).unwrap()),
        )
        .unwrap();
        let restored = read(&RealFs, &path, 1, &schema).unwrap();
        let at = Timestamp::from_nanos(100).unwrap();
        let score = restored
            .ledger
            .decay_score(schema.resolve("v").unwrap(), EntityId(7), at)
            .unwrap();
        assert_eq!(score, 2.5);
        assert!(restored.ledger.clients().keys().is_empty());
    }
}
