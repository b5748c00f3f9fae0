//! `make radioactivity-neural`: the radioactivity experiment with neural students.
//!
//! The default model, watermarked, is the teacher (its answers come from the cache of
//! `make radioactivity`, `target/radioactivity/`, generated with the same settings and seeds, so
//! either experiment reuses the other's). Each student is SmolLM2-135M itself, dequantized to
//! f32 and fine-tuned by AdamW on a mix of prompt/answer pairs in which a share ρ of the answers
//! is watermarked, saved as a GGUF file, and audited from that file like any suspect model:
//! closed (its answers to held-out prompts), closed supervised (only windows of the answers it
//! was served), and reading mode. Then the ρ = 100% student is fine-tuned further on clean human
//! text, and the null checks run the audits of the ρ = 0 student and of the untouched model
//! under keys that never saw any training text. Students and their outputs are cached in
//! `target/radioactivity-neural/` by a hash of everything that determines them.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Parser;
use tracemark_lab::corpus;
use tracemark_lab::neural::{
    load_pretrained, settings_digest, student_outputs, train, write_gguf, Example, PrefixCache,
    SavedDType, StudentOutputs, TrainOptions, Tuning,
};
use tracemark_lab::radioactivity::anchor::{curve_at, ScaledAudit, ScaledClosed};
use tracemark_lab::radioactivity::prompts::prompts_after;
use tracemark_lab::radioactivity::teacher::Teacher;
use tracemark_lab::radioactivity::{
    audit_outputs, audit_reading, closed_under_keys, null_table, watermarked_share, window_filter,
    PromptSets, Sample, TeacherSettings,
};
use tracemark_model::generate::GenerateOptions;
use tracemark_model::llama::{set_threads, LoadOptions};
use tracemark_model::reading::top1_predictions;
use watermark_core::{
    grouped, AuditOptions, AuditReport, GreenList, Pilot, Plan, PlanOptions, Planner, Prediction,
    Sampling,
};

/// Bump when training or saving changes what a cached student contains.
const STUDENT_VERSION: u32 = 1;

#[derive(Parser, Debug)]
#[command(about = "Radioactivity with neural students: SmolLM2 fine-tuned on watermarked answers")]
struct Args {
    /// Training prompts; the teacher answers each with and without the watermark.
    #[arg(long, default_value_t = 128)]
    train: usize,
    /// Watermarked shares of the students' training answers (comma-separated); with 1, the
    /// ρ = 100% student is also fine-tuned on clean text, and with 0 the null checks run.
    #[arg(long, value_delimiter = ',', default_values_t = [0.0, 0.10, 1.0])]
    rhos: Vec<f64>,
    /// Held-out prompts each student answers (the closed-model audit).
    #[arg(long, default_value_t = 32)]
    held_out: usize,
    /// Most tokens per answer (teacher and students).
    #[arg(long, default_value_t = 96)]
    max_tokens: usize,
    /// Watermark bias δ of the teacher (γ = 0.25, window 2 over the previous tokens).
    #[arg(long, default_value_t = 3.0)]
    delta: f32,
    /// Keys of the null checks, each with its own watermarked teacher answers.
    #[arg(long, default_value_t = 20)]
    null_keys: usize,
    /// Watermarked teacher answers per null key.
    #[arg(long, default_value_t = 3)]
    null_texts: usize,
    /// Keys under which the ρ = 0 student's closed audits (held-out and larger) are scored
    /// again: no teacher answers are needed, so this null check can afford many keys.
    #[arg(long, default_value_t = 200)]
    closed_null_keys: usize,
    /// Blocks fine-tuned, counted from the top (all their weights, and the final norm); the
    /// embedding and the blocks below are frozen.
    #[arg(long, default_value_t = 4)]
    top_blocks: usize,
    /// Passes over the training answers.
    #[arg(long, default_value_t = 2)]
    epochs: usize,
    /// AdamW learning rate.
    #[arg(long, default_value_t = 3e-4)]
    learning_rate: f64,
    /// Answers per optimizer step.
    #[arg(long, default_value_t = 4)]
    train_batch: usize,
    /// Human texts of the clean fine-tuning of the ρ = 100% student (one pass).
    #[arg(long, default_value_t = 64)]
    clean_texts: usize,
    /// Most tokens per student answer (the closed-model audit).
    #[arg(long, default_value_t = 64)]
    student_max_tokens: usize,
    /// Sampling temperature of the students' answers.
    #[arg(long, default_value_t = 0.7)]
    student_temperature: f32,
    /// Closed audits past the pilot: each student answers fresh prompts until its
    /// unsupervised closed audit has scored this many tuples (0: skip). The held-out audit is
    /// the pilot whose power plan this larger audit checks. The fresh prompts come after those
    /// of training, held-out and null keys, so `--null-keys` and `--null-texts` change them.
    #[arg(long, default_value_t = 20_000)]
    scale_scored: u64,
    /// ...or until it has answered this many fresh prompts.
    #[arg(long, default_value_t = 1_000)]
    scale_prompts: usize,
    /// Fresh prompts answered per cached round of the larger audit.
    #[arg(long, default_value_t = 64)]
    scale_round: usize,
    /// CPU threads.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Prompts answered at once (teacher and students).
    #[arg(long, default_value_t = 8)]
    batch_size: usize,
    /// Exact Q8_0 kernels instead of the fast (VNNI) matmul, for the teacher and the students.
    #[arg(long)]
    exact: bool,
    /// Seed of the keys, the prompt order, the mixes, training and sampling.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Teacher-answer cache (shared with `make radioactivity`).
    #[arg(long, default_value = "target/radioactivity")]
    teacher_cache: PathBuf,
    /// Students and their outputs.
    #[arg(long, default_value = "target/radioactivity-neural")]
    cache: PathBuf,
}

