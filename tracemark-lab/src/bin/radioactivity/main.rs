//! `make radioactivity`: the proof that the distillation audit works, end to end.
//!
//! The default model, watermarked, is the teacher; n-gram students are trained on mixes where a
//! fraction ρ of the answers is watermarked; each student is audited from its own answers to
//! held-out prompts (closed model) and from its predictions over our watermarked answers
//! (reading mode). Then the null checks: the ρ = 0 student and the untouched default model,
//! each audited under many keys that each watermarked their own texts, must give uniform
//! p-values. Teacher answers are cached in `target/radioactivity/`, so a rerun takes seconds.

mod anchor_table;

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Parser;
use tracemark_lab::corpus;
use tracemark_lab::ngram::{Discount, NgramConfig, NgramModel};
use tracemark_lab::radioactivity::anchor::{closed_at_scale, QueryPlan, ScaledClosed};
use tracemark_lab::radioactivity::prompts::prompts_after;
use tracemark_lab::radioactivity::teacher::{Progress, Teacher};
use tracemark_lab::radioactivity::{
    audit_outputs, audit_reading, closed_under_keys, null_table, student_answers,
    student_predictions, train_student, watermarked_share, window_filter, PromptSets, Sample,
    TeacherSettings,
};
use tracemark_model::llama::{set_threads, LoadOptions};
use tracemark_model::reading::top1_predictions;
use watermark_core::GreenList;
use watermark_core::{AuditOptions, AuditReport};

/// Fractions of watermarked training answers, one student each.
const RHOS: [f64; 5] = [0.0, 0.01, 0.05, 0.10, 1.0];

#[derive(Parser, Debug)]
#[command(about = "Radioactivity: do students trained on watermarked answers carry the watermark?")]
struct Args {
    /// Training prompts; the teacher answers each with and without the watermark.
    #[arg(long, default_value_t = 1200)]
    train: usize,
    /// Held-out prompts each student answers (the closed-model audit).
    #[arg(long, default_value_t = 400)]
    held_out: usize,
    /// Most tokens per answer (teacher and students).
    #[arg(long, default_value_t = 96)]
    max_tokens: usize,
    /// Watermark bias δ of the teacher (γ = 0.25, window 2 over the previous tokens).
    #[arg(long, default_value_t = 3.0)]
    delta: f32,
    /// n-gram order of the students.
    #[arg(long, default_value_t = 3)]
    order: usize,
    /// Sampling temperature of the students' answers (at 1, a Kneser–Ney model spends much of
    /// its mass on backed-off, context-free tokens that carry no watermark).
    #[arg(long, default_value_t = 0.7)]
    student_temperature: f64,
    /// Keys of the null checks, each with its own watermarked teacher answers.
    #[arg(long, default_value_t = 20)]
    null_keys: usize,
    /// Watermarked teacher answers per null key.
    #[arg(long, default_value_t = 6)]
    null_texts: usize,
    /// CPU threads for the model.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Prompts the teacher answers at once.
    #[arg(long, default_value_t = 8)]
    batch_size: usize,
    /// Run the teacher with exact Q8_0 kernels instead of the fast (VNNI) matmul: about 3x
    /// slower, closer to the file's weights.
    #[arg(long)]
    exact: bool,
    /// A larger run: 4x the training and held-out prompts, 50 null keys.
    #[arg(long)]
    large: bool,
    /// Seed of the keys, the prompt order, the mixes and all sampling.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Teacher-answer cache.
    #[arg(long, default_value = "target/radioactivity")]
    cache: PathBuf,
    /// Also draw log10 p against ρ to this PNG file (and the closed audits' curves at the
    /// anchor's budget beside it, `-curve` added to the name).
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Closed audits at the anchor's budget: each student answers queries until its
    /// unsupervised audit has scored this many tuples (Sander et al.: about 600k). 0 skips them.
    #[arg(long, default_value_t = 600_000)]
    anchor_scored: u64,
    /// Prompts of the audits at the anchor's budget, disjoint from all the others (as many as
    /// the corpus gives, up to this); queries go round them, each with its own seed.
    #[arg(long, default_value_t = 10_000)]
    anchor_prompts: usize,
    /// Most queries per student in the audits at the anchor's budget.
    #[arg(long, default_value_t = 250_000)]
    anchor_max_queries: usize,
}

