//! The watermark hook: δ added in place to the green logits of a row or a batch.

use numpy::{PyArrayDyn, PyArrayMethods, PyUntypedArrayMethods};
use pyo3::prelude::*;
use watermark_core::hook::{apply_watermark, apply_watermark_batch};
use watermark_core::{Error, GreenList};

use crate::errors::{core, input_err, py_err};
use crate::ids::{contexts, token_id_of, token_ids};
use crate::logits::{contiguous, logits_array, writable};

/// `Watermark.apply`: biases a float32 row (V,) after `context`, or a batch (B, V) with one
/// context per row, in place, with the GIL released while the rows are biased.
pub(crate) fn apply(
    py: Python<'_>,
    green: &GreenList,
    logits: &Bound<'_, PyAny>,
    context: &Bound<'_, PyAny>,
) -> PyResult<()> {
    let array = logits_array(logits)?;
    let shape = array.shape().to_vec();
    let keep = green.scheme().context_width();
    match shape.len() {
        1 => {
            let ctx = token_ids(context, Some(keep))?;
            let mut rw = writable(&array)?;
            let row = contiguous(rw.as_slice_mut())?;
            py.detach(|| core(apply_watermark(green, &ctx, row)))
        }
        2 => {
            let ctxs = contexts(context, keep)?;
            if ctxs.len() != shape[0] {
                return Err(py_err(Error::BatchShape(format!(
                    "logits have {} rows but {} contexts were given",
                    shape[0],
                    ctxs.len()
                ))));
            }
            let mut rw = writable(&array)?;
            let rows = contiguous(rw.as_slice_mut())?;
            py.detach(|| core(apply_watermark_batch(green, &ctxs, rows)))
        }
        n => Err(input_err(format!(
            "logits must be a 1-D row or a 2-D batch, got {n} dimensions"
        ))),
    }
}

/// `Watermark.applied`: `apply` on a C-ordered copy, returned; `logits` is left unchanged.
pub(crate) fn applied<'py>(
    py: Python<'py>,
    green: &GreenList,
    logits: &Bound<'py, PyAny>,
    context: &Bound<'_, PyAny>,
) -> PyResult<Bound<'py, PyArrayDyn<f32>>> {
    let array = logits_array(logits)?;
    // A C-ordered copy, so that `apply` never meets a strided view.
    let copy = array.to_owned_array().as_standard_layout().into_owned();
    let out = numpy::PyArray::from_owned_array(py, copy);
    apply(py, green, out.as_any(), context)?;
    Ok(out)
}

/// `Watermark.is_green`: whether `token` is green after `context`; None when the context is
/// too short to decide.
pub(crate) fn is_green(
    green: &GreenList,
    context: &Bound<'_, PyAny>,
    token: &Bound<'_, PyAny>,
) -> PyResult<Option<bool>> {
    let ctx = token_ids(context, Some(green.scheme().context_width()))?;
    core(green.is_green(&ctx, token_id_of(token)?))
}