/// One audited student.
struct Row {
    name: String,
    served: usize,
    watermarked_tokens: usize,
    closed: AuditReport,
    closed_supervised: AuditReport,
    reading: AuditReport,
    reading_supervised: AuditReport,
    train_seconds: f64,
    /// The larger closed audit, when asked for.
    scaled: Option<Scaled>,
}

/// A student's larger closed audit, and what the pilot's power plan said of it.
struct Scaled {
    audit: ScaledClosed,
    /// The plan from the held-out (pilot) audit.
    plan: Plan,
    /// The pilot's prediction for an audit of the size reached.
    prediction: Option<Prediction>,
    seconds: f64,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let started = Instant::now();
    set_threads(args.threads)?;
    std::fs::create_dir_all(&args.cache)
        .with_context(|| format!("creating {}", args.cache.display()))?;
    let model_path = tracemark_model::locate_default_model()?;
    let corpus_path = corpus::default_path().context(
        "human-text corpus not found: run scripts/fetch-corpus.sh and set TRACEMARK_CORPUS",
    )?;
    let texts = corpus::read_texts(&corpus_path)?;
    let load = LoadOptions {
        fast_matmul: !args.exact,
        ..LoadOptions::candle()
    };
    let teacher = Teacher::load(&model_path, load.clone(), &args.teacher_cache)?;
    let data = TeacherData::collect(&teacher, &texts, &args)?;
    println!(
        "radioactivity, neural students: SmolLM2-135M-Instruct teacher (GGUF sha256 {}…), key {}, \
         δ = {}, γ = 0.25, window 2; {} training prompts, {} held out, ≤ {} tokens; {} threads",
        &teacher.model_sha256()[..12],
        data.green.key_fingerprint(),
        args.delta,
        args.train,
        args.held_out,
        args.max_tokens,
        args.threads
    );
    println!(
        "teacher answers: {} watermarked, {} plain, {} for {} null keys (read from {} or generated) in {:.0} s",
        data.wm.len(),
        data.plain.len(),
        data.null_sets.iter().map(|(_, t)| t.len()).sum::<usize>(),
        data.null_sets.len(),
        args.teacher_cache.display(),
        data.seconds
    );
    let lab = Lab {
        args: &args,
        model_path: &model_path,
        load: &load,
        stop: teacher.stop_ids().first().copied(),
    };
    let (rows, innocent) = lab.students(&teacher, &texts, &data)?;
    print_table(&rows, &args);
    print_scaled(&rows, &args);
    if let Some(innocent) = &innocent {
        let null_started = Instant::now();
        if !data.null_sets.is_empty() {
            let checks = null_checks(&teacher, innocent, &load, &data.null_sets)?;
            println!(
                "\nNull checks: {} keys, each with its own {} watermarked teacher answers (read under that key)",
                data.null_sets.len(),
                args.null_texts
            );
            println!("{}", null_table(&checks));
        }
        if !data.closed_null.is_empty() {
            let checks = closed_null_checks(innocent, &data.closed_null)?;
            println!(
                "\nClosed null checks: the ρ = 0 student's own answers scored under {} keys that never saw a text",
                data.closed_null.len()
            );
            println!("{}", null_table(&checks));
        }
        println!("null checks: {:.0} s", null_started.elapsed().as_secs_f64());
    }
    println!(
        "\ntime: {:.1} min in all on {} threads (students trained or read from {})",
        started.elapsed().as_secs_f64() / 60.0,
        args.threads,
        args.cache.display()
    );
    Ok(())
}

