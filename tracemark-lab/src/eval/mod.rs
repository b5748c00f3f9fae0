//! The evaluation report (`make eval`): power, the Theorem 4.2 check, text quality, false
//! positives on human text and robustness, measured on the default model and written as
//! Markdown tables and PNG plots.
//!
//! Every number in the report comes from the run that writes it. Generations are made once per
//! configuration at the longest length and truncated for the shorter ones; the edits, the
//! copy-paste and the paraphrase reuse them, so one model pass serves every section.

pub mod attacks;
pub mod corpus;
pub mod generation;
pub mod report;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use tracemark_model::generate::Generator;
use tracemark_plot::{Chart, ReferenceLine, Series};
use watermark_core::dedup::TupleSet;
use watermark_core::detect::{detect, detect_in_corpus, DetectOptions, Detection, Score};
use watermark_core::sampler::Sampling;
use watermark_core::stats::{clopper_pearson, expected_green_fraction_lower_bound};
use watermark_core::{GreenList, Scheme, SecretKey, Seeding};

use attacks::{apply_edit, auc, paste, Edit};
use corpus::HumanDoc;
use generation::{Generated, Job, Limits};
use report::{frac, num, pct, table};

/// What the evaluation can fail on.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The model or its tokenizer failed.
    #[error(transparent)]
    Model(#[from] tracemark_model::Error),
    /// The watermark core refused something.
    #[error(transparent)]
    Core(#[from] watermark_core::Error),
    /// A plot could not be drawn or written.
    #[error(transparent)]
    Plot(#[from] tracemark_plot::PlotError),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The human-text corpus is unreadable or empty.
    #[error("{path}: bad corpus: {reason}")]
    Corpus { path: PathBuf, reason: String },
    /// The prompts file is unreadable or empty.
    #[error("{path}: bad prompts file: {reason}")]
    Prompts { path: PathBuf, reason: String },
    /// The settings cannot produce a report.
    #[error("invalid evaluation setting: {0}")]
    Config(String),
}

/// The evaluation's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Preset sizes: `Tiny` for the test that keeps the harness alive, `Default` for `make eval`
/// (minutes on 2 cores), `Large` for tighter intervals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Size {
    Tiny,
    Default,
    Large,
}

impl std::str::FromStr for Size {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "tiny" => Ok(Size::Tiny),
            "default" => Ok(Size::Default),
            "large" => Ok(Size::Large),
            _ => Err(Error::Config(format!(
                "size {s:?} is not one of tiny, default, large"
            ))),
        }
    }
}

/// How the green list is seeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SchemeKind {
    /// The previous token (Kirchenbauer et al.'s LeftHash, h = 1).
    Window1,
    /// Self-seeded with width 4 (the spec's choice against scrubbing and stealing).
    SelfSeeded4,
}

impl SchemeKind {
    pub fn label(self) -> &'static str {
        match self {
            SchemeKind::Window1 => "window 1",
            SchemeKind::SelfSeeded4 => "self-seeded h=4",
        }
    }

    fn scheme(self, gamma: f64, delta: f32) -> Scheme {
        let (seeding, width) = match self {
            SchemeKind::Window1 => (Seeding::Previous, 1),
            SchemeKind::SelfSeeded4 => (Seeding::SelfSeeded, 4),
        };
        Scheme {
            seeding,
            width,
            gamma,
            delta,
        }
    }
}

/// How tokens are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SamplingKind {
    /// Softmax at temperature 1, no truncation.
    Multinomial,
    Greedy,
}

impl SamplingKind {
    pub fn label(self) -> &'static str {
        match self {
            SamplingKind::Multinomial => "multinomial",
            SamplingKind::Greedy => "greedy",
        }
    }

    fn sampling(self) -> Sampling {
        match self {
            SamplingKind::Multinomial => Sampling::Random {
                temperature: 1.0,
                top_k: None,
                top_p: None,
            },
            SamplingKind::Greedy => Sampling::Greedy,
        }
    }
}

/// One watermark configuration of the power grid.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct WmConfig {
    pub gamma: f64,
    pub delta: f32,
    pub scheme: SchemeKind,
    pub sampling: SamplingKind,
}

impl WmConfig {
    pub fn label(&self) -> String {
        format!(
            "γ={} δ={} {} {}",
            self.gamma,
            self.delta,
            self.scheme.label(),
            self.sampling.label()
        )
    }
}

/// Everything that sets the size of a run.
#[derive(Debug, Clone, Serialize)]
pub struct EvalConfig {
    pub size: Size,
    /// Prompts (texts) per configuration.
    pub prompts: usize,
    /// Tokens generated per text; the longest length evaluated.
    pub max_tokens: usize,
    /// Lengths T at which power is measured (texts truncated).
    pub lengths: Vec<usize>,
    pub gammas: Vec<f64>,
    pub deltas: Vec<f32>,
    pub schemes: Vec<SchemeKind>,
    pub samplings: Vec<SamplingKind>,
    /// Human documents per genre for the false-positive check.
    pub fpr_docs_per_genre: usize,
    /// Tokens per human document.
    pub fpr_doc_tokens: usize,
    /// Keys the human documents are tested against (per scheme).
    pub fpr_keys: usize,
    /// Nominal false-positive rates checked on human text.
    pub fpr_alphas: Vec<f64>,
    /// Token edit rates.
    pub edit_rates: Vec<f64>,
    /// Copy-paste settings: (total tokens, watermarked tokens pasted in).
    pub paste: Vec<(usize, usize)>,
    /// Tokens of each paraphrase at most.
    pub paraphrase_tokens: usize,
    /// Rows per forward pass.
    pub batch_size: usize,
    /// Seed of the keys, samplers and edits.
    pub seed: u64,
}