/// One student's four audits.
struct Row {
    rho: f64,
    watermarked_answers: usize,
    training_tokens: usize,
    closed: AuditReport,
    closed_supervised: AuditReport,
    reading: AuditReport,
    reading_supervised: AuditReport,
    /// The closed audits at the anchor's budget (none when `--anchor-scored 0`).
    anchor: Option<ScaledClosed>,
}

impl Args {
    /// The arguments with `--large` applied.
    fn scaled(mut self) -> Self {
        if self.large {
            self.train *= 4;
            self.held_out *= 4;
            self.null_keys = self.null_keys.max(50);
        }
        self
    }
}

fn main() -> Result<()> {
    let args = Args::parse().scaled();
    let started = Instant::now();
    set_threads(args.threads)?;

    let model_path = tracemark_model::locate_default_model()?;
    let prompts = Prompts::read(&args)?;
    let load = LoadOptions {
        fast_matmul: !args.exact,
        ..LoadOptions::candle()
    };
    let teacher = Teacher::load(&model_path, load, &args.cache)?;
    let settings = TeacherSettings::new(
        args.delta,
        args.max_tokens,
        args.batch_size,
        args.seed,
        teacher.vocab_size(),
    )?;
    print_header(&args, &teacher, &settings, &prompts);

    let answers = teacher_answers(&teacher, &settings, &prompts, &args)?;
    let mean_green = mean_green_fraction(&settings.green, &answers.wm)?;
    println!(
        "teacher: {} answers ({} tokens; watermarked answers {:.1}% green) in {:.0} s",
        2 * answers.wm.len() + prompts.null.len(),
        answers.tokens(),
        100.0 * mean_green,
        answers.seconds
    );

    let students = run_students(&teacher, &settings.green, &answers, &prompts, &args)?;
    print_table(&students.rows, &args);
    println!(
        "students: {} trained in {:.2} s; {} answer tokens sampled in {:.2} s (one core)",
        students.rows.len(),
        students.train_seconds,
        students.sampled_tokens,
        students.sample_seconds
    );
    anchor_table::print(
        &students.rows,
        &args,
        prompts.anchor.len(),
        students.anchor_seconds,
    );

    let Some((student0, answers0)) = &students.innocent else {
        bail!("the ρ = 0 student is missing");
    };
    let null_started = Instant::now();
    let mut checks = null_checks(&teacher, &answers.null_sets, student0, answers0)?;
    let innocent_at_scale = students
        .rows
        .iter()
        .find(|r| r.rho == 0.0)
        .and_then(|r| r.anchor.as_ref())
        .and_then(|a| a.answers.as_ref());
    if let Some(innocent) = innocent_at_scale {
        let (_, log10_p) = closed_under_keys(answers.null_sets.iter().map(|(g, _)| g), innocent)?;
        // After the four audits with both rules on.
        checks.insert(
            4,
            ("ρ=0 student, closed at the anchor's budget".into(), log10_p),
        );
    }
    print_null_checks(&checks, answers.null_sets.len(), args.null_texts);
    let null_seconds = null_started.elapsed().as_secs_f64();
    println!();
    println!(
        "time: {:.1} min in all (teacher {:.1} min, {} tokens generated now at {:.0} tokens/s, the rest cached; students and audits {:.0} s; null checks {:.0} s); {} threads",
        started.elapsed().as_secs_f64() / 60.0,
        answers.seconds / 60.0,
        answers.fresh_tokens,
        answers.fresh_tokens as f64 / answers.fresh_seconds.max(1e-9),
        students.seconds,
        null_seconds,
        args.threads
    );

    if let Some(path) = &args.plot {
        plot(&students.rows, path)?;
        println!("plot: {}", path.display());
        if args.anchor_scored > 0 {
            let curve = path.with_file_name(format!(
                "{}-curve.png",
                path.file_stem()
                    .and_then(|s| s.to_str())
                    .unwrap_or("radioactivity")
            ));
            anchor_table::plot(&students.rows, &curve)?;
            println!("plot: {}", curve.display());
        }
    }
    Ok(())
}

