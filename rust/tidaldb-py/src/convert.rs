//! Python values → core values: ids, times, durations and numpy arrays.

use std::marker::PhantomData;
use std::time::Duration;

use numpy::{PyArray1, PyArrayMethods, PyUntypedArray};
use pyo3::exceptions::{PyOverflowError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyFloat, PyInt, PyString};
use tidaldb::runtime::CopiedColumn;
use tidaldb::schema::{duration_from_secs, parse_duration};
use tidaldb::{EntityId, TidalError, Timestamp};

use crate::columns::{self, Column};
use crate::errors::{IntoPyResult, invalid};

/// The name of a Python argument, carried in the type of its converter so that a bad value
/// is reported under the name the caller used.
pub trait Arg {
    const NAME: &'static str;
    /// A time: besides Unix seconds, it takes a `datetime` or a numpy `datetime64`.
    const TIME: bool = false;
}

macro_rules! args {
    ($($ty:ident = $name:literal),* $(,)?) => {$(
        pub enum $ty {}
        impl Arg for $ty {
            const NAME: &'static str = $name;
        }
    )*};
}

macro_rules! time_args {
    ($($ty:ident = $name:literal),* $(,)?) => {$(
        pub enum $ty {}
        impl Arg for $ty {
            const NAME: &'static str = $name;
            const TIME: bool = true;
        }
    )*};
}

time_args!(Ts = "ts", At = "at");

args!(
    Item = "item",
    User = "user",
    Weight = "weight",
    Seed = "seed",
    Shard = "shard",
    ShardsPerRegion = "shards_per_region",
    TenantIdArg = "id",
    MaxSignalsPerSec = "max_signals_per_sec",
    MaxEntities = "max_entities",
    MaxStorageBytes = "max_storage_bytes",
    ToShard = "to_shard",
    TenantKw = "tenant",
    IdempotencyArg = "idempotency_key",
    Loss = "loss",
    WriteConcernKw = "write_concern",
    MaxRetained = "max_retained",
    MaxRetainedOwn = "max_retained_own",
    IngestThreads = "ingest_threads",
    Node = "node",
);

/// An entity id argument. A negative or too large int is a bad value, not a bad type, so
/// it raises `InvalidArgument` instead of PyO3's `OverflowError`. `True` and `False` are
/// ints to Python but never ids: they raise `TypeError`.
pub struct Id<A>(pub EntityId, PhantomData<A>);

impl<A> Clone for Id<A> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<A> Copy for Id<A> {}

impl<'a, 'py, A: Arg> FromPyObject<'a, 'py> for Id<A> {
    type Error = PyErr;

    #[inline]
    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        entity_id(obj, A::NAME).map(|id| Id(id, PhantomData))
    }
}

/// One entity id named `what` in messages: the conversion behind [`Id`] and candidate lists.
#[inline]
fn entity_id(obj: Borrowed<'_, '_, PyAny>, what: &'static str) -> PyResult<EntityId> {
    match obj.extract::<u64>() {
        // `bool` cannot be subclassed, so the exact check finds every bool.
        Ok(_) if obj.is_exact_instance_of::<PyBool>() => Err(PyTypeError::new_err(format!(
            "{what}: expected an int entity id, got bool ({})",
            shown(&obj)
        ))),
        Ok(v) => Ok(EntityId(v)),
        Err(e) if e.is_instance_of::<PyTypeError>(obj.py()) => Err(PyTypeError::new_err(format!(
            "{what}: expected an int entity id, got {}",
            type_name(&obj)
        ))),
        Err(e) if e.is_instance_of::<PyOverflowError>(obj.py()) => Err(invalid(
            obj.py(),
            what,
            format!(
                "{} is not an entity id; ids are integers in [0, 2**64)",
                shown(&obj)
            ),
        )),
        Err(e) => Err(e),
    }
}

/// A float argument. An int too large for a float64 raises `InvalidArgument` naming the
/// argument, instead of PyO3's `OverflowError`.
pub struct Float<A>(pub f64, PhantomData<A>);

impl<A> Float<A> {
    pub const fn new(v: f64) -> Self {
        Float(v, PhantomData)
    }
}

