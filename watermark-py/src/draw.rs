//! The account's draw: which token an account-bound watermark's sampler would pick from a
//! (biased) logits row, for engines that sample themselves and are then made to pick it.

use numpy::{PyArrayMethods, PyUntypedArrayMethods};
use pyo3::prelude::*;
use watermark_core::account::{draw_from_logits, AccountKey};
use watermark_core::{Error, GreenList, Sampling};

use crate::errors::{core, input_err, py_err};
use crate::ids::{contexts, token_ids};
use crate::logits::logits_array;

/// The engine's temperature and truncation as the core's `Sampling` (validated there).
/// `top_k` arrives as a Python int of any sign, so a negative one is an InputError, not an
/// OverflowError.
pub(crate) fn sampling(
    temperature: f32,
    top_k: Option<i64>,
    top_p: Option<f32>,
) -> PyResult<Sampling> {
    let top_k = top_k
        .map(|k| usize::try_from(k).map_err(|_| input_err(format!("top-k {k} must be at least 1"))))
        .transpose()?;
    core(Sampling::new(temperature, top_k, top_p))
}

/// The account a draw needs, or an InputError saying how to bind one.
fn account_of(green: &GreenList) -> PyResult<&AccountKey> {
    green.account().ok_or_else(|| {
        input_err("this watermark has no account: draw with wm.for_account(account_id)".into())
    })
}

/// `Watermark.draw`: the account's token from one row (V,) after `context`; None with too little
/// context. The row is read, not written; the GIL is released while Rust draws.
pub(crate) fn draw_row(
    py: Python<'_>,
    green: &GreenList,
    logits: &Bound<'_, PyAny>,
    context: &Bound<'_, PyAny>,
    sampling: Sampling,
) -> PyResult<Option<u32>> {
    let account = account_of(green)?;
    let array = logits_array(logits)?;
    if array.ndim() != 1 {
        return Err(input_err(format!(
            "draw takes one logits row (V,), got {} dimensions (draw_batch takes (B, V))",
            array.ndim()
        )));
    }
    let ctx = token_ids(context, Some(green.scheme().context_width()))?;
    let view = array.readonly();
    let row = view.as_array();
    // A strided view (llama-cpp-python's candidate records) is copied once; a plain row is not.
    let row = row.as_standard_layout();
    let row = row
        .as_slice()
        .ok_or_else(|| input_err("logits row could not be laid out contiguously".into()))?;
    py.detach(|| core(draw_from_logits(account, green, &ctx, row, sampling)))
}

/// `Watermark.draw_batch`: `draw_row` for each row of a (B, V) batch with one context per row.
pub(crate) fn draw_rows(
    py: Python<'_>,
    green: &GreenList,
    logits: &Bound<'_, PyAny>,
    context: &Bound<'_, PyAny>,
    sampling: Sampling,
) -> PyResult<Vec<Option<u32>>> {
    let account = account_of(green)?;
    let array = logits_array(logits)?;
    let shape = array.shape().to_vec();
    if shape.len() != 2 {
        return Err(input_err(format!(
            "draw_batch takes a logits batch (B, V), got {} dimensions",
            shape.len()
        )));
    }
    if shape[1] == 0 && shape[0] > 0 {
        return Err(py_err(Error::RowTooShort {
            len: 0,
            vocab_size: green.vocab_size(),
        }));
    }
    let ctxs = contexts(context, green.scheme().context_width())?;
    if ctxs.len() != shape[0] {
        return Err(py_err(Error::BatchShape(format!(
            "logits have {} rows but {} contexts were given",
            shape[0],
            ctxs.len()
        ))));
    }
    let view = array.readonly();
    let rows = view.as_array();
    let rows = rows.as_standard_layout();
    let flat = rows
        .as_slice()
        .ok_or_else(|| input_err("logits batch could not be laid out contiguously".into()))?;
    let width = shape[1].max(1);
    py.detach(|| {
        flat.chunks(width)
            .zip(&ctxs)
            .map(|(row, ctx)| core(draw_from_logits(account, green, ctx, row, sampling)))
            .collect()
    })
}
