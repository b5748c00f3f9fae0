//! `tracemark._native`: the Python binding of watermark-core.
//!
//! Thin on purpose: every function here extracts owned (or borrowed numpy) inputs, releases the
//! GIL for anything that loops over tokens or logits, calls the core, and maps the core's one
//! error type to Python exceptions carrying the core's message. All statistics come from the
//! core, so Python and the `tracemark` CLI report the same numbers bit for bit. The pure-Python
//! package `tracemark` re-exports these classes and holds the engine adapters.

use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

use numpy::{Element, PyArray1, PyArrayDyn, PyArrayMethods, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use watermark_core::hook::{apply_watermark, apply_watermark_batch};
use watermark_core::Profile as CoreProfile;
use watermark_core::TextTokenizer;
use watermark_core::TupleSet as CoreTupleSet;
use watermark_core::{
    detect, detect_in_corpus, DetectOptions, Detection as CoreDetection, Score as CoreScore,
    Windowed as CoreWindowed, DEFAULT_FPR,
};
use watermark_core::{Audit as CoreAudit, AuditOptions, WindowFilter as CoreWindowFilter};
use watermark_core::{
    Error, Fpr, GreenList, Scheme as CoreScheme, SecretKey, Seeding, SPEC_VERSION,
};

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
fn py_err(e: Error) -> PyErr {
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
        | Error::Tokenizer { .. } => ProfileError::new_err(message),
        _ => InputError::new_err(message),
    }
}

fn core<T>(result: watermark_core::Result<T>) -> PyResult<T> {
    result.map_err(py_err)
}

fn input_err(message: String) -> PyErr {
    InputError::new_err(message)
}

// ---------------------------------------------------------------------------------------------
// Token ids and logits in.

/// A token id from any integer type; negative or too large ids are refused here, ids beyond
/// the vocabulary by the core.
fn token_id<T: Copy + TryInto<u32> + std::fmt::Display>(x: T) -> PyResult<u32> {
    x.try_into()
        .map_err(|_| input_err(format!("{x} is not a valid token id")))
}

/// The last `keep` (all when `None`) items of a 1-D numpy integer array of element type `T`,
/// or `None` when `obj` is not such an array.
fn tail_of_array<'py, T>(obj: &Bound<'py, PyAny>, keep: Option<usize>) -> Option<PyResult<Vec<u32>>>
where
    T: Element + Copy + TryInto<u32> + std::fmt::Display,
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

/// Token ids from a list/tuple/sequence of ints or a 1-D numpy integer array (any integer
/// dtype). With `keep`, only the last `keep` ids are read: a hook needs only the window, and
/// reading a long context on every step would make the call O(context).
fn token_ids(obj: &Bound<'_, PyAny>, keep: Option<usize>) -> PyResult<Vec<u32>> {
    if let Ok(array) = obj.cast::<PyUntypedArray>() {
        if array.ndim() != 1 {
            return Err(input_err(format!(
                "token ids must be a 1-D array, got {} dimensions",
                array.ndim()
            )));
        }
        let found = tail_of_array::<i64>(obj, keep)
            .or_else(|| tail_of_array::<i32>(obj, keep))
            .or_else(|| tail_of_array::<u32>(obj, keep))
            .or_else(|| tail_of_array::<u64>(obj, keep))
            .or_else(|| tail_of_array::<i16>(obj, keep))
            .or_else(|| tail_of_array::<u16>(obj, keep))
            .or_else(|| tail_of_array::<i8>(obj, keep))
            .or_else(|| tail_of_array::<u8>(obj, keep));
        return match found {
            Some(ids) => ids,
            None => Err(PyTypeError::new_err(format!(
                "token ids must be an integer array, got dtype {}",
                array.dtype()
            ))),
        };
    }
    if obj.is_instance_of::<pyo3::types::PyString>() || obj.is_instance_of::<pyo3::types::PyBytes>()
    {
        return Err(PyTypeError::new_err(
            "token ids must be a sequence of ints, got a string (use detect_text for text)",
        ));
    }
    let len = obj.len().map_err(|_| {
        PyTypeError::new_err(format!(
            "token ids must be a sequence of ints or a 1-D integer array, got {}",
            type_name(obj)
        ))
    })?;
    let start = keep.map_or(0, |k| len.saturating_sub(k));
    (start..len)
        .map(|i| {
            let item = obj.get_item(i)?;
            let x: i64 = item.extract().map_err(|_| {
                PyTypeError::new_err(format!("token ids must be ints, got {}", type_name(&item)))
            })?;
            token_id(x)
        })
        .collect()
}

