//! `TidalDb::signal_at`: a signal named by its schema index writes what the same signal
//! written by name does, and an index outside the schema is refused without writing.

mod common;
use common::{T0, ts};

use tidaldb::schema::SignalIdx;
use tidaldb::{EntityId, TidalError};

#[test]
fn an_index_writes_the_signal_its_name_would() {
    let (by_name, by_index) = (common::view_like_trial_db(), common::view_like_trial_db());
    let like = by_index.schema().resolve("like").unwrap();
    assert_eq!(like, SignalIdx(1));
    for i in 0..50i64 {
        let (item, weight, at) = (
            EntityId(i as u64 % 7),
            0.5 + (i % 3) as f64,
            ts(T0 + i * 1_000_000_000),
        );
        by_name.signal("like", item, weight, Some(at)).unwrap();
        by_index.signal_at(like, item, weight, Some(at)).unwrap();
    }
    let at = ts(T0 + 3_600_000_000_000);
    for item in (0..7).map(EntityId) {
        let expected = by_name.read_decay_score_at(item, "like", at).unwrap();
        assert!(expected > 0.0);
        let got = by_index.read_decay_score_at(item, "like", at).unwrap();
        assert_eq!(got.to_bits(), expected.to_bits(), "item {item:?}");
        assert_eq!(by_index.read_decay_score_at(item, "view", at).unwrap(), 0.0);
    }
}

#[test]
fn an_index_outside_the_schema_is_refused_and_writes_nothing() {
    let db = common::view_like_trial_db();
    let refused = db.signal_at(SignalIdx(3), EntityId(1), 1.0, Some(ts(T0)));
    assert!(
        matches!(
            refused,
            Err(TidalError::InvalidArgument { name: "signal", .. })
        ),
        "{refused:?}"
    );
    assert_eq!(db.events_applied().unwrap(), 0);
}
