//! A lone in-memory database acknowledges a single write at once and applies it with later
//! ones as a batch (`runtime/staged.rs`). None of that may show: every call made after a
//! write sees it, the write keeps the time and the id it was acknowledged with, a refused
//! write leaves nothing behind, and writers on several threads lose nothing.
//!
//! The first test is random. A failure prints its seed; replay it with
//! `TIDALDB_SEED=<seed> cargo test -p tidaldb --test single_writes_read_back`.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use tidaldb::schema::SignalIdx;
use tidaldb::{EntityId, EventId, Retrieve, TidalDb, TidalError, Timestamp};

mod common;
use common::{SplitMix, T0, assert_close, decay_sum, ts};

const HALF_LIFE: Duration = Duration::from_secs(600);
const MINUTE: i64 = 60_000_000_000;
const USER: EntityId = EntityId(1_000_000);

fn open(half_life: Duration) -> TidalDb {
    TidalDb::builder()
        .ephemeral()
        .with_schema(common::view_signal(half_life).add().build().unwrap())
        .open()
        .unwrap()
}

/// What the acknowledged writes say the database holds.
#[derive(Default)]
struct Model {
    events: HashMap<EntityId, Vec<(Timestamp, f64)>>,
    /// Per item, the latest hide or unhide: the later event time wins, and on a tie the
    /// later write (its HLC stamp is the greater).
    hides: HashMap<EntityId, (Timestamp, bool)>,
    acknowledged: u64,
}

impl Model {
    fn hide(&mut self, item: EntityId, hidden: bool, t: Timestamp) {
        let latest = self.hides.entry(item).or_insert((t, hidden));
        if t >= latest.0 {
            *latest = (t, hidden);
        }
    }

    fn is_hidden(&self, item: EntityId) -> bool {
        self.hides.get(&item).is_some_and(|h| h.1)
    }

    fn score(&self, item: EntityId, at: Timestamp) -> f64 {
        let events = self.events.get(&item).into_iter().flatten().copied();
        decay_sum(events, at, HALF_LIFE)
    }

    /// The top `limit` of `candidates` for `USER`: score descending, then id ascending.
    fn top(&self, candidates: &[EntityId], at: Timestamp, limit: usize) -> Vec<EntityId> {
        let mut ranked: Vec<(f64, EntityId)> = candidates
            .iter()
            .filter(|c| !self.is_hidden(**c))
            .map(|c| (self.score(*c, at), *c))
            .collect();
        ranked.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        ranked.into_iter().take(limit).map(|(_, c)| c).collect()
    }
}

#[test]
fn every_call_sees_the_single_writes_made_before_it() {
    let seed = common::seed("single_writes_read_back");
    let mut rng = SplitMix(seed.0);
    let db = open(HALF_LIFE);
    let mut model = Model::default();
    let items: Vec<EntityId> = (0..40).map(EntityId).collect();
    let at = ts(T0 + MINUTE);
    // Enough writes to fill the queue twice over, with reads at random points in between.
    for _ in 0..10_000 {
        let item = items[rng.below(items.len() as u64) as usize];
        let t = ts(T0 - rng.below(30 * MINUTE as u64) as i64);
        match rng.below(100) {
            0..=84 => {
                let weight = 0.5 + rng.below(8) as f64 / 4.0;
                let id = db.signal("view", item, weight, Some(t)).unwrap();
                model.acknowledged += 1;
                assert_eq!(
                    id.seq, model.acknowledged,
                    "ids are given in the order of the writes"
                );
                model.events.entry(item).or_default().push((t, weight));
            }
            85..=89 => {
                db.hide_item(USER, item, Some(t)).unwrap();
                model.acknowledged += 1;
                model.hide(item, true, t);
            }
            90..=94 => {
                db.unhide_item(USER, item, Some(t)).unwrap();
                model.acknowledged += 1;
                model.hide(item, false, t);
            }
            95..=97 => {
                let got = db.read_decay_score_at(item, "view", at).unwrap();
                let want = model.score(item, at);
                if want == 0.0 {
                    assert_eq!(got, 0.0, "item {item:?}");
                } else {
                    assert_close(got, want, &format!("item {item:?}"));
                }
            }
            98 => {
                let q = Retrieve::builder()
                    .for_user(USER)
                    .candidates(items.iter().copied())
                    .rank_by(&[("view", 1.0)])
                    .limit(10)
                    .at(at)
                    .build()
                    .unwrap();
                let got: Vec<EntityId> = db
                    .retrieve(&q)
                    .unwrap()
                    .items
                    .iter()
                    .map(|s| s.item)
                    .collect();
                assert_eq!(got, model.top(&items, at, 10));
            }
            _ => assert_eq!(db.events_applied().unwrap(), model.acknowledged),
        }
    }
    assert_eq!(db.events_applied().unwrap(), model.acknowledged);
    assert_eq!(db.version_vector().unwrap().sum(), model.acknowledged);
}

