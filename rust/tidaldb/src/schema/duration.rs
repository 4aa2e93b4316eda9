//! Human durations ("7d", "90m", "1.5h") as Python users write them.

use std::time::Duration;

use crate::error::{Result, TidalError};

const UNITS: &[(&str, f64)] = &[
    ("ns", 1e-9),
    ("us", 1e-6),
    ("ms", 1e-3),
    ("s", 1.0),
    ("m", 60.0),
    ("h", 3600.0),
    ("d", 86_400.0),
    ("w", 604_800.0),
];

/// Parses `"<number><unit>"` with unit one of ns, us, ms, s, m, h, d, w.
/// `what` names the argument in the error, so the caller learns which one was wrong.
pub fn parse_duration(what: &'static str, text: &str) -> Result<Duration> {
    let text = text.trim();
    let split = text
        .find(|c: char| c.is_ascii_alphabetic())
        .ok_or_else(|| bad(what, text, "it has no unit"))?;
    let (number, unit) = text.split_at(split);
    let scale = UNITS
        .iter()
        .find(|(name, _)| *name == unit)
        .map(|(_, scale)| *scale)
        .ok_or_else(|| {
            bad(
                what,
                text,
                "the unit is not one of ns, us, ms, s, m, h, d, w",
            )
        })?;
    let value: f64 = number
        .parse()
        .map_err(|_| bad(what, text, "the number does not parse"))?;
    duration_from_secs(what, value * scale)
}

/// Seconds as a float, rejecting negative, NaN and infinite values.
pub fn duration_from_secs(what: &'static str, secs: f64) -> Result<Duration> {
    if !secs.is_finite() || secs < 0.0 {
        return Err(TidalError::InvalidArgument {
            name: what,
            reason: format!("{secs} seconds is not a finite, non-negative duration"),
        });
    }
    Duration::try_from_secs_f64(secs).map_err(|e| TidalError::InvalidArgument {
        name: what,
        reason: e.to_string(),
    })
}

/// The largest unit that divides `d` exactly, as users write it ("7d", "90m"); seconds
/// with a fraction when none does. [`parse_duration`] reads the result back to `d` (to the
/// precision of an f64 for the fractional form).
pub fn format_duration(d: Duration) -> String {
    const UNITS: [(u128, &str); 4] = [
        (86_400_000_000_000, "d"),
        (3_600_000_000_000, "h"),
        (60_000_000_000, "m"),
        (1_000_000_000, "s"),
    ];
    let ns = d.as_nanos();
    for (unit, suffix) in UNITS {
        if ns >= unit && ns.is_multiple_of(unit) {
            return format!("{}{suffix}", ns / unit);
        }
    }
    format!("{}s", d.as_secs_f64())
}

fn bad(what: &'static str, text: &str, why: &str) -> TidalError {
    TidalError::InvalidArgument {
        name: what,
        reason: format!(
            "{text:?} is not a duration ({why}); write e.g. \"7d\", \"90m\" or \"1.5h\""
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_units_users_write() {
        assert_eq!(
            parse_duration("d", "7d").unwrap(),
            Duration::from_secs(7 * 86_400)
        );
        assert_eq!(
            parse_duration("d", "90m").unwrap(),
            Duration::from_secs(5_400)
        );
        assert_eq!(
            parse_duration("d", "1.5h").unwrap(),
            Duration::from_secs(5_400)
        );
        assert_eq!(
            parse_duration("d", "250ms").unwrap(),
            Duration::from_millis(250)
        );
    }

    #[test]
    fn formats_with_the_largest_exact_unit_and_parses_back() {
        for (secs, text) in [
            (7 * 86_400, "7d"),
            (5_400, "90m"),
            (3_600, "1h"),
            (61, "61s"),
            (0, "0s"),
        ] {
            let d = Duration::from_secs(secs);
            assert_eq!(format_duration(d), text);
            assert_eq!(parse_duration("d", text).unwrap(), d);
        }
        assert_eq!(format_duration(Duration::from_millis(1500)), "1.5s");
    }

    #[test]
    fn rejects_garbage_and_negatives() {
        for text in ["", "7", "7y", "-1h", "abc", "1..2h", "NaNs"] {
            assert!(parse_duration("d", text).is_err(), "{text:?} parsed");
        }
    }
}
