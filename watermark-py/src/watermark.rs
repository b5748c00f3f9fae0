//! The `Watermark` class: a key and scheme ready to bias logits (`hook`) and to detect
//! (`detection`). Its methods extract the Python inputs and hand them to those modules.

use std::path::PathBuf;
use std::sync::OnceLock;

use numpy::PyArrayDyn;
use pyo3::prelude::*;
use watermark_core::account::AccountKey;
use watermark_core::Fpr;
use watermark_core::Profile as CoreProfile;
use watermark_core::TextTokenizer;
use watermark_core::{DetectOptions, DEFAULT_FPR};
use watermark_core::{Error, GreenList, SecretKey, SPEC_VERSION};

use crate::detection::{self, Dedup};
use crate::draw;
use crate::errors::{core, input_err, ProfileError};
use crate::hook;
use crate::ids::{id_batch, int64s, optional_id_batch, token_ids};
use crate::profile::Profile;
use crate::scheme::Scheme;
use crate::scores::Detection;
use crate::tuple_set::TupleSet;

/// A key and scheme ready to bias logits and to detect: the green-list function.
#[pyclass(frozen, module = "tracemark._native", name = "Watermark")]
#[derive(Debug)]
pub(crate) struct Watermark {
    pub(crate) green: GreenList,
    pub(crate) fpr: f64,
    profile: Option<CoreProfile>,
    /// Loaded on first text detection: most users of the hook never need it.
    tokenizer: OnceLock<TextTokenizer>,
}

impl Watermark {
    /// A watermark under `green`, deciding at `fpr` by default; with the `profile` it came
    /// from, if any (text detection needs its tokenizer).
    pub(crate) fn new(green: GreenList, fpr: f64, profile: Option<CoreProfile>) -> Self {
        Watermark {
            green,
            fpr,
            profile,
            tokenizer: OnceLock::new(),
        }
    }

    fn options(
        &self,
        fpr: Option<f64>,
        windowed: bool,
        per_token: bool,
    ) -> PyResult<DetectOptions> {
        Ok(DetectOptions {
            fpr: core(Fpr::new(fpr.unwrap_or(self.fpr)))?,
            deduplicate: true,
            windowed,
            per_token,
        })
    }

    /// The profile's tokenizer, loaded and checked on first use.
    pub(crate) fn tokenizer(&self, py: Python<'_>) -> PyResult<&TextTokenizer> {
        if let Some(t) = self.tokenizer.get() {
            return Ok(t);
        }
        let profile = self.profile.as_ref().ok_or_else(|| {
            ProfileError::new_err(
                "this watermark was made from a key file, not a profile, so it has no tokenizer; use Watermark.from_profile",
            )
        })?;
        let tokenizer = py.detach(|| -> PyResult<TextTokenizer> {
            let binding = core(profile.tokenizer.as_ref().ok_or(Error::NoTokenizer))?;
            let path = binding
                .path
                .as_ref()
                .ok_or_else(|| ProfileError::new_err("the profile records no tokenizer path"))?;
            let tokenizer = core(TextTokenizer::from_file(&profile.resolve(path)))?;
            core(profile.check_tokenizer(tokenizer.fingerprint()))?;
            Ok(tokenizer)
        })?;
        // Another thread may have won the race; either value is the same tokenizer.
        let _ = self.tokenizer.set(tokenizer);
        self.tokenizer
            .get()
            .ok_or_else(|| ProfileError::new_err("tokenizer not loaded"))
    }
}

#[pymethods]
impl Watermark {
    /// `Profile.load(path).watermark()`; with `account`, bound to that account (`for_account`).
    #[staticmethod]
    #[pyo3(signature = (path, *, account = None))]
    fn from_profile(py: Python<'_>, path: PathBuf, account: Option<&str>) -> PyResult<Self> {
        let wm = Profile::load(path)?.watermark(py)?;
        match account {
            Some(id) => wm.for_account(id),
            None => Ok(wm),
        }
    }

    /// A watermark from a key file and explicit parameters, without a profile.
    #[staticmethod]
    #[pyo3(signature = (key_file, vocab_size, scheme = None, fpr = DEFAULT_FPR, *, account = None))]
    fn from_key_file(
        key_file: PathBuf,
        vocab_size: u32,
        scheme: Option<PyRef<'_, Scheme>>,
        fpr: f64,
        account: Option<&str>,
    ) -> PyResult<Self> {
        if !(fpr > 0.0 && fpr < 1.0) {
            return Err(input_err(format!(
                "false-positive rate {fpr} must lie in (0, 1)"
            )));
        }
        let key = core(SecretKey::read(&key_file))?;
        let scheme = scheme.map(|s| s.0.clone()).unwrap_or_default();
        let green = core(GreenList::new(&key, scheme, vocab_size))?;
        let wm = Watermark::new(green, fpr, None);
        match account {
            Some(id) => wm.for_account(id),
            None => Ok(wm),
        }
    }

