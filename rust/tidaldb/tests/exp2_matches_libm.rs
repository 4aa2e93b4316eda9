//! `tidaldb::crdt::exp2`, the decay factor's `2^x`, returns exactly the bits of
//! `libm::exp2` (the oracle) for every input: special values and the edges of its fast
//! range, every rounding boundary of its table reduction, seeded random inputs over the
//! decay range and over all bit patterns, and the decay arguments `-(dt as f64) / h` of
//! realistic times and half-lives.
//!
//! The random inputs print their seed on failure; replay with
//! `TIDALDB_SEED=<seed> cargo test -p tidaldb --test exp2_matches_libm`.
//! `TIDALDB_EXP2_INPUTS=<n>` sets how many random inputs each generator draws (default
//! 10,000,000 each, 30M in all: 0.4 s in a debug build here).

use tidaldb::crdt::exp2;

mod common;
use common::SplitMix;

/// Asserts that `exp2(x)` and `libm::exp2(x)` have the same bits; `what` says where `x`
/// came from.
#[track_caller]
fn check(x: f64, what: &str) {
    let ours = exp2(x);
    let theirs = libm::exp2(x);
    assert_eq!(
        ours.to_bits(),
        theirs.to_bits(),
        "{what}: exp2({x:e}) (bits {:#018x}) = {ours:e} ({:#018x}), libm gives {theirs:e} ({:#018x})",
        x.to_bits(),
        ours.to_bits(),
        theirs.to_bits(),
    );
}

/// `x` and its two neighbours.
fn with_neighbours(x: f64) -> [f64; 3] {
    [x.next_down(), x, x.next_up()]
}

#[test]
fn special_values_and_the_edges_of_the_fast_range_match_libm() {
    let mut inputs = vec![
        0.0,
        -0.0,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::NAN,
        -f64::NAN,
        f64::from_bits(0x7ff0_0000_0000_0001), // signalling NaN
        f64::from_bits(0xfff8_dead_beef_0001), // negative NaN with a payload
        f64::MAX,
        f64::MIN,
        f64::MIN_POSITIVE,
        -f64::MIN_POSITIVE,
        f64::from_bits(1), // the least subnormal
        -f64::from_bits(1),
        0.5,
        -0.5,
        1.0 / 512.0,
        -1.0 / 512.0,
        -3.0 / 256.0,
    ];
    for k in [
        1022.0, 1023.0, 1024.0, 1025.0, 1074.0, 1075.0, 1076.0, 1021.5, 1022.5,
    ] {
        inputs.extend(with_neighbours(k));
        inputs.extend(with_neighbours(-k));
    }
    for e in [-54, -55, -53, -60, -1000, -1022] {
        let tiny = 2f64.powi(e);
        inputs.extend(with_neighbours(tiny));
        inputs.extend(with_neighbours(-tiny));
    }
    // Every integer k in range: where 2^k is exact and the scale moves by one.
    for k in -1080..=1030 {
        inputs.extend(with_neighbours(f64::from(k)));
    }
    for x in inputs {
        check(x, "special value");
    }
}

#[test]
fn every_rounding_boundary_of_the_table_reduction_matches_libm() {
    // x is rounded to a multiple of 1/256: the halfway points, and their neighbours, are
    // where the table index and the scale change.
    for n in -(1080 * 256)..=(1030 * 256) {
        let halfway = (f64::from(n) + 0.5) / 256.0;
        for x in with_neighbours(halfway) {
            check(x, "reduction boundary");
        }
        check(f64::from(n) / 256.0, "table point");
    }
}

fn inputs_per_generator() -> u64 {
    std::env::var("TIDALDB_EXP2_INPUTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000_000)
}

#[test]
fn seeded_random_inputs_match_libm() {
    let report = common::seed("exp2_matches_libm");
    let mut rng = SplitMix(report.0);
    let unit = |bits: u64| (bits >> 11) as f64 / (1u64 << 53) as f64;
    for _ in 0..inputs_per_generator() {
        // Uniform over the decay range and a little past 0.
        check(
            -1100.0 + 1110.0 * unit(rng.next()),
            "uniform in [-1100, 10]",
        );
        // Any bit pattern: NaNs, infinities, subnormals, huge values.
        check(f64::from_bits(rng.next()), "random bits");
        // Any sign and mantissa with an exponent from 2^-64 to 2^11: every magnitude the
        // fast path and its edges see, tiny ones as often as large ones.
        let bits = rng.next();
        let exponent = 1023 - 64 + (bits >> 52) % 76;
        check(
            f64::from_bits((bits & 0x800f_ffff_ffff_ffff) | (exponent << 52)),
            "random magnitude",
        );
    }
    drop(report);
}

#[test]
fn decay_arguments_of_realistic_times_and_half_lives_match_libm() {
    const SECOND: f64 = 1e9;
    let half_lives = [
        60.0 * SECOND,
        300.0 * SECOND,
        3_600.0 * SECOND,
        6.0 * 3_600.0 * SECOND,
        86_400.0 * SECOND,
        7.0 * 86_400.0 * SECOND,
        30.0 * 86_400.0 * SECOND,
        365.0 * 86_400.0 * SECOND,
        86_400.0 * SECOND / 3.0, // not a round number of ns
        123_456_789_012.0,
        f64::INFINITY, // a signal that never decays
    ];
    for h in half_lives {
        // Every dt from 1 ns to past 1100 half-lives, in steps of 0.1%, the decay
        // argument computed as decay.rs does.
        let mut dt = 1.0f64;
        while dt < 1_200.0 * h.min(1e18) {
            let dt_ns = dt as i64;
            for d in [dt_ns.saturating_sub(1), dt_ns, dt_ns.saturating_add(1)] {
                check(-(d as f64) / h, "decay argument");
                check((d as f64) / h, "decay argument read back in time");
            }
            dt *= 1.001;
        }
        // Events a millisecond apart, as a bulk load stamps them.
        for j in 0..200_000i64 {
            check(-((j * 1_000_000) as f64) / h, "millisecond steps");
        }
        check(-(i64::MAX as f64) / h, "the largest dt");
    }
}
