//! tracemark's core: a keyed green-list watermark for language-model sampling.
pub mod error;
pub mod green;
pub mod key;
mod prf;

pub use error::{Error, Result};
pub use green::{GreenList, Scheme, Seeding, SPEC_VERSION};
pub use key::SecretKey;
