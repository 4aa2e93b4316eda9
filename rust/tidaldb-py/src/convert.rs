//! Python values → core values: ids, times, durations and numpy arrays.

use std::borrow::Cow;
use std::time::Duration;

use numpy::{PyArray1, PyArrayMethods, PyReadonlyArray1, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::exceptions::PyOverflowError;
use pyo3::prelude::*;
use pyo3::types::PyString;
use tidaldb::schema::{duration_from_secs, parse_duration};
use tidaldb::{EntityId, TidalError, Timestamp};

use crate::errors::{IntoPyResult, invalid, to_py};

/// An entity id argument. A negative or too large int is a bad value, not a bad type, so
/// it raises `InvalidArgument` instead of PyO3's `OverflowError`.
#[derive(Clone, Copy)]
pub struct Id(pub EntityId);

impl<'a, 'py> FromPyObject<'a, 'py> for Id {
    type Error = PyErr;

    #[inline]
    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        match obj.extract::<u64>() {
            Ok(v) => Ok(Id(EntityId(v))),
            Err(e) if e.is_instance_of::<PyOverflowError>(obj.py()) => Err(invalid(
                obj.py(),
                "id",
                format!(
                    "{} is not an entity id; ids are integers in [0, 2**64)",
                    shown(&obj)
                ),
            )),
            Err(e) => Err(e),
        }
    }
}

/// A count (such as `limit`): negative values raise `InvalidArgument`, like ids.
pub struct Count(pub usize);

impl<'a, 'py> FromPyObject<'a, 'py> for Count {
    type Error = PyErr;

    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        match obj.extract::<usize>() {
            Ok(v) => Ok(Count(v)),
            Err(e) if e.is_instance_of::<PyOverflowError>(obj.py()) => Err(invalid(
                obj.py(),
                "limit",
                format!("{} is not a count; pass a positive integer", shown(&obj)),
            )),
            Err(e) => Err(e),
        }
    }
}

/// Unix seconds → `Timestamp`; `None` stays `None` (the core then uses its clock).
#[inline]
pub fn timestamp(py: Python<'_>, secs: Option<f64>) -> PyResult<Option<Timestamp>> {
    match secs {
        None => Ok(None),
        Some(s) => Timestamp::from_secs_f64(s).map(Some).py_err(py),
    }
}

/// Like [`timestamp`], but `None` is read as now: for core reads that only take a time.
#[inline]
pub fn timestamp_or_now(py: Python<'_>, secs: Option<f64>) -> PyResult<Timestamp> {
    Ok(timestamp(py, secs)?.unwrap_or_else(Timestamp::now))
}

/// A half-life or lifetime: seconds as a number, or a string such as `"7d"`.
///
/// A negative value is a schema error (the signal's decay is invalid), not a malformed
/// argument; the core's duration parser cannot say which, because a `Duration` is never
/// negative, so the sign is checked here.
pub fn decay_duration(
    py: Python<'_>,
    signal: &str,
    what: &'static str,
    value: &Bound<'_, PyAny>,
) -> PyResult<Duration> {
    let negative = |shown: String| {
        to_py(
            py,
            TidalError::InvalidDecay {
                signal: signal.to_owned(),
                reason: format!("the {what} is {shown}; it must be positive"),
            },
        )
    };
    if let Ok(text) = value.cast::<PyString>() {
        let text = text.to_cow()?;
        let trimmed = text.trim();
        let magnitude = trimmed.strip_prefix('-');
        if magnitude.is_some_and(|m| parse_duration(what, m).is_ok()) {
            return Err(negative(format!("{trimmed:?}")));
        }
        return parse_duration(what, trimmed).py_err(py);
    }
    let secs: f64 = value.extract()?;
    if secs < 0.0 {
        return Err(negative(format!("{secs} seconds")));
    }
    duration_from_secs(what, secs).py_err(py)
}

/// Entity ids from a numpy array: the uint64 array itself is held (borrowed, not copied);
/// int64 input is checked and converted up front.
pub enum Ids<'py> {
    Borrowed(PyReadonlyArray1<'py, u64>),
    Owned(Vec<EntityId>),
}

