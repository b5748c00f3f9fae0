//! `tracemark generate`: watermarked (or plain) answers from the default model, streamed as
//! text or written as JSON lines that `detect` reads back; or token ids from the synthetic model.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use tracemark_model::generate::{Completion, GenerateOptions, Generator, Job, Limits, PerContext};
use tracemark_model::llama::{set_threads, LoadOptions};
use watermark_core::profile::Profile;
use watermark_core::sampler::Sampling;
use watermark_core::synthetic::SyntheticLm;
use watermark_core::GreenList;

use crate::cli::GenerateArgs;

pub fn run(args: &GenerateArgs, out: &mut impl Write) -> Result<()> {
    let profile = Profile::load(&args.profile)?;
    let green = if args.no_watermark {
        None
    } else {
        Some(profile.green_list()?)
    };
    let sampling = Sampling::new(args.temperature, args.top_k, args.top_p)?;
    if args.synthetic {
        return synthetic(args, &profile, green, sampling, out);
    }
    let prompts = match (&args.prompt, &args.prompts) {
        (Some(p), None) => vec![Prompt {
            prompt: p.clone(),
            id: None,
        }],
        (None, Some(path)) => read_prompts(path)?,
        _ => bail!("give --prompt TEXT or --prompts FILE.jsonl (or --synthetic)"),
    };
    if let Some(n) = args.threads {
        set_threads(n)?;
    }
    let model_path = match &args.model {
        Some(p) => p.clone(),
        None => tracemark_model::locate_default_model()?,
    };
    let generator = Generator::load(&model_path, &LoadOptions::default())?;
    // The watermark is only meaningful with the tokenizer the profile is bound to.
    if green.is_some() || profile.tokenizer.is_some() {
        profile.check_tokenizer(generator.tokenizer().fingerprint())?;
    }
    let options = GenerateOptions {
        max_tokens: args.max_tokens as usize,
        min_tokens: 0,
        sampling,
        seed: args.seed,
        batch_size: args.batch_size as usize,
    };
    let texts: Vec<String> = prompts.iter().map(|p| p.prompt.clone()).collect();
    let stream = !args.json && texts.len() == 1;
    let started = Instant::now();
    let mut progress = Progress::new(texts.len(), args.prompts.is_some());
    let mut streamed = Vec::new();
    let mut printed = 0usize;
    let mut stream_error = None;
    let completions = generator.generate(&texts, green.as_ref(), &options, |i, token| {
        progress.token();
        if stream && stream_error.is_none() {
            streamed.push(token);
            // Print what decodes to whole characters so far (byte-level BPE can split one).
            if let Ok(text) = generator.tokenizer().decode(&streamed) {
                if !text.ends_with('\u{fffd}') && text.len() > printed {
                    if let Err(e) = write!(out, "{}", &text[printed..]).and_then(|()| out.flush()) {
                        stream_error = Some(e);
                    }
                    printed = text.len();
                }
            }
        }
        if i + 1 > progress.done_hint {
            progress.done_hint = i + 1;
        }
    })?;
    progress.finish(started);
    if let Some(e) = stream_error {
        return Err(e.into());
    }
    if stream {
        if let Some(c) = completions.first() {
            if c.completion.len() > printed {
                write!(out, "{}", &c.completion[printed..])?;
            }
        }
        writeln!(out)?;
        return Ok(());
    }
    for (prompt, completion) in prompts.iter().zip(&completions) {
        if args.json {
            let line = serde_json::to_string(&Answer::new(prompt, completion, green.is_some()))?;
            writeln!(out, "{line}")?;
        } else {
            writeln!(out, "### {}\n{}\n", prompt.prompt, completion.completion)?;
        }
    }
    Ok(())
}

/// One line of a `--prompts` file.
#[derive(Debug, Deserialize)]
struct Prompt {
    prompt: String,
    #[serde(default)]
    id: Option<serde_json::Value>,
}

fn read_prompts(path: &Path) -> Result<Vec<Prompt>> {
    let bytes = std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| anyhow!("{}: not valid UTF-8 text", path.display()))?;
    let mut prompts = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim_start_matches('\u{feff}').trim();
        if line.is_empty() {
            continue;
        }
        let p: Prompt = serde_json::from_str(line).map_err(|e| {
            anyhow!(
                "{}:{}: malformed JSONL line (need a `prompt` string): {e}",
                path.display(),
                i + 1
            )
        })?;
        if p.prompt.trim().is_empty() {
            bail!("{}:{}: the prompt is empty", path.display(), i + 1);
        }
        prompts.push(p);
    }
    if prompts.is_empty() {
        bail!("{}: no prompts", path.display());
    }
    Ok(prompts)
}

