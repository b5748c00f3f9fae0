//! The distillation audit: a running pooled test of a suspect model, and the filter of our
//! own outputs that makes it supervised.

use std::sync::{Mutex, MutexGuard};

use pyo3::prelude::*;
use serde::Serialize;
use watermark_core::{
    Audit as CoreAudit, AuditOptions, AuditReport, WindowFilter as CoreWindowFilter,
};
use watermark_core::{Error, GreenList};
use watermark_core::{Fpr, PlanOptions, DEFAULT_PLAN_CONFIDENCE, DEFAULT_PLAN_POWER};

use crate::errors::{core, lock, py_err, POISONED};
use crate::ids::{check_vocabulary, id_batch, optional_id_batch, token_ids};
use crate::py_json::to_py_json;
use crate::scores::Score;
use crate::watermark::Watermark;

/// The windows of our own outputs, for a supervised audit (only tokens whose window occurs in
/// them are scored).
#[pyclass(frozen, module = "tracemark._native", name = "WindowFilter")]
#[derive(Debug)]
pub(crate) struct WindowFilter {
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
        let prompt = optional_ids(prompt)?;
        py.detach(|| core(lock(&self.inner, POISONED)?.add_text(&prompt, &tokens)))
    }

    fn __len__(&self, py: Python<'_>) -> PyResult<usize> {
        py.detach(|| Ok(lock(&self.inner, POISONED)?.len()))
    }
}

/// The token ids of an optional prompt; none is the empty prompt.
fn optional_ids(prompt: Option<&Bound<'_, PyAny>>) -> PyResult<Vec<u32>> {
    Ok(prompt
        .map(|p| token_ids(p, None))
        .transpose()?
        .unwrap_or_default())
}

/// A running pooled audit of a suspect model (closed model: its outputs; open model: its
/// predictions while reading our texts), with each (seed, token) tuple scored once across the
/// whole audit and windows the suspect has read excluded. Streams: add documents in any number
/// of calls, read `report()` at any point. The numbers are those of `tracemark audit --json`.
///
/// `deduplicate=False` (score repeated tuples again) and `exclude_context=False` (score tokens
/// whose window the suspect has read) turn off the rules that make the pooled p-value valid:
/// they exist for tests and demonstrations only. With either off, `report()` says so with
/// `"valid": False` and `"rules_off"`, the list of the rules turned off.
#[pyclass(frozen, module = "tracemark._native", name = "Audit")]
#[derive(Debug)]
pub(crate) struct Audit {
    inner: Mutex<CoreAudit>,
    /// The key and scheme of the audit, to check a batch whole before any of it is added.
    green: GreenList,
    rules_off: Vec<&'static str>,
    /// The verdict's false-positive rate: the plan's default target.
    fpr: Fpr,
}

/// `Audit.report()`: the core's report, plus, when a rule was turned off, why its p-value
/// cannot be trusted. With every rule on it is exactly the core's (and the CLI's) report.
#[derive(Serialize)]
struct Report<'a> {
    #[serde(flatten)]
    core: &'a AuditReport,
    #[serde(skip_serializing_if = "Option::is_none")]
    valid: Option<bool>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    rules_off: &'a [&'static str],
}

/// The names of the rules `options` turns off (the constructor's argument names).
fn rules_off(options: &AuditOptions) -> Vec<&'static str> {
    let mut off = Vec::new();
    if !options.deduplicate {
        off.push("deduplicate");
    }
    if !options.exclude_context {
        off.push("exclude_context");
    }
    off
}

