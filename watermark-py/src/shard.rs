//! The two halves of a corpus scan spread over many workers (`tracemark.ray`, their one user,
//! so both are private names of the module): `shard_batch`
//! turns a batch of documents into their scored tuples, each tagged with the partition its
//! hash picks; `tally_partition` counts the distinct tuples of one partition. Every tuple
//! reaches exactly one partition, so summing the partitions' counts gives the counts of one
//! process, and the p-value is computed once from the sums.
//!
//! A batch's counters (documents, tokens, tokens left out) travel in the same columns as the
//! tuples, as "count rows" whose token is above any vocabulary: a shuffle keeps them, and a
//! retried task replaces its whole output, counters included, so nothing is counted twice.

use numpy::{PyArray1, PyArrayMethods};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};
use watermark_core::{ScoredTuples, ShardRules, TextTokenizer, TupleSet, MAX_VOCAB_SIZE};

use crate::errors::{core, input_err};
use crate::ids::{int64s, token_ids};
use crate::watermark::Watermark;

/// The counters a batch reports, in the order of their count rows.
const COUNTERS: [&str; 6] = [
    "documents",
    "tokens",
    "occurrences",
    "too_little_context",
    "in_prompt",
    "earlier_in_text",
];

/// Token of the count row of counter `k`: `u32::MAX - k`, far above any vocabulary.
fn counter_token(k: usize) -> u32 {
    u32::MAX - k as u32
}

/// The partition of a tuple among `partitions`: a mix unrelated to the one `TupleSet` places
/// tuples with, so that a partition's tuples still spread over its own table.
fn partition_of(seed: u64, token: u32, partitions: u32) -> u32 {
    let mut h = seed ^ u64::from(token).wrapping_mul(0xd6e8_feb8_6659_fd93);
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^= h >> 31;
    ((u128::from(h) * u128::from(partitions)) >> 64) as u32
}

/// One Arrow column in its buffers: offsets (n + 1), the values or UTF-8 bytes they index,
/// and which rows are present (None: all).
struct Column<T> {
    values: Vec<T>,
    offsets: Vec<i64>,
    valid: Option<Vec<bool>>,
}

impl<T> Column<T> {
    fn rows(&self) -> usize {
        self.offsets.len().saturating_sub(1)
    }

    /// Row `i`, or None when it is null.
    fn get(&self, i: usize) -> PyResult<Option<&[T]>> {
        if self.valid.as_ref().is_some_and(|v| !v[i]) {
            return Ok(None);
        }
        let (a, b) = (self.offsets[i], self.offsets[i + 1]);
        if a < 0 || b < a || b as u64 > self.values.len() as u64 {
            return Err(input_err(format!(
                "offsets {a}..{b} are not a valid range of the {} values",
                self.values.len()
            )));
        }
        Ok(Some(&self.values[a as usize..b as usize]))
    }
}

