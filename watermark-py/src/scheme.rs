//! The green-list scheme's parameters as a Python value.

use pyo3::prelude::*;
use watermark_core::{Scheme as CoreScheme, Seeding};

use crate::errors::{core, input_err};

/// The green-list scheme: seeding, window width, γ and δ.
#[pyclass(frozen, eq, module = "tracemark._native", name = "Scheme")]
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Scheme(pub(crate) CoreScheme);

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

    pub(crate) fn __repr__(&self) -> String {
        format!(
            "Scheme(seeding={:?}, width={}, gamma={}, delta={})",
            self.seeding(),
            self.0.width,
            self.0.gamma,
            self.0.delta
        )
    }
}