/// The prompts, derived from the human-text corpus: disjoint sets for training, the held-out
/// answers and the null keys.
struct Prompts {
    corpus: PathBuf,
    train: Vec<String>,
    held_out: Vec<String>,
    null: Vec<String>,
    /// The audits at the anchor's budget (empty when they are skipped).
    anchor: Vec<String>,
}

impl Prompts {
    fn read(args: &Args) -> Result<Self> {
        let corpus = corpus::default_path().context(
            "human-text corpus not found: run scripts/fetch-corpus.sh and set TRACEMARK_CORPUS",
        )?;
        let texts = corpus::read_texts(&corpus)?;
        let null_total = args.null_keys * args.null_texts;
        let sets =
            PromptSets::from_texts(&texts, args.train, args.held_out, null_total, args.seed)?;
        let used = args.train + args.held_out + null_total;
        let anchor = match args.anchor_scored {
            0 => Vec::new(),
            _ => prompts_after(&texts, used, args.anchor_prompts, args.seed),
        };
        if args.anchor_scored > 0 && anchor.is_empty() {
            bail!("the corpus has no prompts left for the audits at the anchor's budget");
        }
        Ok(Prompts {
            anchor,
            corpus,
            train: sets.train,
            held_out: sets.held_out,
            null: sets.null,
        })
    }
}

fn print_header(args: &Args, teacher: &Teacher, settings: &TeacherSettings, prompts: &Prompts) {
    let (scheme, corpus) = (&settings.scheme, &prompts.corpus);
    println!(
        "radioactivity: SmolLM2-135M-Instruct teacher (GGUF sha256 {}…), {}",
        &teacher.model_sha256()[..12],
        if args.exact {
            "exact Q8_0 kernels".to_string()
        } else {
            "the real model run with candle's fast Q8_0 matmul (activations quantized per 256; about 3x faster)".to_string()
        }
    );
    println!(
        "watermark: {:?} window {}, γ = {}, δ = {}, key {}; teacher samples at T = 1, ≤ {} tokens",
        scheme.seeding,
        scheme.width,
        scheme.gamma,
        scheme.delta,
        settings.green.key_fingerprint(),
        args.max_tokens
    );
    println!(
        "prompts from {} ({} training, {} held out, {} for the null keys); {} threads",
        corpus.canonicalize().unwrap_or(corpus.clone()).display(),
        args.train,
        args.held_out,
        prompts.null.len(),
        args.threads
    );
}

/// The teacher's answers: watermarked and plain for training, and each null key's own
/// watermarked answers.
struct TeacherAnswers {
    wm: Vec<Sample>,
    plain: Vec<Sample>,
    null_sets: Vec<(GreenList, Vec<Sample>)>,
    /// Seconds for all of them, cached or not.
    seconds: f64,
    /// Tokens generated now (not read from the cache), and the seconds they took.
    fresh_tokens: usize,
    fresh_seconds: f64,
}

impl TeacherAnswers {
    /// Answer tokens in all.
    fn tokens(&self) -> usize {
        self.wm
            .iter()
            .chain(&self.plain)
            .chain(self.null_sets.iter().flat_map(|(_, t)| t))
            .map(|s| s.response_ids.len())
            .sum()
    }
}

fn teacher_answers(
    teacher: &Teacher,
    settings: &TeacherSettings,
    prompts: &Prompts,
    args: &Args,
) -> Result<TeacherAnswers> {
    let (green, generate, plain_generate) = (
        &settings.green,
        &settings.generate,
        &settings.plain_generate,
    );
    let (train_prompts, null_prompts) = (&prompts.train, &prompts.null);
    // The teacher. Progress goes to stderr; `fresh` sums the tokens generated (not read from
    // the cache) and the seconds they took.
    let gen_started = Instant::now();
    let fresh = Cell::new((0usize, 0.0f64));
    let progress = |label: String| {
        let fresh = &fresh;
        move |p: Progress| {
            eprint!(
                "\rteacher, {label}: {}/{} answers, {} new tokens at {:.0} tokens/s   ",
                p.done,
                p.total,
                p.generated_tokens,
                p.generated_tokens as f64 / p.seconds.max(1e-9)
            );
            if p.done == p.total {
                eprintln!();
                let (t, s) = fresh.get();
                fresh.set((t + p.generated_tokens, s + p.seconds));
            }
        }
    };
    let wm = teacher.answers(
        train_prompts,
        Some(green),
        generate,
        progress("watermarked".into()),
    )?;
    let plain = teacher.answers(
        train_prompts,
        None,
        plain_generate,
        progress("plain".into()),
    )?;
    let mut null_sets: Vec<(GreenList, Vec<Sample>)> = Vec::with_capacity(args.null_keys);
    for (j, prompts) in null_prompts.chunks(args.null_texts.max(1)).enumerate() {
        let (g, options) = settings.null_key(j)?;
        let texts = teacher.answers(
            prompts,
            Some(&g),
            &options,
            progress(format!("null key {}", j + 1)),
        )?;
        null_sets.push((g, texts));
    }
    let (fresh_tokens, fresh_seconds) = fresh.get();
    Ok(TeacherAnswers {
        wm,
        plain,
        null_sets,
        seconds: gen_started.elapsed().as_secs_f64(),
        fresh_tokens,
        fresh_seconds,
    })
}