    /// The same watermark (same green list, same δ, same detector) whose draws are account
    /// `account_id`'s: its key is derived from the master key and the id (1 to 128 bytes of
    /// UTF-8, no control characters), as `tracemark generate --account` derives it.
    fn for_account(&self, account_id: &str) -> PyResult<Self> {
        let account = core(AccountKey::for_green_list(&self.green, account_id))?;
        // The tokenizer, if needed, is loaded again on first use.
        Ok(Watermark::new(
            self.green.clone().with_account(account),
            self.fpr,
            self.profile.clone(),
        ))
    }

    /// The account id draws are made for; None for the master watermark alone.
    #[getter]
    fn account(&self) -> Option<&str> {
        self.green.account().map(AccountKey::id)
    }

    /// The account's token from one logits row (V,) *after* `apply`: among the tokens that
    /// softmax(logits / temperature) keeps after `top_k` and `top_p`, the one the account's
    /// exponential-minimum draw picks, distributed exactly as that softmax. None with too
    /// little context (sample as usual then). temperature 0 is greedy (the argmax, no account
    /// signal). The row is only read; the GIL is released while Rust draws.
    #[pyo3(signature = (logits, context, *, temperature = 1.0, top_k = None, top_p = None))]
    fn draw(
        &self,
        py: Python<'_>,
        logits: &Bound<'_, PyAny>,
        context: &Bound<'_, PyAny>,
        temperature: f32,
        top_k: Option<i64>,
        top_p: Option<f32>,
    ) -> PyResult<Option<u32>> {
        let sampling = draw::sampling(temperature, top_k, top_p)?;
        draw::draw_row(py, &self.green, logits, context, sampling)
    }

    /// `draw` for each row of a (B, V) batch, with one context per row.
    #[pyo3(signature = (logits, contexts, *, temperature = 1.0, top_k = None, top_p = None))]
    fn draw_batch(
        &self,
        py: Python<'_>,
        logits: &Bound<'_, PyAny>,
        contexts: &Bound<'_, PyAny>,
        temperature: f32,
        top_k: Option<i64>,
        top_p: Option<f32>,
    ) -> PyResult<Vec<Option<u32>>> {
        let sampling = draw::sampling(temperature, top_k, top_p)?;
        draw::draw_rows(py, &self.green, logits, contexts, sampling)
    }

