//! `tidaldb.Schema`: a fluent builder that validates at every step.

use std::fmt::Write as _;

use pyo3::prelude::*;
use pyo3::types::PyString;
use tidaldb::schema::{DecayLength, decay_of, format_duration};
use tidaldb::{DecaySpec, EntityKind, Schema, TidalError, Window};

use crate::errors::IntoPyResult;

/// One `.signal(..)` call as given, so that the core schema can be rebuilt from scratch.
#[derive(Clone, Debug)]
struct Spec {
    name: String,
    kind: EntityKind,
    decay: DecaySpec,
    /// `None` when the caller did not pass `windows`; an empty list is a different thing.
    windows: Option<Vec<Window>>,
    velocity: bool,
}

/// The signals of a database. `.signal(..)` returns the same object, so calls chain.
#[pyclass(module = "tidaldb._native", name = "Schema")]
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

    /// Declares a signal. `half_life` makes it decay exponentially, `lifetime` linearly,
    /// neither makes it permanent. Raises at this call if the schema became invalid, and
    /// leaves the schema as it was.
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
        let half_life = half_life.as_ref().map(decay_length).transpose()?;
        let lifetime = lifetime.as_ref().map(decay_length).transpose()?;
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

    /// Signal names in declaration order.
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
        let mut out = String::from("Schema(");
        for (i, s) in schema.signals().iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            let _ = write!(out, "{}: {}", s.name, s.kind.as_str());
            match s.decay {
                DecaySpec::Exponential { half_life } => {
                    let _ = write!(out, " half_life={}", format_duration(half_life));
                }
                DecaySpec::Linear { lifetime } => {
                    let _ = write!(out, " lifetime={}", format_duration(lifetime));
                }
                DecaySpec::Permanent => out.push_str(" permanent"),
            }
            if !s.windows.is_empty() {
                let ws: Vec<&str> = s.windows.iter().map(|w| w.as_str()).collect();
                let _ = write!(out, " windows=[{}]", ws.join(", "));
            }
            if s.velocity {
                out.push_str(" velocity");
            }
        }
        out.push(')');
        out
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

fn decay_length(value: &Bound<'_, PyAny>) -> PyResult<DecayText> {
    Ok(match value.cast::<PyString>() {
        Ok(text) => DecayText::Text(text.to_cow()?.into_owned()),
        Err(_) => DecayText::Secs(value.extract()?),
    })
}