impl<'a, 'py, A: Arg> FromPyObject<'a, 'py> for Float<A> {
    type Error = PyErr;

    #[inline]
    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        if A::TIME && !is_number(&obj) {
            return columns::time_seconds(obj.py(), A::NAME, &obj).map(Float::new);
        }
        float(obj, A::NAME, String::new).map(|v| Float(v, PhantomData))
    }
}

/// A Python float or int (numpy's float64 included, as a float subclass): read here,
/// without the detour through `tidaldb._columns` that other scalars take.
#[inline]
fn is_number(obj: &Borrowed<'_, '_, PyAny>) -> bool {
    obj.is_instance_of::<PyFloat>() || obj.is_instance_of::<PyInt>()
}

/// `obj` as a float64. An int too large for one raises `InvalidArgument` naming `what`;
/// `of` begins that message (built only then).
#[inline]
pub fn float(
    obj: Borrowed<'_, '_, PyAny>,
    what: &'static str,
    of: impl FnOnce() -> String,
) -> PyResult<f64> {
    match obj.extract::<f64>() {
        Ok(v) => Ok(v),
        Err(e) if e.is_instance_of::<PyTypeError>(obj.py()) => Err(PyTypeError::new_err(format!(
            "{what}: expected a float, got {}",
            type_name(&obj)
        ))),
        Err(e) if e.is_instance_of::<PyOverflowError>(obj.py()) => Err(invalid(
            obj.py(),
            what,
            format!(
                "{}{}, which does not fit in a float64; pass a number of magnitude below 1.8e308",
                of(),
                shown(&obj)
            ),
        )),
        Err(e) => Err(e),
    }
}

/// A non-negative integer argument (a seed, a shard, a quota). A negative or too large
/// int is a bad value, so it raises `InvalidArgument` naming the argument, not PyO3's
/// `OverflowError`; a bool raises `TypeError`, as for ids.
pub struct Natural<A>(pub u64, PhantomData<A>);

impl<'a, 'py, A: Arg> FromPyObject<'a, 'py> for Natural<A> {
    type Error = PyErr;

    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        if obj.is_exact_instance_of::<PyBool>() {
            return Err(PyTypeError::new_err(format!(
                "{}: expected an int, got bool ({})",
                A::NAME,
                shown(&obj)
            )));
        }
        match obj.extract::<u64>() {
            Ok(v) => Ok(Natural(v, PhantomData)),
            Err(e) if e.is_instance_of::<PyTypeError>(obj.py()) => Err(PyTypeError::new_err(
                format!("{}: expected an int, got {}", A::NAME, type_name(&obj)),
            )),
            Err(e) if e.is_instance_of::<PyOverflowError>(obj.py()) => Err(invalid(
                obj.py(),
                A::NAME,
                format!(
                    "{} is out of range; pass an integer in [0, 2**64)",
                    shown(&obj)
                ),
            )),
            Err(e) => Err(e),
        }
    }
}

impl<A: Arg> Natural<A> {
    pub const fn new(v: u64) -> Self {
        Natural(v, PhantomData)
    }

    /// The value as a narrower integer, or `InvalidArgument` naming the argument.
    pub fn narrow<T: TryFrom<u64>>(&self, py: Python<'_>) -> PyResult<T> {
        T::try_from(self.0).map_err(|_| {
            invalid(
                py,
                A::NAME,
                format!("{} is too large for this argument", self.0),
            )
        })
    }
}

/// A duration argument that is not a schema's decay: seconds as a number, a string
/// such as `"20ms"`, or a `timedelta` (numpy's `timedelta64` too). Negative, NaN or infinite values raise `InvalidArgument` naming it.
pub fn duration(
    py: Python<'_>,
    what: &'static str,
    value: &Bound<'_, PyAny>,
) -> PyResult<Duration> {
    if let Ok(text) = value.cast::<PyString>() {
        return parse_duration(what, text.to_cow()?.trim()).py_err(py);
    }
    if value.is_exact_instance_of::<PyBool>() {
        return Err(PyTypeError::new_err(format!(
            "{what}: expected seconds (a float) or a string such as \"20ms\", got bool"
        )));
    }
    let value = value.as_borrowed();
    let secs = if is_number(&value) {
        float(value, what, String::new)?
    } else {
        columns::duration_seconds(py, what, &value)?
    };
    duration_from_secs(what, secs).py_err(py)
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
                format!(
                    "{} is not a count; pass a non-negative integer",
                    shown(&obj)
                ),
            )),
            Err(e) => Err(e),
        }
    }
}