/// Offsets (Arrow's int32 or int64, or any sequence of ints) as i64.
fn int64s(obj: &Bound<'_, PyAny>) -> PyResult<Vec<i64>> {
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

/// One context per row: a sequence of sequences, or a 2-D integer array.
fn contexts(obj: &Bound<'_, PyAny>, keep: usize) -> PyResult<Vec<Vec<u32>>> {
    if let Ok(array) = obj.cast::<PyUntypedArray>() {
        if array.ndim() != 2 {
            return Err(input_err(format!(
                "contexts of a 2-D logits batch must be a 2-D array or a list of sequences, got a {}-D array",
                array.ndim()
            )));
        }
    }
    obj.try_iter()
        .map_err(|_| PyTypeError::new_err("contexts must be a sequence of token-id sequences"))?
        .map(|row| token_ids(&row?, Some(keep)))
        .collect()
}

fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into())
}

/// The logits argument as a float32 array, or a TypeError that says what was given.
fn logits_array<'py>(obj: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyArrayDyn<f32>>> {
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

// ---------------------------------------------------------------------------------------------
// Scheme and profile.

/// The green-list scheme: seeding, window width, γ and δ.
#[pyclass(frozen, eq, module = "tracemark._native", name = "Scheme")]
#[derive(Clone, Debug, PartialEq)]
struct Scheme(CoreScheme);

fn seeding_name(seeding: Seeding) -> &'static str {
    match seeding {
        Seeding::Previous => "previous",
        Seeding::SelfSeeded => "self-seeded",
    }
}

#[pymethods]
impl Scheme {
    #[new]
    #[pyo3(signature = (seeding = "previous", width = 2, gamma = 0.25, delta = 2.0))]
    fn new(seeding: &str, width: usize, gamma: f64, delta: f32) -> PyResult<Self> {
        let seeding = match seeding {
            "previous" => Seeding::Previous,
            "self-seeded" => Seeding::SelfSeeded,
            other => {
                return Err(input_err(format!(
                    "invalid watermark parameter: seeding {other:?} is not \"previous\" or \"self-seeded\""
                )))
            }
        };
        let scheme = CoreScheme {
            seeding,
            width,
            gamma,
            delta,
        };
        core(scheme.validate())?;
        Ok(Scheme(scheme))
    }

    /// "previous" or "self-seeded".
    #[getter]
    fn seeding(&self) -> &'static str {
        seeding_name(self.0.seeding)
    }

    #[getter]
    fn width(&self) -> usize {
        self.0.width
    }

    #[getter]
    fn gamma(&self) -> f64 {
        self.0.gamma
    }

    #[getter]
    fn delta(&self) -> f32 {
        self.0.delta
    }

    /// The γ the test uses (γ rounded to the PRF's 16-bit threshold).
    #[getter]
    fn effective_gamma(&self) -> f64 {
        self.0.effective_gamma()
    }

    /// Preceding tokens a position needs before it is biased or scored.
    #[getter]
    fn context_width(&self) -> usize {
        self.0.context_width()
    }

    fn __repr__(&self) -> String {
        format!(
            "Scheme(seeding={:?}, width={}, gamma={}, delta={})",
            self.seeding(),
            self.0.width,
            self.0.gamma,
            self.0.delta
        )
    }
}

/// A watermark profile (TOML or JSON), as written by `tracemark keygen`.
#[pyclass(frozen, module = "tracemark._native", name = "Profile")]
#[derive(Clone, Debug)]
struct Profile {
    inner: CoreProfile,
    path: PathBuf,
}

#[pymethods]
impl Profile {
    /// Reads and checks a profile; the key is read and checked by `watermark()`.
    #[staticmethod]
    fn load(path: PathBuf) -> PyResult<Self> {
        let inner = core(CoreProfile::load(&path))?;
        Ok(Profile { inner, path })
    }