impl EvalConfig {
    pub fn for_size(size: Size) -> Self {
        let full = EvalConfig {
            size,
            prompts: 10,
            max_tokens: 200,
            lengths: vec![25, 50, 100, 200],
            gammas: vec![0.25, 0.5],
            deltas: vec![1.0, 2.0, 4.0],
            schemes: vec![SchemeKind::Window1, SchemeKind::SelfSeeded4],
            samplings: vec![SamplingKind::Multinomial, SamplingKind::Greedy],
            fpr_docs_per_genre: 500,
            fpr_doc_tokens: 200,
            fpr_keys: 4,
            fpr_alphas: vec![1e-1, 1e-2, 1e-3, 1e-4],
            edit_rates: vec![0.05, 0.10, 0.20, 0.30],
            paste: vec![(200, 20), (600, 60), (600, 200), (1000, 200), (2000, 200)],
            paraphrase_tokens: 200,
            batch_size: 8,
            seed: 2024,
        };
        match size {
            Size::Default => full,
            Size::Large => EvalConfig {
                prompts: 48,
                fpr_docs_per_genre: 2000,
                fpr_keys: 10,
                fpr_alphas: vec![1e-1, 1e-2, 1e-3, 1e-4, 1e-5],
                ..full
            },
            Size::Tiny => EvalConfig {
                prompts: 2,
                max_tokens: 24,
                lengths: vec![12, 24],
                gammas: vec![0.25],
                deltas: vec![2.0],
                schemes: vec![SchemeKind::Window1],
                samplings: vec![SamplingKind::Multinomial],
                fpr_docs_per_genre: 10,
                fpr_doc_tokens: 50,
                fpr_keys: 1,
                fpr_alphas: vec![1e-1, 1e-2],
                edit_rates: vec![0.1],
                paste: vec![(60, 20)],
                paraphrase_tokens: 12,
                batch_size: 8,
                ..full
            },
        }
    }

    /// The power grid, in report order.
    pub fn configs(&self) -> Vec<WmConfig> {
        let mut out = Vec::new();
        for &sampling in &self.samplings {
            for &scheme in &self.schemes {
                for &gamma in &self.gammas {
                    for &delta in &self.deltas {
                        out.push(WmConfig {
                            gamma,
                            delta,
                            scheme,
                            sampling,
                        });
                    }
                }
            }
        }
        out
    }

    fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(Error::Config(m.to_string()));
        if self.prompts == 0 || self.max_tokens == 0 {
            return bad("prompts and max_tokens must be at least 1");
        }
        if self.lengths.iter().any(|&t| t == 0 || t > self.max_tokens) {
            return bad("every length must lie in 1..=max_tokens");
        }
        if self.configs().is_empty() {
            return bad("the grid is empty");
        }
        if self
            .paste
            .iter()
            .any(|&(t, p)| p == 0 || p >= t || p > self.max_tokens)
        {
            return bad("each paste needs 0 < passage < total and passage <= max_tokens");
        }
        if self.fpr_alphas.iter().any(|a| !(*a > 0.0 && *a < 1.0)) {
            return bad("false-positive rates must lie in (0, 1)");
        }
        Ok(())
    }
}

/// One prompt of the prompts file.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct EvalPrompt {
    pub kind: String,
    pub prompt: String,
}

/// The prompts shipped with the crate (varied kinds: explanations, stories, how-tos, lists,
/// opinions, letters, descriptions, comparisons).
pub fn default_prompts_path() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/data/eval-prompts.jsonl"
    ))
}

/// Reads a JSONL file of `{"kind", "prompt"}` objects.
pub fn read_prompts(path: &Path) -> Result<Vec<EvalPrompt>> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let p: EvalPrompt = serde_json::from_str(line).map_err(|e| Error::Prompts {
            path: path.to_path_buf(),
            reason: format!("line {}: {e}", n + 1),
        })?;
        out.push(p);
    }
    if out.is_empty() {
        return Err(Error::Prompts {
            path: path.to_path_buf(),
            reason: "no prompts".into(),
        });
    }
    Ok(out)
}

/// What a run works on.
#[derive(Debug)]
pub struct EvalInputs<'a> {
    pub generator: &'a Generator,
    pub prompts: Vec<EvalPrompt>,
    pub corpus: Vec<HumanDoc>,
    /// How the model was loaded, for the report ("exact Q8_0 kernels", "fast_matmul").
    pub model_note: String,
}

/// The key of the evaluation's generations (index 0) and of the false-positive check (1…),
/// derived from the seed so that a run can be repeated exactly.
pub fn eval_key(seed: u64, index: u64) -> SecretKey {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x6576_616c_6b65_7900 ^ index);
    let mut bytes = [0u8; 32];
    rng.fill_bytes(&mut bytes);
    SecretKey::from_bytes(bytes)
}

/// One line of the power table.
#[derive(Debug, Clone, Serialize)]
pub struct PowerRow {
    pub config: WmConfig,
    pub length: usize,
    pub texts: usize,
    pub tpr_1e3: f64,
    pub tpr_1e5: f64,
    pub z_over_4: f64,
    pub mean_z: f64,
    /// Plain texts of the same sampling flagged at 1e-3 with this configuration's key.
    pub plain_flagged_1e3: f64,
}

/// One line of the Theorem 4.2 check.
#[derive(Debug, Clone, Serialize)]
pub struct TheoryRow {
    pub config: WmConfig,
    pub mean_spike_entropy: f64,
    pub bound: f64,
    pub measured: f64,
    pub measured_stderr: f64,
}

/// One line of the quality table.
#[derive(Debug, Clone, Serialize)]
pub struct QualityRow {
    /// `None` for the plain texts.
    pub config: Option<WmConfig>,
    pub sampling: SamplingKind,
    pub mean_ppl: f64,
    pub median_ppl: f64,
    pub mean_z: f64,
}

/// False positives on human text at one nominal rate.
#[derive(Debug, Clone, Serialize)]
pub struct FprRow {
    pub genre: String,
    pub alpha: f64,
    pub tests: usize,
    pub flagged: usize,
    pub ci95: (f64, f64),
}