/// Unix seconds → `Timestamp`; `None` stays `None` (the core then uses its clock). A
/// value no timestamp can hold raises `InvalidArgument` naming the argument.
#[inline]
pub fn timestamp<A: Arg>(py: Python<'_>, secs: Option<Float<A>>) -> PyResult<Option<Timestamp>> {
    let Some(Float(s, _)) = secs else {
        return Ok(None);
    };
    if !s.is_finite() {
        return Err(invalid(
            py,
            A::NAME,
            format!("{s} is not a time; pass Unix seconds as a finite float"),
        ));
    }
    Timestamp::from_secs_f64(s)
        .map(Some)
        .map_err(|e| invalid(py, A::NAME, format!("{s} seconds: {e}")))
}

/// Like [`timestamp`], but `None` is read as now: for core reads that only take a time.
#[inline]
pub fn timestamp_or_now<A: Arg>(py: Python<'_>, secs: Option<Float<A>>) -> PyResult<Timestamp> {
    Ok(timestamp(py, secs)?.unwrap_or_else(Timestamp::now))
}

fn type_name(obj: &Borrowed<'_, '_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map_or_else(|_| "another type".to_owned(), |n| n.to_string())
}

fn shown(obj: &Borrowed<'_, '_, PyAny>) -> String {
    match obj.str() {
        // A huge int would make a message thousands of digits long.
        Ok(s) => match s.to_cow() {
            Ok(text) if text.len() > 40 => {
                let digits = text.trim_start_matches('-').len();
                format!("an integer of {digits} digits")
            }
            Ok(text) => text.into_owned(),
            Err(_) => "the value".to_owned(),
        },
        Err(_) => "the value".to_owned(),
    }
}

/// `items` of a bulk call, copied out of a 1-D array of ids: a uint64 numpy array (or
/// int64 with no negative value) is read here, anything else (other dtypes, pandas,
/// polars, Arrow, sequences) after `tidaldb._columns` made it a uint64 array. The copy is
/// what makes it safe to detach afterwards: another Python thread may write to the array
/// while the core works, and the core then still reads its own copy. A contiguous uint64
/// array is copied with one memcpy (`EntityId` is a transparent `u64`).
pub fn id_array(
    py: Python<'_>,
    what: &'static str,
    obj: &Bound<'_, PyAny>,
) -> PyResult<Vec<EntityId>> {
    ids_with(py, what, obj, <[EntityId]>::to_vec, |v| v)
}

/// [`id_array`] into a [`CopiedColumn`], for a bulk write: a large one costs fewer page
/// faults than a vector.
pub fn id_column(
    py: Python<'_>,
    what: &'static str,
    obj: &Bound<'_, PyAny>,
) -> PyResult<CopiedColumn<EntityId>> {
    ids_with(py, what, obj, CopiedColumn::copy_of, |v| {
        CopiedColumn::copy_of(&v)
    })
}

/// The ids of `obj` as [`id_array`] reads them, handed to `copy` (contiguous ids, read in
/// place) or `own` (ids gathered into a vector first).
fn ids_with<T>(
    py: Python<'_>,
    what: &'static str,
    obj: &Bound<'_, PyAny>,
    copy: impl Fn(&[EntityId]) -> T,
    own: impl Fn(Vec<EntityId>) -> T,
) -> PyResult<T> {
    if let Some(ids) = numpy_ids(py, what, obj, &copy, &own) {
        return ids;
    }
    let converted = columns::array(py, Column::Ids, what, obj)?;
    numpy_ids(py, what, &converted, &copy, &own).unwrap_or_else(|| {
        Err(invalid(
            py,
            what,
            "could not be read as a uint64 array".to_owned(),
        ))
    })
}