    #[getter]
    fn path(&self) -> PathBuf {
        self.path.clone()
    }

    #[getter]
    fn spec(&self) -> &str {
        &self.inner.spec
    }

    /// The key file, resolved against the profile's directory.
    #[getter]
    fn key_file(&self) -> PathBuf {
        self.inner.resolve(&self.inner.key_file)
    }

    #[getter]
    fn key_fingerprint(&self) -> &str {
        &self.inner.key_fingerprint
    }

    #[getter]
    fn vocab_size(&self) -> u32 {
        self.inner.vocab_size
    }

    #[getter]
    fn scheme(&self) -> Scheme {
        Scheme(self.inner.scheme.clone())
    }

    #[getter]
    fn fpr(&self) -> f64 {
        self.inner.fpr.get()
    }

    #[getter]
    fn tokenizer_fingerprint(&self) -> Option<&str> {
        self.inner
            .tokenizer
            .as_ref()
            .map(|t| t.fingerprint.as_str())
    }

    /// The bound tokenizer.json, resolved against the profile's directory.
    #[getter]
    fn tokenizer_path(&self) -> Option<PathBuf> {
        let binding = self.inner.tokenizer.as_ref()?;
        binding.path.as_ref().map(|p| self.inner.resolve(p))
    }

    /// Loads the key, checks its fingerprint, and builds the watermark.
    fn watermark(&self, py: Python<'_>) -> PyResult<Watermark> {
        let inner = &self.inner;
        let green = py.detach(|| core(inner.green_list()))?;
        Ok(Watermark {
            green,
            fpr: inner.fpr.get(),
            profile: Some(inner.clone()),
            tokenizer: OnceLock::new(),
        })
    }

    fn __repr__(&self) -> String {
        format!(
            "Profile(path={:?}, key_fingerprint={:?}, vocab_size={})",
            self.path.display().to_string(),
            self.inner.key_fingerprint,
            self.inner.vocab_size
        )
    }
}

// ---------------------------------------------------------------------------------------------
// Results.

/// Exact test statistics of `green` out of `scored` tuples. Scores of disjoint shards add up.
#[pyclass(frozen, eq, module = "tracemark._native", name = "Score")]
#[derive(Clone, Debug, PartialEq)]
struct Score(CoreScore);

#[pymethods]
impl Score {
    #[new]
    fn new(scored: u64, green: u64, gamma: f64) -> PyResult<Self> {
        if green > scored {
            return Err(input_err(format!(
                "green count {green} exceeds the scored count {scored}"
            )));
        }
        if !(gamma > 0.0 && gamma < 1.0) {
            return Err(input_err(format!("gamma {gamma} must lie in (0, 1)")));
        }
        Ok(Score(CoreScore::new(scored, green, gamma)))
    }

    /// The score of the union of disjoint shards: counts summed, statistics recomputed
    /// exactly (never averaged). Accepts Scores or Detections.
    #[staticmethod]
    fn merge(parts: &Bound<'_, PyAny>) -> PyResult<Self> {
        let mut scored = 0u64;
        let mut green = 0u64;
        let mut gamma: Option<f64> = None;
        for part in parts.try_iter()? {
            let part = part?;
            let s = if let Ok(s) = part.cast::<Score>() {
                s.get().0
            } else if let Ok(d) = part.cast::<Detection>() {
                d.get().0.header.score
            } else {
                return Err(PyTypeError::new_err(format!(
                    "Score.merge takes Score or Detection objects, got {}",
                    type_name(&part)
                )));
            };
            if gamma.is_some_and(|g| g != s.gamma) {
                return Err(input_err(format!(
                    "cannot merge scores made with gamma {} and {}",
                    gamma.unwrap_or_default(),
                    s.gamma
                )));
            }
            gamma = Some(s.gamma);
            scored += s.scored;
            green += s.green;
        }
        let gamma = gamma.ok_or_else(|| input_err("empty input: no scores to merge".into()))?;
        Ok(Score(CoreScore::new(scored, green, gamma)))
    }

