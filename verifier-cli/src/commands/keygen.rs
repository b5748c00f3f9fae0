//! `tracemark keygen`: a new secret key and the profile that binds it.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use watermark_core::profile::{Profile, TokenizerBinding};
use watermark_core::text::TextTokenizer;
use watermark_core::{Scheme, SecretKey, Seeding};

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

/// File name of the key inside `--out`; the profile refers to it relatively.
const KEY_FILE: &str = "tracemark.key";
/// File name of the default model's tokenizer, saved beside the profile.
const TOKENIZER_FILE: &str = "tokenizer.json";

pub fn run(args: &KeygenArgs, out: &mut impl Write) -> Result<()> {
    let scheme = Scheme {
        seeding: args.seeding.into(),
        width: args.width,
        gamma: args.gamma,
        delta: args.delta,
    };
    scheme.validate()?;

    // Everything that can be refused is checked before anything is written.
    let (vocab_size, binding) = match (&args.tokenizer, args.vocab_size) {
        (None, Some(n)) => (n, None),
        (None, None) => default_model_tokenizer(&args.out)?,
        (Some(path), given) => {
            let tokenizer = TextTokenizer::from_file(path)?;
            let vocab = tokenizer.vocab_size();
            if let Some(n) = given {
                if n != vocab {
                    bail!(
                        "--vocab-size {n} differs from the {vocab} tokens of the tokenizer {}",
                        path.display()
                    );
                }
            }
            let absolute = std::fs::canonicalize(path)
                .with_context(|| format!("{}: cannot resolve the path", path.display()))?;
            if absolute.to_str().is_none() {
                // Profiles are TOML or JSON text: such a path could not be saved.
                bail!(
                    "{}: the tokenizer's path is not valid UTF-8",
                    path.display()
                );
            }
            let binding = TokenizerBinding {
                fingerprint: tokenizer.fingerprint().to_string(),
                path: Some(absolute),
            };
            (vocab, Some(binding))
        }
    };

    let key = SecretKey::generate()?;
    let mut profile = Profile::new(KEY_FILE.into(), &key, scheme, vocab_size)?;
    profile.tokenizer = binding;
    // Builds the green list once: checks the vocabulary size before the key is written.
    profile.green_list_with(&key)?;

    let key_path = args.out.join(KEY_FILE);
    let profile_name = if args.json_profile {
        "profile.json"
    } else {
        "profile.toml"
    };
    let profile_path = args.out.join(profile_name);
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("{}: cannot create the directory", args.out.display()))?;
    if exists(&key_path) {
        bail!(
            "{}: already exists; refusing to overwrite a key (losing it loses every watermark made with it)",
            key_path.display()
        );
    }
    if exists(&profile_path) {
        bail!(
            "{}: already exists; refusing to overwrite a profile",
            profile_path.display()
        );
    }

    key.write_new(&key_path)?;
    profile.save(&profile_path).with_context(|| {
        format!(
            "the key was written to {} but the profile could not be saved",
            key_path.display()
        )
    })?;
    print_created(&key_path, &profile_path, &profile, out)
}

/// What keygen made: where the key and profile are, the key's fingerprint, the scheme and the
/// tokenizer. Never the key itself.
fn print_created(
    key_path: &Path,
    profile_path: &Path,
    profile: &Profile,
    out: &mut impl Write,
) -> Result<()> {
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
        profile.spec,
        seeding_name(s.seeding),
        s.width,
        s.gamma,
        s.delta,
        profile.vocab_size
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

/// The default model's tokenizer, rebuilt from its GGUF file and saved as `DIR/tokenizer.json`
/// (an existing file there must be that same tokenizer), bound by a path relative to the profile.
fn default_model_tokenizer(dir: &Path) -> Result<(u32, Option<TokenizerBinding>)> {
    let model = tracemark_model::locate_default_model()?;
    let json = tracemark_model::tokenizer_json_from_gguf(&model)?;
    let tokenizer = TextTokenizer::from_bytes(&json).map_err(|reason| {
        anyhow::anyhow!(
            "{}: cannot rebuild its tokenizer: {reason}",
            model.display()
        )
    })?;
    let path = dir.join(TOKENIZER_FILE);
    if exists(&path) {
        let there = TextTokenizer::from_file(&path)?;
        if there.fingerprint() != tokenizer.fingerprint() {
            bail!(
                "{}: already exists and is another tokenizer; refusing to overwrite it",
                path.display()
            );
        }
    } else {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("{}: cannot create the directory", dir.display()))?;
        std::fs::write(&path, &json)
            .with_context(|| format!("{}: cannot write", path.display()))?;
    }
    let binding = TokenizerBinding {
        fingerprint: tokenizer.fingerprint().to_string(),
        path: Some(TOKENIZER_FILE.into()),
    };
    Ok((tokenizer.vocab_size(), Some(binding)))
}

/// Whether anything (a dangling link included) is at `path`.
fn exists(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok()
}

/// The seeding as written on the command line and in profiles.
pub fn seeding_name(seeding: Seeding) -> &'static str {
    match seeding {
        Seeding::Previous => "previous",
        Seeding::SelfSeeded => "self-seeded",
    }
}
