//! Signal names from Python → the core's signal index, without copying the name.
//!
//! A signal name passed as a literal (`db.signal("view", ...)`) is the interpreter's
//! interned string object, the same object on every call. The schema's names are interned
//! once, when the `Db` opens, so such a name is recognized by identity: no UTF-8 copy of
//! the string and no string compare. Any other string object takes the core's name lookup, as before.

use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::PyString;
use tidaldb::Schema;
use tidaldb::schema::SignalIdx;

use crate::errors::IntoPyResult;

pub struct SignalNames {
    schema: Arc<Schema>,
    /// The schema's names, interned, in schema order: position `i` is signal `i`.
    interned: Vec<Py<PyString>>,
}

impl SignalNames {
    pub fn new(py: Python<'_>, schema: &Arc<Schema>) -> SignalNames {
        let interned = (schema.signals().iter())
            .map(|s| PyString::intern(py, &s.name).unbind())
            .collect();
        SignalNames {
            schema: Arc::clone(schema),
            interned,
        }
    }

    /// The index of the signal `name` names; the core's `UnknownSignal` if none.
    #[inline]
    pub fn resolve(&self, name: &Bound<'_, PyString>) -> PyResult<SignalIdx> {
        // Equal objects are equal strings: a string object never changes.
        match (self.interned.iter()).position(|s| s.as_ptr() == name.as_ptr()) {
            Some(i) => {
                let signal = SignalIdx(i as u16);
                debug_assert_eq!(
                    self.schema.signal(signal).map(|s| s.name.as_str()),
                    name.to_cow().ok().as_deref(),
                    "an interned name stands for the signal at its position"
                );
                Ok(signal)
            }
            None => self.schema.resolve(&name.to_cow()?).py_err(name.py()),
        }
    }
}
