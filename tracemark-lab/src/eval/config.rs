//! The settings of a run: its size, and the grid of watermark configurations it measures.

use serde::Serialize;
use watermark_core::Sampling;
use watermark_core::{Scheme, Seeding};

use super::{Error, Result};

/// Preset sizes: `Tiny` for the test that keeps the harness alive, `Default` for `make eval`
/// (minutes on 2 cores), `Large` for tighter intervals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Size {
    Tiny,
    Default,
    Large,
}

impl std::str::FromStr for Size {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "tiny" => Ok(Size::Tiny),
            "default" => Ok(Size::Default),
            "large" => Ok(Size::Large),
            _ => Err(Error::Config(format!(
                "size {s:?} is not one of tiny, default, large"
            ))),
        }
    }
}

/// How the green list is seeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SchemeKind {
    /// The previous token (Kirchenbauer et al.'s LeftHash, h = 1).
    Window1,
    /// Self-seeded with width 4 (the spec's choice against scrubbing and stealing).
    SelfSeeded4,
}

impl SchemeKind {
    pub fn label(self) -> &'static str {
        match self {
            SchemeKind::Window1 => "window 1",
            SchemeKind::SelfSeeded4 => "self-seeded h=4",
        }
    }

    pub(super) fn scheme(self, gamma: f64, delta: f32) -> Scheme {
        let (seeding, width) = match self {
            SchemeKind::Window1 => (Seeding::Previous, 1),
            SchemeKind::SelfSeeded4 => (Seeding::SelfSeeded, 4),
        };
        Scheme {
            seeding,
            width,
            gamma,
            delta,
        }
    }
}

/// How tokens are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SamplingKind {
    /// Softmax at temperature 1, no truncation.
    Multinomial,
    Greedy,
}

impl SamplingKind {
    pub fn label(self) -> &'static str {
        match self {
            SamplingKind::Multinomial => "multinomial",
            SamplingKind::Greedy => "greedy",
        }
    }

    pub(super) fn sampling(self) -> Sampling {
        match self {
            SamplingKind::Multinomial => Sampling::Random {
                temperature: 1.0,
                top_k: None,
                top_p: None,
            },
            SamplingKind::Greedy => Sampling::Greedy,
        }
    }
}

/// One watermark configuration of the power grid.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct WmConfig {
    pub gamma: f64,
    pub delta: f32,
    pub scheme: SchemeKind,
    pub sampling: SamplingKind,
}

impl WmConfig {
    pub fn label(&self) -> String {
        format!(
            "γ={} δ={} {} {}",
            self.gamma,
            self.delta,
            self.scheme.label(),
            self.sampling.label()
        )
    }
}

/// Everything that sets the size of a run.
#[derive(Debug, Clone, Serialize)]
pub struct EvalConfig {
    pub size: Size,
    /// Prompts (texts) per configuration.
    pub prompts: usize,
    /// Tokens generated per text; the longest length evaluated.
    pub max_tokens: usize,
    /// Lengths T at which power is measured (texts truncated).
    pub lengths: Vec<usize>,
    pub gammas: Vec<f64>,
    pub deltas: Vec<f32>,
    pub schemes: Vec<SchemeKind>,
    pub samplings: Vec<SamplingKind>,
    /// Human documents per genre for the false-positive check.
    pub fpr_docs_per_genre: usize,
    /// Tokens per human document.
    pub fpr_doc_tokens: usize,
    /// Keys the human documents are tested against (per scheme).
    pub fpr_keys: usize,
    /// Nominal false-positive rates checked on human text.
    pub fpr_alphas: Vec<f64>,
    /// Token edit rates.
    pub edit_rates: Vec<f64>,
    /// Copy-paste settings: (total tokens, watermarked tokens pasted in).
    pub paste: Vec<(usize, usize)>,
    /// Tokens of each paraphrase at most.
    pub paraphrase_tokens: usize,
    /// Rows per forward pass.
    pub batch_size: usize,
    /// Seed of the keys, samplers and edits.
    pub seed: u64,
}

impl EvalConfig {
    pub fn for_size(size: Size) -> Self {
        let full = EvalConfig {
            size,
            prompts: 10,
            max_tokens: 200,
            lengths: vec![25, 50, 100, 200],
            gammas: vec![0.25, 0.5],
            deltas: vec![1.0, 2.0, 4.0],
            schemes: vec![SchemeKind::Window1, SchemeKind::SelfSeeded4],
            samplings: vec![SamplingKind::Multinomial, SamplingKind::Greedy],
            fpr_docs_per_genre: 500,
            fpr_doc_tokens: 200,
            fpr_keys: 4,
            fpr_alphas: vec![1e-1, 1e-2, 1e-3, 1e-4],
            edit_rates: vec![0.05, 0.10, 0.20, 0.30],
            paste: vec![(200, 20), (600, 60), (600, 200), (1000, 200), (2000, 200)],
            paraphrase_tokens: 200,
            batch_size: 8,
            seed: 2024,
        };
        match size {
            Size::Default => full,
            Size::Large => EvalConfig {
                prompts: 48,
                fpr_docs_per_genre: 2000,
                fpr_keys: 10,
                fpr_alphas: vec![1e-1, 1e-2, 1e-3, 1e-4, 1e-5],
                ..full
            },
            Size::Tiny => EvalConfig {
                prompts: 2,
                max_tokens: 24,
                lengths: vec![12, 24],
                gammas: vec![0.25],
                deltas: vec![2.0],
                schemes: vec![SchemeKind::Window1],
                samplings: vec![SamplingKind::Multinomial],
                fpr_docs_per_genre: 10,
                fpr_doc_tokens: 50,
                fpr_keys: 1,
                fpr_alphas: vec![1e-1, 1e-2],
                edit_rates: vec![0.1],
                paste: vec![(60, 20)],
                paraphrase_tokens: 12,
                batch_size: 8,
                ..full
            },
        }
    }

    /// The power grid, in report order.
    pub fn configs(&self) -> Vec<WmConfig> {
        let mut out = Vec::new();
        for &sampling in &self.samplings {
            for &scheme in &self.schemes {
                for &gamma in &self.gammas {
                    for &delta in &self.deltas {
                        out.push(WmConfig {
                            gamma,
                            delta,
                            scheme,
                            sampling,
                        });
                    }
                }
            }
        }
        out
    }

    pub(super) fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(Error::Config(m.to_string()));
        if self.prompts == 0 || self.max_tokens == 0 {
            return bad("prompts and max_tokens must be at least 1");
        }
        if self.lengths.iter().any(|&t| t == 0 || t > self.max_tokens) {
            return bad("every length must lie in 1..=max_tokens");
        }
        if self.configs().is_empty() {
            return bad("the grid is empty");
        }
        if self
            .paste
            .iter()
            .any(|&(t, p)| p == 0 || p >= t || p > self.max_tokens)
        {
            return bad("each paste needs 0 < passage < total and passage <= max_tokens");
        }
        if self.fpr_alphas.iter().any(|a| !(*a > 0.0 && *a < 1.0)) {
            return bad("false-positive rates must lie in (0, 1)");
        }
        Ok(())
    }
}