/// The ids of a uint64 or int64 numpy array; `None` for anything else.
fn numpy_ids<T>(
    py: Python<'_>,
    what: &'static str,
    obj: &Bound<'_, PyAny>,
    copy: impl Fn(&[EntityId]) -> T,
    own: impl Fn(Vec<EntityId>) -> T,
) -> Option<PyResult<T>> {
    if let Ok(a) = obj.cast::<PyArray1<u64>>() {
        return Some(
            a.try_readonly()
                .map_err(|e| invalid(py, what, e.to_string()))
                .map(|ro| match ro.as_slice() {
                    Ok(raw) => copy(EntityId::from_raw_slice(raw)),
                    Err(_) => own(ro.as_array().iter().map(|&v| EntityId(v)).collect()),
                }),
        );
    }
    let a = obj.cast::<PyArray1<i64>>().ok()?;
    Some((|| {
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
        Ok(own(ids))
    })())
}

/// Candidates of a retrieval: an array-like (numpy, pandas, polars, Arrow), read as
/// [`id_array`] reads one, or any other iterable of ints.
pub fn id_list(py: Python<'_>, obj: &Bound<'_, PyAny>) -> PyResult<Vec<EntityId>> {
    if obj.cast::<PyUntypedArray>().is_ok() || is_array_like(obj)? {
        return id_array(py, "candidates", obj);
    }
    let mut ids = Vec::new();
    for item in obj.try_iter()? {
        ids.push(entity_id(item?.as_borrowed(), "candidates")?);
    }
    Ok(ids)
}

/// Whether `obj` offers its data as an array (numpy's `__array__` or the Arrow PyCapsule
/// interface), so that it is better read whole than iterated.
fn is_array_like(obj: &Bound<'_, PyAny>) -> PyResult<bool> {
    let py = obj.py();
    Ok(obj.hasattr(pyo3::intern!(py, "__array__"))?
        || obj.hasattr(pyo3::intern!(py, "__arrow_c_array__"))?
        || obj.hasattr(pyo3::intern!(py, "__arrow_c_stream__"))?)
}

/// A 1-D float64 array, copied out (see [`id_array`] for why).
pub fn f64_array(py: Python<'_>, what: &'static str, obj: &Bound<'_, PyAny>) -> PyResult<Vec<f64>> {
    with_f64s(py, Column::Floats, what, obj, |values| Ok(values.to_vec()))
}

/// [`f64_array`] into a [`CopiedColumn`] (see [`id_column`]).
pub fn f64_column(
    py: Python<'_>,
    what: &'static str,
    obj: &Bound<'_, PyAny>,
) -> PyResult<CopiedColumn<f64>> {
    with_f64s(py, Column::Floats, what, obj, |values| {
        Ok(CopiedColumn::copy_of(values))
    })
}

/// Runs `f` over the elements of a 1-D float64 array, read in place while attached (a
/// strided array is gathered first); any other `obj` is first converted by
/// `tidaldb._columns` as `column` says.
fn with_f64s<T>(
    py: Python<'_>,
    column: Column,
    what: &'static str,
    obj: &Bound<'_, PyAny>,
    f: impl FnOnce(&[f64]) -> PyResult<T>,
) -> PyResult<T> {
    let converted;
    let array = match obj.cast::<PyArray1<f64>>() {
        Ok(a) => a,
        Err(_) => {
            converted = columns::array(py, column, what, obj)?;
            converted
                .cast::<PyArray1<f64>>()
                .map_err(|_| invalid(py, what, "could not be read as a float64 array".to_owned()))?
        }
    };
    let ro = array
        .try_readonly()
        .map_err(|e| invalid(py, what, e.to_string()))?;
    match ro.as_slice() {
        Ok(s) => f(s),
        Err(_) => f(&ro.as_array().iter().copied().collect::<Vec<f64>>()),
    }
}