impl Audit {
    fn audit(&self) -> PyResult<MutexGuard<'_, CoreAudit>> {
        lock(&self.inner, POISONED)
    }
}

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
            ..AuditOptions::default()
        };
        let rules_off = rules_off(&options);
        let verdict_fpr = options.fpr;
        let mut audit = core(CoreAudit::new(watermark.green.clone(), options))?;
        if let Some(filter) = filter {
            let filter: &WindowFilter = &filter;
            let copy = py.detach(|| Ok::<_, PyErr>(lock(&filter.inner, POISONED)?.clone()))?;
            audit = core(audit.with_filter(copy))?;
        }
        Ok(Audit {
            inner: Mutex::new(audit),
            green: watermark.green.clone(),
            rules_off,
            fpr: verdict_fpr,
        })
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
        let prompt = optional_ids(prompt)?;
        py.detach(|| core(self.audit()?.add_output(&prompt, &response)))
    }

    /// `add_output` for many outputs at once (the GIL is released once for all of them).
    /// All or nothing: when any output is refused, none of the batch is added.
    #[pyo3(signature = (responses, prompts = None))]
    fn add_outputs(
        &self,
        py: Python<'_>,
        responses: &Bound<'_, PyAny>,
        prompts: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let responses = id_batch(responses, "responses")?;
        let prompts = match prompts {
            None => vec![Vec::new(); responses.len()],
            Some(p) => optional_id_batch(p, "prompts")?,
        };
        if prompts.len() != responses.len() {
            return Err(py_err(Error::BatchShape(format!(
                "{} responses but {} prompts",
                responses.len(),
                prompts.len()
            ))));
        }
        py.detach(|| {
            // The vocabulary check is the only refusal of the core's `add_output`; done for the
            // whole batch first, a bad output cannot leave the ones before it added.
            let parts = prompts.iter().chain(&responses).map(Vec::as_slice);
            core(check_vocabulary(&self.green, parts))?;
            let mut audit = self.audit()?;
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
        let prompt = optional_ids(prompt)?;
        py.detach(|| core(self.audit()?.add_reading(&prompt, &text, &predictions)))
    }

    /// The pooled statistics so far (not a valid test when a rule was turned off).
    fn score(&self, py: Python<'_>) -> PyResult<Score> {
        py.detach(|| Ok(Score(self.audit()?.score())))
    }

    /// The report so far, as the dict `tracemark audit --json` prints (less `mode`,
    /// `supervised` and `seconds`). With a rule turned off it also holds `"valid": False` and
    /// `"rules_off"` (the names of those rules): its p-value is then not valid.
    fn report<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let report = py.detach(|| Ok::<_, PyErr>(self.audit()?.report()))?;
        let off = !self.rules_off.is_empty();
        let report = Report {
            core: &report,
            valid: off.then_some(false),
            rules_off: &self.rules_off,
        };
        to_py_json(py, &report)
    }

    /// The power plan from the audit so far as a pilot, as the dict `tracemark audit --plan
    /// --json` prints under `plan`: the scored tokens (and documents) at which an audit whose
    /// tokens are green at the pilot's rate reaches p <= `target` (default: the verdict's
    /// false-positive rate) with probability `power` (default 0.5), with intervals at
    /// `confidence` (default 0.95).
    #[pyo3(signature = (*, target = None, power = None, confidence = None))]
    fn plan<'py>(
        &self,
        py: Python<'py>,
        target: Option<f64>,
        power: Option<f64>,
        confidence: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let target = core(target.map_or(Ok(self.fpr), Fpr::new))?;
        let options = core(PlanOptions::new(
            target,
            power.unwrap_or(DEFAULT_PLAN_POWER),
            confidence.unwrap_or(DEFAULT_PLAN_CONFIDENCE),
        ))?;
        let plan = py.detach(|| core(self.audit()?.plan(options)))?;
        to_py_json(py, &plan)
    }

    /// Cumulative log10 p against scored tuples: a list of dicts (documents, scored, green,
    /// log10_p_value).
    fn curve<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let curve = py.detach(|| Ok::<_, PyErr>(self.audit()?.curve()))?;
        to_py_json(py, &curve)
    }

    /// Bytes held by the deduplication tables.
    fn memory_bytes(&self, py: Python<'_>) -> PyResult<usize> {
        py.detach(|| Ok(self.audit()?.memory_bytes()))
    }
}