    #[getter]
    fn scored(&self) -> u64 {
        self.0.scored
    }
    #[getter]
    fn green(&self) -> u64 {
        self.0.green
    }
    #[getter]
    fn gamma(&self) -> f64 {
        self.0.gamma
    }
    #[getter]
    fn green_fraction(&self) -> f64 {
        self.0.green_fraction
    }
    #[getter]
    fn z_score(&self) -> f64 {
        self.0.z_score
    }
    #[getter]
    fn p_value(&self) -> f64 {
        self.0.p_value
    }
    #[getter]
    fn log10_p_value(&self) -> f64 {
        self.0.log10_p_value
    }

    /// Whether the p-value is at most `fpr` (compared in log space).
    fn is_significant(&self, fpr: f64) -> bool {
        self.0.is_significant(fpr)
    }

    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_py_json(py, &self.0)
    }

    fn __repr__(&self) -> String {
        format!(
            "Score(scored={}, green={}, z_score={:.2}, log10_p_value={:.2})",
            self.0.scored, self.0.green, self.0.z_score, self.0.log10_p_value
        )
    }
}

/// The best window of a text (see `tracemark detect --windowed`).
#[pyclass(frozen, module = "tracemark._native", name = "Windowed")]
#[derive(Clone, Debug)]
struct Windowed(CoreWindowed);

#[pymethods]
impl Windowed {
    #[getter]
    fn start(&self) -> usize {
        self.0.start
    }
    #[getter]
    fn end(&self) -> usize {
        self.0.end
    }
    #[getter]
    fn score(&self) -> Score {
        Score(self.0.score)
    }
    #[getter]
    fn windows_tried(&self) -> u64 {
        self.0.windows_tried
    }
    #[getter]
    fn corrected_log10_p_value(&self) -> f64 {
        self.0.corrected_log10_p_value
    }
    #[getter]
    fn watermarked(&self) -> bool {
        self.0.watermarked
    }
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_py_json(py, &self.0)
    }
    fn __repr__(&self) -> String {
        format!(
            "Windowed(start={}, end={}, corrected_log10_p_value={:.2}, watermarked={})",
            self.0.start,
            self.0.end,
            self.0.corrected_log10_p_value,
            if self.0.watermarked { "True" } else { "False" }
        )
    }
}

/// One document's detection: the fields and numbers of `tracemark detect --json`.
#[pyclass(frozen, module = "tracemark._native", name = "Detection")]
#[derive(Clone, Debug)]
struct Detection(CoreDetection);

#[pymethods]
impl Detection {
    #[getter]
    fn spec(&self) -> &'static str {
        self.0.header.spec
    }
    #[getter]
    fn key_fingerprint(&self) -> &str {
        &self.0.header.key_fingerprint
    }
    /// Tokens in the text (prompt excluded).
    #[getter]
    fn tokens(&self) -> u64 {
        self.0.header.tokens
    }
    #[getter]
    fn score(&self) -> Score {
        Score(self.0.header.score)
    }
    #[getter]
    fn scored(&self) -> u64 {
        self.0.header.score.scored
    }
    #[getter]
    fn green(&self) -> u64 {
        self.0.header.score.green
    }
    #[getter]
    fn gamma(&self) -> f64 {
        self.0.header.score.gamma
    }
    #[getter]
    fn green_fraction(&self) -> f64 {
        self.0.header.score.green_fraction
    }
    #[getter]
    fn z_score(&self) -> f64 {
        self.0.header.score.z_score
    }
    #[getter]
    fn p_value(&self) -> f64 {
        self.0.header.score.p_value
    }
    #[getter]
    fn log10_p_value(&self) -> f64 {
        self.0.header.score.log10_p_value
    }
    #[getter]
    fn fpr(&self) -> f64 {
        self.0.header.fpr.get()
    }
    #[getter]
    fn watermarked(&self) -> bool {
        self.0.header.watermarked
    }
    /// Tokens left out of the test, by reason (a dict of counts).
    #[getter]
    fn ignored<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_py_json(py, &self.0.ignored.detection_reasons())
    }
    #[getter]
    fn windowed(&self) -> Option<Windowed> {
        self.0.windowed.clone().map(Windowed)
    }
    /// Each token's status ("green", "red", "too_little_context", "repeated", "in_prompt", ...),
    /// when asked for with `per_token=True`.
    #[getter]
    fn token_statuses<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        self.0
            .token_statuses
            .as_ref()
            .map(|statuses| to_py_json(py, statuses))
            .transpose()
    }
    /// The same dict as one line of `tracemark detect --json` (less `source` and `id`).
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_py_json(py, &self.0)
    }
    fn __repr__(&self) -> String {
        format!(
            "Detection(tokens={}, scored={}, green={}, z_score={:.2}, log10_p_value={:.2}, watermarked={})",
            self.0.header.tokens,
            self.0.header.score.scored,
            self.0.header.score.green,
            self.0.header.score.z_score,
            self.0.header.score.log10_p_value,
            if self.0.header.watermarked { "True" } else { "False" }
        )
    }
}

