//! Reading the hidden set of snapshots written before hides carried their own time
//! (versions 1 and 2): each register held two bare HLC stamps. A hide's HLC wall clock
//! was the time it was written, so it stands in for the event time, exactly as the log
//! codec does for untimed hide records.

use rustc_hash::FxHashMap;
use serde::Deserialize;

use crate::crdt::{HideRegister, HideStamp, HlcTimestamp};
use crate::ledger::HiddenSet;
use crate::schema::EntityId;

#[derive(Deserialize)]
struct UntimedRegister {
    hide: HlcTimestamp,
    unhide: HlcTimestamp,
}

/// Field for field the hidden set of a version 1 or 2 snapshot (postcard is positional).
#[derive(Deserialize, Default)]
pub(super) struct UntimedHiddenSet {
    by_user: FxHashMap<EntityId, FxHashMap<EntityId, UntimedRegister>>,
}

impl From<UntimedHiddenSet> for HiddenSet {
    fn from(old: UntimedHiddenSet) -> HiddenSet {
        let mut hidden = HiddenSet::default();
        for (user, items) in old.by_user {
            for (item, r) in items {
                let register = HideRegister {
                    hide: HideStamp::from_hlc(r.hide),
                    unhide: HideStamp::from_hlc(r.unhide),
                };
                hidden.merge_register(user, item, &register);
            }
        }
        hidden
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use serde::Serialize;

    use crate::crdt::HlcTimestamp;
    use crate::event::{Event, EventBody, EventId, TenantId, VersionVector};
    use crate::ledger::{ClientTable, Ledger, SignalLedger, SignalPartsRef};
    use crate::schema::{DecaySpec, EntityId, EntityKind, NodeId, Schema, Timestamp};
    use crate::wal::snapshot::decode_state;

    #[derive(Serialize)]
    struct Register {
        hide: HlcTimestamp,
        unhide: HlcTimestamp,
    }

    /// Field for field a version 2 snapshot body.
    #[derive(Serialize)]
    struct BodyV2<'a> {
        schema: &'a Schema,
        vv: VersionVector,
        clock: HlcTimestamp,
        hidden: BTreeMap<EntityId, BTreeMap<EntityId, Register>>,
        signals: Vec<SignalPartsRef<'a>>,
        clients: ClientTable,
    }

    fn wall(ns: u64) -> HlcTimestamp {
        HlcTimestamp {
            wall_ns: ns,
            logical: 0,
            node_id: 1,
        }
    }

    #[test]
    fn a_version_2_snapshot_reads_its_hides_with_their_clocks_as_times() {
        let schema = Arc::new(
            Schema::builder()
                .signal("v", EntityKind::Item, DecaySpec::Permanent)
                .add()
                .build()
                .unwrap(),
        );
        let empty = Ledger::new(schema.clone());
        let (user, shown, hidden) = (EntityId(1), EntityId(2), EntityId(3));
        let items = BTreeMap::from([
            (
                shown,
                Register {
                    hide: wall(5),
                    unhide: wall(10),
                },
            ),
            (
                hidden,
                Register {
                    hide: wall(10),
                    unhide: wall(5),
                },
            ),
        ]);
        let body = BodyV2 {
            schema: &schema,
            vv: VersionVector::new(),
            clock: wall(10),
            hidden: BTreeMap::from([(user, items)]),
            signals: empty
                .signal_ledgers()
                .iter()
                .map(SignalLedger::parts)
                .collect(),
            clients: ClientTable::default(),
        };
        let bytes = postcard::to_stdvec(&body).unwrap();
        let (mut ledger, _) = decode_state(&bytes, 2, &schema).unwrap();
        assert!(!ledger.hidden().is_hidden(user, shown));
        assert!(ledger.hidden().is_hidden(user, hidden));
        // A new unhide dated before the old hide's clock loses to it; one after wins.
        let unhide = |seq, at_ns| Event {
            id: EventId {
                origin: NodeId(1),
                seq,
            },
            hlc: wall(20 + seq),
            tenant: TenantId::DEFAULT,
            body: EventBody::Unhide {
                user,
                item: hidden,
                ts: Timestamp::from_nanos(at_ns).unwrap(),
            },
            client: None,
        };
        ledger.apply_batch(&[unhide(1, 9)]).unwrap();
        assert!(ledger.hidden().is_hidden(user, hidden));
        ledger.apply_batch(&[unhide(2, 11)]).unwrap();
        assert!(!ledger.hidden().is_hidden(user, hidden));
    }
}
