//! What every section of the report measures: the grid of watermark configurations with their
//! green lists, and the texts generated once for all of them.

use std::collections::BTreeMap;
use std::time::Instant;

use watermark_core::{GreenList, SecretKey};

use super::config::{EvalConfig, SamplingKind, WmConfig};
use super::generation::{self, Generated, Job, Limits};
use super::run::EvalInputs;
use super::Result;
use crate::keys::Experiment;

/// The generation key, the configurations with their green lists, and the prompts' token ids.
#[derive(Debug)]
pub(super) struct Grid {
    /// The key of every watermarked text (key 0 of the run's seed).
    pub key: SecretKey,
    /// The configurations, in report order.
    pub configs: Vec<WmConfig>,
    /// `greens[i]` is the green list of `configs[i]`.
    pub greens: Vec<GreenList>,
    /// The chat-formatted prompts, one per text.
    pub prompt_ids: Vec<Vec<u32>>,
    /// The model's vocabulary size.
    pub vocab: u32,
}

impl Grid {
    /// The grid of `cfg` on the first `cfg.prompts` prompts of `inputs`.
    pub fn new(cfg: &EvalConfig, inputs: &EvalInputs<'_>) -> Result<Self> {
        let generator = inputs.generator;
        let vocab = generator.model().config().vocab_size as u32;
        let key = Experiment::Eval.key(cfg.seed, 0);
        let configs = cfg.configs();
        let greens: Vec<GreenList> = configs
            .iter()
            .map(|c| GreenList::new(&key, c.scheme.scheme(c.gamma, c.delta), vocab))
            .collect::<Result<_, _>>()?;
        let prompts = &inputs.prompts[..cfg.prompts];
        let prompt_ids: Vec<Vec<u32>> = prompts
            .iter()
            .map(|p| generator.encode_chat(&p.prompt))
            .collect::<Result<_, _>>()?;
        Ok(Grid {
            key,
            configs,
            greens,
            prompt_ids,
            vocab,
        })
    }
}

/// The generated texts, one per prompt in each set.
#[derive(Debug)]
pub(super) struct Texts {
    /// Plain texts, per sampling label.
    pub plain: BTreeMap<&'static str, Vec<Generated>>,
    /// `wm[i]`: the watermarked texts of configuration `i`.
    pub wm: Vec<Vec<Generated>>,
}

impl Texts {
    /// The plain texts drawn with `sampling`.
    pub fn plain_of(&self, sampling: SamplingKind) -> &[Generated] {
        &self.plain[sampling.label()]
    }
}

/// Generates the plain texts of every sampling, then the watermarked texts of every
/// configuration, all at `cfg.max_tokens` tokens (the sections truncate them).
pub(super) fn generate(
    cfg: &EvalConfig,
    inputs: &EvalInputs<'_>,
    grid: &Grid,
    log: &mut impl FnMut(&str),
) -> Result<Texts> {
    let (configs, greens, prompt_ids) = (&grid.configs, &grid.greens, &grid.prompt_ids);
    // ---- Generation: plain texts per sampling, then every configuration.
    let t0 = Instant::now();
    let mut jobs = Vec::new();
    for &s in &cfg.samplings {
        for (i, ids) in prompt_ids.iter().enumerate() {
            jobs.push(Job {
                prompt_ids: ids.clone(),
                green: None,
                sampling: s.sampling(),
                seed: cfg.seed.wrapping_mul(1000).wrapping_add(i as u64),
            });
        }
    }
    for (c, g) in configs.iter().zip(greens) {
        for (i, ids) in prompt_ids.iter().enumerate() {
            jobs.push(Job {
                prompt_ids: ids.clone(),
                green: Some(g.clone()),
                sampling: c.sampling.sampling(),
                // The same seed as the plain text of the prompt: common random numbers.
                seed: cfg.seed.wrapping_mul(1000).wrapping_add(i as u64),
            });
        }
    }
    log(&format!(
        "generating {} texts of {} tokens ({} configurations + plain, batch {})",
        jobs.len(),
        cfg.max_tokens,
        configs.len(),
        cfg.batch_size
    ));
    let lengths = Limits {
        max_tokens: cfg.max_tokens,
        min_tokens: cfg.max_tokens,
        batch_size: cfg.batch_size,
    };
    let gen_start = Instant::now();
    let mut generated = generation::generate(inputs.generator, &jobs, lengths, |d, t| {
        let secs = gen_start.elapsed().as_secs_f64();
        log(&format!("  {d}/{t} texts, {secs:.0} s"));
    })?
    .into_iter();
    let n = cfg.prompts;
    let mut plain: BTreeMap<&'static str, Vec<Generated>> = BTreeMap::new();
    for &s in &cfg.samplings {
        plain.insert(s.label(), generated.by_ref().take(n).collect());
    }
    let wm: Vec<Vec<Generated>> = configs
        .iter()
        .map(|_| generated.by_ref().take(n).collect())
        .collect();
    let gen_tokens: usize = jobs.len() * cfg.max_tokens;
    log(&format!(
        "generated {gen_tokens} tokens in {:.0} s",
        t0.elapsed().as_secs_f64()
    ));
    Ok(Texts { plain, wm })
}
