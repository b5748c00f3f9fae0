//! Logits in: the float32 numpy array a hook biases in place, and the checks that it can be.

use numpy::{
    PyArrayDyn, PyArrayMethods, PyReadwriteArrayDyn, PyUntypedArray, PyUntypedArrayMethods,
};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;

use crate::errors::input_err;
use crate::ids::type_name;

/// The logits argument as a float32 array, or a TypeError that says what was given.
pub(crate) fn logits_array<'py>(obj: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyArrayDyn<f32>>> {
    if let Ok(array) = obj.cast::<PyArrayDyn<f32>>() {
        return Ok(array.clone());
    }
    Err(match obj.cast::<PyUntypedArray>() {
        Ok(array) => PyTypeError::new_err(format!(
            "logits must be a float32 numpy array, got dtype {} (convert with .astype(numpy.float32))",
            array.dtype()
        )),
        Err(_) => PyTypeError::new_err(format!(
            "logits must be a float32 numpy array, got {}",
            type_name(obj)
        )),
    })
}

/// A write borrow of the logits, refused for read-only arrays (and arrays already borrowed).
pub(crate) fn writable<'py>(
    array: &Bound<'py, PyArrayDyn<f32>>,
) -> PyResult<PyReadwriteArrayDyn<'py, f32>> {
    array
        .try_readwrite()
        .map_err(|e| input_err(format!("logits cannot be written in place: {e}")))
}

/// The logits as one flat slice: the core biases rows of a contiguous buffer.
pub(crate) fn contiguous<T>(slice: Result<T, numpy::AsSliceError>) -> PyResult<T> {
    slice.map_err(|_| {
        input_err(
            "logits must be C-contiguous to be biased in place (use numpy.ascontiguousarray, or `applied`)"
                .into(),
        )
    })
}