#[test]
fn a_write_without_a_time_keeps_the_time_it_was_made() {
    // A one-second half-life: a write dated when the queue is applied, 200 ms later,
    // would score 2^0.2 (15%) higher than one dated when it was made.
    let half_life = Duration::from_secs(1);
    let db = open(half_life);
    let before = Timestamp::now();
    db.signal("view", EntityId(7), 1.0, None).unwrap();
    let after = Timestamp::now();
    std::thread::sleep(Duration::from_millis(200));
    let at = ts(after.as_nanos() + 1_000_000_000);
    let got = db.read_decay_score_at(EntityId(7), "view", at).unwrap();
    let earliest = decay_sum([(before, 1.0)], at, half_life);
    let latest = decay_sum([(after, 1.0)], at, half_life);
    assert!(
        earliest * (1.0 - 1e-12) <= got && got <= latest * (1.0 + 1e-12),
        "score {got} is outside [{earliest}, {latest}], the scores of the write dated at \
         either end of the call"
    );
}

#[test]
fn a_refused_single_write_leaves_nothing_behind() {
    let db = open(HALF_LIFE);
    for i in 0..10 {
        db.signal("view", EntityId(i), 1.0, Some(ts(T0))).unwrap();
    }
    let refused = [
        db.signal("view", EntityId(1), f64::NAN, Some(ts(T0))),
        db.signal("view", EntityId(1), f64::INFINITY, None),
        db.signal_at(SignalIdx(1), EntityId(1), 1.0, None),
        db.signal(
            "view",
            EntityId(1),
            1.0,
            Some(ts(Timestamp::now().as_nanos() + 3_600_000_000_000)),
        ),
    ];
    for r in refused {
        assert!(
            matches!(
                r,
                Err(TidalError::InvalidArgument { .. }
                    | TidalError::InvalidWeight { .. }
                    | TidalError::TimestampInFuture { .. })
            ),
            "{r:?}"
        );
    }
    assert_eq!(db.events_applied().unwrap(), 10);
    let next = db.signal("view", EntityId(1), 1.0, Some(ts(T0))).unwrap();
    assert_eq!(next.seq, 11, "a refused write takes no id");
    let at = ts(T0);
    assert_eq!(
        db.read_decay_score_at(EntityId(1), "view", at).unwrap(),
        2.0
    );
}

#[test]
fn writers_on_several_threads_lose_nothing() {
    const THREADS: u64 = 4;
    const EACH: u64 = 5_000;
    let db = open(HALF_LIFE);
    let ids: Vec<EventId> = std::thread::scope(|s| {
        let writers: Vec<_> = (0..THREADS)
            .map(|t| {
                let db = db.clone();
                s.spawn(move || {
                    (0..EACH)
                        .map(|i| {
                            db.signal("view", EntityId(t * 10 + i % 10), 1.0, Some(ts(T0)))
                                .unwrap()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        // A reader alongside: it sees the count only grow.
        let mut seen = 0;
        while seen < THREADS * EACH {
            let now = db.events_applied().unwrap();
            assert!(now >= seen, "events applied went from {seen} back to {now}");
            seen = now;
            if writers.iter().all(|w| w.is_finished()) {
                break;
            }
        }
        writers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    });
    let seqs: BTreeSet<u64> = ids.iter().map(|id| id.seq).collect();
    assert_eq!(
        seqs,
        (1..=THREADS * EACH).collect(),
        "every write has its own id, none skipped"
    );
    assert_eq!(db.events_applied().unwrap(), THREADS * EACH);
    for entity in (0..THREADS).flat_map(|t| (0..10).map(move |i| EntityId(t * 10 + i))) {
        let got = db.read_decay_score_at(entity, "view", ts(T0)).unwrap();
        assert_eq!(got, (EACH / 10) as f64, "entity {entity:?}");
    }
}
