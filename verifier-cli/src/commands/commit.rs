//! `tracemark commit`: the public commitment to a profile's key, to publish before any audit.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use watermark_core::evidence::{utc_timestamp, Commitment, PublicParameters};
use watermark_core::{Profile, SecretKey};

pub const LONG_ABOUT: &str = "Write a public commitment to the profile's secret key: the \
scheme's parameters, the tokenizer's and the key's fingerprints, the creation time, a random \
salt and SHA-256 over a domain tag, the salt, the key and those parameters (WATERMARK-SPEC.md, \
\"Key commitments\"). It never contains the key. Publish it before any audit: when the key is \
revealed to a verifier later, `tracemark verify-commitment` shows it is the key that existed \
then, with the same parameters.";

/// Arguments of `tracemark commit`.
#[derive(Debug, Args)]
pub struct CommitArgs {
    /// Profile written by `tracemark keygen`; its key is read and checked.
    #[arg(long, value_name = "FILE")]
    pub profile: PathBuf,
    /// Write the commitment to FILE (refused if it exists) instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

pub fn run(args: &CommitArgs, out: &mut impl Write) -> Result<()> {
    // Opening the session checks the key against the profile's fingerprint.
    let session = Profile::open(&args.profile)?;
    let profile = session.profile();
    let key = SecretKey::read(&profile.resolve(&profile.key_file))?;
    let commitment = Commitment::new(PublicParameters::of(profile), &key, utc_timestamp())?;
    let text = commitment.to_json();
    match &args.out {
        Some(path) => {
            watermark_core::write_output(path, text.as_bytes(), false)?;
            writeln!(out, "commitment:  {}", path.display())?;
            writeln!(
                out,
                "key:         {}",
                commitment.parameters.key_fingerprint
            )?;
            writeln!(out, "created:     {}", commitment.created)?;
            writeln!(out, "hash:        {}", commitment.commitment)?;
            writeln!(
                out,
                "Publish this file now; the key stays secret until a verifier needs it."
            )?;
        }
        None => write!(out, "{text}")?,
    }
    Ok(())
}