/// Python objects of a value's JSON form, through the serializer the CLI uses, so that
/// `to_dict()` and `tracemark detect --json` cannot disagree on a field or a digit.
fn to_py_json<'py, T: serde::Serialize>(py: Python<'py>, value: &T) -> PyResult<Bound<'py, PyAny>> {
    let text = serde_json::to_string(value)
        .map_err(|e| input_err(format!("cannot serialize the result: {e}")))?;
    py.import("json")?.call_method1("loads", (text,))
}

/// The set of (seed, token) tuples already scored, shared across `detect_batch` calls so that
/// each tuple counts once in a whole corpus (streamed in chunks).
#[pyclass(frozen, module = "tracemark._native", name = "TupleSet")]
#[derive(Debug, Default)]
struct TupleSet(Mutex<CoreTupleSet>);

#[pymethods]
impl TupleSet {
    #[new]
    fn new() -> Self {
        TupleSet::default()
    }

    fn __len__(&self, py: Python<'_>) -> PyResult<usize> {
        py.detach(|| Ok(lock(&self.0)?.len()))
    }
}

fn lock(m: &Mutex<CoreTupleSet>) -> PyResult<std::sync::MutexGuard<'_, CoreTupleSet>> {
    m.lock()
        .map_err(|_| input_err("the TupleSet was poisoned by an earlier failure".into()))
}

// ---------------------------------------------------------------------------------------------
// The watermark: hook and detector.

/// A key and scheme ready to bias logits and to detect: the green-list function.
#[pyclass(frozen, module = "tracemark._native", name = "Watermark")]
#[derive(Debug)]
struct Watermark {
    green: GreenList,
    fpr: f64,
    profile: Option<CoreProfile>,
    /// Loaded on first text detection: most users of the hook never need it.
    tokenizer: OnceLock<TextTokenizer>,
}

impl Watermark {
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

    fn tokenizer(&self, py: Python<'_>) -> PyResult<&TextTokenizer> {
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
    /// `Profile.load(path).watermark()`.
    #[staticmethod]
    fn from_profile(py: Python<'_>, path: PathBuf) -> PyResult<Self> {
        Profile::load(path)?.watermark(py)
    }

    /// A watermark from a key file and explicit parameters, without a profile.
    #[staticmethod]
    #[pyo3(signature = (key_file, vocab_size, scheme = None, fpr = DEFAULT_FPR))]
    fn from_key_file(
        key_file: PathBuf,
        vocab_size: u32,
        scheme: Option<PyRef<'_, Scheme>>,
        fpr: f64,
    ) -> PyResult<Self> {
        if !(fpr > 0.0 && fpr < 1.0) {
            return Err(input_err(format!(
                "false-positive rate {fpr} must lie in (0, 1)"
            )));
        }
        let key = core(SecretKey::read(&key_file))?;
        let scheme = scheme.map(|s| s.0.clone()).unwrap_or_default();
        Ok(Watermark {
            green: core(GreenList::new(&key, scheme, vocab_size))?,
            fpr,
            profile: None,
            tokenizer: OnceLock::new(),
        })
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
        let array = logits_array(logits)?;
        let shape = array.shape().to_vec();
        let keep = self.green.scheme().context_width();
        let green = &self.green;
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

    /// `apply` on a copy: returns the biased logits and leaves `logits` unchanged.
    fn applied<'py>(
        &self,
        py: Python<'py>,
        logits: &Bound<'py, PyAny>,
        context: &Bound<'_, PyAny>,
    ) -> PyResult<Bound<'py, PyArrayDyn<f32>>> {
        let array = logits_array(logits)?;
        // A C-ordered copy, so that `apply` never meets a strided view.
        let copy = array.to_owned_array().as_standard_layout().into_owned();
        let out = numpy::PyArray::from_owned_array(py, copy);
        self.apply(py, out.as_any(), context)?;
        Ok(out)
    }

