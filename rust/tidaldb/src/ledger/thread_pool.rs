//! The process's helper threads for spreading one batch over cores.
//!
//! A bulk write spreads each chunk's work (slot lookups, the partitioned apply) over
//! threads. Starting threads for every chunk cost tens of microseconds each time, which on
//! a 2-core machine made the spread apply slower than one thread. These helpers are started
//! once and then wait for work.
//!
//! The caller always works too, and a helper only joins while the caller still has items
//! left: a helper that is busy elsewhere (another database's write) or slow to wake costs
//! the caller nothing, since the caller never waits for a helper to *start*, only for the
//! items a helper has already taken. That is why this is not rayon: a rayon scope returns
//! only after every task spawned in it has run, so a caller whose tasks queue behind
//! another job waits for that job; and rayon's global pool does not survive `fork`, which
//! Python programs do (multiprocessing, pytest-xdist).
//!
//! After a `fork` the child has none of the parent's threads, and a lock one of them held
//! stays held forever. So the pool is owned by a process id: a child sees that the pool is
//! its parent's, leaves it untouched (leaked) and starts its own.

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::ptr;
use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

/// Never more helpers than this, whatever a database's `ingest_threads` asks for.
const MAX_HELPERS: usize = 63;

/// How long a helper spins for the next job after one (see `Pool::spin_for_next_job`),
/// and a caller for the helpers still running its job (see [`Retire`]).
const SPIN: Duration = Duration::from_micros(500);

/// One batch's work, seen by a helper without its type: `run` takes items until none is
/// left. Valid only while the job is on the board or a helper counted in `active` runs it
/// (see [`run_shared`]).
#[derive(Clone, Copy)]
struct JobRef(*const (dyn Fn() + Sync));

// SAFETY: the pointee is `Sync`, and [`run_shared`] keeps it alive while any thread can
// reach this pointer (see the safety argument there).
unsafe impl Send for JobRef {}

struct Board {
    /// The job helpers may join, with its number; `None` between jobs and once its caller
    /// has finished taking items.
    job: Option<(u64, JobRef)>,
    next_job: u64,
    /// Helpers running the job on the board (or the one just taken off it).
    active: usize,
    /// Helpers started, and how many of them are waiting for a job.
    started: usize,
    /// A panic a helper caught in the current job, for its caller to resume.
    panic: Option<Box<dyn std::any::Any + Send>>,
}

struct Pool {
    pid: u32,
    board: Mutex<Board>,
    /// Jobs posted so far, readable without the lock: what a helper watches while it
    /// spins between jobs.
    posted_jobs: AtomicU64,
    /// Helpers wait on it for a job.
    posted: Condvar,
    /// A caller waits on it for the helpers still running its job.
    finished: Condvar,
}

static POOL: AtomicPtr<Pool> = AtomicPtr::new(ptr::null_mut());

impl Pool {
    /// This process's pool, created on first use (and again in a forked child).
    fn get() -> &'static Pool {
        let pid = std::process::id();
        let current = POOL.load(Ordering::Acquire);
        // SAFETY: a non-null POOL points at a leaked Box, never freed.
        if let Some(pool) = unsafe { current.as_ref() }
            && pool.pid == pid
        {
            return pool;
        }
        let fresh = Box::into_raw(Box::new(Pool {
            pid,
            board: Mutex::new(Board {
                job: None,
                next_job: 0,
                active: 0,
                started: 0,
                panic: None,
            }),
            posted_jobs: AtomicU64::new(0),
            posted: Condvar::new(),
            finished: Condvar::new(),
        }));
        match POOL.compare_exchange(current, fresh, Ordering::AcqRel, Ordering::Acquire) {
            // The parent's pool, if any, is leaked: its threads are gone in this process.
            // SAFETY: `fresh` was just leaked from a Box, and is never freed.
            Ok(_) => unsafe { &*fresh },
            Err(winner) => {
                // SAFETY: `fresh` lost the race and no one else saw it; `winner` is a
                // leaked Box like every pool POOL ever held.
                unsafe {
                    drop(Box::from_raw(fresh));
                    &*winner
                }
            }
        }
    }

    fn board(&self) -> MutexGuard<'_, Board> {
        // The board's fields stay consistent at every unlock, and no user code runs while
        // it is held, so a poisoned lock holds a valid board.
        self.board.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts helpers until `wanted` exist. One the OS refuses to start is not retried
    /// now: the work gets done by fewer threads.
    fn ensure_helpers(&'static self, board: &mut Board, wanted: usize) {
        while board.started < wanted.min(MAX_HELPERS) {
            let spawned = thread::Builder::new()
                .name("tidaldb-helper".into())
                .spawn(move || self.help());
            if spawned.is_err() {
                return;
            }
            board.started += 1;
        }
    }

    /// A helper's life: join each new job while it is on the board.
    fn help(&self) {
        let mut seen = None;
        let mut board = self.board();
        loop {
            let job = match board.job {
                Some((id, job)) if seen != Some(id) => {
                    seen = Some(id);
                    job
                }
                _ => {
                    board = self
                        .posted
                        .wait(board)
                        .unwrap_or_else(PoisonError::into_inner);
                    continue;
                }
            };
            board.active += 1;
            drop(board);
            // SAFETY: the job was on the board when `active` counted this helper, and its
            // caller does not return (which ends the job's life) until `active` is back
            // to zero; see `run_shared`.
            let outcome = catch_unwind(AssertUnwindSafe(|| unsafe { (*job.0)() }));
            board = self.board();
            if let Err(panic) = outcome {
                board.panic.get_or_insert(panic);
            }
            board.active -= 1;
            if board.active == 0 {
                self.finished.notify_all();
            }
            drop(board);
            self.spin_for_next_job();
            board = self.board();
        }
    }

    /// Waits a little for the next job without sleeping. A bulk write posts a job or
    /// more per chunk, a few hundred microseconds apart; a helper asleep on the condition
    /// variable is often woken onto the poster's own CPU, where it runs only once the
    /// poster has done the whole job alone. Spinning keeps it running on its own.
    fn spin_for_next_job(&self) {
        let seen = self.posted_jobs.load(Ordering::Acquire);
        let started = Instant::now();
        while self.posted_jobs.load(Ordering::Acquire) == seen && started.elapsed() < SPIN {
            pause();
        }
    }
}

