//! `tidaldb::crdt::exp2` against `libm::exp2`, whose bits it reproduces, on the same decay
//! arguments in the same run: `cargo bench -p tidaldb --bench exp2`.
//!
//! The inputs are `-(dt as f64) / h` as decay computes them: dt up to ten half-lives of a
//! day. Each round times both functions over all inputs, in alternating order; the figure
//! is the best round of each (the machine is shared), and the median beside it. Two loops:
//! independent calls (throughput, what a bulk load's many entities see) and a chain where
//! each argument depends on the previous result (latency).

use std::hint::black_box;
use std::time::Instant;

const INPUTS: usize = 1 << 16;
const PASSES: usize = 64;
const ROUNDS: usize = 15;

/// Nanoseconds per call of `f` over `xs`, calls independent of each other.
fn throughput(f: impl Fn(f64) -> f64, xs: &[f64]) -> f64 {
    let start = Instant::now();
    let mut sum = 0.0;
    for _ in 0..PASSES {
        for &x in black_box(xs) {
            sum += f(x);
        }
    }
    black_box(sum);
    start.elapsed().as_secs_f64() * 1e9 / (PASSES * xs.len()) as f64
}

/// Nanoseconds per call of `f` when each argument waits for the previous result.
fn latency(f: impl Fn(f64) -> f64, xs: &[f64]) -> f64 {
    let start = Instant::now();
    let mut carry = 0.0;
    for _ in 0..PASSES {
        for &x in black_box(xs) {
            // `carry` is 0 or tiny, so the argument stays `x` in value but not in time.
            carry = f(x + carry * 0.0) * 0.0;
        }
    }
    black_box(carry);
    start.elapsed().as_secs_f64() * 1e9 / (PASSES * xs.len()) as f64
}

fn best_and_median(mut v: Vec<f64>) -> (f64, f64) {
    v.sort_by(f64::total_cmp);
    (v[0], v[v.len() / 2])
}

fn main() {
    let half_life = 86_400e9;
    let mut state = 0x1234_5678_9abc_def0u64;
    let xs: Vec<f64> = (0..INPUTS)
        .map(|_| {
            // xorshift: the inputs only need to look unpredictable to the branch predictor.
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let dt = (state % (10 * 86_400_000_000_000)) as i64;
            -(dt as f64) / half_life
        })
        .collect();
    for &x in &xs {
        assert_eq!(libm::exp2(x).to_bits(), tidaldb::crdt::exp2(x).to_bits());
    }

    compare(
        "throughput",
        || throughput(libm::exp2, &xs),
        || throughput(tidaldb::crdt::exp2, &xs),
    );
    compare(
        "latency",
        || latency(libm::exp2, &xs),
        || latency(tidaldb::crdt::exp2, &xs),
    );
}

/// Times `base` and `fast` in alternating order and prints their ratio.
fn compare(name: &str, mut base: impl FnMut() -> f64, mut fast: impl FnMut() -> f64) {
    let (mut base_ns, mut fast_ns) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        if round % 2 == 0 {
            base_ns.push(base());
            fast_ns.push(fast());
        } else {
            fast_ns.push(fast());
            base_ns.push(base());
        }
    }
    let (base_best, base_median) = best_and_median(base_ns);
    let (fast_best, fast_median) = best_and_median(fast_ns);
    println!(
        "{name:>10}: libm::exp2 {base_best:.2} ns/call (median {base_median:.2}), \
         crdt::exp2 {fast_best:.2} ns/call (median {fast_median:.2}): \
         {:.2}x faster (median {:.2}x)",
        base_best / fast_best,
        base_median / fast_median,
    );
}