/// The students of every ρ, audited, and what they cost.
struct Students {
    rows: Vec<Row>,
    /// The ρ = 0 student and its held-out answers, for the null checks.
    innocent: Option<(NgramModel, Vec<Sample>)>,
    train_seconds: f64,
    sample_seconds: f64,
    sampled_tokens: usize,
    /// Seconds for the audits at the anchor's budget (querying and scoring).
    anchor_seconds: f64,
    /// Seconds for training, sampling and auditing all of them.
    seconds: f64,
}

fn run_students(
    teacher: &Teacher,
    green: &GreenList,
    answers: &TeacherAnswers,
    prompts: &Prompts,
    args: &Args,
) -> Result<Students> {
    let (wm, plain) = (&answers.wm, &answers.plain);
    let vocab = teacher.vocab_size();
    let stop = teacher.stop_ids().to_vec();
    let held_out = teacher.encode(&prompts.held_out)?;
    let anchor_prompts = teacher.encode(&prompts.anchor)?;
    let anchor_plan = QueryPlan {
        target_scored: args.anchor_scored,
        max_queries: args.anchor_max_queries,
        max_tokens: args.max_tokens,
        temperature: args.student_temperature,
        seed: args.seed.wrapping_mul(1_000_003).wrapping_add(1 << 40),
        threads: args.threads,
    };
    let config = NgramConfig {
        order: args.order,
        discount: Discount::Modified,
    };
    let all_wm: Vec<&Sample> = wm.iter().collect();
    let students_started = Instant::now();
    let (mut train_seconds, mut sample_seconds, mut sampled_tokens) = (0.0, 0.0, 0usize);
    let mut anchor_seconds = 0.0;
    let mut rows = Vec::new();
    let mut innocent: Option<(NgramModel, Vec<Sample>)> = None;
    for &rho in &RHOS {
        let share = watermarked_share(wm.len(), rho, args.seed);
        let training: Vec<&Sample> = share
            .iter()
            .enumerate()
            .map(|(i, &m)| if m { &wm[i] } else { &plain[i] })
            .collect();
        let served: Vec<&Sample> = wm
            .iter()
            .zip(&share)
            .filter_map(|(s, &m)| m.then_some(s))
            .collect();
        // With nothing served (ρ = 0), "supervised" uses our whole log of watermarked answers:
        // none of it was trained on, so it is a null row like the others.
        let ours: &[&Sample] = if served.is_empty() { &all_wm } else { &served };
        let t = Instant::now();
        let student = train_student(vocab, config, &training, stop.first().copied())?;
        train_seconds += t.elapsed().as_secs_f64();
        let t = Instant::now();
        let answers = student_answers(
            &student,
            &held_out,
            args.max_tokens,
            args.student_temperature,
            args.seed.wrapping_mul(1_000_003),
            &stop,
        )?;
        sample_seconds += t.elapsed().as_secs_f64();
        sampled_tokens += answers.iter().map(|a| a.response_ids.len()).sum::<usize>();
        let [closed, closed_supervised, reading, reading_supervised] =
            audit_student(green, &student, &answers, &all_wm, ours)?;
        let anchor = match args.anchor_scored {
            0 => None,
            _ => {
                let t = Instant::now();
                let scaled = closed_at_scale(
                    green,
                    &student,
                    &anchor_prompts,
                    &stop,
                    window_filter(green, ours)?,
                    &anchor_plan,
                    rho == 0.0,
                )?;
                anchor_seconds += t.elapsed().as_secs_f64();
                Some(scaled)
            }
        };
        rows.push(Row {
            rho,
            watermarked_answers: served.len(),
            training_tokens: training
                .iter()
                .map(|s| s.prompt_ids.len() + s.response_ids.len() + 1)
                .sum(),
            closed,
            closed_supervised,
            reading,
            reading_supervised,
            anchor,
        });
        if rho == 0.0 {
            innocent = Some((student, answers));
        }
    }
    Ok(Students {
        rows,
        innocent,
        train_seconds,
        sample_seconds,
        sampled_tokens,
        anchor_seconds,
        seconds: students_started.elapsed().as_secs_f64(),
    })
}

