//! `make radioactivity-gumbel`: is vLLM's native watermark (keyed Gumbel-max,
//! `vllm-gumbel-philox-v1`) as radioactive as tracemark's green list at the same context width?
//!
//! The teacher is the SYNTHETIC bigram model of the tests ([`SyntheticLm`], 1000 tokens), not the
//! default model, so that a run takes a minute. For each context width k in {1, 2, 4} and each
//! scheme (tracemark-green-v1 with previous-token seeding of width k; vLLM's Gumbel-max with
//! context width k), a Kneser–Ney (k+1)-gram student (it sees exactly the watermark's context;
//! at k = 4 a 4-gram, the largest order the n-gram tables pack, sees 3 of its 4 tokens) is
//! trained on the teacher's watermarked answers (ρ = 100%) and audited closed-mode, from its own
//! answers to held-out prompts, by the scheme's own detector with its deduplication. The ρ = 0
//! student (trained on plain answers) is the null row, audited under the same key and under
//! further keys (the null check). Everything is seeded by `--seed`.

use std::time::Instant;

use anyhow::Result;
use clap::Parser;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};
use tracemark_lab::keys::Experiment;
use tracemark_lab::ngram::{NgramConfig, NgramModel, MAX_ORDER};
use tracemark_lab::radioactivity::gumbel::{audit_outputs_gumbel, GumbelAnswer};
use tracemark_lab::radioactivity::{
    audit_outputs, student_answers, train_student, NullCheck, Sample,
};
use watermark_core::vllm::key_fingerprint;
use watermark_core::{AuditOptions, GreenList, Scheme, Seeding, SyntheticLm};

/// The synthetic teacher of `tests/support/synthetic_teacher.rs`: vocabulary, sharpness, seed.
const VOCAB: u32 = 1000;
const SHARPNESS: f32 = 2.0;
const TEACHER_SEED: u64 = 17;
/// Random prompt tokens per prompt.
const PROMPT_LEN: usize = 8;
/// Context widths compared (Sander et al.'s k).
const WIDTHS: [usize; 3] = [1, 2, 4];

#[derive(Parser, Debug)]
#[command(
    about = "Radioactivity of vLLM's Gumbel watermark vs tracemark's green list (synthetic teacher)"
)]
struct Args {
    /// Training prompts; the teacher answers each (plain, and once per scheme and width).
    #[arg(long, default_value_t = 1000)]
    train: usize,
    /// Held-out prompts each student answers (the closed-model audit).
    #[arg(long, default_value_t = 200)]
    held_out: usize,
    /// Tokens per answer (teacher and students).
    #[arg(long, default_value_t = 60)]
    answer_len: usize,
    /// Green-list bias δ (γ = 0.25).
    #[arg(long, default_value_t = 3.0)]
    delta: f32,
    /// Sampling temperature of the students' answers.
    #[arg(long, default_value_t = 0.7)]
    student_temperature: f64,
    /// Further keys auditing the ρ = 0 student (the null check).
    #[arg(long, default_value_t = 100)]
    null_keys: usize,
    /// Seed of the keys, the prompts and all sampling.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

/// The teacher's next-token distribution after each previous token (it is a bigram model).
struct Teacher {
    rows: Vec<Vec<f64>>,
    cdfs: Vec<Vec<f64>>,
}

impl Teacher {
    fn new() -> Self {
        let lm = SyntheticLm::new(VOCAB, SHARPNESS, TEACHER_SEED);
        let rows: Vec<Vec<f64>> = (0..VOCAB).map(|prev| lm.probabilities(&[prev])).collect();
        let cdfs = rows
            .iter()
            .map(|row| {
                let mut acc = 0.0;
                row.iter()
                    .map(|p| {
                        acc += p;
                        acc
                    })
                    .collect()
            })
            .collect();
        Teacher { rows, cdfs }
    }

    fn row(&self, prev: u32) -> &[f64] {
        &self.rows[prev as usize]
    }

