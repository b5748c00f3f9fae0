//! `tracemark keygen`: a new secret key and the profile that binds it.

use std::io::Write;
use std::path::Path;

use anyhow::{anyhow, Result};
use watermark_core::{CreatedProfile, NewProfile, ProfileFormat, TokenizerSource};
use watermark_core::{Error, Profile, Scheme};

use crate::cli::KeygenArgs;

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
