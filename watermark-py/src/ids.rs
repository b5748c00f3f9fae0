//! Token ids in: Python sequences and numpy integer arrays to `u32` ids, one document or a
//! batch of them, and Arrow-style offsets.
//!
//! Negative or too large ids are refused here; ids beyond the vocabulary by the core (or, for
//! checks that must happen before anything is changed, by `check_vocabulary`).

use numpy::{Element, PyArray1, PyArrayMethods, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyInt, PyList, PyMapping, PyString, PyTuple};
use watermark_core::{Error, GreenList};

use crate::errors::input_err;

/// The Python name of `obj`'s type, for messages.
pub(crate) fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into())
}

/// A token id from any integer type; negative or too large ids are refused here, ids beyond
/// the vocabulary by the core.
pub(crate) fn token_id<T>(x: T) -> PyResult<u32>
where
    T: Copy + TryInto<u32> + PartialOrd + Default + std::fmt::Display,
{
    x.try_into().map_err(|_| {
        if x < T::default() {
            input_err(format!("{x} is not a valid token id"))
        } else {
            input_err(format!(
                "{x} is not a valid token id: out of range (at most {})",
                u32::MAX
            ))
        }
    })
}

/// One token id given as a Python object (an int, or anything with `__index__` such as a
/// numpy integer). An int too large for 64 bits is out of range, not "not an int".
pub(crate) fn token_id_of(item: &Bound<'_, PyAny>) -> PyResult<u32> {
    match item.extract::<i64>() {
        Ok(x) => token_id(x),
        Err(_) if item.is_instance_of::<PyInt>() => Err(input_err(format!(
            "{} is not a valid token id: out of range (at most {})",
            item.str().map(|s| s.to_string()).unwrap_or_default(),
            u32::MAX
        ))),
        Err(_) => Err(PyTypeError::new_err(format!(
            "token ids must be ints, got {}",
            type_name(item)
        ))),
    }
}

/// The last `keep` (all when `None`) items of a 1-D numpy integer array of element type `T`,
/// or `None` when `obj` is not such an array.
fn tail_of_array<T>(obj: &Bound<'_, PyAny>, keep: Option<usize>) -> Option<PyResult<Vec<u32>>>
where
    T: Element + Copy + TryInto<u32> + PartialOrd + Default + std::fmt::Display,
{
    let array = obj.cast::<PyArray1<T>>().ok()?;
    let view = match array.try_readonly() {
        Ok(view) => view,
        Err(e) => return Some(Err(input_err(format!("token ids: {e}")))),
    };
    let view = view.as_array();
    let start = keep.map_or(0, |k| view.len().saturating_sub(k));
    Some(view.iter().skip(start).map(|&x| token_id(x)).collect())
}

/// Token ids from a 1-D numpy array of any integer dtype.
fn ids_of_array(array: &Bound<'_, PyUntypedArray>, keep: Option<usize>) -> PyResult<Vec<u32>> {
    if array.ndim() != 1 {
        return Err(input_err(format!(
            "token ids must be a 1-D array, got {} dimensions",
            array.ndim()
        )));
    }
    let obj = array.as_any();
    let found = tail_of_array::<i64>(obj, keep)
        .or_else(|| tail_of_array::<i32>(obj, keep))
        .or_else(|| tail_of_array::<u32>(obj, keep))
        .or_else(|| tail_of_array::<u64>(obj, keep))
        .or_else(|| tail_of_array::<i16>(obj, keep))
        .or_else(|| tail_of_array::<u16>(obj, keep))
        .or_else(|| tail_of_array::<i8>(obj, keep))
        .or_else(|| tail_of_array::<u8>(obj, keep));
    found.unwrap_or_else(|| {
        Err(PyTypeError::new_err(format!(
            "token ids must be an integer array, got dtype {}",
            array.dtype()
        )))
    })
}

/// Refuses a mapping where a sequence is expected: a dict has a length and `d[0]` may even
/// work, so without this it would fail later with a bare `KeyError` or be read by its keys.
fn refuse_mapping(obj: &Bound<'_, PyAny>, expected: &str) -> PyResult<()> {
    // Lists and tuples, the common case of every hook step, skip the abc check.
    if obj.is_instance_of::<PyList>() || obj.is_instance_of::<PyTuple>() {
        return Ok(());
    }
    if obj.cast::<PyMapping>().is_ok() {
        return Err(PyTypeError::new_err(format!(
            "{expected}, got a mapping ({})",
            type_name(obj)
        )));
    }
    Ok(())
}

const IDS_EXPECTED: &str = "token ids must be a sequence of ints or a 1-D integer array";

/// Token ids from a list/tuple/sequence of ints or a 1-D numpy integer array (any integer
/// dtype). With `keep`, only the last `keep` ids are read: a hook needs only the window, and
/// reading a long context on every step would make the call O(context).
pub(crate) fn token_ids(obj: &Bound<'_, PyAny>, keep: Option<usize>) -> PyResult<Vec<u32>> {
    if let Ok(array) = obj.cast::<PyUntypedArray>() {
        return ids_of_array(array, keep);
    }
    if obj.is_instance_of::<PyString>() || obj.is_instance_of::<PyBytes>() {
        return Err(PyTypeError::new_err(
            "token ids must be a sequence of ints, got a string (use detect_text for text)",
        ));
    }
    let not_a_sequence = || PyTypeError::new_err(format!("{IDS_EXPECTED}, got {}", type_name(obj)));
    let len = obj.len().map_err(|_| not_a_sequence())?;
    let list_or_tuple = obj.is_instance_of::<PyList>() || obj.is_instance_of::<PyTuple>();
    if !list_or_tuple {
        refuse_mapping(obj, IDS_EXPECTED)?;
        if len > 0 && !obj.hasattr("__getitem__")? {
            // A set or another sized container that cannot be indexed.
            return Err(not_a_sequence());
        }
    }
    let start = keep.map_or(0, |k| len.saturating_sub(k));
    (start..len)
        .map(|i| token_id_of(&obj.get_item(i)?))
        .collect()
}

/// The rows of a batch argument (`what` names it in messages): any iterable but a string or
/// a mapping (a dict would be read by its keys).
fn batch_rows<'py>(
    obj: &Bound<'py, PyAny>,
    what: &str,
) -> PyResult<impl Iterator<Item = PyResult<Bound<'py, PyAny>>>> {
    let expected = format!("{what} must be an iterable of token-id sequences");
    if obj.is_instance_of::<PyString>() || obj.is_instance_of::<PyBytes>() {
        return Err(PyTypeError::new_err(format!("{expected}, got a string")));
    }
    refuse_mapping(obj, &expected)?;
    obj.try_iter()
        .map_err(|_| PyTypeError::new_err(format!("{expected}, got {}", type_name(obj))))
}

