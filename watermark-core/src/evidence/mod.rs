//! Evidence a third party can check: key commitments published before an audit, and the
//! `evidence.json` record of a verdict with the SHA-256 of every input, so that anyone holding
//! the inputs and the revealed key can recompute it.
//!
//! Commitments answer "you chose the key after seeing the data": the commitment file, published
//! first, binds the key and the scheme's parameters (see the spec's "Key commitments").
//! The evidence record answers "show us": it names every input by SHA-256 and holds every
//! number the report shows, so a report can be recomputed and compared field by field.

mod commitment;
mod compare;
mod record;
mod time;

pub use commitment::{Commitment, PublicParameters, COMMITMENT_DOMAIN, COMMITMENT_FORMAT};
pub use compare::{first_mismatch, Mismatch};
pub use record::{
    file_sha256, skipped_by_rule, thin_curve, AccountFinding, AccountsFinding, AuditFinding,
    DocumentFinding, Evidence, Findings, InputFile, Statistics, TokenFinding, WindowFinding,
    EVIDENCE_FORMAT, MAX_CURVE_POINTS,
};
pub use time::utc_timestamp;

use std::path::PathBuf;

/// Why a commitment or an evidence record was refused. Each kind has its own exit status on
/// the command line, so a script can tell a wrong key from a tampered or malformed file.
#[derive(Debug, thiserror::Error)]
pub enum EvidenceError {
    /// The file is not a commitment or evidence record this version can read.
    #[error("{}: not a valid {what}: {reason}", path.display())]
    Malformed {
        /// The file.
        path: PathBuf,
        /// "commitment", "evidence record".
        what: &'static str,
        /// What is wrong with it, never quoting a key.
        reason: String,
    },
    /// The revealed key is not the committed one.
    #[error("the key is not the committed one: the commitment was made for key {committed}, the profile's key is {revealed}")]
    WrongKey {
        /// Fingerprint in the commitment.
        committed: String,
        /// Fingerprint of the revealed key.
        revealed: String,
    },
    /// A public parameter in the file differs from the profile's, or the commitment does not
    /// open with the file's parameters, salt and the revealed key (the file was altered).
    #[error("{0}")]
    Tampered(String),
}
