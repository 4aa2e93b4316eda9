//! Work that a spread apply runs beside the creation of its new entities' slots.
//!
//! Creating slots is the one serial step of a spread apply: each new entity is numbered in
//! run order, so that slots come out as a serial apply numbers them. A fresh load spends
//! about 3 ms of a 1M-event write there, with the other threads idle. A bulk write must
//! meanwhile check every one of its rows before it writes anything, which took another
//! 1.5 ms on two threads before the apply began. Creating slots writes only the index,
//! which is easy to put back, so the check runs beside it instead: the creation takes
//! the first item of the shared work, the check's pieces are the rest, and a thread that
//! is done with one takes the next. If the check refuses the write, the slots just created
//! are removed and nothing else has changed.

use super::parallel::{RunEvents, is_missing};
use super::slots::EntitySlots;
use super::thread_pool::run_shared;
use crate::error::Result;

/// Work in pieces that may run on any thread, and a verdict read once every piece ran:
/// the apply goes on only if it is `Ok`.
pub trait Beside: Sync {
    fn pieces(&self) -> usize;

    /// How many threads the pieces may use when nothing else runs beside them.
    fn threads(&self) -> usize;

    fn run_piece(&self, k: usize);

    fn verdict(&self) -> Result<()>;
}

/// Runs every piece of `work`, on up to its [`Beside::threads`] threads, and gives the
/// verdict.
pub fn run_alone(work: &dyn Beside) -> Result<()> {
    run_shared(work.threads(), (0..work.pieces()).collect(), |k| {
        work.run_piece(k)
    });
    work.verdict()
}

/// What one thread takes from the shared work.
enum Work<'a> {
    Create(&'a mut EntitySlots, &'a mut [u32]),
    Piece(usize),
}

/// Gives every item of `run` that `slots` marks missing its entity's slot, creating the
/// slots in run order, with `beside`'s pieces on the other threads meanwhile; then the
/// verdict. If it refuses, the slots created are removed again.
pub fn create_missing_beside<R: RunEvents + ?Sized>(
    index: &mut EntitySlots,
    run: &R,
    slots: &mut [u32],
    threads: usize,
    beside: Option<&dyn Beside>,
) -> Result<()> {
    let create = |index: &mut EntitySlots, slots: &mut [u32]| {
        for (i, slot) in slots.iter_mut().enumerate() {
            if is_missing(*slot) {
                *slot = index.find_or_insert(run.entity(i)).0 as u32;
            }
        }
    };
    let Some(beside) = beside else {
        create(index, slots);
        return Ok(());
    };
    let before = index.len();
    // The caller takes items from the front: the creation, which is the longest.
    let mut work = vec![Work::Create(&mut *index, slots)];
    work.extend((0..beside.pieces()).map(Work::Piece));
    run_shared(threads, work, |item| match item {
        Work::Create(index, slots) => create(index, slots),
        Work::Piece(k) => beside.run_piece(k),
    });
    let verdict = beside.verdict();
    if verdict.is_err() {
        index.truncate(before);
    }
    verdict
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;
    use crate::error::TidalError;
    use crate::ledger::{RunItem, SignalLedger};
    use crate::schema::{DecaySpec, EntityId, EntityKind, NodeId, Schema, Window};

    /// Counts the pieces it runs, and refuses or accepts.
    struct Counting {
        pieces: usize,
        ran: Vec<AtomicUsize>,
        refuse: bool,
    }

    impl Counting {
        fn new(pieces: usize, refuse: bool) -> Self {
            let ran = (0..pieces).map(|_| AtomicUsize::new(0)).collect();
            Counting {
                pieces,
                ran,
                refuse,
            }
        }

        fn each_ran_once(&self) -> bool {
            self.ran.iter().all(|n| n.load(Ordering::Relaxed) == 1)
        }
    }

    impl Beside for Counting {
        fn pieces(&self) -> usize {
            self.pieces
        }

        fn threads(&self) -> usize {
            2
        }

        fn run_piece(&self, k: usize) {
            self.ran[k].fetch_add(1, Ordering::Relaxed);
        }

        fn verdict(&self) -> Result<()> {
            match self.refuse {
                true => Err(TidalError::InvalidWeight {
                    weight: f64::NAN,
                    reason: "refused by the test",
                }),
                false => Ok(()),
            }
        }
    }

    fn signal() -> SignalLedger {
        let schema = Schema::builder()
            .signal(
                "view",
                EntityKind::Item,
                DecaySpec::Exponential {
                    half_life: Duration::from_secs(3600),
                },
            )
            .windows(&[Window::OneHour])
            .add()
            .build()
            .unwrap();
        SignalLedger::new(&schema.signals()[0])
    }

    /// What a snapshot would store of the signal: its keys in slot order and every state.
    fn stored(s: &SignalLedger) -> Vec<u8> {
        postcard::to_stdvec(&s.parts()).unwrap()
    }

    /// `n` events from seq `first` over `entities` entities, every one from `offset` on.
    fn run(first: u64, n: usize, entities: u64, offset: u64) -> Vec<RunItem> {
        (0..n as u64)
            .map(|i| {
                let entity = EntityId(offset + (i * 7_919) % entities);
                (
                    entity,
                    1.0 + (i % 3) as f64,
                    1_000_000 * i as i64,
                    first + i,
                )
            })
            .collect()
    }

    #[test]
    fn a_refusal_leaves_the_signal_as_it_was_and_an_acceptance_as_a_serial_apply() {
        let origin = NodeId(1);
        let mut spread = signal();
        let mut serial = signal();
        let warm = run(1, 20_000, 5_000, 0);
        spread.apply_run(origin, &warm[..], 2, None).unwrap();
        serial.apply_run(origin, &warm[..], 1, None).unwrap();
        assert_eq!(stored(&spread), stored(&serial));

        // Half the entities are new: both the old and the new get slots, then go.
        let next = run(20_001, 50_000, 10_000, 2_500);
        let before = stored(&spread);
        let refusing = Counting::new(16, true);
        let refused = spread.apply_run(origin, &next[..], 2, Some(&refusing));
        assert!(matches!(refused, Err(TidalError::InvalidWeight { .. })));
        assert!(refusing.each_ran_once());
        assert_eq!(stored(&spread), before, "a refused run leaves no trace");

        let accepting = Counting::new(16, false);
        spread
            .apply_run(origin, &next[..], 2, Some(&accepting))
            .unwrap();
        assert!(accepting.each_ran_once());
        serial.apply_run(origin, &next[..], 1, None).unwrap();
        assert_eq!(stored(&spread), stored(&serial));
    }

    #[test]
    fn a_serial_apply_runs_the_work_first_and_writes_nothing_if_refused() {
        let origin = NodeId(1);
        let mut s = signal();
        let refusing = Counting::new(3, true);
        let small = run(1, 100, 50, 0);
        assert!(s.apply_run(origin, &small[..], 1, Some(&refusing)).is_err());
        assert!(refusing.each_ran_once());
        assert_eq!(stored(&s), stored(&signal()));
    }
}