/// One turn of a spin: a short busy wait, then the CPU to whichever other thread the OS has
/// waiting on it (none, usually, and the yield returns at once). When the OS has put two of
/// the pool's threads on one CPU, the one spinning for the other lets it run.
fn pause() {
    for _ in 0..64 {
        std::hint::spin_loop();
    }
    thread::yield_now();
}

/// Runs `work` on every item: on the calling thread, and on up to `threads - 1` of the
/// process's helpers that are free to join while items are left. The caller takes items
/// from the front and helpers from the back, so that from one call to the next each
/// thread tends to get the same items (and finds their data still in its cache). Items
/// run in no particular order and on no particular thread; a panic in `work` reaches the
/// caller, as it would if the caller had run every item.
pub fn run_shared<W: Send>(threads: usize, items: Vec<W>, work: impl Fn(W) + Sync) {
    let helpers = threads.min(items.len()).saturating_sub(1);
    let queue = Mutex::new(VecDeque::from(items));
    let take = |front: bool| {
        let mut q = queue.lock().unwrap_or_else(PoisonError::into_inner);
        if front { q.pop_front() } else { q.pop_back() }
    };
    let drain_back = || {
        while let Some(item) = take(false) {
            work(item);
        }
    };
    let pool = (helpers > 0).then(Pool::get);
    let posted = pool.is_some_and(|pool| {
        let mut board = pool.board();
        if board.job.is_some() || board.active > 0 {
            // Another caller's job has the helpers: this one runs alone.
            return false;
        }
        pool.ensure_helpers(&mut board, helpers);
        let erased: &(dyn Fn() + Sync) = &drain_back;
        // SAFETY: only the lifetime is erased. The pointer is dereferenced by helpers
        // counted in `active`, which join only while the job is on the board; this
        // function takes the job off the board and waits for `active` to reach zero
        // before `drain_back` (and what it borrows) goes out of scope, even if `work`
        // panics on this thread (the guard below).
        let job: *const (dyn Fn() + Sync) = unsafe { std::mem::transmute(erased) };
        board.job = Some((board.next_job, JobRef(job)));
        board.next_job += 1;
        pool.posted_jobs.store(board.next_job, Ordering::Release);
        pool.posted.notify_all();
        true
    });
    let _retire = posted.then(|| Retire(pool));
    while let Some(item) = take(true) {
        work(item);
    }
}

/// Takes the caller's job off the board and waits for the helpers running it, also when
/// the caller unwinds; then resumes a helper's panic on the caller.
struct Retire(Option<&'static Pool>);

impl Drop for Retire {
    fn drop(&mut self) {
        let Some(pool) = self.0 else {
            return;
        };
        let mut board = pool.board();
        board.job = None;
        // Spinning first, as a helper does between jobs: a caller asleep on the condition
        // variable is woken onto whichever CPU the OS picks, and on a virtual machine whose
        // other CPU had been idle that was often the helper's own, where the two then took
        // turns: a 1M-event load after an idle second took 33 ms median, against 20.
        let started = Instant::now();
        while board.active > 0 && started.elapsed() < SPIN {
            drop(board);
            pause();
            board = pool.board();
        }
        while board.active > 0 {
            board = pool
                .finished
                .wait(board)
                .unwrap_or_else(PoisonError::into_inner);
        }
        let panic = board.panic.take();
        drop(board);
        if let Some(panic) = panic
            && !thread::panicking()
        {
            resume_unwind(panic);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn every_item_runs_once_whatever_the_thread_count() {
        for threads in [1, 2, 3, 8] {
            let seen: Vec<AtomicUsize> = (0..1000).map(|_| AtomicUsize::new(0)).collect();
            run_shared(threads, (0..1000).collect(), |i: usize| {
                seen[i].fetch_add(1, Ordering::Relaxed);
            });
            assert!(
                seen.iter().all(|s| s.load(Ordering::Relaxed) == 1),
                "{threads}"
            );
        }
    }

    #[test]
    fn concurrent_callers_each_finish_their_own_items() {
        let totals: Vec<usize> = thread::scope(|s| {
            let calls: Vec<_> = (0..4)
                .map(|c| {
                    s.spawn(move || {
                        let sum = AtomicUsize::new(0);
                        for _ in 0..50 {
                            run_shared(2, (0..100).collect(), |i: usize| {
                                sum.fetch_add(i * (c + 1), Ordering::Relaxed);
                            });
                        }
                        sum.into_inner()
                    })
                })
                .collect();
            calls.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for (c, total) in totals.iter().enumerate() {
            assert_eq!(*total, 50 * 4950 * (c + 1));
        }
    }

    #[test]
    fn a_panic_in_work_reaches_the_caller_and_the_pool_still_works() {
        let outcome = catch_unwind(|| {
            run_shared(2, (0..64).collect(), |i: usize| {
                assert!(i != 63, "the last item fails");
            })
        });
        assert!(outcome.is_err());
        let sum = AtomicUsize::new(0);
        run_shared(2, (0..64).collect(), |i: usize| {
            sum.fetch_add(i, Ordering::Relaxed);
        });
        assert_eq!(sum.into_inner(), 64 * 63 / 2);
    }
}