/// Detection after one token edit.
#[derive(Debug, Clone, Serialize)]
pub struct EditRow {
    pub scheme: SchemeKind,
    pub edit: String,
    pub rate: f64,
    pub tpr_1e3: f64,
    pub z_over_4: f64,
    pub mean_z: f64,
}

/// Copy-paste: AUCs and detection rates, plain and windowed.
#[derive(Debug, Clone, Serialize)]
pub struct PasteRow {
    pub total: usize,
    pub passage: usize,
    pub texts: usize,
    pub auc_plain_z: f64,
    pub auc_windowed: f64,
    pub tpr_plain_1e3: f64,
    pub tpr_windowed_1e3: f64,
    pub controls_flagged_windowed_1e3: f64,
}

/// Detection after a paraphrase by the model itself.
#[derive(Debug, Clone, Serialize)]
pub struct ParaphraseRow {
    pub texts: usize,
    pub mean_tokens: f64,
    pub tpr_1e3: f64,
    pub z_over_4: f64,
    pub mean_z: f64,
    pub mean_z_before: f64,
    pub auc: f64,
}

/// Every number of a run (also written as `results.json`).
#[derive(Debug, Clone, Serialize)]
pub struct Results {
    pub config: EvalConfig,
    pub model_note: String,
    pub key_fingerprint: String,
    pub power: Vec<PowerRow>,
    pub theory: Vec<TheoryRow>,
    pub quality: Vec<QualityRow>,
    pub fpr: Vec<FprRow>,
    pub edits: Vec<EditRow>,
    pub paste: Vec<PasteRow>,
    pub paraphrase: Option<ParaphraseRow>,
    /// Seconds per section.
    pub timings: Vec<(String, f64)>,
}

/// A finished run: where the report is, and its numbers.
#[derive(Debug)]
pub struct Outcome {
    pub report: PathBuf,
    pub results: Results,
}

const FPR_1E3: f64 = 1e-3;
const FPR_1E5: f64 = 1e-5;
const PLOT_W: u32 = 900;
const PLOT_H: u32 = 540;

/// Detection statistics of `tokens` after `prompt`; `None` for an empty text.
fn score(green: &GreenList, prompt: &[u32], tokens: &[u32]) -> Result<Option<Score>> {
    if tokens.is_empty() {
        return Ok(None);
    }
    Ok(Some(
        detect(green, prompt, tokens, &DetectOptions::default())?.score,
    ))
}

fn rate(hits: impl Iterator<Item = bool>) -> f64 {
    let (mut k, mut n) = (0usize, 0usize);
    for h in hits {
        k += usize::from(h);
        n += 1;
    }
    if n == 0 {
        f64::NAN
    } else {
        k as f64 / n as f64
    }
}

fn mean(xs: impl Iterator<Item = f64>) -> f64 {
    let (mut s, mut n) = (0.0, 0usize);
    for x in xs.filter(|x| x.is_finite()) {
        s += x;
        n += 1;
    }
    if n == 0 {
        f64::NAN
    } else {
        s / n as f64
    }
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.retain(|x| x.is_finite());
    if xs.is_empty() {
        return f64::NAN;
    }
    xs.sort_by(f64::total_cmp);
    let m = xs.len() / 2;
    if xs.len() % 2 == 1 {
        xs[m]
    } else {
        0.5 * (xs[m - 1] + xs[m])
    }
}

/// z of a possibly missing score (an empty text counts as no evidence, z = 0).
fn z_of(s: &Option<Score>) -> f64 {
    s.map_or(0.0, |s| s.z_score)
}

fn flagged(s: &Option<Score>, fpr: f64) -> bool {
    s.is_some_and(|s| s.is_significant(fpr))
}

