//! The weights a write may carry.

use crate::error::{Result, TidalError};

/// The largest weight magnitude accepted. Window sums are fixed point in an `i64` of
/// millionths, and this bound keeps millions of events per bucket clear of overflow.
pub const MAX_WEIGHT: f64 = 1e6;

/// Whether [`validate_weight`] accepts every weight, in a loop without branches that the
/// compiler vectorizes: a bulk write checks millions. The caller that gets `false` finds
/// the first bad weight with [`validate_weight`], for its error.
pub fn all_weights_valid(weights: &[f64]) -> bool {
    let valid = weights.iter().fold(true, |ok, &w| {
        // NaN fails the comparison, and so does an infinity.
        ok & (w.abs() <= MAX_WEIGHT) & (w.to_bits() != (-0.0f64).to_bits())
    });
    debug_assert_eq!(valid, weights.iter().all(|&w| validate_weight(w).is_ok()));
    valid
}

/// Checks a weight before it can reach the log. Negative zero is refused because it is
/// almost always a sign bug upstream, and it would make `-0.0 == 0.0` scores differ in bits.
pub fn validate_weight(weight: f64) -> Result<f64> {
    let reason = if weight.is_nan() {
        "NaN is not a weight"
    } else if weight.is_infinite() {
        "an infinite weight would make every score infinite"
    } else if weight == 0.0 && weight.is_sign_negative() {
        "negative zero is refused; pass 0.0"
    } else if weight.abs() > MAX_WEIGHT {
        "the magnitude exceeds 1e6, the largest weight window sums can hold exactly"
    } else {
        return Ok(weight);
    };
    Err(TidalError::InvalidWeight { weight, reason })
}
