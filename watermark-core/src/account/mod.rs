//! Accounts: which API account's answers a text, or a student model, came from.
//!
//! Every account's answers carry the master watermark unchanged (same green list, same δ): the
//! account does not touch the logits. It drives the *sampling randomness* instead. Each token is
//! drawn by the exponential minimum (Gumbel-max) rule with uniforms from the account's PRF at
//! the token's (seed, token) tuple, so it is distributed exactly as softmax(biased logits / T):
//! the master test sees what it sees today, and the account costs no distortion beyond δ. The
//! account's evidence is that the chosen tokens have large uniforms; its score, Σ −ln(1 − u),
//! is Gamma(n, 1) under the null. See `WATERMARK-SPEC.md`, "Accounts".
//!
//! The account key is derived from the master key and the account id (keyed SHA-256), so the
//! key file stays one file and no table of account keys exists.

mod attribution;
mod audit;
mod correction;
mod key;
mod signal;

pub use attribution::{detect_accounts, AccountAttribution, AccountOptions, AccountScore};
pub use audit::{AccountAudit, AccountAuditReport};
pub use correction::{holm_sidak_ln, sidak_ln};
pub use key::{parse_account_list, AccountKey, MAX_ACCOUNT_ID_BYTES};
pub use signal::{choose_by_exponential_minimum, draw_from_logits};
