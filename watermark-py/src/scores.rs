//! Results out: exact test statistics, the best window, and one document's detection, each
//! wrapping the core's value so that Python and the CLI report the same numbers.

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use watermark_core::{Detection as CoreDetection, Score as CoreScore, Windowed as CoreWindowed};

use crate::errors::input_err;
use crate::ids::type_name;
use crate::py_json::to_py_json;

/// Exact test statistics of `green` out of `scored` tuples. Scores of disjoint shards add up.
#[pyclass(frozen, eq, module = "tracemark._native", name = "Score")]
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Score(pub(crate) CoreScore);

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
pub(crate) struct Windowed(CoreWindowed);

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
pub(crate) struct Detection(pub(crate) CoreDetection);

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
