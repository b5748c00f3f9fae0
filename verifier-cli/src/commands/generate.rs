//! `tracemark generate`: watermarked (or plain) answers from the default model (or another GGUF
//! file, or a Hugging Face checkpoint), streamed as text or written as JSON lines that `detect`
//! reads back; or token ids from the synthetic model.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{anyhow, bail, Result};
use clap::Args;
use serde::Serialize;
use tracemark_model::generate::{
    AnswerSink, Completion, End, GenerateOptions, Generator, Job, Limits, LogitsSource, PerContext,
};
use tracemark_model::llama::{set_threads, LoadOptions};
use watermark_core::GreenList;
use watermark_core::Profile;
use watermark_core::Sampling;
use watermark_core::SyntheticLm;
use watermark_core::TextTokenizer;

use crate::input::{Input, InputError, IoWording, Prompt, Record};
use crate::progress::GenerateProgress;

/// Arguments of `tracemark generate`.
#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Profile written by `tracemark keygen`.
    #[arg(long, value_name = "FILE")]
    pub profile: PathBuf,
    /// The user prompt to answer (the model's chat template is applied).
    #[arg(long, value_name = "TEXT", conflicts_with_all = ["prompts", "synthetic"])]
    pub prompt: Option<String>,
    /// Answer every prompt of a JSONL file (objects with a `prompt` string and optionally an
    /// `id`): one JSON object out per prompt, batched, with progress on stderr.
    #[arg(long, value_name = "FILE", conflicts_with = "synthetic")]
    pub prompts: Option<PathBuf>,
    /// GGUF model file, or a Hugging Face checkpoint directory (llama or Qwen2) (default: the
    /// cached SmolLM2-135M-Instruct; `make model` fetches it). A model whose tokenizer is not
    /// the profile's answers only with --no-watermark, in text (no token ids in --json).
    #[arg(long, value_name = "PATH")]
    pub model: Option<PathBuf>,
    /// Prompts run through the model together.
    #[arg(long, value_name = "B", default_value_t = 8,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub batch_size: u32,
    /// Print one JSON object per answer: prompt, completion, and their token ids.
    #[arg(long)]
    pub json: bool,
    /// Generate token ids from the built-in synthetic model instead (no weights needed).
    #[arg(long)]
    pub synthetic: bool,
    /// Number of documents to generate (synthetic model).
    #[arg(long, value_name = "C", default_value_t = 1, requires = "synthetic")]
    pub count: u64,
    /// Most tokens to generate per answer.
    #[arg(long, value_name = "N", default_value_t = 200,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_tokens: u32,
    /// Sampling temperature; 0 picks the most likely token.
    #[arg(long, value_name = "T", default_value_t = 1.0)]
    pub temperature: f32,
    /// Sample only among the K most likely tokens.
    #[arg(long, value_name = "K")]
    pub top_k: Option<usize>,
    /// Sample only among the most likely tokens whose probabilities add up to P, in (0, 1].
    #[arg(long, value_name = "P")]
    pub top_p: Option<f32>,
    /// Random seed of the sampler; answer i samples with seed + i.
    #[arg(long, value_name = "S", default_value_t = 0)]
    pub seed: u64,
    /// Generate without the watermark, for comparison.
    #[arg(long)]
    pub no_watermark: bool,
    /// Synthetic model's logit scale: larger means lower entropy and a weaker watermark.
    #[arg(long, value_name = "X", default_value_t = 1.0, requires = "synthetic")]
    pub sharpness: f32,
    /// CPU threads for the model (default: one per core; on busy machines 1 can be faster).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Draw for this API account (1 to 128 bytes): the answers carry the master watermark and
    /// the account's signal (identical prompts then give identical answers).
    #[arg(long, value_name = "ID", conflicts_with = "no_watermark")]
    pub account: Option<String>,
}