/// A (values, offsets, valid) tuple from Python; `values` read by `read`.
fn column<T>(
    obj: Option<&Bound<'_, PyAny>>,
    read: impl Fn(&Bound<'_, PyAny>) -> PyResult<Vec<T>>,
) -> PyResult<Option<Column<T>>> {
    let Some(obj) = obj else { return Ok(None) };
    let parts = obj
        .cast::<PyTuple>()
        .map_err(|_| input_err("a column is a (values, offsets, valid) tuple".into()))?;
    if parts.len() != 3 {
        return Err(input_err(format!(
            "a column is a (values, offsets, valid) tuple, got {} items",
            parts.len()
        )));
    }
    let offsets = int64s(&parts.get_item(1)?)?;
    if offsets.is_empty() {
        return Err(input_err("offsets must have at least one entry".into()));
    }
    let valid_obj = parts.get_item(2)?;
    let valid = if valid_obj.is_none() {
        None
    } else {
        let mask = valid_obj
            .cast::<PyArray1<bool>>()
            .map_err(|_| input_err("valid must be a 1-D bool array or None".into()))?;
        let mask = mask
            .to_vec()
            .map_err(|e| input_err(format!("valid: {e}")))?;
        if mask.len() + 1 != offsets.len() {
            return Err(input_err(format!(
                "{} validity entries for {} rows",
                mask.len(),
                offsets.len() - 1
            )));
        }
        Some(mask)
    };
    Ok(Some(Column {
        values: read(&parts.get_item(0)?)?,
        offsets,
        valid,
    }))
}

fn bytes_of(obj: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
    let array = obj
        .cast::<PyArray1<u8>>()
        .map_err(|_| input_err("text bytes must be a 1-D uint8 array".into()))?;
    array
        .to_vec()
        .map_err(|e| input_err(format!("text bytes: {e}")))
}

/// A document's body or prompt, as ids or as text, each optional.
struct Field {
    ids: Option<Column<u32>>,
    text: Option<Column<u8>>,
}

/// What `f` holds at row `i`: ids when present, else the text tokenized (an empty or, for a
/// prompt, blank text is no tokens, as in the CLI), else None.
fn ids_at(
    f: &Field,
    i: usize,
    tokenizer: Option<&TextTokenizer>,
    blank_is_empty: bool,
) -> PyResult<Option<Vec<u32>>> {
    if let Some(ids) = f.ids.as_ref().map(|c| c.get(i)).transpose()?.flatten() {
        return Ok(Some(ids.to_vec()));
    }
    let Some(bytes) = f.text.as_ref().map(|c| c.get(i)).transpose()?.flatten() else {
        return Ok(None);
    };
    let text = std::str::from_utf8(bytes).map_err(|_| {
        input_err(format!(
            "document {i} of the batch: the text is not valid UTF-8"
        ))
    })?;
    if text.is_empty() || (blank_is_empty && text.trim().is_empty()) {
        return Ok(Some(Vec::new()));
    }
    let tokenizer = tokenizer.ok_or_else(|| input_err("text needs a tokenizer".into()))?;
    core(tokenizer.encode(text)).map(Some)
}

/// The scored tuples of every row, with the batch's own repeats dropped.
fn scan_rows(
    wm: &Watermark,
    body: &Field,
    prompt: &Field,
    rows: usize,
    tokenizer: Option<&TextTokenizer>,
    rules: ShardRules,
) -> PyResult<ScoredTuples> {
    let mut out = ScoredTuples::default();
    for i in 0..rows {
        let text = ids_at(body, i, tokenizer, false)?.ok_or_else(|| {
            input_err(format!(
                "document {i} of the batch has neither token ids nor text to score"
            ))
        })?;
        let prompt = ids_at(prompt, i, tokenizer, true)?.unwrap_or_default();
        out.add(&wm.green, &prompt, &text, &text, rules)
            .map_err(|e| input_err(format!("document {i} of the batch: {e}")))?;
    }
    Ok(out)
}

/// The batch's distinct tuples and then its count rows, as (partition, seed, token, green).
fn batch_rows(scan: &ScoredTuples, partitions: u32) -> (Vec<u32>, Vec<u64>, Vec<u32>, Vec<bool>) {
    let mut set = TupleSet::with_capacity(scan.tuples.len());
    let mut fresh = vec![false; scan.tuples.len()];
    for (tuples, fresh) in scan.tuples.chunks(64).zip(fresh.chunks_mut(64)) {
        set.insert_batch(tuples, fresh);
    }
    let n = set.len() + COUNTERS.len();
    let (mut part, mut seed, mut token, mut green) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for ((&(s, t), &g), _) in scan
        .tuples
        .iter()
        .zip(&scan.green)
        .zip(&fresh)
        .filter(|(_, &f)| f)
    {
        part.push(partition_of(s, t, partitions));
        seed.push(s);
        token.push(t);
        green.push(g);
    }
    let counts = [
        scan.documents,
        scan.tokens,
        scan.tuples.len() as u64,
        scan.skipped.too_little_context,
        scan.skipped.in_prompt,
        scan.skipped.earlier_in_text,
    ];
    for (k, value) in counts.into_iter().enumerate() {
        // Count rows go to partition 0: a handful per batch.
        part.push(0);
        seed.push(value);
        token.push(counter_token(k));
        green.push(false);
    }
    (part, seed, token, green)
}

/// The scored tuples of a batch of documents, as numpy columns `part`, `seed`, `token`,
/// `green`: each distinct tuple of the batch once (its repeats in the batch are counted in
/// `occurrences`), then the batch's count rows.
///
/// Each column argument is a (values, offsets, valid) tuple of Arrow buffers: token ids (any
/// integer array) or UTF-8 bytes (uint8), offsets (n + 1), a bool mask of present rows or
/// None. A row's body is its ids when present, else its text; its prompt likewise, or none.
/// Text is tokenized with the watermark's profile tokenizer, all with the GIL released.
#[pyfunction]
#[pyo3(name = "_shard_batch", signature = (watermark, partitions, *, body_ids = None, body_text = None, prompt_ids = None, prompt_text = None, exclude_context = true))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn shard_batch<'py>(
    py: Python<'py>,
    watermark: PyRef<'_, Watermark>,
    partitions: u32,
    body_ids: Option<&Bound<'_, PyAny>>,
    body_text: Option<&Bound<'_, PyAny>>,
    prompt_ids: Option<&Bound<'_, PyAny>>,
    prompt_text: Option<&Bound<'_, PyAny>>,
    exclude_context: bool,
) -> PyResult<Bound<'py, PyDict>> {
    if partitions == 0 {
        return Err(input_err("partitions must be at least 1".into()));
    }
    let body = Field {
        ids: column(body_ids, |v| token_ids(v, None))?,
        text: column(body_text, bytes_of)?,
    };
    let prompt = Field {
        ids: column(prompt_ids, |v| token_ids(v, None))?,
        text: column(prompt_text, bytes_of)?,
    };
    let rows = body
        .ids
        .as_ref()
        .map(Column::rows)
        .or(body.text.as_ref().map(Column::rows))
        .ok_or_else(|| {
            input_err("give the documents' token ids (body_ids) or text (body_text)".into())
        })?;
    let all_rows = [
        body.ids.as_ref().map(Column::rows),
        body.text.as_ref().map(Column::rows),
        prompt.ids.as_ref().map(Column::rows),
        prompt.text.as_ref().map(Column::rows),
    ];
    if let Some(other) = all_rows.into_iter().flatten().find(|&r| r != rows) {
        return Err(input_err(format!(
            "columns of {rows} and {other} rows: every column needs one entry per document"
        )));
    }
    let needs_text = body.text.is_some() || prompt.text.is_some();
    let tokenizer = if needs_text {
        Some(watermark.tokenizer(py)?)
    } else {
        None
    };
    let rules = ShardRules {
        exclude_prompt: exclude_context,
        exclude_earlier: false,
    };
    let wm: &Watermark = &watermark;
    let (part, seed, token, green) = py.detach(|| {
        let scan = scan_rows(wm, &body, &prompt, rows, tokenizer, rules)?;
        Ok::<_, PyErr>(batch_rows(&scan, partitions))
    })?;
    let out = PyDict::new(py);
    out.set_item("part", PyArray1::from_vec(py, part))?;
    out.set_item("seed", PyArray1::from_vec(py, seed))?;
    out.set_item("token", PyArray1::from_vec(py, token))?;
    out.set_item("green", PyArray1::from_vec(py, green))?;
    Ok(out)
}