impl Ids<'_> {
    pub fn len(&self) -> usize {
        match self {
            Ids::Borrowed(a) => a.as_array().len(),
            Ids::Owned(v) => v.len(),
        }
    }

    /// The ids as the core takes them: a contiguous uint64 array is viewed in place
    /// (`EntityId` is a transparent `u64`); a strided one is gathered into a copy.
    pub fn as_ids(&self) -> Cow<'_, [EntityId]> {
        match self {
            Ids::Borrowed(a) => match a.as_slice() {
                Ok(raw) => Cow::Borrowed(EntityId::from_raw_slice(raw)),
                Err(_) => Cow::Owned(a.as_array().iter().map(|&v| EntityId(v)).collect()),
            },
            Ids::Owned(v) => Cow::Borrowed(v),
        }
    }
}

fn shown(obj: &Borrowed<'_, '_, PyAny>) -> String {
    obj.str()
        .map_or_else(|_| "the value".to_owned(), |s| s.to_string())
}

fn describe(obj: &Bound<'_, PyAny>) -> String {
    match obj.cast::<PyUntypedArray>() {
        Ok(a) => format!("a {}-D array of {}", a.ndim(), a.dtype()),
        Err(_) => match obj.get_type().name() {
            Ok(n) => format!("a {n}"),
            Err(_) => "another type".to_owned(),
        },
    }
}

/// `items` of a bulk call: a 1-D uint64 array, or int64 with no negative value.
pub fn id_array<'py>(
    py: Python<'py>,
    what: &'static str,
    obj: &Bound<'py, PyAny>,
) -> PyResult<Ids<'py>> {
    if let Ok(a) = obj.cast::<PyArray1<u64>>() {
        return Ok(Ids::Borrowed(
            a.try_readonly()
                .map_err(|e| invalid(py, what, e.to_string()))?,
        ));
    }
    if let Ok(a) = obj.cast::<PyArray1<i64>>() {
        let ro = a
            .try_readonly()
            .map_err(|e| invalid(py, what, e.to_string()))?;
        let view = ro.as_array();
        let mut ids = Vec::with_capacity(view.len());
        for (i, &v) in view.iter().enumerate() {
            let id = u64::try_from(v).map_err(|_| {
                invalid(
                    py,
                    what,
                    format!("element {i} is {v}; entity ids are non-negative"),
                )
            })?;
            ids.push(EntityId(id));
        }
        return Ok(Ids::Owned(ids));
    }
    Err(invalid(
        py,
        what,
        format!(
            "expected a 1-D numpy array of uint64 (or non-negative int64), got {}",
            describe(obj)
        ),
    ))
}

/// Candidates of a retrieval: the same arrays as [`id_array`], or any iterable of ints.
pub fn id_list<'py>(py: Python<'py>, obj: &Bound<'py, PyAny>) -> PyResult<Vec<EntityId>> {
    if obj.cast::<PyUntypedArray>().is_ok() {
        return Ok(id_array(py, "candidates", obj)?.as_ids().into_owned());
    }
    let mut ids = Vec::new();
    for item in obj.try_iter()? {
        ids.push(item?.extract::<Id>()?.0);
    }
    Ok(ids)
}

/// A 1-D float64 array, borrowed.
pub fn f64_array<'py>(
    py: Python<'py>,
    what: &'static str,
    obj: &Bound<'py, PyAny>,
) -> PyResult<PyReadonlyArray1<'py, f64>> {
    match obj.cast::<PyArray1<f64>>() {
        Ok(a) => a
            .try_readonly()
            .map_err(|e| invalid(py, what, e.to_string())),
        Err(_) => Err(invalid(
            py,
            what,
            format!(
                "expected a 1-D numpy array of float64, got {}",
                describe(obj)
            ),
        )),
    }
}

/// A contiguous view when the array has one, else a copy.
pub fn f64_slice<'a>(a: &'a PyReadonlyArray1<'_, f64>) -> Cow<'a, [f64]> {
    match a.as_slice() {
        Ok(s) => Cow::Borrowed(s),
        Err(_) => Cow::Owned(a.as_array().iter().copied().collect()),
    }
}

/// Checks that a bulk argument has as many elements as `items`, naming it if not.
pub fn same_length(py: Python<'_>, what: &'static str, len: usize, items: usize) -> PyResult<()> {
    if len == items {
        Ok(())
    } else {
        Err(invalid(
            py,
            what,
            format!("has {len} elements but items has {items}; pass arrays of the same length"),
        ))
    }
}