pub fn run(args: &GenerateArgs, out: &mut impl Write) -> Result<()> {
    let profile = Profile::load(&args.profile)?;
    let green = if args.no_watermark {
        None
    } else {
        Some(profile.green_list()?)
    };
    let green = match (&args.account, green) {
        (Some(id), Some(g)) => Some(super::accounts::for_account(g, id)?),
        (_, green) => green,
    };
    let sampling = Sampling::new(args.temperature, args.top_k, args.top_p)?;
    if args.synthetic {
        return synthetic(args, &profile, green, sampling, out);
    }
    let prompts = match (&args.prompt, &args.prompts) {
        // The same rule as a --prompts line: an empty prompt is refused.
        (Some(p), None) if p.trim().is_empty() => bail!("--prompt: the prompt is empty"),
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
    if model_path.is_dir() {
        let generator = Generator::load_checkpoint(&model_path)?;
        answer_all(&generator, args, &profile, green, sampling, &prompts, out)
    } else {
        let generator = Generator::load(&model_path, &LoadOptions::default())?;
        answer_all(&generator, args, &profile, green, sampling, &prompts, out)
    }
}

/// Answers every prompt with `generator`, writing each answer as its batch ends.
fn answer_all<M: LogitsSource>(
    generator: &Generator<M>,
    args: &GenerateArgs,
    profile: &Profile,
    green: Option<GreenList>,
    sampling: Sampling,
    prompts: &[Prompt],
    out: &mut impl Write,
) -> Result<()> {
    // The watermark is only meaningful with the tokenizer the profile is bound to; plain answers
    // of a model with another tokenizer go out as text, for detect and audit to re-tokenize.
    let fingerprint = generator.tokenizer().fingerprint();
    let same_tokenizer = profile.check_tokenizer(fingerprint).is_ok();
    if green.is_some() && !same_tokenizer {
        profile.check_tokenizer(fingerprint)?;
    }
    let ids = same_tokenizer || profile.tokenizer.is_none();
    if !ids {
        eprintln!(
            "note: the model's tokenizer ({fingerprint}) is not the profile's: answers are \
             written as text only, for detect and audit to re-tokenize"
        );
    }
    let options = GenerateOptions {
        max_tokens: args.max_tokens as usize,
        min_tokens: 0,
        sampling,
        seed: args.seed,
        batch_size: args.batch_size as usize,
    };
    let texts: Vec<String> = prompts.iter().map(|p| p.prompt.clone()).collect();
    let started = Instant::now();
    let mut writer = AnswerWriter {
        out,
        tokenizer: generator.tokenizer(),
        prompts,
        json: args.json,
        ids,
        watermarked: green.is_some(),
        stream: !args.json && texts.len() == 1,
        streamed: Vec::new(),
        printed: 0,
        stream_error: None,
        progress: GenerateProgress::new(texts.len(), args.prompts.is_some()),
        written: 0,
        cut: 0,
    };
    let result = generator.generate_into(&texts, green.as_ref(), &options, &mut writer);
    writer.progress.finish(started);
    result?;
    if writer.cut > 0 {
        let context = generator.model().max_context().unwrap_or(0);
        eprintln!(
            "note: {} answer(s) stopped where prompt and answer filled the model's context \
             ({context} tokens): stop_reason \"context_full\"",
            writer.cut
        );
    }
    Ok(())
}

/// Writes each answer as soon as its batch is done, so that an error in a later batch (or an
/// interrupted run) loses nothing already answered; a single text answer is streamed token by
/// token.
struct AnswerWriter<'a, W: Write> {
    out: &'a mut W,
    tokenizer: &'a TextTokenizer,
    prompts: &'a [Prompt],
    json: bool,
    /// Write token ids (the model's tokenizer is the profile's).
    ids: bool,
    watermarked: bool,
    /// Print the one answer as it grows.
    stream: bool,
    streamed: Vec<u32>,
    /// Bytes of the streamed answer already printed.
    printed: usize,
    stream_error: Option<std::io::Error>,
    progress: GenerateProgress,
    /// Answers written.
    written: usize,
    /// Answers that stopped at the model's context length.
    cut: usize,
}