/// The teacher's answers (watermarked and plain for training, each null key's own) and the
/// held-out prompts; prompts, keys and seeds as in `make radioactivity`, so that the two
/// experiments share the teacher cache.
struct TeacherData {
    green: GreenList,
    wm: Vec<Sample>,
    plain: Vec<Sample>,
    held_out: Vec<String>,
    /// Fresh prompts of the larger closed audits: none of training, held-out or null.
    scale: Vec<String>,
    null_sets: Vec<(GreenList, Vec<Sample>)>,
    /// Keys of the closed null checks (the first ones are those of `null_sets`).
    closed_null: Vec<GreenList>,
    seconds: f64,
}

impl TeacherData {
    fn collect(teacher: &Teacher, texts: &[String], args: &Args) -> Result<Self> {
        let started = Instant::now();
        let null_total = args.null_keys * args.null_texts;
        let prompts =
            PromptSets::from_texts(texts, args.train, args.held_out, null_total, args.seed)?;
        let settings = TeacherSettings::new(
            args.delta,
            args.max_tokens,
            args.batch_size,
            args.seed,
            teacher.vocab_size(),
        )?;
        let (all, held_out, null) = (prompts.train, prompts.held_out, prompts.null);
        let scale = match args.scale_scored {
            0 => Vec::new(),
            _ => prompts_after(
                texts,
                args.train + args.held_out + null_total,
                args.scale_prompts,
                args.seed,
            ),
        };
        if args.scale_scored > 0 && scale.is_empty() {
            bail!("the corpus has no prompts left for the larger closed audits");
        }
        let (green, generate) = (settings.green.clone(), &settings.generate);
        let progress = |label: &'static str| {
            move |p: tracemark_lab::radioactivity::teacher::Progress| {
                eprint!("\rteacher, {label}: {}/{} answers   ", p.done, p.total);
                if p.done == p.total {
                    eprintln!();
                }
            }
        };
        let wm = teacher.answers(&all, Some(&green), generate, progress("watermarked"))?;
        let plain_options = &settings.plain_generate;
        let plain = teacher.answers(&all, None, plain_options, progress("plain"))?;
        let mut null_sets = Vec::new();
        for (j, prompts) in null.chunks(args.null_texts.max(1)).enumerate() {
            let (g, options) = settings.null_key(j)?;
            let answers = teacher.answers(prompts, Some(&g), &options, progress("null keys"))?;
            null_sets.push((g, answers));
        }
        let closed_null = (0..args.closed_null_keys)
            .map(|j| Ok(settings.null_key(j)?.0))
            .collect::<Result<Vec<_>>>()?;
        Ok(TeacherData {
            green,
            wm,
            plain,
            held_out,
            scale,
            null_sets,
            closed_null,
            seconds: started.elapsed().as_secs_f64(),
        })
    }
}

