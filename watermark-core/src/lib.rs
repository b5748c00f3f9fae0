//! tracemark's core: a keyed green-list watermark for language-model sampling, and the
//! exact-statistics detector that proves it.
//!
//! The data path is one line: a [`SecretKey`] and a [`Scheme`] make a [`GreenList`]; the
//! generator calls [`hook::apply_watermark`] on each logits row (or lets
//! [`sampler::WatermarkSampler`] do it); the auditor calls [`detect::detect`] on token ids.
//! [`profile::Profile`] stores everything both sides must agree on. The function itself is
//! specified in `WATERMARK-SPEC.md`.
//!
//! ```
//! use watermark_core::detect::{detect, DetectOptions};
//! use watermark_core::sampler::{Sampling, WatermarkSampler};
//! use watermark_core::synthetic::SyntheticLm;
//! use watermark_core::{GreenList, Scheme, SecretKey};
//!
//! # fn main() -> watermark_core::Result<()> {
//! let key = SecretKey::generate()?;
//! let green = GreenList::new(&key, Scheme::default(), 1000)?;
//!
//! // Generation: any model's logits, biased then sampled.
//! let lm = SyntheticLm::new(1000, 1.0, 0);
//! let mut sampler = WatermarkSampler::new(Some(green.clone()), Sampling::new(1.0, None, None)?, 42);
//! let mut context = vec![1u32];
//! for _ in 0..200 {
//!     let mut logits = lm.logits(&context);
//!     let token = sampler.sample(&context, &mut logits)?;
//!     context.push(token);
//! }
//!
//! // Detection: exact binomial test over the distinct (window, token) tuples.
//! let result = detect(&green, &context[..1], &context[1..], &DetectOptions::default())?;
//! assert!(result.watermarked);
//! assert!(result.score.log10_p_value < -6.0);
//! # Ok(())
//! # }
//! ```
pub mod audit;
#[cfg(feature = "candle")]
pub mod candle_hook;
pub mod dedup;
pub mod detect;
pub mod error;
pub mod files;
pub mod green;
pub mod hook;
pub mod key;
mod prf;
pub mod profile;
pub mod sampler;
pub mod stats;
pub mod synthetic;
#[cfg(feature = "tokenizers")]
pub mod text;

pub use error::{Error, Result};
pub use green::{Decision, GreenList, Scheme, Seeding, SPEC_VERSION};
pub use key::SecretKey;

/// The README's Rust examples, compiled and run as doctests so they cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