/// Runs the whole evaluation and writes `report.md`, `results.json` and the PNG plots into
/// `out_dir`; `log` receives progress lines.
pub fn run(
    cfg: &EvalConfig,
    inputs: &EvalInputs<'_>,
    out_dir: &Path,
    mut log: impl FnMut(&str),
) -> Result<Outcome> {
    cfg.validate()?;
    if inputs.prompts.len() < cfg.prompts {
        return Err(Error::Config(format!(
            "{} prompts asked for, the prompts file has {}",
            cfg.prompts,
            inputs.prompts.len()
        )));
    }
    std::fs::create_dir_all(out_dir).map_err(|source| Error::Io {
        path: out_dir.to_path_buf(),
        source,
    })?;
    let started = Instant::now();
    let mut timings = Vec::new();
    let generator = inputs.generator;
    let model = generator.model();
    let tokenizer = generator.tokenizer();
    let vocab = model.config().vocab_size as u32;
    let key = eval_key(cfg.seed, 0);
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
    for (c, g) in configs.iter().zip(&greens) {
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
    let mut generated = generation::generate(generator, &jobs, lengths, |d, t| {
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
    timings.push(("generation".to_string(), t0.elapsed().as_secs_f64()));
    log(&format!(
        "generated {gen_tokens} tokens in {:.0} s",
        t0.elapsed().as_secs_f64()
    ));

    let mut md = String::new();
    let _ = writeln!(md, "# tracemark evaluation report\n");
    let _ = writeln!(
        md,
        "Size `{:?}`; model: the default SmolLM2-135M-Instruct ({}); {} prompts per configuration \
         (from `tracemark-lab/data/eval-prompts.jsonl`), {} tokens each (stop tokens masked until \
         then); generation key {} (fingerprint). Every number below was computed by this run.\n",
        cfg.size,
        inputs.model_note,
        n,
        cfg.max_tokens,
        key.fingerprint()
    );

    // ---- Power.
    let t0 = Instant::now();
    let mut power = Vec::new();
    for ((c, g), texts) in configs.iter().zip(&greens).zip(&wm) {
        let plain_texts = &plain[c.sampling.label()];
        for &t in &cfg.lengths {
            let scores: Vec<Option<Score>> = prompt_ids
                .iter()
                .zip(texts)
                .map(|(p, x)| score(g, p, &x.tokens[..t.min(x.tokens.len())]))
                .collect::<Result<_>>()?;
            let plain_scores: Vec<Option<Score>> = prompt_ids
                .iter()
                .zip(plain_texts)
                .map(|(p, x)| score(g, p, &x.tokens[..t.min(x.tokens.len())]))
                .collect::<Result<_>>()?;
            power.push(PowerRow {
                config: *c,
                length: t,
                texts: scores.len(),
                tpr_1e3: rate(scores.iter().map(|s| flagged(s, FPR_1E3))),
                tpr_1e5: rate(scores.iter().map(|s| flagged(s, FPR_1E5))),
                z_over_4: rate(scores.iter().map(|s| z_of(s) > 4.0)),
                mean_z: mean(scores.iter().map(z_of)),
                plain_flagged_1e3: rate(plain_scores.iter().map(|s| flagged(s, FPR_1E3))),
            });
        }
    }
    write_power(&mut md, cfg, &power, out_dir)?;
    timings.push(("power".to_string(), t0.elapsed().as_secs_f64()));

    // ---- Theory: green fraction of every generated token (no deduplication: the theorem
    // counts tokens) against the bound from the spike entropy of the same steps.
    let mut theory = Vec::new();
    for ((c, g), texts) in configs.iter().zip(&greens).zip(&wm) {
        let mut fractions = Vec::new();
        for (p, x) in prompt_ids.iter().zip(texts) {
            let mut full = p.clone();
            let (mut green_n, mut total) = (0usize, 0usize);
            for &tok in &x.tokens {
                if let Some(is) = g.is_green(&full, tok)? {
                    green_n += usize::from(is);
                    total += 1;
                }
                full.push(tok);
            }
            if total > 0 {
                fractions.push(green_n as f64 / total as f64);
            }
        }
        let spike = mean(texts.iter().flat_map(|x| x.spike_entropy.iter().copied()));
        let measured = mean(fractions.iter().copied());
        let sd = (fractions
            .iter()
            .map(|f| (f - measured).powi(2))
            .sum::<f64>()
            / (fractions.len().max(2) - 1) as f64)
            .sqrt();
        theory.push(TheoryRow {
            config: *c,
            mean_spike_entropy: spike,
            bound: expected_green_fraction_lower_bound(
                g.scheme().effective_gamma(),
                f64::from(c.delta),
                spike,
            ),
            measured,
            measured_stderr: sd / (fractions.len().max(1) as f64).sqrt(),
        });
    }
    write_theory(&mut md, &theory, out_dir)?;

    // ---- Quality.
    let mut quality = Vec::new();
    for &s in &cfg.samplings {
        let texts = &plain[s.label()];
        quality.push(QualityRow {
            config: None,
            sampling: s,
            mean_ppl: mean(texts.iter().map(Generated::perplexity)),
            median_ppl: median(texts.iter().map(Generated::perplexity).collect()),
            mean_z: f64::NAN,
        });
        for (c, texts) in configs.iter().zip(&wm).filter(|(c, _)| c.sampling == s) {
            let z = power
                .iter()
                .find(|r| r.config == *c && r.length == cfg.max_tokens)
                .map_or(f64::NAN, |r| r.mean_z);
            quality.push(QualityRow {
                config: Some(*c),
                sampling: s,
                mean_ppl: mean(texts.iter().map(Generated::perplexity)),
                median_ppl: median(texts.iter().map(Generated::perplexity).collect()),
                mean_z: z,
            });
        }
    }
    write_quality(&mut md, cfg, &quality, out_dir)?;
    timings.push((
        "power, theory, quality".to_string(),
        t0.elapsed().as_secs_f64(),
    ));

    // ---- False positives on human text.
    let t0 = Instant::now();
    log("scoring human text");
    let docs = corpus::token_documents(
        &inputs.corpus,
        tokenizer,
        cfg.fpr_doc_tokens,
        cfg.fpr_docs_per_genre,
    )?;
    let fpr = false_positives(cfg, &docs, vocab)?;
    write_fpr(&mut md, cfg, &fpr, out_dir)?;
    timings.push(("false positives".to_string(), t0.elapsed().as_secs_f64()));

    // ---- Robustness: the reference configurations are γ = 0.25, δ = 2 with multinomial
    // sampling (the default γ and δ), one per scheme.
    let t0 = Instant::now();
    let main: Vec<usize> = {
        let picked: Vec<usize> = (0..configs.len())
            .filter(|&i| {
                let c = configs[i];
                c.gamma == 0.25 && c.delta == 2.0 && c.sampling == SamplingKind::Multinomial
            })
            .collect();
        if picked.is_empty() {
            vec![0]
        } else {
            picked
        }
    };
    let mut edits = Vec::new();
    for &ci in &main {
        let g = &greens[ci];
        let mut rates = vec![0.0];
        rates.extend(cfg.edit_rates.iter().copied());
        for edit in Edit::ALL {
            for (ri, &r) in rates.iter().enumerate() {
                let scores: Vec<Option<Score>> = prompt_ids
                    .iter()
                    .zip(&wm[ci])
                    .enumerate()
                    .map(|(i, (p, x))| {
                        let seed = cfg.seed ^ ((i as u64) << 20) ^ ((ri as u64) << 8);
                        let edited = apply_edit(&x.tokens, edit, r, vocab, seed ^ edit as u64);
                        score(g, p, &edited)
                    })
                    .collect::<Result<_>>()?;
                edits.push(EditRow {
                    scheme: configs[ci].scheme,
                    edit: edit.name().to_string(),
                    rate: r,
                    tpr_1e3: rate(scores.iter().map(|s| flagged(s, FPR_1E3))),
                    z_over_4: rate(scores.iter().map(|s| z_of(s) > 4.0)),
                    mean_z: mean(scores.iter().map(z_of)),
                });
            }
        }
    }
    let ref_cfg = main[0];
    let ref_plain = &plain[configs[ref_cfg].sampling.label()];
    let paste_rows = copy_paste(cfg, inputs, &greens[ref_cfg], &wm[ref_cfg], ref_plain)?;
    timings.push(("edits, copy-paste".to_string(), t0.elapsed().as_secs_f64()));

    let t0 = Instant::now();
    log("paraphrasing");
    let paraphrase = paraphrase(cfg, inputs, &greens[ref_cfg], &wm[ref_cfg], ref_plain)?;
    timings.push(("paraphrase".to_string(), t0.elapsed().as_secs_f64()));
    write_robustness(
        &mut md,
        &configs[ref_cfg],
        &edits,
        &paste_rows,
        paraphrase.as_ref(),
        out_dir,
    )?;

    timings.push(("total".to_string(), started.elapsed().as_secs_f64()));
    let _ = writeln!(md, "## Run time\n");
    let rows: Vec<Vec<String>> = timings
        .iter()
        .map(|(k, v)| vec![k.clone(), format!("{v:.0} s")])
        .collect();
    md.push_str(&table(&["section", "seconds"], &rows));

    let results = Results {
        config: cfg.clone(),
        model_note: inputs.model_note.clone(),
        key_fingerprint: key.fingerprint(),
        power,
        theory,
        quality,
        fpr,
        edits,
        paste: paste_rows,
        paraphrase,
        timings,
    };
    let report = out_dir.join("report.md");
    write_file(&report, md.as_bytes())?;
    let json = serde_json::to_vec_pretty(&results).map_err(|e| Error::Io {
        path: out_dir.join("results.json"),
        source: std::io::Error::other(e),
    })?;
    write_file(&out_dir.join("results.json"), &json)?;
    Ok(Outcome { report, results })
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Saves a chart and returns the Markdown that shows it.
fn plot(chart: &Chart, out_dir: &Path, name: &str) -> Result<String> {
    chart.save_png(&out_dir.join(name), PLOT_W, PLOT_H)?;
    Ok(format!("![{}]({name})\n\n", chart.title))
}

fn write_power(md: &mut String, cfg: &EvalConfig, rows: &[PowerRow], out: &Path) -> Result<()> {
    let _ = writeln!(md, "## Power\n");
    let _ = writeln!(
        md,
        "True-positive rate at false-positive rates 1e-3 and 1e-5 (exact p-value ≤ α, one key), \
         and the share with z > 4, by length T (each text truncated to its first T tokens). The \
         last column is the share of *plain* texts of the same prompts and sampling flagged at \
         1e-3 with the same key. Kirchenbauer et al. report 98.4% detection at z > 4 for T = 200, \
         γ = 0.5, δ = 2, multinomial sampling, on OPT-1.3B.\n"
    );
    let mut table_rows = Vec::new();
    for r in rows {
        table_rows.push(vec![
            format!("{}", r.config.gamma),
            format!("{}", r.config.delta),
            r.config.scheme.label().to_string(),
            r.config.sampling.label().to_string(),
            r.length.to_string(),
            pct(r.tpr_1e3),
            pct(r.tpr_1e5),
            pct(r.z_over_4),
            num(r.mean_z, 2),
            pct(r.plain_flagged_1e3),
        ]);
    }
    md.push_str(&table(
        &[
            "γ",
            "δ",
            "scheme",
            "sampling",
            "T",
            "TPR@1e-3",
            "TPR@1e-5",
            "z>4",
            "mean z",
            "plain flagged@1e-3",
        ],
        &table_rows,
    ));
    if let Some(anchor) = rows.iter().find(|r| {
        r.config.gamma == 0.5
            && r.config.delta == 2.0
            && r.config.sampling == SamplingKind::Multinomial
            && r.config.scheme == SchemeKind::Window1
            && r.length == 200
    }) {
        let _ = writeln!(
            md,
            "\nAnchor: γ = 0.5, δ = 2, window 1, multinomial, T = 200: **{} at z > 4** here \
             ({} texts) against 98.4% for OPT-1.3B in Kirchenbauer et al.\n",
            pct(anchor.z_over_4),
            anchor.texts
        );
    }
    md.push('\n');
    for &s in &cfg.samplings {
        for &k in &cfg.schemes {
            let mut chart = Chart::new(
                format!("TPR at FPR 1e-3: {}, {}", k.label(), s.label()),
                "tokens T",
                "true-positive rate",
            )
            .y_range(0.0, 1.05);
            for &g in &cfg.gammas {
                for &d in &cfg.deltas {
                    let pts = rows
                        .iter()
                        .filter(|r| {
                            r.config.sampling == s
                                && r.config.scheme == k
                                && r.config.gamma == g
                                && r.config.delta == d
                        })
                        .map(|r| (r.length as f64, r.tpr_1e3))
                        .collect();
                    chart = chart.with_series(Series::line_points(format!("γ={g} δ={d}"), pts));
                }
            }
            let name = format!(
                "power-{}-{}.png",
                s.label(),
                if k == SchemeKind::Window1 {
                    "window1"
                } else {
                    "selfseeded"
                }
            );
            md.push_str(&plot(&chart, out, &name)?);
        }
    }
    Ok(())
}

fn write_theory(md: &mut String, rows: &[TheoryRow], out: &Path) -> Result<()> {
    let _ = writeln!(md, "## Theory check (Theorem 4.2)\n");
    let _ = writeln!(
        md,
        "Mean green fraction of all generated tokens (every position with enough context, no \
         deduplication) against Kirchenbauer et al.'s lower bound γαS / (1 + (α−1)γ), S the mean \
         spike entropy of the distributions sampled from at the same steps (α = e^δ). The \
         theorem covers multinomial sampling with a green list fixed by the previous token(s); \
         greedy and self-seeded rows are shown for comparison only (self-seeding makes the green \
         set depend on the candidate, so the green share of the vocabulary is γ only on average).\n"
    );
    let table_rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.config.label(),
                num(r.mean_spike_entropy, 3),
                num(r.bound, 3),
                format!("{} ± {}", num(r.measured, 3), num(r.measured_stderr, 3)),
                if r.measured >= r.bound { "yes" } else { "no" }.to_string(),
            ]
        })
        .collect();
    md.push_str(&table(
        &[
            "configuration",
            "mean spike entropy",
            "bound",
            "measured (± s.e.)",
            "measured ≥ bound",
        ],
        &table_rows,
    ));
    md.push('\n');
    let mut chart = Chart::new(
        "Green fraction: measured vs Theorem 4.2 bound",
        "lower bound",
        "measured green fraction",
    )
    .with_reference(ReferenceLine::identity("measured = bound"));
    let mut groups: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for r in rows {
        groups
            .entry(format!(
                "{} {}",
                r.config.scheme.label(),
                r.config.sampling.label()
            ))
            .or_default()
            .push((r.bound, r.measured));
    }
    for (name, pts) in groups {
        chart = chart.with_series(Series::points(name, pts));
    }
    md.push_str(&plot(&chart, out, "theory.png")?);
    Ok(())
}

fn write_quality(md: &mut String, cfg: &EvalConfig, rows: &[QualityRow], out: &Path) -> Result<()> {
    let _ = writeln!(md, "## Quality\n");
    let _ = writeln!(
        md,
        "Perplexity of each text's tokens under the model without watermark (the log-probabilities \
         of the unbiased distribution at each generated step), for plain and watermarked texts of \
         the same prompts; mean z at T = {}. In the plots, δ grows along each line.\n",
        cfg.max_tokens
    );
    let table_rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.sampling.label().to_string(),
                r.config.map_or("plain".to_string(), |c| {
                    format!("γ={} δ={} {}", c.gamma, c.delta, c.scheme.label())
                }),
                num(r.mean_ppl, 2),
                num(r.median_ppl, 2),
                num(r.mean_z, 2),
            ]
        })
        .collect();
    md.push_str(&table(
        &["sampling", "texts", "mean PPL", "median PPL", "mean z"],
        &table_rows,
    ));
    md.push('\n');
    for &s in &cfg.samplings {
        let mut chart = Chart::new(
            format!("z-score vs perplexity ({})", s.label()),
            "perplexity (unwatermarked model)",
            "mean z-score",
        );
        for &k in &cfg.schemes {
            for &g in &cfg.gammas {
                let pts: Vec<(f64, f64)> = rows
                    .iter()
                    .filter_map(|r| {
                        let c = r.config?;
                        (c.sampling == s && c.scheme == k && c.gamma == g)
                            .then_some((r.mean_ppl, r.mean_z))
                    })
                    .collect();
                chart = chart.with_series(Series::line_points(format!("{} γ={g}", k.label()), pts));
            }
        }
        let base: Vec<(f64, f64)> = rows
            .iter()
            .filter(|r| r.config.is_none() && r.sampling == s)
            .map(|r| (r.mean_ppl, 0.0))
            .collect();
        chart = chart.with_series(Series::points("plain", base));
        md.push_str(&plot(&chart, out, &format!("quality-{}.png", s.label()))?);
    }
    Ok(())
}