/// `n` clean training texts: human documents from the end of the corpus (the prompts come from
/// document openings in a shuffled order), the first `max_tokens` tokens of each, every token a
/// target.
fn clean_examples(
    teacher: &Teacher,
    texts: &[String],
    n: usize,
    max_tokens: usize,
) -> Result<Vec<Example>> {
    let tokenizer = teacher.generator().tokenizer();
    let mut out = Vec::with_capacity(n);
    for text in texts.iter().rev() {
        if out.len() == n {
            break;
        }
        let mut ids = tokenizer.encode(text)?;
        ids.truncate(max_tokens);
        if ids.len() >= 16 {
            out.push(Example {
                tokens: ids,
                answer_start: 1,
            });
        }
    }
    Ok(out)
}

/// The ρ = 0 student, for the null checks.
struct Innocent {
    path: PathBuf,
    /// Its held-out answers and its predictions over our watermarked answers.
    outputs: StudentOutputs,
    /// The answers of its larger closed audit (empty without one).
    scaled_answers: Vec<Sample>,
}

/// What every student shares.
struct Lab<'a> {
    args: &'a Args,
    model_path: &'a Path,
    load: &'a LoadOptions,
    stop: Option<u32>,
}

impl Lab<'_> {
    /// Every student (each ρ, then the ρ = 100% one fine-tuned on clean text), trained or read
    /// from the cache, and audited; and the ρ = 0 student with its outputs, for the null checks.
    fn students(
        &self,
        teacher: &Teacher,
        texts: &[String],
        data: &TeacherData,
    ) -> Result<(Vec<Row>, Option<Innocent>)> {
        let mut rows = Vec::new();
        let mut prefix = PrefixCache::new();
        let mut innocent: Option<Innocent> = None;
        let mut full: Option<(PathBuf, String)> = None;
        // Checked before any student is trained, not when its turn comes.
        if let Some(rho) = self.args.rhos.iter().find(|r| !(0.0..=1.0).contains(*r)) {
            bail!("--rhos: {rho} is not a share in [0, 1]");
        }
        for &rho in &self.args.rhos {
            let share = watermarked_share(data.wm.len(), rho, self.args.seed);
            let training: Vec<&Sample> = share
                .iter()
                .enumerate()
                .map(|(i, &m)| if m { &data.wm[i] } else { &data.plain[i] })
                .collect();
            let served: Vec<&Sample> = data
                .wm
                .iter()
                .zip(&share)
                .filter_map(|(s, &m)| m.then_some(s))
                .collect();
            let examples: Vec<Example> = training
                .iter()
                .map(|s| Example::new(&s.prompt_ids, &s.response_ids, self.stop))
                .collect();
            let name = format!("ρ = {}%", rho * 100.0);
            let (path, key, seconds) =
                self.student(&name, self.model_path, &examples, 1, &mut prefix)?;
            let (mut row, outputs) = self.audit(&name, &path, &key, data, &served, seconds)?;
            if rho == 0.0 {
                let scaled = row.scaled.as_mut().and_then(|s| s.audit.answers.take());
                innocent = Some(Innocent {
                    path: path.clone(),
                    outputs,
                    scaled_answers: scaled.unwrap_or_default(),
                });
            }
            rows.push(row);
            if rho == 1.0 {
                full = Some((path, key));
            }
        }
        if let Some((path, key)) = &full {
            // The ρ = 100% student, fine-tuned further on human text: how much of the signal
            // survives. Its frozen blocks were stored in Q8_0, so the prefix cache starts afresh.
            let clean = clean_examples(
                teacher,
                texts,
                self.args.clean_texts,
                self.args.max_tokens + 48,
            )?;
            let name = "ρ = 100%, then clean".to_string();
            let (path2, key2, seconds) =
                self.student(&name, path, &clean, 1, &mut PrefixCache::new())?;
            let served: Vec<&Sample> = data.wm.iter().collect();
            let key2 = format!("{key}+{key2}");
            rows.push(self.audit(&name, &path2, &key2, data, &served, seconds)?.0);
        }
        Ok((rows, innocent))
    }

    /// The student fine-tuned from `base` on `examples`, from the cache or trained now: its
    /// file, its cache key, and the seconds training took (0 when cached).
    fn student(
        &self,
        name: &str,
        base: &Path,
        examples: &[Example],
        seed: u64,
        prefix: &mut PrefixCache,
    ) -> Result<(PathBuf, String, f64)> {
        let a = self.args;
        let tuning = Tuning::TopBlocks {
            blocks: a.top_blocks,
        };
        let options = TrainOptions {
            epochs: a.epochs,
            batch_size: a.train_batch,
            learning_rate: a.learning_rate,
            warmup: 8,
            weight_decay: 0.0,
            seed: a.seed.wrapping_add(seed),
        };
        let tokens: Vec<(&[u32], usize)> = examples
            .iter()
            .map(|e| (e.tokens.as_slice(), e.answer_start))
            .collect();
        let key = settings_digest(&serde_json::json!({
            "version": STUDENT_VERSION,
            "base": base.display().to_string(),
            "base_len": std::fs::metadata(base).map(|m| m.len()).unwrap_or(0),
            "tuning": format!("{tuning:?}"),
            "options": format!("{options:?}"),
            "examples": tokens,
        }));
        let path = a.cache.join(format!("student-{key}.gguf"));
        if path.is_file() {
            println!("{name}: student read from {}", path.display());
            return Ok((path, key, 0.0));
        }
        let model = load_pretrained(base, tuning, a.seed)?;
        let report = train(&model, examples, &options, prefix, |s| {
            eprint!(
                "\r{name}: step {}/{}, loss {:.3}, {:.0} target tokens/s   ",
                s.step,
                s.steps,
                s.loss,
                s.target_tokens as f64 / s.seconds.max(1e-9)
            );
        })?;
        eprintln!();
        write_gguf(&model, Some(self.model_path), &path, SavedDType::Q8_0)?;
        println!(
            "{name}: {} examples x {} epochs, {} steps, {} target tokens ({} through the model), \
             loss {:.3} -> {:.3}, {:.1} min ({:.0} target tokens/s; frozen-prefix states of all students so far: {:.1} min); {} trainable parameters",
            examples.len(),
            a.epochs,
            report.steps,
            report.target_tokens,
            report.sequence_tokens,
            report.first_loss,
            report.last_loss,
            report.seconds / 60.0,
            report.target_tokens as f64 / report.seconds.max(1e-9),
            prefix.seconds / 60.0,
            model.trainable_parameters()
        );
        Ok((path, key, report.seconds))
    }

    /// The four audits of the student at `path`; `served` are the watermarked answers it was
    /// trained on.
    fn audit(
        &self,
        name: &str,
        path: &Path,
        key: &str,
        data: &TeacherData,
        served: &[&Sample],
        train_seconds: f64,
    ) -> Result<(Row, StudentOutputs)> {
        let a = self.args;
        let generate = GenerateOptions {
            max_tokens: a.student_max_tokens,
            min_tokens: 0,
            sampling: Sampling::new(a.student_temperature, None, None)?,
            seed: a.seed.wrapping_mul(1_000_003),
            batch_size: a.batch_size,
        };
        let all_wm: Vec<&Sample> = data.wm.iter().collect();
        let t = Instant::now();
        let out = student_outputs(
            path,
            key,
            &data.held_out,
            &all_wm,
            &generate,
            self.load,
            &a.cache,
        )?;
        eprintln!(
            "{name}: answers and predictions in {:.0} s",
            t.elapsed().as_secs_f64()
        );
        let g = &data.green;
        let options = AuditOptions::default();
        // With nothing served (ρ = 0) "supervised" uses all of our watermarked answers, none
        // of which it trained on: a null row like the others.
        let ours: &[&Sample] = if served.is_empty() { &all_wm } else { served };
        let served_predictions: Vec<Vec<u32>> = data
            .wm
            .iter()
            .zip(&out.predictions)
            .filter(|(s, _)| ours.iter().any(|o| std::ptr::eq(*o, *s)))
            .map(|(_, p)| p.clone())
            .collect();
        let row = Row {
            name: name.to_string(),
            served: served.len(),
            watermarked_tokens: served.iter().map(|s| s.response_ids.len()).sum(),
            closed: audit_outputs(g, &out.answers, None, &options)?,
            closed_supervised: audit_outputs(
                g,
                &out.answers,
                Some(window_filter(g, ours)?),
                &options,
            )?,
            reading: audit_reading(g, &all_wm, &out.predictions, None, &options)?,
            reading_supervised: audit_reading(g, ours, &served_predictions, None, &options)?,
            train_seconds,
            scaled: None,
        };
        let scaled = match a.scale_scored {
            0 => None,
            _ => Some(self.scale(name, path, key, data, ours, &row.closed, &generate)?),
        };
        Ok((Row { scaled, ..row }, out))
    }

    /// The larger closed audit of the student at `path`: it answers the fresh prompts, a
    /// cached round at a time, until its unsupervised audit has scored `--scale-scored`
    /// tuples; `pilot` (its held-out audit) plans the size and predicts the result.
    #[allow(clippy::too_many_arguments)]
    fn scale(
        &self,
        name: &str,
        path: &Path,
        key: &str,
        data: &TeacherData,
        served: &[&Sample],
        pilot: &AuditReport,
        pilot_generate: &GenerateOptions,
    ) -> Result<Scaled> {
        let a = self.args;
        let started = Instant::now();
        // The defaults of `tracemark audit --plan`: p ≤ 1e-6 with probability 0.5, 95% intervals.
        let options = PlanOptions::default();
        let planner = Planner::new(Pilot::new(&pilot.header.score, pilot.documents), options)?;
        let filter = window_filter(&data.green, served)?;
        // The answers are kept for the closed null checks of the ρ = 0 student.
        let mut audit = ScaledAudit::new(&data.green, filter, a.scale_scored, true)?;
        // Query q (the q-th fresh prompt) is drawn with seed `base + q`, past the pilot's.
        let base = pilot_generate
            .seed
            .wrapping_add(a.held_out as u64)
            .wrapping_add(1 << 20);
        let round_size = a.scale_round.max(1);
        for (round, prompts) in data.scale.chunks(round_size).enumerate() {
            let generate = GenerateOptions {
                seed: base.wrapping_add((round * round_size) as u64),
                ..pilot_generate.clone()
            };
            let out = student_outputs(path, key, prompts, &[], &generate, self.load, &a.cache)?;
            let mut enough = false;
            for answer in &out.answers {
                enough = audit.add(answer)?;
                if enough {
                    break;
                }
            }
            eprint!(
                "\r{name}, larger closed audit: {} answers   ",
                (round + 1) * round_size
            );
            if enough {
                break;
            }
        }
        eprintln!();
        let audit = audit.finish();
        let prediction = planner.predict(audit.closed.header.score.scored);
        Ok(Scaled {
            audit,
            plan: planner.plan(),
            prediction,
            seconds: started.elapsed().as_secs_f64(),
        })
    }
}

