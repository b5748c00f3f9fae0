//! The set of (seed, token) tuples already scored, shared across calls.

use std::sync::{Mutex, MutexGuard};

use pyo3::prelude::*;
use watermark_core::TupleSet as CoreTupleSet;

use crate::errors::lock;

/// The set of (seed, token) tuples already scored, shared across `detect_batch` calls so that
/// each tuple counts once in a whole corpus (streamed in chunks).
#[pyclass(frozen, module = "tracemark._native", name = "TupleSet")]
#[derive(Debug, Default)]
pub(crate) struct TupleSet(Mutex<CoreTupleSet>);

#[pymethods]
impl TupleSet {
    #[new]
    fn new() -> Self {
        TupleSet::default()
    }

    fn __len__(&self, py: Python<'_>) -> PyResult<usize> {
        py.detach(|| Ok(self.lock()?.len()))
    }
}

impl TupleSet {
    /// The set itself. Take it with the GIL released: a thread holding the GIL while it waits
    /// for the lock would deadlock with the holder, who needs the GIL back to return.
    pub(crate) fn lock(&self) -> PyResult<MutexGuard<'_, CoreTupleSet>> {
        lock(&self.0, "the TupleSet was poisoned by an earlier failure")
    }
}