    #[getter]
    fn spec(&self) -> &'static str {
        SPEC_VERSION
    }
    #[getter]
    fn key_fingerprint(&self) -> &str {
        self.green.key_fingerprint()
    }
    #[getter]
    fn vocab_size(&self) -> u32 {
        self.green.vocab_size()
    }
    #[getter]
    fn scheme(&self) -> Scheme {
        Scheme(self.green.scheme().clone())
    }
    /// The default false-positive rate of verdicts (the profile's).
    #[getter]
    fn fpr(&self) -> f64 {
        self.fpr
    }
    #[getter]
    fn context_width(&self) -> usize {
        self.green.scheme().context_width()
    }

    /// Adds δ, in place, to the green logits. `logits` is a float32 row (V,) with `context` the
    /// token ids so far, or a batch (B, V) with one context per row (a list of sequences or a
    /// 2-D integer array). Rows may be longer than the vocabulary, never shorter.
    fn apply(
        &self,
        py: Python<'_>,
        logits: &Bound<'_, PyAny>,
        context: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        hook::apply(py, &self.green, logits, context)
    }

    /// `apply` on a copy: returns the biased logits and leaves `logits` unchanged.
    fn applied<'py>(
        &self,
        py: Python<'py>,
        logits: &Bound<'py, PyAny>,
        context: &Bound<'_, PyAny>,
    ) -> PyResult<Bound<'py, PyArrayDyn<f32>>> {
        hook::applied(py, &self.green, logits, context)
    }

    /// Whether `token` is green after `context`; None when the context is too short to decide.
    fn is_green(
        &self,
        context: &Bound<'_, PyAny>,
        token: &Bound<'_, PyAny>,
    ) -> PyResult<Option<bool>> {
        hook::is_green(&self.green, context, token)
    }

    /// Scores token ids (the text after `prompt`): the numbers of `tracemark detect --json`.
    #[pyo3(signature = (tokens, prompt = None, *, fpr = None, windowed = false, per_token = false))]
    fn detect(
        &self,
        py: Python<'_>,
        tokens: &Bound<'_, PyAny>,
        prompt: Option<&Bound<'_, PyAny>>,
        fpr: Option<f64>,
        windowed: bool,
        per_token: bool,
    ) -> PyResult<Detection> {
        let tokens = token_ids(tokens, None)?;
        let prompt = prompt.map(|p| token_ids(p, None)).transpose()?;
        let options = self.options(fpr, windowed, per_token)?;
        detection::detect_ids(py, &self.green, &tokens, prompt.as_deref(), &options)
    }

    /// Tokenizes with the profile's tokenizer (checked by fingerprint), then `detect`.
    #[pyo3(signature = (text, prompt = None, *, fpr = None, windowed = false, per_token = false))]
    fn detect_text(
        &self,
        py: Python<'_>,
        text: String,
        prompt: Option<String>,
        fpr: Option<f64>,
        windowed: bool,
        per_token: bool,
    ) -> PyResult<Detection> {
        let tokenizer = self.tokenizer(py)?;
        let options = self.options(fpr, windowed, per_token)?;
        detection::detect_text(
            py,
            &self.green,
            tokenizer,
            &text,
            prompt.as_deref(),
            &options,
        )
    }

    /// Token ids of `text` under the profile's tokenizer.
    fn encode(&self, py: Python<'_>, text: String) -> PyResult<Vec<u32>> {
        let tokenizer = self.tokenizer(py)?;
        py.detach(|| core(tokenizer.encode(&text)))
    }

    /// Scores many documents (sequences or arrays of token ids), one Detection each.
    ///
    /// With `corpus_dedup=True` (or a `seen` TupleSet, kept across calls) each (seed, token)
    /// tuple counts once in the whole corpus, so the documents' scores are independent and
    /// `Score.merge` of them is the corpus's exact pooled test.
    #[pyo3(signature = (documents, prompts = None, *, fpr = None, corpus_dedup = false, seen = None))]
    fn detect_batch(
        &self,
        py: Python<'_>,
        documents: &Bound<'_, PyAny>,
        prompts: Option<&Bound<'_, PyAny>>,
        fpr: Option<f64>,
        corpus_dedup: bool,
        seen: Option<&TupleSet>,
    ) -> PyResult<Vec<Detection>> {
        let docs = id_batch(documents, "documents")?;
        let prompts = prompts
            .map(|p| optional_id_batch(p, "prompts"))
            .transpose()?;
        let options = self.options(fpr, false, false)?;
        let dedup = dedup_of(corpus_dedup, seen);
        detection::score_documents(py, &self.green, &docs, prompts.as_deref(), &options, dedup)
    }

    /// `detect_batch` over the Arrow layout of a `list<uint32>` column: all ids in one flat
    /// array and `offsets` (B + 1 entries) marking where each document starts.
    #[pyo3(signature = (values, offsets, *, fpr = None, corpus_dedup = false, seen = None))]
    fn detect_flat(
        &self,
        py: Python<'_>,
        values: &Bound<'_, PyAny>,
        offsets: &Bound<'_, PyAny>,
        fpr: Option<f64>,
        corpus_dedup: bool,
        seen: Option<&TupleSet>,
    ) -> PyResult<Vec<Detection>> {
        let values = token_ids(values, None)?;
        let offsets = int64s(offsets)?;
        let docs = detection::documents_of_flat(&values, &offsets)?;
        let options = self.options(fpr, false, false)?;
        let dedup = dedup_of(corpus_dedup, seen);
        detection::score_documents(py, &self.green, &docs, None, &options, dedup)
    }

    fn __repr__(&self) -> String {
        let account = self
            .green
            .account()
            .map(|a| format!(", account={:?}", a.id()))
            .unwrap_or_default();
        format!(
            "Watermark(key_fingerprint={:?}, vocab_size={}, scheme={}{account})",
            self.green.key_fingerprint(),
            self.green.vocab_size(),
            Scheme(self.green.scheme().clone()).__repr__()
        )
    }
}

/// The deduplication the `corpus_dedup` and `seen` arguments ask for (`seen` wins).
fn dedup_of(corpus_dedup: bool, seen: Option<&TupleSet>) -> Dedup<'_> {
    match seen {
        Some(set) => Dedup::Shared(set),
        None if corpus_dedup => Dedup::Batch,
        None => Dedup::PerDocument,
    }
}