/// A student's four audits: closed and reading mode, unsupervised and supervised by `ours`
/// (the watermarked answers it was served).
fn audit_student(
    green: &GreenList,
    student: &NgramModel,
    answers: &[Sample],
    all_wm: &[&Sample],
    ours: &[&Sample],
) -> Result<[AuditReport; 4]> {
    let options = AuditOptions::default();
    let closed = audit_outputs(green, answers, None, &options)?;
    let closed_supervised =
        audit_outputs(green, answers, Some(window_filter(green, ours)?), &options)?;
    let reading = audit_reading(
        green,
        all_wm,
        &student_predictions(student, all_wm)?,
        None,
        &options,
    )?;
    let reading_supervised = audit_reading(
        green,
        ours,
        &student_predictions(student, ours)?,
        None,
        &options,
    )?;
    Ok([closed, closed_supervised, reading, reading_supervised])
}

/// One log10 p-value per null key for each audit of the null checks, in table order.
fn null_checks(
    teacher: &Teacher,
    null_sets: &[(GreenList, Vec<Sample>)],
    student0: &NgramModel,
    answers0: &[Sample],
) -> Result<Vec<(String, Vec<f64>)>> {
    let mut checks: Vec<(String, Vec<f64>)> = Vec::new();
    for (g, texts) in null_sets {
        let texts: Vec<&Sample> = texts.iter().collect();
        for (i, (name, log10_p)) in null_audits(teacher, g, &texts, student0, answers0)?
            .into_iter()
            .enumerate()
        {
            match checks.get_mut(i) {
                Some((_, v)) => v.push(log10_p),
                None => checks.push((name.to_string(), vec![log10_p])),
            }
        }
    }
    Ok(checks)
}