/// Every human document scored against every (scheme, key), each tuple counted once per key
/// across the whole corpus so that the documents' p-values are independent.
fn false_positives(
    cfg: &EvalConfig,
    docs: &BTreeMap<String, Vec<Vec<u32>>>,
    vocab: u32,
) -> Result<Vec<FprRow>> {
    let mut by_genre: BTreeMap<String, Vec<Score>> = BTreeMap::new();
    let total_tokens: usize = docs.values().flatten().map(Vec::len).sum();
    for &k in &cfg.schemes {
        for &g in &cfg.gammas {
            for key_i in 0..cfg.fpr_keys {
                let key = eval_key(cfg.seed, 1 + key_i as u64);
                let green = GreenList::new(&key, k.scheme(g, 2.0), vocab)?;
                let mut seen = TupleSet::with_capacity(total_tokens);
                for (genre, list) in docs {
                    for doc in list {
                        let d: Detection = detect_in_corpus(
                            &green,
                            &[],
                            doc,
                            &DetectOptions::default(),
                            &mut seen,
                        )?;
                        by_genre.entry(genre.clone()).or_default().push(d.score);
                    }
                }
            }
        }
    }
    let all: Vec<Score> = by_genre.values().flatten().copied().collect();
    let mut rows = Vec::new();
    for (genre, scores) in by_genre
        .iter()
        .chain(std::iter::once((&"all".to_string(), &all)))
    {
        for &a in &cfg.fpr_alphas {
            let k = scores.iter().filter(|s| s.is_significant(a)).count();
            rows.push(FprRow {
                genre: genre.clone(),
                alpha: a,
                tests: scores.len(),
                flagged: k,
                ci95: clopper_pearson(k as u64, scores.len() as u64, 0.05),
            });
        }
    }
    Ok(rows)
}