/// log10 p of each null audit under each null key.
fn null_checks(
    teacher: &Teacher,
    innocent: &Innocent,
    load: &LoadOptions,
    null_sets: &[(GreenList, Vec<Sample>)],
) -> Result<Vec<(&'static str, Vec<f64>)>> {
    let outputs = &innocent.outputs;
    let student = tracemark_model::llama::Llama::load(&innocent.path, load)?;
    let on = AuditOptions::default();
    let names = [
        "ρ=0 student, closed, unsupervised",
        "ρ=0 student, closed, filter: the key's texts",
        "ρ=0 student, reading the key's texts",
        "default model, reading the key's texts",
    ];
    let mut values: Vec<Vec<f64>> = vec![Vec::new(); names.len()];
    let l = |r: AuditReport| r.header.score.log10_p_value;
    for (g, texts) in null_sets {
        let texts: Vec<&Sample> = texts.iter().collect();
        let mut student_reads = Vec::new();
        let mut model_reads = Vec::new();
        for s in &texts {
            student_reads.push(top1_predictions(&student, &s.prompt_ids, &s.response_ids)?);
            model_reads.push(top1_predictions(
                teacher.generator().model(),
                &s.prompt_ids,
                &s.response_ids,
            )?);
        }
        values[0].push(l(audit_outputs(g, &outputs.answers, None, &on)?));
        values[1].push(l(audit_outputs(
            g,
            &outputs.answers,
            Some(window_filter(g, &texts)?),
            &on,
        )?));
        values[2].push(l(audit_reading(g, &texts, &student_reads, None, &on)?));
        values[3].push(l(audit_reading(g, &texts, &model_reads, None, &on)?));
    }
    Ok(names.into_iter().zip(values).collect())
}

