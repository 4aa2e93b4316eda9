//! A signal's decay as users declare it: a half-life (exponential), a lifetime (linear) or
//! neither (permanent), each a duration in seconds or text such as `"7d"`. A negative or
//! doubly given decay is a schema error about the signal, not a malformed argument.

use std::time::Duration;

use super::duration::{duration_from_secs, parse_duration};
use super::spec::DecaySpec;
use crate::error::{Result, TidalError};

/// A half-life or lifetime as given.
#[derive(Clone, Copy, Debug)]
pub enum DecayLength<'a> {
    Secs(f64),
    Text(&'a str),
}

/// The decay of `signal` from its optional half-life and lifetime.
pub fn decay_of(
    signal: &str,
    half_life: Option<DecayLength<'_>>,
    lifetime: Option<DecayLength<'_>>,
) -> Result<DecaySpec> {
    match (half_life, lifetime) {
        (Some(_), Some(_)) => Err(TidalError::InvalidDecay {
            signal: signal.to_owned(),
            reason: "give half_life (exponential) or lifetime (linear), not both".into(),
        }),
        (Some(h), None) => Ok(DecaySpec::Exponential {
            half_life: decay_length(signal, "half_life", h)?,
        }),
        (None, Some(l)) => Ok(DecaySpec::Linear {
            lifetime: decay_length(signal, "lifetime", l)?,
        }),
        (None, None) => Ok(DecaySpec::Permanent),
    }
}

/// One half-life or lifetime. A `Duration` is never negative, so the sign is read here:
/// a negative one is `InvalidDecay`, anything else unreadable `InvalidArgument`.
fn decay_length(signal: &str, what: &'static str, length: DecayLength<'_>) -> Result<Duration> {
    let negative = |shown: String| TidalError::InvalidDecay {
        signal: signal.to_owned(),
        reason: format!("the {what} is {shown}; it must be positive"),
    };
    match length {
        DecayLength::Text(text) => {
            let trimmed = text.trim();
            let magnitude = trimmed.strip_prefix('-');
            if magnitude.is_some_and(|m| parse_duration(what, m).is_ok()) {
                return Err(negative(format!("{trimmed:?}")));
            }
            parse_duration(what, trimmed)
        }
        DecayLength::Secs(secs) if secs < 0.0 => Err(negative(format!("{secs} seconds"))),
        DecayLength::Secs(secs) => duration_from_secs(what, secs),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_invalid_decay(r: Result<DecaySpec>) -> bool {
        matches!(r, Err(TidalError::InvalidDecay { signal, .. }) if signal == "view")
    }

    #[test]
    fn each_form_gives_its_decay() {
        let h = decay_of("view", Some(DecayLength::Text("7d")), None).unwrap();
        assert_eq!(
            h,
            DecaySpec::Exponential {
                half_life: Duration::from_secs(7 * 86_400)
            }
        );
        let l = decay_of("view", None, Some(DecayLength::Secs(90.0))).unwrap();
        assert_eq!(
            l,
            DecaySpec::Linear {
                lifetime: Duration::from_secs(90)
            }
        );
        assert_eq!(decay_of("view", None, None).unwrap(), DecaySpec::Permanent);
    }

    #[test]
    fn negative_or_doubled_decays_are_schema_errors() {
        let one = Some(DecayLength::Secs(1.0));
        assert!(is_invalid_decay(decay_of("view", one, one)));
        assert!(is_invalid_decay(decay_of(
            "view",
            Some(DecayLength::Text(" -7d")),
            None
        )));
        assert!(is_invalid_decay(decay_of(
            "view",
            None,
            Some(DecayLength::Secs(-1.0))
        )));
    }

    #[test]
    fn unreadable_lengths_are_bad_arguments() {
        for bad in [
            DecayLength::Text("-"),
            DecayLength::Text("7y"),
            DecayLength::Secs(f64::NAN),
        ] {
            assert!(matches!(
                decay_of("view", Some(bad), None),
                Err(TidalError::InvalidArgument {
                    name: "half_life",
                    ..
                })
            ));
        }
    }
}
