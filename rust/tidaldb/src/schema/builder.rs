//! The schema: which signals exist, how they decay, which windows count them.

use serde::{Deserialize, Serialize};

use super::spec::{DecaySpec, Window};
use super::types::EntityKind;
use crate::error::{Result, TidalError};

/// Position of a signal in its schema. Events and the WAL name signals by index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SignalIdx(pub u16);

/// One declared signal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignalDef {
    pub name: String,
    pub kind: EntityKind,
    pub decay: DecaySpec,
    /// Windows in ascending length, without duplicates.
    pub windows: Vec<Window>,
    pub velocity: bool,
}

impl std::fmt::Display for SignalDef {
    /// As a user declares it: `view: item half_life=7d windows=[1h, 24h] velocity`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.name, self.kind.as_str())?;
        match self.decay {
            DecaySpec::Exponential { half_life } => {
                write!(f, " half_life={}", super::format_duration(half_life))?;
            }
            DecaySpec::Linear { lifetime } => {
                write!(f, " lifetime={}", super::format_duration(lifetime))?;
            }
            DecaySpec::Permanent => f.write_str(" permanent")?,
        }
        if !self.windows.is_empty() {
            let ws: Vec<&str> = self.windows.iter().map(|w| w.as_str()).collect();
            write!(f, " windows=[{}]", ws.join(", "))?;
        }
        if self.velocity {
            f.write_str(" velocity")?;
        }
        Ok(())
    }
}

impl SignalDef {
    /// The shortest window, over which velocity is measured.
    pub fn shortest_window(&self) -> Option<Window> {
        self.windows.first().copied()
    }
}

/// A validated, immutable set of signals.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schema {
    signals: Vec<SignalDef>,
}

const MAX_NAME_LEN: usize = 128;

impl Schema {
    pub fn builder() -> SchemaBuilder {
        SchemaBuilder::new()
    }

    pub fn signals(&self) -> &[SignalDef] {
        &self.signals
    }

    pub fn signal(&self, idx: SignalIdx) -> Option<&SignalDef> {
        self.signals.get(idx.0 as usize)
    }

    /// Like [`Schema::signal`], for indices that arrive from outside (a peer, a file):
    /// an index past the end is an error rather than a `None` to forget.
    pub fn checked(&self, idx: SignalIdx) -> Result<&SignalDef> {
        self.signal(idx).ok_or_else(|| TidalError::InvalidArgument {
            name: "signal",
            reason: format!(
                "signal index {} is outside the schema, which has {} signals",
                idx.0,
                self.signals.len()
            ),
        })
    }

    /// Resolves a signal name. A linear scan: schemas hold a handful of signals, and
    /// comparing a few short strings beats hashing one.
    pub fn resolve(&self, name: &str) -> Result<SignalIdx> {
        self.signals
            .iter()
            .position(|s| s.name == name)
            .map(|i| SignalIdx(i as u16))
            .ok_or_else(|| TidalError::UnknownSignal {
                name: name.to_owned(),
                known: self.signal_names(),
            })
    }

    pub fn signal_names(&self) -> String {
        let names: Vec<&str> = self.signals.iter().map(|s| s.name.as_str()).collect();
        names.join(", ")
    }

    fn validate(signals: Vec<SignalDef>) -> Result<Schema> {
        if signals.is_empty() {
            return Err(TidalError::InvalidSchema(
                "the schema declares no signals; add at least one with .signal(..)".into(),
            ));
        }
        if signals.len() > u16::MAX as usize {
            return Err(TidalError::InvalidSchema("more than 65535 signals".into()));
        }
        for (i, s) in signals.iter().enumerate() {
            if s.name.is_empty() || s.name.len() > MAX_NAME_LEN {
                return Err(TidalError::InvalidSchema(format!(
                    "signal name {:?} must be 1 to {MAX_NAME_LEN} bytes long",
                    s.name
                )));
            }
            if signals[..i].iter().any(|earlier| earlier.name == s.name) {
                return Err(TidalError::DuplicateSignal {
                    name: s.name.clone(),
                });
            }
            validate_decay(s)?;
            if s.velocity && !s.windows.iter().any(|w| w.granulation().is_some()) {
                return Err(TidalError::VelocityWithoutWindows {
                    signal: s.name.clone(),
                });
            }
        }
        Ok(Schema { signals })
    }
}

fn validate_decay(s: &SignalDef) -> Result<()> {
    let invalid = |reason: &str| TidalError::InvalidDecay {
        signal: s.name.clone(),
        reason: reason.to_owned(),
    };
    match s.decay {
        DecaySpec::Exponential { half_life } if half_life.is_zero() => {
            Err(invalid("the half-life must be positive"))
        }
        DecaySpec::Linear { lifetime } if lifetime.is_zero() => {
            Err(invalid("the lifetime must be positive"))
        }
        DecaySpec::Exponential { half_life } if half_life.as_nanos() > i64::MAX as u128 => {
            Err(invalid("the half-life is longer than 292 years"))
        }
        DecaySpec::Linear { lifetime } if lifetime.as_nanos() > i64::MAX as u128 => {
            Err(invalid("the lifetime is longer than 292 years"))
        }
        _ => Ok(()),
    }
}