    /// Whether `token` is green after `context`; None when the context is too short to decide.
    fn is_green(&self, context: &Bound<'_, PyAny>, token: i64) -> PyResult<Option<bool>> {
        let ctx = token_ids(context, Some(self.green.scheme().context_width()))?;
        core(self.green.is_green(&ctx, token_id(token)?))
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
        let green = &self.green;
        py.detach(|| {
            core(detect(
                green,
                prompt.as_deref().unwrap_or(&[]),
                &tokens,
                &options,
            ))
        })
        .map(Detection)
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
        let green = &self.green;
        py.detach(|| {
            let ids = core(tokenizer.encode(&text))?;
            // An empty prompt is no prompt, as in the CLI.
            let prompt = match prompt.as_deref() {
                Some(p) if !p.trim().is_empty() => core(tokenizer.encode(p))?,
                _ => Vec::new(),
            };
            let options = self.options(fpr, windowed, per_token)?;
            core(detect(green, &prompt, &ids, &options))
        })
        .map(Detection)
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
        let docs: Vec<Vec<u32>> = documents
            .try_iter()
            .map_err(|_| {
                PyTypeError::new_err("documents must be an iterable of token-id sequences")
            })?
            .map(|d| token_ids(&d?, None))
            .collect::<PyResult<_>>()?;
        let prompts: Option<Vec<Vec<u32>>> = prompts
            .map(|p| -> PyResult<Vec<Vec<u32>>> {
                p.try_iter()?
                    .map(|x| {
                        let x = x?;
                        if x.is_none() {
                            Ok(Vec::new())
                        } else {
                            token_ids(&x, None)
                        }
                    })
                    .collect()
            })
            .transpose()?;
        self.score_documents(py, docs, prompts, fpr, corpus_dedup, seen)
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
        if offsets.is_empty() {
            return Err(input_err("offsets must have at least one entry".into()));
        }
        let mut docs = Vec::with_capacity(offsets.len() - 1);
        for pair in offsets.windows(2) {
            let (a, b) = (pair[0], pair[1]);
            if a < 0 || b < a || b as u64 > values.len() as u64 {
                return Err(input_err(format!(
                    "offsets {a}..{b} are not a valid range of the {} values",
                    values.len()
                )));
            }
            docs.push(values[a as usize..b as usize].to_vec());
        }
        self.score_documents(py, docs, None, fpr, corpus_dedup, seen)
    }

    fn __repr__(&self) -> String {
        format!(
            "Watermark(key_fingerprint={:?}, vocab_size={}, scheme={})",
            self.green.key_fingerprint(),
            self.green.vocab_size(),
            Scheme(self.green.scheme().clone()).__repr__()
        )
    }
}

