//! `tidaldb.Schema`: a fluent builder that validates at every step.

use pyo3::prelude::*;
use pyo3::types::{PyFloat, PyInt, PyString};
use tidaldb::schema::{DecayLength, decay_of};
use tidaldb::{DecaySpec, EntityKind, Schema, TidalError, Window};

use crate::errors::IntoPyResult;

/// One `.signal(..)` call as given, so that the core schema can be rebuilt from scratch.
#[derive(Clone, Debug, PartialEq)]
struct Spec {
    name: String,
    kind: EntityKind,
    decay: DecaySpec,
    /// `None` when the caller did not pass `windows`; an empty list is a different thing.
    windows: Option<Vec<Window>>,
    velocity: bool,
}

#[doc = include_str!("../pydoc/Schema.md")]
#[pyclass(module = "tidaldb._native", name = "Schema", eq)]
#[derive(Debug, Default)]
pub struct PySchema {
    specs: Vec<Spec>,
    /// The core schema of `specs`; `None` only while no signal is declared.
    built: Option<Schema>,
}

fn build(specs: &[Spec]) -> Result<Schema, TidalError> {
    let mut b = Schema::builder();
    for s in specs {
        let mut sig = b.signal(&s.name, s.kind, s.decay);
        if let Some(w) = &s.windows {
            sig = sig.windows(w);
        }
        b = sig.velocity(s.velocity).add();
    }
    b.build()
}

impl PySchema {
    /// The core schema; an empty one raises the core's "no signals" error.
    pub fn core(&self, py: Python<'_>) -> PyResult<Schema> {
        match &self.built {
            Some(s) => Ok(s.clone()),
            None => build(&[]).py_err(py),
        }
    }
}

#[pymethods]
impl PySchema {
    #[new]
    fn new() -> Self {
        Self::default()
    }

    #[doc = include_str!("../pydoc/Schema/signal.md")]
    #[pyo3(signature = (name, kind="item", half_life=None, lifetime=None, windows=None, velocity=false))]
    #[allow(clippy::too_many_arguments)]
    fn signal<'py>(
        slf: Bound<'py, Self>,
        name: &str,
        kind: &str,
        half_life: Option<Bound<'py, PyAny>>,
        lifetime: Option<Bound<'py, PyAny>>,
        windows: Option<Vec<String>>,
        velocity: bool,
    ) -> PyResult<Bound<'py, Self>> {
        let py = slf.py();
        let kind = EntityKind::parse(kind).py_err(py)?;
        let half_life = half_life
            .as_ref()
            .map(|v| decay_length("half_life", v))
            .transpose()?;
        let lifetime = lifetime
            .as_ref()
            .map(|v| decay_length("lifetime", v))
            .transpose()?;
        let decay = decay_of(
            name,
            half_life.as_ref().map(DecayText::length),
            lifetime.as_ref().map(DecayText::length),
        )
        .py_err(py)?;
        let windows = windows
            .map(|ws| {
                ws.iter()
                    .map(|w| Window::parse(w))
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()
            .py_err(py)?;
        {
            let mut this = slf.borrow_mut();
            let mut specs = this.specs.clone();
            specs.push(Spec {
                name: name.to_owned(),
                kind,
                decay,
                windows,
                velocity,
            });
            let built = build(&specs).py_err(py)?;
            this.specs = specs;
            this.built = Some(built);
        }
        Ok(slf)
    }

    #[doc = include_str!("../pydoc/Schema/__getstate__.md")]
    fn __getstate__(&self) -> Vec<SpecState> {
        self.specs.iter().map(SpecState::from).collect()
    }

    #[doc = include_str!("../pydoc/Schema/__setstate__.md")]
    fn __setstate__(&mut self, py: Python<'_>, state: Vec<SpecState>) -> PyResult<()> {
        let specs = state
            .into_iter()
            .map(Spec::try_from)
            .collect::<Result<Vec<_>, _>>()
            .py_err(py)?;
        self.built = if specs.is_empty() {
            None
        } else {
            Some(build(&specs).py_err(py)?)
        };
        self.specs = specs;
        Ok(())
    }

    /// `Schema()` and then the state: what pickle and `copy` call.
    fn __reduce__<'py>(
        slf: &Bound<'py, Self>,
    ) -> PyResult<(Bound<'py, PyAny>, (), Vec<SpecState>)> {
        Ok((slf.get_type().into_any(), (), slf.borrow().__getstate__()))
    }

    fn __copy__(&self) -> Self {
        PySchema {
            specs: self.specs.clone(),
            built: self.built.clone(),
        }
    }

    /// A schema holds no Python objects, so a deep copy is a copy.
    fn __deepcopy__(&self, _memo: &Bound<'_, PyAny>) -> Self {
        self.__copy__()
    }

    #[doc = include_str!("../pydoc/Schema/names.md")]
    #[getter]
    fn names(&self) -> Vec<String> {
        self.specs.iter().map(|s| s.name.clone()).collect()
    }

    fn __len__(&self) -> usize {
        self.specs.len()
    }

    fn __repr__(&self) -> String {
        let Some(schema) = &self.built else {
            return "Schema()".to_owned();
        };
        let signals: Vec<String> = schema.signals().iter().map(ToString::to_string).collect();
        format!("Schema({})", signals.join(", "))
    }
}

