//! tracemark's core: a keyed green-list watermark for language-model sampling.
#[cfg(feature = "candle")]
pub mod candle_hook;
pub mod detect;
pub mod error;
pub mod green;
pub mod hook;
pub mod key;
pub mod profile;
pub mod sampler;
mod prf;
pub mod stats;
pub mod synthetic;
#[cfg(feature = "tokenizers")]
pub mod text;

pub use error::{Error, Result};
pub use green::{Decision, GreenList, Scheme, Seeding, SPEC_VERSION};
pub use key::SecretKey;
