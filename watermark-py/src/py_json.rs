//! Results out as plain Python objects.

use pyo3::prelude::*;

use crate::errors::input_err;

/// Python objects of a value's JSON form, through the serializer the CLI uses, so that
/// `to_dict()` and `tracemark detect --json` cannot disagree on a field or a digit.
pub(crate) fn to_py_json<'py, T: serde::Serialize>(
    py: Python<'py>,
    value: &T,
) -> PyResult<Bound<'py, PyAny>> {
    let text = serde_json::to_string(value)
        .map_err(|e| input_err(format!("cannot serialize the result: {e}")))?;
    py.import("json")?.call_method1("loads", (text,))
}