/// The counts of one partition of `shard_batch` rows: `scored` (distinct tuples), `green`
/// (green distinct tuples), and each counter of the count rows summed. Memory: the
/// partition's distinct tuples, 16 bytes each.
#[pyfunction]
#[pyo3(name = "_tally_partition")]
pub(crate) fn tally_partition<'py>(
    py: Python<'py>,
    seed: &Bound<'_, PyArray1<u64>>,
    token: &Bound<'_, PyArray1<u32>>,
    green: &Bound<'_, PyArray1<bool>>,
) -> PyResult<Bound<'py, PyDict>> {
    let seed = seed.to_vec().map_err(|e| input_err(format!("seed: {e}")))?;
    let token = token
        .to_vec()
        .map_err(|e| input_err(format!("token: {e}")))?;
    let green = green
        .to_vec()
        .map_err(|e| input_err(format!("green: {e}")))?;
    if seed.len() != token.len() || seed.len() != green.len() {
        return Err(input_err(format!(
            "columns of {}, {} and {} rows",
            seed.len(),
            token.len(),
            green.len()
        )));
    }
    let (scored, green_count, counters) = py.detach(|| tally(&seed, &token, &green))?;
    let out = PyDict::new(py);
    out.set_item("scored", scored)?;
    out.set_item("green", green_count)?;
    for (name, value) in COUNTERS.iter().zip(counters) {
        out.set_item(*name, value)?;
    }
    Ok(out)
}

fn tally(seed: &[u64], token: &[u32], green: &[bool]) -> PyResult<(u64, u64, [u64; 6])> {
    const BATCH: usize = 64;
    let mut counters = [0u64; COUNTERS.len()];
    let mut set = TupleSet::with_capacity(seed.len());
    let (mut batch, mut bits) = (Vec::with_capacity(BATCH), Vec::with_capacity(BATCH));
    let mut fresh = [false; BATCH];
    let mut green_count = 0u64;
    let mut flush = |batch: &mut Vec<(u64, u32)>, bits: &mut Vec<bool>, set: &mut TupleSet| {
        set.insert_batch(batch, &mut fresh[..batch.len()]);
        green_count += fresh[..batch.len()]
            .iter()
            .zip(bits.iter())
            .filter(|(f, g)| **f && **g)
            .count() as u64;
        batch.clear();
        bits.clear();
    };
    for ((&s, &t), &g) in seed.iter().zip(token).zip(green) {
        if t >= MAX_VOCAB_SIZE {
            let k = (u32::MAX - t) as usize;
            let slot = counters
                .get_mut(k)
                .ok_or_else(|| input_err(format!("token {t} is neither an id nor a counter")))?;
            *slot += s;
            continue;
        }
        batch.push((s, t));
        bits.push(g);
        if batch.len() == BATCH {
            flush(&mut batch, &mut bits, &mut set);
        }
    }
    flush(&mut batch, &mut bits, &mut set);
    Ok((set.len() as u64, green_count, counters))
}