fn write_fpr(md: &mut String, cfg: &EvalConfig, rows: &[FprRow], out: &Path) -> Result<()> {
    let _ = writeln!(md, "## False positives on human text\n");
    let _ = writeln!(
        md,
        "Human-written documents of {} tokens (up to {} per genre), each tested against {} keys \
         × {} scheme(s) × γ ∈ {:?}, every (seed, token) tuple scored once per key across the whole \
         corpus (`detect_in_corpus`), so the tests of one key are independent. Flagged = exact \
         p-value ≤ α; 95% Clopper–Pearson intervals. The binomial test is discrete, so the \
         empirical rate sits at or below nominal.\n",
        cfg.fpr_doc_tokens,
        cfg.fpr_docs_per_genre,
        cfg.fpr_keys,
        cfg.schemes.len(),
        cfg.gammas
    );
    let table_rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.genre.clone(),
                format!("{:e}", r.alpha),
                frac(r.flagged, r.tests),
                format!("{:.2e}", r.flagged as f64 / r.tests.max(1) as f64),
                format!("[{:.1e}, {:.1e}]", r.ci95.0, r.ci95.1),
            ]
        })
        .collect();
    md.push_str(&table(
        &["genre", "nominal α", "flagged", "empirical", "95% CI"],
        &table_rows,
    ));
    md.push('\n');
    let mut chart = Chart::new(
        "False positives on human text",
        "nominal false-positive rate",
        "empirical false-positive rate",
    )
    .x_log10()
    .y_log10()
    .with_reference(ReferenceLine::identity("empirical = nominal"));
    let mut genres: Vec<&str> = rows.iter().map(|r| r.genre.as_str()).collect();
    genres.dedup();
    for g in genres {
        let pts = rows
            .iter()
            .filter(|r| r.genre == g)
            .map(|r| (r.alpha, r.flagged as f64 / r.tests.max(1) as f64))
            .collect();
        chart = chart.with_series(Series::line_points(g, pts));
    }
    md.push_str(&plot(&chart, out, "fpr.png")?);
    let _ = writeln!(
        md,
        "(Rates of zero cannot be drawn on a log axis; the table has them.)\n"
    );
    Ok(())
}