/// Token ids of each row of a batch (documents, responses).
pub(crate) fn id_batch(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<Vec<Vec<u32>>> {
    batch_rows(obj, what)?
        .map(|row| token_ids(&row?, None))
        .collect()
}

/// Token ids of each row of a batch of prompts, where a row may be None (no prompt).
pub(crate) fn optional_id_batch(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<Vec<Vec<u32>>> {
    batch_rows(obj, what)?
        .map(|row| {
            let row = row?;
            if row.is_none() {
                Ok(Vec::new())
            } else {
                token_ids(&row, None)
            }
        })
        .collect()
}

/// One context per row of a logits batch, each cut to its last `keep` ids: a sequence of
/// sequences, or a 2-D integer array.
pub(crate) fn contexts(obj: &Bound<'_, PyAny>, keep: usize) -> PyResult<Vec<Vec<u32>>> {
    if let Ok(array) = obj.cast::<PyUntypedArray>() {
        if array.ndim() != 2 {
            return Err(input_err(format!(
                "contexts of a 2-D logits batch must be a 2-D array or a list of sequences, got a {}-D array",
                array.ndim()
            )));
        }
    }
    let expected = "contexts must be a sequence of token-id sequences";
    refuse_mapping(obj, expected)?;
    obj.try_iter()
        .map_err(|_| PyTypeError::new_err(expected))?
        .map(|row| token_ids(&row?, Some(keep)))
        .collect()
}

/// Offsets (Arrow's int32 or int64, or any sequence of ints) as i64.
pub(crate) fn int64s(obj: &Bound<'_, PyAny>) -> PyResult<Vec<i64>> {
    if let Ok(a) = obj.cast::<PyArray1<i64>>() {
        let view = a
            .try_readonly()
            .map_err(|e| input_err(format!("offsets: {e}")))?;
        return Ok(view.as_array().iter().copied().collect());
    }
    if let Ok(a) = obj.cast::<PyArray1<i32>>() {
        let view = a
            .try_readonly()
            .map_err(|e| input_err(format!("offsets: {e}")))?;
        return Ok(view.as_array().iter().map(|&x| i64::from(x)).collect());
    }
    obj.extract::<Vec<i64>>()
        .map_err(|_| PyTypeError::new_err("offsets must be a sequence or 1-D array of ints"))
}

/// The core's refusal of the first id beyond `green`'s vocabulary, checked up front where a
/// batch must be taken whole or not at all.
pub(crate) fn check_vocabulary<'a>(
    green: &GreenList,
    parts: impl IntoIterator<Item = &'a [u32]>,
) -> watermark_core::Result<()> {
    let vocab_size = green.vocab_size();
    for part in parts {
        if let Some(&token) = part.iter().find(|&&t| t >= vocab_size) {
            return Err(Error::TokenOutOfVocabulary { token, vocab_size });
        }
    }
    Ok(())
}