    /// A plain draw after `prev` with the uniform `r` in [0, 1).
    fn draw(&self, prev: u32, r: f64) -> u32 {
        let cdf = &self.cdfs[prev as usize];
        let u = r * cdf[cdf.len() - 1];
        cdf.partition_point(|&c| c <= u).min(cdf.len() - 1) as u32
    }
}

/// How the teacher writes an answer.
#[derive(Clone, Copy)]
enum Writer<'a> {
    Plain,
    /// Rejection sampling from q·e^(δ·green): exact, as in the tests' synthetic teacher.
    Green(&'a GreenList, f32),
    /// Keyed Gumbel-max (vLLM key, context width).
    Gumbel(u64, usize),
}

fn uniform(rng: &mut ChaCha8Rng) -> f64 {
    (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

fn prompts(n: usize, seed: u64) -> Vec<Vec<u32>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n)
        .map(|_| (0..PROMPT_LEN).map(|_| rng.next_u32() % VOCAB).collect())
        .collect()
}

/// The teacher's answers to `prompts`, answer `i` drawn with seed `seed + i`.
fn answers(
    teacher: &Teacher,
    writer: Writer,
    prompts: &[Vec<u32>],
    len: usize,
    seed: u64,
) -> Result<Vec<Sample>> {
    let mut out = Vec::with_capacity(prompts.len());
    for (i, p) in prompts.iter().enumerate() {
        let mut rng = ChaCha8Rng::seed_from_u64(seed.wrapping_add(i as u64));
        let mut gumbel = match writer {
            Writer::Gumbel(key, width) => Some(GumbelAnswer::new(key, width)?),
            _ => None,
        };
        let mut context = p.clone();
        for _ in 0..len {
            let prev = context.last().copied().unwrap_or(0);
            let token = match (writer, gumbel.as_mut()) {
                (Writer::Gumbel(..), Some(g)) => g
                    .next(teacher.row(prev), uniform(&mut rng))
                    .unwrap_or_else(|| teacher.draw(prev, uniform(&mut rng))),
                (Writer::Green(green, delta), _) => loop {
                    let t = teacher.draw(prev, uniform(&mut rng));
                    if green.is_green(&context, t)?.unwrap_or(true)
                        || uniform(&mut rng) < (-f64::from(delta)).exp()
                    {
                        break t;
                    }
                },
                _ => teacher.draw(prev, uniform(&mut rng)),
            };
            context.push(token);
        }
        out.push(Sample {
            prompt_ids: p.clone(),
            response_ids: context[p.len()..].to_vec(),
        });
    }
    Ok(out)
}

/// vLLM key `index` of the run seeded with `seed` (0: the teacher's, 1…: null keys): the first 8
/// bytes of SHA-256 of a label, the seed and the index.
fn vllm_key(seed: u64, index: u64) -> u64 {
    let mut h = Sha256::new();
    h.update(b"tracemark radioactivity gumbel vllm key");
    h.update(seed.to_le_bytes());
    h.update(index.to_le_bytes());
    let digest = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_le_bytes(first)
}

fn green(seed: u64, index: u64, width: usize, delta: f32) -> Result<GreenList> {
    let scheme = Scheme {
        seeding: Seeding::Previous,
        width,
        gamma: 0.25,
        delta,
    };
    Ok(GreenList::new(
        &Experiment::Radioactivity.key(seed, index),
        scheme,
        VOCAB,
    )?)
}

/// log10 p and scored tokens of one audit.
type Audited = (f64, u64);

fn audit_green(g: &GreenList, outputs: &[Sample]) -> Result<Audited> {
    let r = audit_outputs(g, outputs, None, &AuditOptions::default())?;
    Ok((r.header.score.log10_p_value, r.header.score.scored))
}

fn audit_gumbel(key: u64, width: usize, outputs: &[Sample]) -> Result<Audited> {
    let s = audit_outputs_gumbel(key, width, outputs)?;
    Ok((s.log10_p_value, s.scored))
}

/// The experiment's fixed inputs.
struct Setup {
    teacher: Teacher,
    train: Vec<Vec<u32>>,
    held_out: Vec<Vec<u32>>,
    plain: Vec<Sample>,
}

/// One width's results: (teacher, ρ = 100% student, ρ = 0 student, null check) per scheme.
struct WidthRows {
    width: usize,
    green: [Audited; 3],
    gumbel: [Audited; 3],
    green_null: NullCheck,
    gumbel_null: NullCheck,
}

/// The student's n-gram order: k + 1, so that it sees the watermark's whole context, capped at
/// the largest order the n-gram tables pack ([`MAX_ORDER`] = 4: at k = 4 it sees 3 of the 4).
fn student_order(width: usize) -> usize {
    (width + 1).min(MAX_ORDER)
}

fn student(setup: &Setup, width: usize, training: &[Sample], args: &Args) -> Result<Vec<Sample>> {
    let refs: Vec<&Sample> = training.iter().collect();
    let config = NgramConfig {
        order: student_order(width),
        ..NgramConfig::default()
    };
    let model: NgramModel = train_student(VOCAB, config, &refs, None)?;
    let seed = args.seed.wrapping_mul(1_000_003) + 7_000;
    Ok(student_answers(
        &model,
        &setup.held_out,
        args.answer_len,
        args.student_temperature,
        seed,
        &[],
    )?)
}

fn run_width(setup: &Setup, width: usize, args: &Args) -> Result<WidthRows> {
    let len = args.answer_len;
    let g = green(args.seed, 0, width, args.delta)?;
    let key = vllm_key(args.seed, 0);
    let teacher_seed = args.seed.wrapping_mul(1_000_003) + 1_000;
    let green_wm = answers(
        &setup.teacher,
        Writer::Green(&g, args.delta),
        &setup.train,
        len,
        teacher_seed,
    )?;
    let gumbel_wm = answers(
        &setup.teacher,
        Writer::Gumbel(key, width),
        &setup.train,
        len,
        teacher_seed,
    )?;
    let green_student = student(setup, width, &green_wm, args)?;
    let gumbel_student = student(setup, width, &gumbel_wm, args)?;
    let null_student = student(setup, width, &setup.plain, args)?;

    let mut green_null = Vec::new();
    let mut gumbel_null = Vec::new();
    for j in 1..=args.null_keys as u64 {
        let gj = green(args.seed, j, width, args.delta)?;
        green_null.push(audit_green(&gj, &null_student)?.0);
        gumbel_null.push(audit_gumbel(vllm_key(args.seed, j), width, &null_student)?.0);
    }
    Ok(WidthRows {
        width,
        green: [
            audit_green(&g, &green_wm)?,
            audit_green(&g, &green_student)?,
            audit_green(&g, &null_student)?,
        ],
        gumbel: [
            audit_gumbel(key, width, &gumbel_wm)?,
            audit_gumbel(key, width, &gumbel_student)?,
            audit_gumbel(key, width, &null_student)?,
        ],
        green_null: NullCheck::from_log10_p(&green_null),
        gumbel_null: NullCheck::from_log10_p(&gumbel_null),
    })
}

fn print_header(args: &Args) {
    println!(
        "SYNTHETIC teacher: bigram SyntheticLm (V = {VOCAB}, sharpness {SHARPNESS}, seed {TEACHER_SEED}), \
         {} training prompts of {PROMPT_LEN} random tokens, {}-token answers",
        args.train, args.answer_len
    );
    println!(
        "tracemark-green-v1: previous-token seeding of width k, γ = 0.25, δ = {}, key {}",
        args.delta,
        green(args.seed, 0, 1, args.delta)
            .map(|g| g.key_fingerprint().to_string())
            .unwrap_or_default()
    );
    println!(
        "vllm-gumbel-philox-v1: Gumbel-max, context width k, single_turn dedup at generation, key {}",
        key_fingerprint(vllm_key(args.seed, 0))
    );
    println!(
        "Students: Kneser–Ney min(k+1, {MAX_ORDER})-grams on {} answers, each answering {} held-out prompts at T = {}; \
         closed audit, each scheme's own detector",
        args.train, args.held_out, args.student_temperature
    );
}

fn print_rows(rows: &[WidthRows], args: &Args) {
    println!("                         |  tracemark-green-v1  | vllm-gumbel-philox-v1");
    println!("  k  suspect             |  log10 p   scored   |  log10 p   scored");
    for r in rows {
        let names = ["teacher answers", "student ρ = 100%", "student ρ = 0"];
        for (i, name) in names.iter().enumerate() {
            let ((gl, gs), (ul, us)) = (r.green[i], r.gumbel[i]);
            println!(
                "  {}  {name:<19} | {gl:>8.1} {gs:>8}   | {ul:>8.1} {us:>8}",
                r.width
            );
        }
        for (scheme, c) in [("green", &r.green_null), ("gumbel", &r.gumbel_null)] {
            println!(
                "     null check, {scheme:<6}: ρ = 0 student under {} other keys: KS p {:.3}, \
                 p≤0.05 {}/{}, min log10 p {:.2}, {}",
                c.keys,
                c.ks_p,
                c.flagged_05,
                c.keys,
                c.min_log10_p,
                c.verdict()
            );
        }
    }
    println!(
        "green: every (window, token) scored once, windows seen in the prompt skipped;\n\
         gumbel: every context scored once across the {} answers, prompt windows and partly\n\
         padded contexts skipped (tracemark audit's rules). Flagged at log10 p ≤ -6.",
        args.held_out
    );
}

fn main() -> Result<()> {
    let args = Args::parse();
    let started = Instant::now();
    print_header(&args);
    let teacher = Teacher::new();
    let train = prompts(args.train, args.seed);
    let held_out = prompts(args.held_out, args.seed.wrapping_add(0x5EED));
    let plain_seed = args.seed.wrapping_mul(1_000_003) + 2_000;
    let plain = answers(&teacher, Writer::Plain, &train, args.answer_len, plain_seed)?;
    let setup = Setup {
        teacher,
        train,
        held_out,
        plain,
    };
    let mut rows = Vec::new();
    for width in WIDTHS {
        rows.push(run_width(&setup, width, &args)?);
    }
    print_rows(&rows, &args);
    println!("total {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}
