//! `tracemark verify-commitment`: opens a published commitment with the revealed key.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use watermark_core::evidence::{Commitment, PublicParameters};
use watermark_core::{Profile, SecretKey};

use crate::exit::{self, ExitStatus};

pub const LONG_ABOUT: &str = "Check a revealed key and profile against a commitment \
published earlier with `tracemark commit`: the key must be the committed one, every parameter \
the committed one, and the commitment must open (the file unaltered).

Exit status:
  0  the commitment opens: this key and these parameters were committed at its time
  1  an error: unreadable profile or key
  2  command-line usage error
  5  the key is not the committed one
  6  a parameter differs, or the file was altered after it was made
  7  the commitment file is malformed";

/// Arguments of `tracemark verify-commitment`.
#[derive(Debug, Args)]
pub struct VerifyCommitmentArgs {
    /// The commitment file written by `tracemark commit`.
    #[arg(value_name = "COMMITMENT")]
    pub commitment: PathBuf,
    /// The profile with the revealed key.
    #[arg(long, value_name = "FILE")]
    pub profile: PathBuf,
}

pub fn run(args: &VerifyCommitmentArgs, out: &mut impl Write) -> Result<ExitStatus> {
    let commitment = match Commitment::read(&args.commitment) {
        Ok(c) => c,
        Err(e) => return Ok(exit::refused(&e)),
    };
    let (parameters, key) = revealed(&args.profile)?;
    if let Err(e) = commitment.open(&parameters, &key) {
        return Ok(exit::refused(&e));
    }
    let s = &parameters.scheme;
    writeln!(
        out,
        "the commitment opens: key {} with {}, {} seeding, width {}, gamma {}, delta {}, \
         vocabulary {} was committed at {}",
        parameters.key_fingerprint,
        parameters.spec,
        s.seeding,
        s.width,
        s.gamma,
        s.delta,
        parameters.vocab_size,
        commitment.created
    )?;
    Ok(ExitStatus::Ok)
}

/// The profile's public parameters and its key, checked against each other.
pub(crate) fn revealed(profile: &std::path::Path) -> Result<(PublicParameters, SecretKey)> {
    let session = Profile::open(profile)?;
    let profile = session.profile();
    let key = SecretKey::read(&profile.resolve(&profile.key_file))?;
    Ok((PublicParameters::of(profile), key))
}
