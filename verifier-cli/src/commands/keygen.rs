//! `tracemark keygen`: a new secret key and the profile that binds it.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Result};
use clap::{Args, ValueEnum};
use watermark_core::{CreatedProfile, NewProfile, ProfileFormat, TokenizerSource};
use watermark_core::{Error, Profile, Scheme, Seeding};

/// Arguments of `tracemark keygen`.
#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Directory to write tracemark.key and the profile into (created if missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Hugging Face tokenizer.json to bind the profile to (default: the default model's,
    /// rebuilt from its GGUF file and saved beside the profile).
    #[arg(long, value_name = "FILE")]
    pub tokenizer: Option<PathBuf>,
    /// Vocabulary size, for a profile with no tokenizer (token-id detection only).
    #[arg(long, value_name = "N")]
    pub vocab_size: Option<u32>,
    /// How each token's green list is seeded.
    #[arg(long, value_enum, default_value_t = SeedingArg::from(Scheme::default().seeding))]
    pub seeding: SeedingArg,
    /// Tokens in the seeding window (1 to 8; 2 to 8 when self-seeded).
    #[arg(long, value_name = "H", default_value_t = Scheme::default().width)]
    pub width: usize,
    /// Fraction of the vocabulary that is green, in (0, 1).
    #[arg(long, value_name = "G", default_value_t = Scheme::default().gamma)]
    pub gamma: f64,
    /// Logit bias added to green tokens at generation: the watermark's strength.
    #[arg(long, value_name = "D", default_value_t = Scheme::default().delta)]
    pub delta: f32,
    /// Write the profile as profile.json instead of profile.toml.
    #[arg(long)]
    pub json_profile: bool,
}

/// Green-list seeding, as spelled on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SeedingArg {
    /// The tokens just before each candidate seed its green list.
    Previous,
    /// The window includes the candidate itself; survives more edits.
    SelfSeeded,
}

impl From<SeedingArg> for Seeding {
    fn from(s: SeedingArg) -> Self {
        match s {
            SeedingArg::Previous => Seeding::Previous,
            SeedingArg::SelfSeeded => Seeding::SelfSeeded,
        }
    }
}

impl From<Seeding> for SeedingArg {
    fn from(s: Seeding) -> Self {
        match s {
            Seeding::Previous => SeedingArg::Previous,
            Seeding::SelfSeeded => SeedingArg::SelfSeeded,
        }
    }
}

pub fn run(args: &KeygenArgs, out: &mut impl Write) -> Result<()> {
    let scheme = Scheme {
        seeding: args.seeding.into(),
        width: args.width,
        gamma: args.gamma,
        delta: args.delta,
    };
    scheme.validate()?;
    let (tokenizer, model) = match (&args.tokenizer, args.vocab_size) {
        (Some(path), _) => (TokenizerSource::File(path.clone()), None),
        (None, Some(_)) => (TokenizerSource::None, None),
        (None, None) => {
            // The default model's tokenizer, rebuilt from its GGUF file, saved beside the profile.
            let model = tracemark_model::locate_default_model()?;
            let json = tracemark_model::tokenizer_json_from_gguf(&model)?;
            let origin = model.clone();
            (TokenizerSource::Save { json, origin }, Some(model))
        }
    };
    let new = NewProfile {
        scheme,
        vocab_size: args.vocab_size,
        tokenizer,
        format: if args.json_profile {
            ProfileFormat::Json
        } else {
            ProfileFormat::Toml
        },
    };
    let created = Profile::create(&args.out, new).map_err(|e| in_flags(e, model.as_deref()))?;
    print_created(&created, out)
}

/// The core's refusals in the words of the command line.
fn in_flags(e: Error, model: Option<&Path>) -> anyhow::Error {
    match e {
        Error::VocabSizeMismatch { given, found, path } => anyhow!(
            "--vocab-size {given} differs from the {found} tokens of the tokenizer {}",
            path.display()
        ),
        Error::Tokenizer { path, reason } if Some(path.as_path()) == model => {
            anyhow!("{}: cannot rebuild its tokenizer: {reason}", path.display())
        }
        other => other.into(),
    }
}

fn print_created(created: &CreatedProfile, out: &mut impl Write) -> Result<()> {
    let CreatedProfile {
        profile,
        profile_path,
        key_path,
    } = created;
    let s = &profile.scheme;
    writeln!(
        out,
        "key:         {} (secret: keep it private)",
        key_path.display()
    )?;
    writeln!(out, "profile:     {}", profile_path.display())?;
    writeln!(out, "fingerprint: {}", profile.key_fingerprint)?;
    writeln!(
        out,
        "scheme:      {}, {} seeding, width {}, gamma {}, delta {}, vocabulary {} tokens",
        profile.spec, s.seeding, s.width, s.gamma, s.delta, profile.vocab_size
    )?;
    if let Some(t) = &profile.tokenizer {
        let path = t
            .path
            .as_deref()
            .map(Path::display)
            .map(|p| format!(" ({p})"))
            .unwrap_or_default();
        writeln!(out, "tokenizer:   {}{path}", t.fingerprint)?;
    }
    Ok(())
}