/// log10 p of the ρ = 0 student's closed audits, held-out and larger, under each key of
/// `keys`; each row is named with its scored tuples.
fn closed_null_checks(innocent: &Innocent, keys: &[GreenList]) -> Result<Vec<(String, Vec<f64>)>> {
    let sets = [
        (
            "ρ=0 student, closed, held-out answers",
            &innocent.outputs.answers,
        ),
        (
            "ρ=0 student, closed, larger audit",
            &innocent.scaled_answers,
        ),
    ];
    let mut rows = Vec::new();
    for (name, answers) in sets {
        if answers.is_empty() {
            continue;
        }
        let (scored, log10_p) = closed_under_keys(keys, answers)?;
        rows.push((format!("{name} ({} tuples)", grouped(scored)), log10_p));
    }
    Ok(rows)
}

fn cell(r: &AuditReport) -> String {
    format!(
        "{:>8.1} {:>7}",
        r.header.score.log10_p_value, r.header.score.scored
    )
}

fn print_table(rows: &[Row], args: &Args) {
    println!(
        "\nStudents: SmolLM2-135M, top {} blocks fine-tuned (AdamW, lr {}, {} epochs, batch {}) on {} answers each; \
         {} held-out answers of ≤ {} tokens at T = {}",
        args.top_blocks,
        args.learning_rate,
        args.epochs,
        args.train_batch,
        args.train,
        args.held_out,
        args.student_max_tokens,
        args.student_temperature
    );
    println!(
        "{:<22} {:>5} {:>7} | {:^16} | {:^16} | {:^16} | {:^16} | {:>6}",
        "student", "wm", "wm", "closed", "closed, superv.", "reading", "reading, superv.", "train"
    );
    println!(
        "{:<22} {:>5} {:>7} | {:>8} {:>7} | {:>8} {:>7} | {:>8} {:>7} | {:>8} {:>7} | {:>6}",
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
        "scored",
        "min"
    );
    for r in rows {
        println!(
            "{:<22} {:>5} {:>7} | {} | {} | {} | {} | {:>6.1}",
            r.name,
            r.served,
            r.watermarked_tokens,
            cell(&r.closed),
            cell(&r.closed_supervised),
            cell(&r.reading),
            cell(&r.reading_supervised),
            r.train_seconds / 60.0
        );
    }
    println!(
        "wm answ./tokens: watermarked answers (answer tokens) in its training set. closed: its answers to the\n\
         held-out prompts; supervised: only tokens whose window occurs in the watermarked answers it was served\n\
         (ρ = 0 and the clean row: all of ours); reading: its top-1 predictions over all our watermarked answers\n\
         (supervised: only those it was served). Targets: flagged at log10 p ≤ -6. train min: 0 when cached.\n\
         Sander et al. (7B students, ~100k instructions): closed −4.7 at ρ = 10%; reading −15.6 at ρ = 10%;\n\
         supervised ρ = 1%: ≈ −12 closed, ≤ −30 reading."
    );
}