/// A half-life or lifetime as Python gave it: seconds, or text such as `"7d"` (owned,
/// so that the core can borrow it).
enum DecayText {
    Secs(f64),
    Text(String),
}

impl DecayText {
    fn length(&self) -> DecayLength<'_> {
        match self {
            DecayText::Secs(s) => DecayLength::Secs(*s),
            DecayText::Text(t) => DecayLength::Text(t),
        }
    }
}

/// Seconds, text, or a `timedelta` (read as its seconds by `tidaldb._columns`).
fn decay_length(what: &'static str, value: &Bound<'_, PyAny>) -> PyResult<DecayText> {
    Ok(match value.cast::<PyString>() {
        Ok(text) => DecayText::Text(text.to_cow()?.into_owned()),
        Err(_) if value.is_instance_of::<PyFloat>() || value.is_instance_of::<PyInt>() => {
            DecayText::Secs(value.extract()?)
        }
        Err(_) => DecayText::Secs(crate::columns::duration_seconds(value.py(), what, value)?),
    })
}

impl PartialEq for PySchema {
    /// Two schemas are equal when they declare the same signals the same way, in the same
    /// order (the order numbers the signals in the log).
    fn eq(&self, other: &Self) -> bool {
        self.specs == other.specs
    }
}

/// One signal of a pickled schema: `(name, kind, decay, decay length in ns, windows,
/// velocity)`; `decay` is "exponential", "linear" or "permanent".
type SpecState = (
    String,
    String,
    String,
    Option<u128>,
    Option<Vec<String>>,
    bool,
);

impl From<&Spec> for SpecState {
    fn from(s: &Spec) -> Self {
        let nanos = |d: std::time::Duration| d.as_nanos();
        let (decay, length) = match s.decay {
            DecaySpec::Exponential { half_life } => ("exponential", Some(nanos(half_life))),
            DecaySpec::Linear { lifetime } => ("linear", Some(nanos(lifetime))),
            DecaySpec::Permanent => ("permanent", None),
        };
        (
            s.name.clone(),
            s.kind.as_str().to_owned(),
            decay.to_owned(),
            length,
            s.windows
                .as_ref()
                .map(|ws| ws.iter().map(|w| w.as_str().to_owned()).collect()),
            s.velocity,
        )
    }
}

impl TryFrom<SpecState> for Spec {
    type Error = TidalError;

    fn try_from(state: SpecState) -> Result<Self, TidalError> {
        let (name, kind, decay, length, windows, velocity) = state;
        const NANOS: u128 = 1_000_000_000;
        let length = length
            .map(|n| {
                let secs = u64::try_from(n / NANOS).map_err(|_| TidalError::InvalidArgument {
                    name: "state",
                    reason: format!("signal {name:?}: a decay of {n} ns is out of range"),
                })?;
                // The remainder is below 10**9, so it fits.
                Ok(std::time::Duration::new(secs, (n % NANOS) as u32))
            })
            .transpose()?;
        let decay = match (decay.as_str(), length) {
            ("exponential", Some(half_life)) => DecaySpec::Exponential { half_life },
            ("linear", Some(lifetime)) => DecaySpec::Linear { lifetime },
            ("permanent", None) => DecaySpec::Permanent,
            (other, _) => {
                return Err(TidalError::InvalidArgument {
                    name: "state",
                    reason: format!(
                        "signal {name:?}: {other:?} with length {length:?} is not a decay this \
                         version of tidaldb pickles"
                    ),
                });
            }
        };
        Ok(Spec {
            kind: EntityKind::parse(&kind)?,
            decay,
            windows: windows
                .map(|ws| ws.iter().map(|w| Window::parse(w)).collect())
                .transpose()?,
            velocity,
            name,
        })
    }
}