/// The null audits under one key `g`, whose own watermarked answers are `texts`: neither the
/// ρ = 0 student nor the default model saw them, so each log10 p is a draw from the null.
fn null_audits(
    teacher: &Teacher,
    g: &GreenList,
    texts: &[&Sample],
    student0: &NgramModel,
    answers0: &[Sample],
) -> Result<[(&'static str, f64); 7]> {
    let on = AuditOptions::default();
    let no_dedup = AuditOptions {
        deduplicate: false,
        ..AuditOptions::default()
    };
    let no_context = AuditOptions {
        exclude_context: false,
        ..AuditOptions::default()
    };
    let student_reads = student_predictions(student0, texts)?;
    let mut model_reads = Vec::with_capacity(texts.len());
    for s in texts {
        model_reads.push(top1_predictions(
            teacher.generator().model(),
            &s.prompt_ids,
            &s.response_ids,
        )?);
    }
    let l = |r: AuditReport| r.header.score.log10_p_value;
    Ok([
        (
            "ρ=0 student, closed, unsupervised",
            l(audit_outputs(g, answers0, None, &on)?),
        ),
        (
            "ρ=0 student, closed, filter: the key's texts",
            l(audit_outputs(
                g,
                answers0,
                Some(window_filter(g, texts)?),
                &on,
            )?),
        ),
        (
            "ρ=0 student, reading the key's texts",
            l(audit_reading(g, texts, &student_reads, None, &on)?),
        ),
        (
            "default model, reading the key's texts",
            l(audit_reading(g, texts, &model_reads, None, &on)?),
        ),
        (
            "ρ=0 student, closed, dedup OFF",
            l(audit_outputs(g, answers0, None, &no_dedup)?),
        ),
        (
            "default model, reading, dedup OFF",
            l(audit_reading(g, texts, &model_reads, None, &no_dedup)?),
        ),
        (
            "default model, reading, context exclusion OFF",
            l(audit_reading(g, texts, &model_reads, None, &no_context)?),
        ),
    ])
}

fn print_null_checks(checks: &[(String, Vec<f64>)], keys: usize, texts_per_key: usize) {
    println!();
    println!(
        "Null checks: {} keys, each with its own {} watermarked teacher answers (read under that key)",
        keys,
        texts_per_key
    );
    println!("{}", null_table(checks));
}

/// Mean fraction of green tokens over the scored tokens of our watermarked answers.
fn mean_green_fraction(green: &GreenList, answers: &[Sample]) -> Result<f64> {
    let mut scored = 0u64;
    let mut g = 0u64;
    for s in answers {
        let d = watermark_core::detect(
            green,
            &s.prompt_ids,
            &s.response_ids,
            &watermark_core::DetectOptions::default(),
        );
        if let Ok(d) = d {
            scored += d.header.score.scored;
            g += d.header.score.green;
        }
    }
    Ok(g as f64 / scored.max(1) as f64)
}

fn cell(r: &AuditReport) -> String {
    format!(
        "{:>8.1} {:>7}",
        r.header.score.log10_p_value, r.header.score.scored
    )
}

fn print_table(rows: &[Row], args: &Args) {
    println!();
    println!(
        "Students: {}-gram Kneser–Ney on {} answers each (prompt + answer), answering {} held-out prompts at T = {}",
        args.order, args.train, args.held_out, args.student_temperature
    );
    println!(
        "{:>5} {:>6} {:>8} | {:^16} | {:^16} | {:^16} | {:^16}",
        "ρ", "wm", "train", "closed", "closed, superv.", "reading", "reading, superv."
    );
    println!(
        "{:>5} {:>6} {:>8} | {:>8} {:>7} | {:>8} {:>7} | {:>8} {:>7} | {:>8} {:>7}",
        "",
        "answ.",
        "tokens",
        "log10 p",
        "scored",
        "log10 p",
        "scored",
        "log10 p",
        "scored",
        "log10 p",
        "scored"
    );
    for r in rows {
        println!(
            "{:>4}% {:>6} {:>8} | {} | {} | {} | {}",
            r.rho * 100.0,
            r.watermarked_answers,
            r.training_tokens,
            cell(&r.closed),
            cell(&r.closed_supervised),
            cell(&r.reading),
            cell(&r.reading_supervised)
        );
    }
    println!(
        "closed: the student's answers to the held-out prompts; supervised: only tokens whose window occurs in\n\
         the watermarked answers it was served (ρ = 0: all of ours, none trained on); reading: its top-1\n\
         predictions over all our watermarked answers (supervised: only those it was served). Flagged at\n\
         log10 p ≤ -6. Every audit scores each (window, token) once and skips windows seen in the context."
    );
}

/// −log10 p against ρ, both on log axes (ρ = 0 cannot be drawn there; the table has it).
fn plot(rows: &[Row], path: &Path) -> Result<()> {
    use tracemark_plot::{Chart, ReferenceLine, Scale, Series};
    let series = |name: &str, f: &dyn Fn(&Row) -> f64| {
        Series::line_points(
            name,
            rows.iter()
                .filter(|r| r.rho > 0.0)
                .map(|r| (r.rho * 100.0, -f(r)))
                .filter(|&(_, y)| y > 0.0)
                .collect(),
        )
    };
    let mut chart = Chart::new(
        "Radioactivity of n-gram students",
        "watermarked share of training answers (%)",
        "-log10 p",
    )
    .with_series(series("closed", &|r| r.closed.header.score.log10_p_value))
    .with_series(series("closed, filter", &|r| {
        r.closed_supervised.header.score.log10_p_value
    }))
    .with_series(series("reading", &|r| r.reading.header.score.log10_p_value))
    .with_series(series("reading, served", &|r| {
        r.reading_supervised.header.score.log10_p_value
    }))
    .with_reference(ReferenceLine::horizontal(6.0, "FPR 1e-6"));
    chart.x.scale = Scale::Log10;
    chart.y.scale = Scale::Log10;
    let png = chart.render_png(800, 500)?;
    std::fs::write(path, png).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}