impl<W: Write> AnswerSink for AnswerWriter<'_, W> {
    type Error = anyhow::Error;

    fn token(&mut self, answer: usize, token: u32) {
        self.progress.token();
        self.progress.done_hint = self.progress.done_hint.max(answer + 1);
        if !self.stream || self.stream_error.is_some() {
            return;
        }
        self.streamed.push(token);
        // Print what decodes to whole characters so far (byte-level BPE can split one).
        if let Ok(text) = self.tokenizer.decode(&self.streamed) {
            if !text.ends_with('\u{fffd}') && text.len() > self.printed {
                let printed = write!(self.out, "{}", &text[self.printed..]);
                if let Err(e) = printed.and_then(|()| self.out.flush()) {
                    self.stream_error = Some(e);
                }
                self.printed = text.len();
            }
        }
    }

    fn answer(&mut self, completion: Completion) -> Result<()> {
        let prompt = &self.prompts[self.written];
        self.written += 1;
        if completion.end == End::ContextFull {
            self.cut += 1;
        }
        if self.stream {
            if let Some(e) = self.stream_error.take() {
                return Err(e.into());
            }
            if completion.completion.len() > self.printed {
                write!(self.out, "{}", &completion.completion[self.printed..])?;
            }
            writeln!(self.out)?;
        } else if self.json {
            let mut answer = Answer::new(prompt, &completion, self.watermarked);
            if !self.ids {
                answer.prompt_tokens = None;
                answer.tokens = None;
            }
            writeln!(self.out, "{}", serde_json::to_string(&answer)?)?;
        } else {
            writeln!(
                self.out,
                "### {}\n{}\n",
                prompt.prompt, completion.completion
            )?;
        }
        self.out.flush()?;
        Ok(())
    }
}

/// Every prompt of a `--prompts` file, in order. The whole file must be UTF-8 before any line
/// is judged, so an invalid byte anywhere is reported first, for the whole file.
fn read_prompts(path: &Path) -> Result<Vec<Prompt>> {
    let name = path.display();
    let mut prompts = Vec::new();
    let mut first_refusal = None;
    for line in Input::file(path, IoWording::CannotRead)?.lines()? {
        let line = match line {
            Ok(line) => line,
            Err(InputError::NotUtf8 { .. }) => bail!("{name}: not valid UTF-8 text"),
            Err(e) => return Err(e.into()),
        };
        if first_refusal.is_none() {
            match read_prompt(&line.text) {
                Ok(prompt) => prompts.push(prompt),
                Err(why) => first_refusal = Some(anyhow!("{}: {why}", line.at)),
            }
        }
    }
    if let Some(refusal) = first_refusal {
        return Err(refusal);
    }
    if prompts.is_empty() {
        bail!("{name}: no prompts");
    }
    Ok(prompts)
}

/// One line's prompt, or why it has none.
fn read_prompt(line: &str) -> Result<Prompt, String> {
    let prompt = Record::parse_prompt(line)
        .map_err(|e| format!("malformed JSONL line (need a `prompt` string): {e}"))?;
    if prompt.prompt.trim().is_empty() {
        return Err("the prompt is empty".to_string());
    }
    Ok(prompt)
}

/// One `--json` output line; `detect` scores `tokens` after `prompt_tokens`.
#[derive(Debug, Serialize)]
struct Answer<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a serde_json::Value>,
    prompt: &'a str,
    completion: &'a str,
    /// Left out when the model's tokenizer is not the profile's.
    #[serde(skip_serializing_if = "Option::is_none")]
    prompt_tokens: Option<&'a [u32]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tokens: Option<&'a [u32]>,
    watermarked: bool,
    stopped: bool,
    /// `stop_token`, `max_tokens` or `context_full`.
    stop_reason: &'static str,
}

impl<'a> Answer<'a> {
    fn new(prompt: &'a Prompt, c: &'a Completion, watermarked: bool) -> Self {
        Answer {
            id: prompt.id.as_ref(),
            prompt: &prompt.prompt,
            completion: &c.completion,
            prompt_tokens: Some(&c.prompt_ids),
            tokens: Some(&c.completion_ids),
            watermarked,
            stopped: c.stopped,
            stop_reason: c.end.as_str(),
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