impl Watermark {
    fn score_documents(
        &self,
        py: Python<'_>,
        docs: Vec<Vec<u32>>,
        prompts: Option<Vec<Vec<u32>>>,
        fpr: Option<f64>,
        corpus_dedup: bool,
        seen: Option<&TupleSet>,
    ) -> PyResult<Vec<Detection>> {
        if let Some(p) = &prompts {
            if p.len() != docs.len() {
                return Err(py_err(Error::BatchShape(format!(
                    "{} documents but {} prompts",
                    docs.len(),
                    p.len()
                ))));
            }
        }
        let green = &self.green;
        let empty: Vec<u32> = Vec::new();
        let prompt_of = |i: usize| prompts.as_ref().map_or(&empty, |p| &p[i]);
        let run = |set: Option<&mut CoreTupleSet>| -> PyResult<Vec<Detection>> {
            if docs.is_empty() {
                return Ok(Vec::new());
            }
            let options = self.options(fpr, false, false)?;
            match set {
                None => docs
                    .iter()
                    .enumerate()
                    .map(|(i, d)| core(detect(green, prompt_of(i), d, &options)).map(Detection))
                    .collect(),
                Some(set) => {
                    set.reserve(docs.iter().map(Vec::len).sum());
                    docs.iter()
                        .enumerate()
                        .map(|(i, d)| {
                            core(detect_in_corpus(green, prompt_of(i), d, &options, set))
                                .map(Detection)
                        })
                        .collect()
                }
            }
        };
        match seen {
            // The lock is taken with the GIL released: a thread holding the GIL while it waits
            // for the lock would deadlock with the holder, who needs the GIL back to return.
            Some(shared) => py.detach(|| run(Some(&mut *lock(&shared.0)?))),
            None if corpus_dedup => py.detach(|| run(Some(&mut CoreTupleSet::default()))),
            None => py.detach(|| run(None)),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The distillation audit.

/// The windows of our own outputs, for a supervised audit (only tokens whose window occurs in
/// them are scored).
#[pyclass(frozen, module = "tracemark._native", name = "WindowFilter")]
#[derive(Debug)]
struct WindowFilter {
    inner: Mutex<CoreWindowFilter>,
}

#[pymethods]
impl WindowFilter {
    #[new]
    fn new(watermark: PyRef<'_, Watermark>) -> Self {
        WindowFilter {
            inner: Mutex::new(CoreWindowFilter::new(&watermark.green)),
        }
    }

    /// Adds the windows of one of our outputs (`tokens`, written after `prompt`).
    #[pyo3(signature = (tokens, prompt = None))]
    fn add_text(
        &self,
        py: Python<'_>,
        tokens: &Bound<'_, PyAny>,
        prompt: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let tokens = token_ids(tokens, None)?;
        let prompt = prompt
            .map(|p| token_ids(p, None))
            .transpose()?
            .unwrap_or_default();
        py.detach(|| core(lock_any(&self.inner)?.add_text(&prompt, &tokens)))
    }

    fn __len__(&self, py: Python<'_>) -> PyResult<usize> {
        py.detach(|| Ok(lock_any(&self.inner)?.len()))
    }
}

/// A running pooled audit of a suspect model (closed model: its outputs; open model: its
/// predictions while reading our texts), with each (seed, token) tuple scored once across the
/// whole audit and windows the suspect has read excluded. Streams: add documents in any number
/// of calls, read `report()` at any point. The numbers are those of `tracemark audit --json`.
#[pyclass(frozen, module = "tracemark._native", name = "Audit")]
#[derive(Debug)]
struct Audit(Mutex<CoreAudit>);

#[pymethods]
impl Audit {
    #[new]
    #[pyo3(signature = (watermark, *, fpr = None, filter = None, deduplicate = true, exclude_context = true))]
    fn new(
        py: Python<'_>,
        watermark: PyRef<'_, Watermark>,
        fpr: Option<f64>,
        filter: Option<PyRef<'_, WindowFilter>>,
        deduplicate: bool,
        exclude_context: bool,
    ) -> PyResult<Self> {
        let options = AuditOptions {
            fpr: core(Fpr::new(fpr.unwrap_or(watermark.fpr)))?,
            deduplicate,
            exclude_context,
        };
        let mut audit = core(CoreAudit::new(watermark.green.clone(), options))?;
        if let Some(filter) = filter {
            let filter: &WindowFilter = &filter;
            let copy = py.detach(|| Ok::<_, PyErr>(lock_any(&filter.inner)?.clone()))?;
            audit = core(audit.with_filter(copy))?;
        }
        Ok(Audit(Mutex::new(audit)))
    }

    /// Closed model: one output of the suspect, `response` written after `prompt`.
    #[pyo3(signature = (response, prompt = None))]
    fn add_output(
        &self,
        py: Python<'_>,
        response: &Bound<'_, PyAny>,
        prompt: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let response = token_ids(response, None)?;
        let prompt = prompt
            .map(|p| token_ids(p, None))
            .transpose()?
            .unwrap_or_default();
        py.detach(|| core(lock_any(&self.0)?.add_output(&prompt, &response)))
    }

    /// `add_output` for many outputs at once (the GIL is released once for all of them).
    #[pyo3(signature = (responses, prompts = None))]
    fn add_outputs(
        &self,
        py: Python<'_>,
        responses: &Bound<'_, PyAny>,
        prompts: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let responses: Vec<Vec<u32>> = responses
            .try_iter()?
            .map(|r| token_ids(&r?, None))
            .collect::<PyResult<_>>()?;
        let prompts: Vec<Vec<u32>> = match prompts {
            None => vec![Vec::new(); responses.len()],
            Some(p) => p
                .try_iter()?
                .map(|x| {
                    let x = x?;
                    if x.is_none() {
                        Ok(Vec::new())
                    } else {
                        token_ids(&x, None)
                    }
                })
                .collect::<PyResult<_>>()?,
        };
        if prompts.len() != responses.len() {
            return Err(py_err(Error::BatchShape(format!(
                "{} responses but {} prompts",
                responses.len(),
                prompts.len()
            ))));
        }
        py.detach(|| {
            let mut audit = lock_any(&self.0)?;
            for (prompt, response) in prompts.iter().zip(&responses) {
                core(audit.add_output(prompt, response))?;
            }
            Ok(())
        })
    }

    /// Open model, reading mode: the suspect read `prompt` ++ `text` and `predictions[i]` is
    /// its top-1 prediction at the position of `text[i]`.
    #[pyo3(signature = (text, predictions, prompt = None))]
    fn add_reading(
        &self,
        py: Python<'_>,
        text: &Bound<'_, PyAny>,
        predictions: &Bound<'_, PyAny>,
        prompt: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let text = token_ids(text, None)?;
        let predictions = token_ids(predictions, None)?;
        let prompt = prompt
            .map(|p| token_ids(p, None))
            .transpose()?
            .unwrap_or_default();
        py.detach(|| core(lock_any(&self.0)?.add_reading(&prompt, &text, &predictions)))
    }

    /// The pooled statistics so far.
    fn score(&self, py: Python<'_>) -> PyResult<Score> {
        py.detach(|| Ok(Score(lock_any(&self.0)?.score())))
    }

    /// The report so far, as the dict `tracemark audit --json` prints (less `mode`,
    /// `supervised` and `seconds`).
    fn report<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let report = py.detach(|| Ok::<_, PyErr>(lock_any(&self.0)?.report()))?;
        to_py_json(py, &report)
    }

    /// Cumulative log10 p against scored tuples: a list of dicts (documents, scored, green,
    /// log10_p_value).
    fn curve<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let curve = py.detach(|| Ok::<_, PyErr>(lock_any(&self.0)?.curve()))?;
        to_py_json(py, &curve)
    }

    /// Bytes held by the deduplication tables.
    fn memory_bytes(&self, py: Python<'_>) -> PyResult<usize> {
        py.detach(|| Ok(lock_any(&self.0)?.memory_bytes()))
    }
}

fn lock_any<T>(m: &Mutex<T>) -> PyResult<std::sync::MutexGuard<'_, T>> {
    m.lock()
        .map_err(|_| input_err("poisoned by an earlier failure".into()))
}