/// The larger closed audits beside their pilots' plans, and their cumulative curves.
fn print_scaled(rows: &[Row], args: &Args) {
    if !rows.iter().any(|r| r.scaled.is_some()) {
        return;
    }
    println!(
        "\nLarger closed audits: each student answers up to {} fresh prompts (≤ {} tokens, T = {}) \
         until its unsupervised audit has scored {} tuples; the held-out audit above is the pilot \
         (plan: target p ≤ 1e-6, probability 0.5, 95% intervals)",
        args.scale_prompts, args.student_max_tokens, args.student_temperature, args.scale_scored
    );
    println!(
        "{:<22} | {:>8} {:>7} | {:>24} | {:>7} {:>7} | {:>8} {:>8} | {:>22} {:>6} | {:>5}",
        "student",
        "pilot",
        "scored",
        "planned scored (95%)",
        "queries",
        "scored",
        "log10 p",
        "superv.",
        "predicted (95%)",
        "inside",
        "min"
    );
    for r in rows {
        let Some(s) = &r.scaled else { continue };
        let planned = match (s.plan.scored_tokens, s.plan.scored_tokens_interval) {
            (Some(n), [lo, hi]) => format!(
                "{} ({}–{})",
                grouped(n),
                lo.map_or("?".into(), grouped),
                hi.map_or("∞".into(), grouped)
            ),
            (None, _) => "none".to_string(),
        };
        let observed = s.audit.closed.header.score.log10_p_value;
        let (predicted, inside) = match &s.prediction {
            Some(p) => (
                format!(
                    "{:.1} ({:.1} to {:.1})",
                    p.log10_p_median, p.log10_p_interval[0], p.log10_p_interval[1]
                ),
                if (p.log10_p_interval[0]..=p.log10_p_interval[1]).contains(&observed) {
                    "yes"
                } else {
                    "no"
                },
            ),
            None => ("-".to_string(), "-"),
        };
        println!(
            "{:<22} | {:>8.1} {:>7} | {:>24} | {:>7} {:>7} | {:>8.1} {:>8.1} | {:>22} {:>6} | {:>5.1}",
            r.name,
            r.closed.header.score.log10_p_value,
            r.closed.header.score.scored,
            planned,
            s.audit.queried.queries,
            s.audit.closed.header.score.scored,
            observed,
            s.audit.supervised.header.score.log10_p_value,
            predicted,
            inside,
            s.seconds / 60.0
        );
    }
    let marks: Vec<u64> = [1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000]
        .into_iter()
        .filter(|&m| m <= args.scale_scored)
        .collect();
    println!(
        "\nCumulative curve of the larger closed audits: log10 p after this many scored tuples"
    );
    let head: Vec<String> = marks
        .iter()
        .map(|&m| format!("{:>8}", grouped(m)))
        .collect();
    println!("{:<22} | {}", "student", head.join(" "));
    for r in rows {
        let Some(s) = &r.scaled else { continue };
        let cells: Vec<String> = curve_at(&s.audit.curve, &marks)
            .into_iter()
            .map(|p| {
                p.map_or(format!("{:>8}", "-"), |p| {
                    format!("{:>8.1}", p.log10_p_value)
                })
            })
            .collect();
        println!("{:<22} | {}", r.name, cells.join(" "));
    }
    println!(
        "planned: scored tuples at which the pilot's median p reaches 1e-6 (∞: its rate's lower bound \
         is ≤ γ); predicted: the pilot's log10 p for an audit of the size reached; superv.: the same \
         answers, only windows of the answers it was served; min: minutes (0 when cached)"
    );
}