/// A 200-token (or shorter) watermarked passage pasted into human text, scored plain and
/// windowed, against the same human text with a plain passage of the same prompt pasted in.
fn copy_paste(
    cfg: &EvalConfig,
    inputs: &EvalInputs<'_>,
    green: &GreenList,
    wm: &[Generated],
    plain: &[Generated],
) -> Result<Vec<PasteRow>> {
    let longest = cfg.paste.iter().map(|&(t, p)| t - p).max().unwrap_or(0);
    let hosts = corpus::long_passages(
        &inputs.corpus,
        inputs.generator.tokenizer(),
        longest,
        wm.len(),
    )?;
    if hosts.len() < wm.len() {
        return Err(Error::Config(format!(
            "the corpus has {} passages of {longest} tokens, copy-paste needs {}",
            hosts.len(),
            wm.len()
        )));
    }
    let opts = DetectOptions {
        windowed: true,
        ..DetectOptions::default()
    };
    let mut rows = Vec::new();
    for &(total, passage) in &cfg.paste {
        let (mut pos_z, mut neg_z, mut pos_w, mut neg_w) = (vec![], vec![], vec![], vec![]);
        let (mut hit_plain, mut hit_win, mut ctl_win) = (vec![], vec![], vec![]);
        for (i, (w, p)) in wm.iter().zip(plain).enumerate() {
            let host = &hosts[i][..total - passage];
            let seed = cfg.seed ^ 0x7061_7374 ^ ((i as u64) << 16) ^ total as u64;
            let wp = &w.tokens[..passage.min(w.tokens.len())];
            let pp = &p.tokens[..passage.min(p.tokens.len())];
            let pos = detect(green, &[], &paste(host, wp, seed), &opts)?;
            let neg = detect(green, &[], &paste(host, pp, seed), &opts)?;
            let windowed = |d: &Detection| {
                d.windowed
                    .as_ref()
                    .map_or(0.0, |w| -w.corrected_log10_p_value)
            };
            pos_z.push(pos.score.z_score);
            neg_z.push(neg.score.z_score);
            pos_w.push(windowed(&pos));
            neg_w.push(windowed(&neg));
            hit_plain.push(pos.score.is_significant(FPR_1E3));
            hit_win.push(windowed(&pos) >= 3.0);
            ctl_win.push(windowed(&neg) >= 3.0);
        }
        rows.push(PasteRow {
            total,
            passage,
            texts: wm.len(),
            auc_plain_z: auc(&pos_z, &neg_z),
            auc_windowed: auc(&pos_w, &neg_w),
            tpr_plain_1e3: rate(hit_plain.into_iter()),
            tpr_windowed_1e3: rate(hit_win.into_iter()),
            controls_flagged_windowed_1e3: rate(ctl_win.into_iter()),
        });
    }
    Ok(rows)
}

/// The model rewrites each watermarked text (and each plain one, as controls) without the
/// watermark; the rewrites are scored alone, as an auditor would see them.
fn paraphrase(
    cfg: &EvalConfig,
    inputs: &EvalInputs<'_>,
    green: &GreenList,
    wm: &[Generated],
    plain: &[Generated],
) -> Result<Option<ParaphraseRow>> {
    let generator = inputs.generator;
    let tokenizer = generator.tokenizer();
    let mut jobs = Vec::new();
    for (i, x) in wm.iter().chain(plain).enumerate() {
        let text = tokenizer.decode(&x.tokens)?;
        jobs.push(Job {
            prompt_ids: generator.encode_chat(&format!("Rewrite this text:\n\n{text}"))?,
            green: None,
            sampling: Sampling::Random {
                temperature: 0.7,
                top_k: None,
                top_p: None,
            },
            seed: cfg.seed ^ 0x7061_7261 ^ i as u64,
        });
    }
    if jobs.is_empty() {
        return Ok(None);
    }
    let lengths = Limits {
        max_tokens: cfg.paraphrase_tokens,
        min_tokens: 0,
        batch_size: cfg.batch_size,
    };
    let out = generation::generate(generator, &jobs, lengths, |_, _| {})?;
    let (rw, rp) = out.split_at(wm.len());
    let sw: Vec<Option<Score>> = rw
        .iter()
        .map(|x| score(green, &[], &x.tokens))
        .collect::<Result<_>>()?;
    let sp: Vec<Option<Score>> = rp
        .iter()
        .map(|x| score(green, &[], &x.tokens))
        .collect::<Result<_>>()?;
    let before: Vec<Option<Score>> = wm
        .iter()
        .map(|x| score(green, &[], &x.tokens))
        .collect::<Result<_>>()?;
    let zw: Vec<f64> = sw.iter().map(z_of).collect();
    let zp: Vec<f64> = sp.iter().map(z_of).collect();
    Ok(Some(ParaphraseRow {
        texts: rw.len(),
        mean_tokens: mean(rw.iter().map(|x| x.tokens.len() as f64)),
        tpr_1e3: rate(sw.iter().map(|s| flagged(s, FPR_1E3))),
        z_over_4: rate(zw.iter().map(|z| *z > 4.0)),
        mean_z: mean(zw.iter().copied()),
        mean_z_before: mean(before.iter().map(z_of)),
        auc: auc(&zw, &zp),
    }))
}