/// A bulk write's `weights`: the given array, which must have one weight per item, or
/// all ones.
pub fn weights_or_ones(
    py: Python<'_>,
    weights: Option<&Bound<'_, PyAny>>,
    items: usize,
) -> PyResult<Vec<f64>> {
    match weights {
        Some(w) => {
            let w = f64_array(py, "weights", w)?;
            same_length(py, "weights", w.len(), items)?;
            Ok(w)
        }
        None => Ok(vec![1.0; items]),
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

/// A list of region names. A lone string is refused: iterating it would give one region
/// per character, which is never what was meant.
pub fn region_names(what: &'static str, obj: &Bound<'_, PyAny>) -> PyResult<Vec<String>> {
    if obj.is_instance_of::<PyString>() {
        return Err(PyTypeError::new_err(format!(
            "{what}: expected a list of region names, got one string; write [{:?}]",
            obj.str()?.to_cow()?
        )));
    }
    obj.extract::<Vec<String>>().map_err(|_| {
        PyTypeError::new_err(format!(
            "{what}: expected a list of region names (str), got {}",
            type_name(&obj.as_borrowed())
        ))
    })
}

#[cold]
pub fn bad_timestamp(py: Python<'_>, what: &'static str, i: usize, s: f64, e: TidalError) -> PyErr {
    let reason = if s.is_finite() {
        format!("element {i}, {s} seconds: {e}")
    } else {
        format!("element {i} is {s}, not a time; pass Unix seconds as finite floats")
    };
    invalid(py, what, reason)
}

/// The optional `ts` array of a bulk call with `len` items, converted as it is read.
pub fn bulk_times(
    py: Python<'_>,
    ts: Option<&Bound<'_, PyAny>>,
    len: usize,
) -> PyResult<Option<CopiedColumn<Timestamp>>> {
    bulk_ts(py, ts, len, |secs| {
        let mut times = CopiedColumn::zeroed(secs.len());
        Timestamp::fill_from_secs_f64(&mut times, secs)
            .map_err(|(i, e)| bad_timestamp(py, "ts", i, secs[i], e))?;
        Ok(times)
    })
}

/// A bulk write's times as Unix seconds, copied (see [`id_column`]), for
/// [`TidalDb::signal_batch_secs`](tidaldb::TidalDb::signal_batch_secs), which converts them
/// as it applies them: no column of timestamps is built while the interpreter waits.
pub fn bulk_seconds(
    py: Python<'_>,
    ts: Option<&Bound<'_, PyAny>>,
    len: usize,
) -> PyResult<Option<CopiedColumn<f64>>> {
    bulk_ts(py, ts, len, |secs| Ok(CopiedColumn::copy_of(secs)))
}

/// The optional `ts` array of a bulk call with `len` items, as `keep` makes its seconds.
fn bulk_ts<T>(
    py: Python<'_>,
    ts: Option<&Bound<'_, PyAny>>,
    len: usize,
    keep: impl FnOnce(&[f64]) -> PyResult<T>,
) -> PyResult<Option<T>> {
    ts.map(|t| {
        with_f64s(py, Column::Times, "ts", t, |secs| {
            same_length(py, "ts", secs.len(), len)?;
            keep(secs)
        })
    })
    .transpose()
}

/// The core's answer to a bulk write of times in seconds, a time out of range named as
/// [`bulk_times`] names it: which element, and what it held.
pub fn name_bad_time<T>(
    py: Python<'_>,
    out: Result<T, TidalError>,
    secs: Option<&[f64]>,
) -> PyResult<T> {
    if let (Err(TidalError::TimestampOutOfRange { .. }), Some(secs)) = (&out, secs)
        && let Err((i, e)) = Timestamp::latest_of_secs_f64(secs)
    {
        return Err(bad_timestamp(py, "ts", i, secs[i], e));
    }
    out.py_err(py)
}

// Python helpers (`tidaldb.plotting`) read durations through this, so that they accept
// exactly what the rest of the API accepts.
#[doc = include_str!("../pydoc/parse_duration.md")]
#[pyfunction(name = "parse_duration")]
#[pyo3(signature = (value, name = "duration"))]
pub fn duration_seconds(py: Python<'_>, value: &Bound<'_, PyAny>, name: &str) -> PyResult<f64> {
    duration(py, arg_name(name), value).map(|d| d.as_secs_f64())
}

/// The `'static` name a core error carries, for the argument names Python helpers pass;
/// any other name is reported as `duration`.
fn arg_name(name: &str) -> &'static str {
    const KNOWN: &[&str] = &["seconds", "every", "grace", "timeout", "latency", "jitter"];
    KNOWN
        .iter()
        .find(|k| **k == name)
        .copied()
        .unwrap_or("duration")
}