/// One `--json` output line; `detect` scores `tokens` after `prompt_tokens`.
#[derive(Debug, Serialize)]
struct Answer<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a serde_json::Value>,
    prompt: &'a str,
    completion: &'a str,
    prompt_tokens: &'a [u32],
    tokens: &'a [u32],
    watermarked: bool,
    stopped: bool,
}

impl<'a> Answer<'a> {
    fn new(prompt: &'a Prompt, c: &'a Completion, watermarked: bool) -> Self {
        Answer {
            id: prompt.id.as_ref(),
            prompt: &prompt.prompt,
            completion: &c.completion,
            prompt_tokens: &c.prompt_ids,
            tokens: &c.completion_ids,
            watermarked,
            stopped: c.stopped,
        }
    }
}

/// Progress on stderr for `--prompts`: a self-updating line on a terminal, nothing otherwise.
struct Progress {
    total: usize,
    tokens: u64,
    done_hint: usize,
    enabled: bool,
    started: Instant,
}

impl Progress {
    fn new(total: usize, wanted: bool) -> Self {
        Progress {
            total,
            tokens: 0,
            done_hint: 0,
            enabled: wanted && std::io::stderr().is_terminal(),
            started: Instant::now(),
        }
    }

    fn token(&mut self) {
        self.tokens += 1;
        if self.enabled && self.tokens % 16 == 0 {
            let secs = self.started.elapsed().as_secs_f64().max(1e-9);
            let width = 30;
            let filled = width * self.done_hint.min(self.total) / self.total.max(1);
            let _ = write!(
                std::io::stderr(),
                "\r[{}{}] prompt {}/{} · {} tokens · {:.1} tokens/s ",
                "#".repeat(filled),
                ".".repeat(width - filled),
                self.done_hint,
                self.total,
                self.tokens,
                self.tokens as f64 / secs
            );
        }
    }

    fn finish(&self, started: Instant) {
        if self.enabled {
            let secs = started.elapsed().as_secs_f64().max(1e-9);
            let _ = writeln!(
                std::io::stderr(),
                "\rdone: {} answers, {} tokens in {:.1} s ({:.1} tokens/s){}",
                self.total,
                self.tokens,
                secs,
                self.tokens as f64 / secs,
                " ".repeat(20)
            );
        }
    }
}

/// Token ids from the synthetic model: `--count` documents after a one-token prompt.
fn synthetic(
    args: &GenerateArgs,
    profile: &Profile,
    green: Option<GreenList>,
    sampling: Sampling,
    out: &mut impl Write,
) -> Result<()> {
    /// Every synthetic document starts from this one-token prompt.
    const PROMPT: [u32; 1] = [0];
    #[derive(Debug, Serialize)]
    struct Generated<'a> {
        id: u64,
        watermarked: bool,
        prompt_tokens: &'a [u32],
        tokens: &'a [u32],
    }
    if !args.sharpness.is_finite() {
        bail!("sharpness {} must be finite", args.sharpness);
    }
    let lm = SyntheticLm::new(profile.vocab_size, args.sharpness, args.seed);
    let source = PerContext(|context: &[u32]| lm.logits(context));
    let limits = Limits {
        max_tokens: args.max_tokens as usize,
        min_tokens: 0,
        batch_size: args.batch_size as usize,
    };
    // A batch at a time, so that documents are written as they come and memory stays bounded.
    let mut ids = 0..args.count;
    loop {
        let batch: Vec<u64> = ids.by_ref().take(limits.batch_size).collect();
        if batch.is_empty() {
            break;
        }
        let jobs: Vec<Job> = batch
            .iter()
            .map(|&id| Job {
                prompt_ids: PROMPT.to_vec(),
                green: green.clone(),
                sampling,
                seed: args.seed.wrapping_add(id),
            })
            .collect();
        // The synthetic model has no stop token: every document runs to `max_tokens`.
        let outputs = tracemark_model::generate::run(&source, &[], &jobs, limits, ())?;
        for (&id, output) in batch.iter().zip(&outputs) {
            let doc = Generated {
                id,
                watermarked: green.is_some(),
                prompt_tokens: &PROMPT,
                tokens: &output.tokens,
            };
            // Serialised first, so that a closed pipe surfaces as an io::Error, not a serde one.
            let line = serde_json::to_string(&doc)?;
            writeln!(out, "{line}")?;
        }
    }
    Ok(())
}
