//! The exceptions of the module and the one mapping from the core's error to them.

use std::sync::{Mutex, MutexGuard};

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use watermark_core::Error;

pyo3::create_exception!(
    tracemark,
    TracemarkError,
    PyValueError,
    "Base of every error raised by tracemark; the message is the core library's."
);
pyo3::create_exception!(
    tracemark,
    ProfileError,
    TracemarkError,
    "A profile, key or tokenizer file is missing, malformed, or does not match the profile."
);
pyo3::create_exception!(
    tracemark,
    InputError,
    TracemarkError,
    "Logits, token ids or parameters the core refuses (wrong size, out of vocabulary, ...)."
);

/// Maps the core's error to the matching Python exception, keeping its message.
///
/// One function, so that every entry point raises the same class for the same reason.
pub(crate) fn py_err(e: Error) -> PyErr {
    let message = e.to_string();
    match e {
        Error::Io { .. }
        | Error::MalformedKey { .. }
        | Error::MalformedProfile { .. }
        | Error::SpecMismatch { .. }
        | Error::KeyMismatch { .. }
        | Error::TokenizerMismatch { .. }
        | Error::NoTokenizer
        | Error::NoTokenizerPath
        | Error::File { .. }
        | Error::Unreadable { .. }
        | Error::Tokenizer { .. } => ProfileError::new_err(message),
        _ => InputError::new_err(message),
    }
}

/// The core's result as a Python result.
pub(crate) fn core<T>(result: watermark_core::Result<T>) -> PyResult<T> {
    result.map_err(py_err)
}

/// Bad input found by the binding itself (before the core sees it).
pub(crate) fn input_err(message: String) -> PyErr {
    InputError::new_err(message)
}

/// What a poisoned lock reports, unless the object has a more specific message.
pub(crate) const POISONED: &str = "poisoned by an earlier failure";

/// Locks a shared core object; a panic inside an earlier call leaves it poisoned, which is
/// reported as `poisoned` (an InputError) rather than propagated as a second panic.
pub(crate) fn lock<'a, T>(m: &'a Mutex<T>, poisoned: &str) -> PyResult<MutexGuard<'a, T>> {
    m.lock().map_err(|_| input_err(poisoned.to_string()))
}