fn writable<'py>(
    array: &Bound<'py, PyArrayDyn<f32>>,
) -> PyResult<numpy::PyReadwriteArrayDyn<'py, f32>> {
    array
        .try_readwrite()
        .map_err(|e| input_err(format!("logits cannot be written in place: {e}")))
}

fn contiguous<T>(slice: Result<T, numpy::AsSliceError>) -> PyResult<T> {
    slice.map_err(|_| {
        input_err(
            "logits must be C-contiguous to be biased in place (use numpy.ascontiguousarray, or `applied`)"
                .into(),
        )
    })
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("TracemarkError", py.get_type::<TracemarkError>())?;
    m.add("ProfileError", py.get_type::<ProfileError>())?;
    m.add("InputError", py.get_type::<InputError>())?;
    m.add("SPEC_VERSION", SPEC_VERSION)?;
    m.add("DEFAULT_FPR", DEFAULT_FPR)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<Scheme>()?;
    m.add_class::<Profile>()?;
    m.add_class::<Watermark>()?;
    m.add_class::<Score>()?;
    m.add_class::<Windowed>()?;
    m.add_class::<Detection>()?;
    m.add_class::<TupleSet>()?;
    m.add_class::<WindowFilter>()?;
    m.add_class::<Audit>()?;
    Ok(())
}
