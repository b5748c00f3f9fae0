//! tracemark's core: a keyed green-list watermark for language-model sampling, and the
//! exact-statistics detector that proves it.
//!
//! The data path is one line: a [`SecretKey`] and a [`Scheme`] make a [`GreenList`]; the
//! generator calls [`hook::apply_watermark`] on each logits row (or lets [`WatermarkSampler`]
//! do it); the auditor calls [`detect()`] on token ids, or pools a suspect model's outputs in
//! an [`Audit`]. Both are thin layers over one scan, and report the same [`ReportHeader`].
//! A `Profile` stores everything both sides must agree on, and `Profile::open` checks it all
//! into a `ProfileSession` (feature `profile`, on by default). The function itself is specified
//! in `WATERMARK-SPEC.md`.
//!
//! Cargo features: `profile` (default: profile files, TOML and JSON), `tokenizers` (text through
//! a `tokenizer.json`), `candle` (the tensor hook), `synthetic` (a synthetic language model for
//! demos and tests), `experiments` (statistics of experiments: KS test, Clopper–Pearson, spike
//! entropy). With no features the crate is the key, the green list, the hook, the sampler, the
//! detector and its exact statistics, with no TOML and no tokenizer.

//!
//! ```
//! use watermark_core::{detect, DetectOptions, GreenList, Sampling, Scheme, SecretKey};
//! use watermark_core::WatermarkSampler;
//!
//! # fn main() -> watermark_core::Result<()> {
//! let key = SecretKey::generate()?;
//! let green = GreenList::new(&key, Scheme::default(), 1000)?;
//!
//! // Generation: any model's logits (here a flat distribution), biased then sampled.
//! let mut sampler = WatermarkSampler::new(Some(green.clone()), Sampling::new(1.0, None, None)?, 42);
//! let mut context = vec![1u32];
//! for _ in 0..200 {
//!     let mut logits = vec![0.0f32; 1000];
//!     let token = sampler.sample(&context, &mut logits)?;
//!     context.push(token);
//! }
//!
//! // Detection: exact binomial test over the distinct (window, token) tuples.
//! let result = detect(&green, &context[..1], &context[1..], &DetectOptions::default())?;
//! assert!(result.header.watermarked);
//! assert!(result.header.score.log10_p_value < -6.0);
//! # Ok(())
//! # }
//! ```
pub mod account;
mod audit;
#[cfg(feature = "candle")]
pub mod candle_hook;
mod dedup;
mod detect;
mod error;
#[cfg(feature = "profile")]
pub mod evidence;
mod files;
mod fpr;
mod green;
pub mod hook;
mod key;
mod plan;
mod prf;
#[cfg(feature = "profile")]
mod profile;
mod sampler;
mod scan;
mod score;
mod shard;
pub mod stats;
#[cfg(feature = "synthetic")]
mod synthetic;
#[cfg(feature = "tokenizers")]
mod text;
pub mod vllm;

pub use audit::{Audit, AuditOptions, AuditReport, CurvePoint, WindowFilter};
pub use dedup::TupleSet;
pub use detect::{detect, detect_in_corpus, DetectOptions, Detection, Windowed, MIN_WINDOW};
pub use error::{Error, Result};
pub use files::{read_limited, write_output};
pub use fpr::{Fpr, DEFAULT_FPR};
pub use green::{Decision, GreenList, Scheme, Seeding, MAX_VOCAB_SIZE, SPEC_VERSION};
pub use key::SecretKey;
pub use plan::{
    grouped, Pilot, Plan, PlanOptions, PlanStatus, Planner, Prediction, DEFAULT_PLAN_CONFIDENCE,
    DEFAULT_PLAN_POWER, MAX_PLANNED_TOKENS,
};
#[cfg(all(feature = "profile", feature = "tokenizers"))]
pub use profile::TOKENIZER_FILE;
#[cfg(feature = "profile")]
pub use profile::{
    CreatedProfile, NewProfile, Profile, ProfileFormat, ProfileSession, TokenizerBinding,
    TokenizerSource, KEY_FILE,
};
pub use sampler::{argmax, Sampling, WatermarkSampler};
pub use scan::{ReportHeader, Skipped, TokenStatus};
pub use score::Score;
pub use shard::{ScoredTuples, ShardRules};
#[cfg(feature = "synthetic")]
pub use synthetic::{softmax, splitmix, SyntheticLm};
#[cfg(feature = "tokenizers")]
pub use text::{file_fingerprint, TextTokenizer};

/// The README's Rust examples, compiled and run as doctests so they cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