/// Builds a [`Schema`]: `.signal(..).windows(..).velocity(..).add()` per signal, then
/// `.build()`. All validation happens in `build`, so errors surface in one place.
#[derive(Debug, Default)]
pub struct SchemaBuilder {
    signals: Vec<SignalDef>,
    /// The first error met while chaining; `build` reports it.
    error: Option<TidalError>,
}

impl SchemaBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn signal(self, name: &str, kind: EntityKind, decay: DecaySpec) -> SignalBuilder {
        SignalBuilder {
            schema: self,
            def: SignalDef {
                name: name.to_owned(),
                kind,
                decay,
                windows: Vec::new(),
                velocity: false,
            },
        }
    }

    pub fn build(self) -> Result<Schema> {
        match self.error {
            Some(e) => Err(e),
            None => Schema::validate(self.signals),
        }
    }
}

/// One signal under construction; `.add()` returns to the schema builder.
#[derive(Debug)]
pub struct SignalBuilder {
    schema: SchemaBuilder,
    def: SignalDef,
}

impl SignalBuilder {
    pub fn windows(mut self, windows: &[Window]) -> Self {
        if windows.is_empty() && self.def.decay.is_decaying() && self.schema.error.is_none() {
            self.schema.error = Some(TidalError::EmptyWindows {
                signal: self.def.name.clone(),
            });
        }
        let mut sorted = windows.to_vec();
        sorted.sort();
        if sorted.windows(2).any(|w| w[0] == w[1]) && self.schema.error.is_none() {
            self.schema.error = Some(TidalError::InvalidSchema(format!(
                "signal {:?} lists a window twice",
                self.def.name
            )));
        }
        sorted.dedup();
        self.def.windows = sorted;
        self
    }

    pub fn velocity(mut self, on: bool) -> Self {
        self.def.velocity = on;
        self
    }

    pub fn add(mut self) -> SchemaBuilder {
        self.schema.signals.push(self.def);
        self.schema
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn exp(h: u64) -> DecaySpec {
        DecaySpec::Exponential {
            half_life: Duration::from_secs(h),
        }
    }

    #[test]
    fn builds_the_uat_schema() {
        let s = Schema::builder()
            .signal("view", EntityKind::Item, exp(7 * 86_400))
            .windows(&[Window::TwentyFourHours, Window::OneHour])
            .velocity(true)
            .add()
            .signal("like", EntityKind::Item, exp(86_400))
            .add()
            .build()
            .unwrap();
        assert_eq!(s.resolve("like").unwrap(), SignalIdx(1));
        assert_eq!(
            s.signals()[0].windows,
            vec![Window::OneHour, Window::TwentyFourHours]
        );
        assert!(matches!(
            s.resolve("nope"),
            Err(TidalError::UnknownSignal { .. })
        ));
    }

    #[test]
    fn rejects_each_invalid_schema_with_its_own_error() {
        let dup = Schema::builder()
            .signal("a", EntityKind::Item, exp(1))
            .add()
            .signal("a", EntityKind::User, exp(2))
            .add()
            .build();
        assert!(matches!(dup, Err(TidalError::DuplicateSignal { .. })));

        let zero = Schema::builder()
            .signal("a", EntityKind::Item, exp(0))
            .add()
            .build();
        assert!(matches!(zero, Err(TidalError::InvalidDecay { .. })));

        let linear_zero = Schema::builder()
            .signal(
                "a",
                EntityKind::Item,
                DecaySpec::Linear {
                    lifetime: Duration::ZERO,
                },
            )
            .add()
            .build();
        assert!(matches!(linear_zero, Err(TidalError::InvalidDecay { .. })));

        let empty = Schema::builder()
            .signal("a", EntityKind::Item, exp(1))
            .windows(&[])
            .add()
            .build();
        assert!(matches!(empty, Err(TidalError::EmptyWindows { .. })));

        let velocity = Schema::builder()
            .signal("a", EntityKind::Item, exp(1))
            .velocity(true)
            .add()
            .build();
        assert!(matches!(
            velocity,
            Err(TidalError::VelocityWithoutWindows { .. })
        ));

        let all_time_only = Schema::builder()
            .signal("a", EntityKind::Item, exp(1))
            .windows(&[Window::AllTime])
            .velocity(true)
            .add()
            .build();
        assert!(matches!(
            all_time_only,
            Err(TidalError::VelocityWithoutWindows { .. })
        ));

        assert!(matches!(
            Schema::builder().build(),
            Err(TidalError::InvalidSchema(_))
        ));
    }

    #[test]
    fn a_permanent_signal_may_have_no_windows() {
        let s = Schema::builder()
            .signal("follow", EntityKind::Creator, DecaySpec::Permanent)
            .windows(&[])
            .add()
            .build();
        assert!(s.is_ok());
    }
}