fn write_robustness(
    md: &mut String,
    reference: &WmConfig,
    edits: &[EditRow],
    paste_rows: &[PasteRow],
    para: Option<&ParaphraseRow>,
    out: &Path,
) -> Result<()> {
    let _ = writeln!(md, "## Robustness\n");
    let _ = writeln!(
        md,
        "### Token edits\n\nEach token of the watermarked texts (γ = {}, δ = {}, {}) is \
         substituted by a uniformly random token, deleted, or followed by an inserted random \
         token, independently with the given probability; detection with the prompt, as before.\n",
        reference.gamma,
        reference.delta,
        reference.sampling.label()
    );
    let table_rows: Vec<Vec<String>> = edits
        .iter()
        .map(|r| {
            vec![
                r.scheme.label().to_string(),
                r.edit.clone(),
                format!("{:.0}%", 100.0 * r.rate),
                pct(r.tpr_1e3),
                pct(r.z_over_4),
                num(r.mean_z, 2),
            ]
        })
        .collect();
    md.push_str(&table(
        &["scheme", "edit", "rate", "TPR@1e-3", "z>4", "mean z"],
        &table_rows,
    ));
    md.push('\n');
    let mut chart = Chart::new(
        "Detection after random token edits",
        "edit rate",
        "TPR at FPR 1e-3",
    )
    .y_range(0.0, 1.05);
    let mut names: Vec<(SchemeKind, String)> =
        edits.iter().map(|r| (r.scheme, r.edit.clone())).collect();
    names.dedup();
    for (k, e) in names {
        let pts = edits
            .iter()
            .filter(|r| r.scheme == k && r.edit == e)
            .map(|r| (r.rate, r.tpr_1e3))
            .collect();
        chart = chart.with_series(Series::line_points(format!("{e}, {}", k.label()), pts));
    }
    md.push_str(&plot(&chart, out, "edits.png")?);

    let _ = writeln!(
        md,
        "### Copy-paste\n\nThe first `passage` tokens of each watermarked text ({}) pasted at a \
         random place into human text (the corpus's longest texts), `total` tokens in all; the \
         controls paste the plain text of the same prompt into the same human text at the same \
         place. Detection without prompt, plain z and windowed (best window, \
         Bonferroni-corrected). AUC of plain z and of the windowed −log10 p against the controls. \
         Kirchenbauer et al.'s reliability study: AUC 0.65–0.70 for 10% pasted at T = 200 with \
         plain z; windowed detection 0.95 at T = 600 (rows 20/200 and 60/600 here).\n",
        reference.scheme.label()
    );
    let table_rows: Vec<Vec<String>> = paste_rows
        .iter()
        .map(|r| {
            vec![
                r.total.to_string(),
                r.passage.to_string(),
                format!("{:.0}%", 100.0 * r.passage as f64 / r.total as f64),
                num(r.auc_plain_z, 3),
                num(r.auc_windowed, 3),
                pct(r.tpr_plain_1e3),
                pct(r.tpr_windowed_1e3),
                pct(r.controls_flagged_windowed_1e3),
                r.texts.to_string(),
            ]
        })
        .collect();
    md.push_str(&table(
        &[
            "total",
            "passage",
            "share",
            "AUC plain z",
            "AUC windowed",
            "TPR@1e-3 plain",
            "TPR@1e-3 windowed",
            "controls flagged (windowed)",
            "texts",
        ],
        &table_rows,
    ));
    md.push('\n');
    let widest = paste_rows.iter().map(|r| r.passage).max().unwrap_or(0);
    let same: Vec<&PasteRow> = paste_rows.iter().filter(|r| r.passage == widest).collect();
    let chart = Chart::new(
        format!("Copy-paste: {widest} watermarked tokens in human text"),
        "total tokens",
        "AUC",
    )
    .y_range(0.0, 1.05)
    .with_series(Series::line_points(
        "plain z",
        same.iter()
            .map(|r| (r.total as f64, r.auc_plain_z))
            .collect(),
    ))
    .with_series(Series::line_points(
        "windowed",
        same.iter()
            .map(|r| (r.total as f64, r.auc_windowed))
            .collect(),
    ))
    .with_reference(ReferenceLine::horizontal(0.5, "chance"));
    md.push_str(&plot(&chart, out, "copy-paste.png")?);

    if let Some(p) = para {
        let _ = writeln!(
            md,
            "### Paraphrase by the model itself\n\nEach watermarked text given to the same model \
             as \"Rewrite this text:\" + the text, answered without watermark (temperature 0.7, \
             up to the paraphrase length); the rewrite scored alone. AUC against rewrites of the \
             plain texts.\n"
        );
        md.push_str(&table(
            &[
                "texts",
                "mean tokens",
                "mean z before",
                "mean z after",
                "TPR@1e-3",
                "z>4",
                "AUC",
            ],
            &[vec![
                p.texts.to_string(),
                num(p.mean_tokens, 0),
                num(p.mean_z_before, 2),
                num(p.mean_z, 2),
                pct(p.tpr_1e3),
                pct(p.z_over_4),
                num(p.auc, 3),
            ]],
        ));
        md.push('\n');
    }
    Ok(())
}
