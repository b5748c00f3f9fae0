//! `make accounts-students`: attribution through a student with the REAL model as teacher.
//!
//! The default model answers training prompts for the served accounts (half each, drawn as
//! `tracemark generate --account` draws: the same generator and sampler, T = 1, with candle's
//! fast matmul; cached per account under `--out`). Order-3 Kneser–Ney students are trained on
//! those answers mixed with as many tokens of human text, answer held-out prompts at
//! `--student-temperature`, and are audited per account (`AccountAudit`, what `tracemark audit
//! --accounts` runs) and by the master key. Each student's answers are written as JSONL beside
//! the accounts lists, so the CLI can audit them (`scripts/accounts-students.sh` does).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Parser;
use tracemark_lab::corpus;
use tracemark_lab::ngram::{NgramConfig, NgramModel};
use tracemark_lab::radioactivity::teacher::Teacher;
use tracemark_lab::radioactivity::{
    permutation, student_answers, train_student, PromptSets, Sample,
};
use tracemark_model::generate::GenerateOptions;
use tracemark_model::llama::{set_threads, LoadOptions};
use watermark_core::account::{AccountAudit, AccountKey};
use watermark_core::stats::ks_uniform;
use watermark_core::{Audit, AuditOptions, GreenList, Profile, Sampling};

#[derive(Parser, Debug)]
#[command(
    about = "Which account? n-gram students of the real model's answers, audited per account"
)]
struct Args {
    /// Profile of the key (bound to the default model's tokenizer: `tracemark keygen`).
    #[arg(long)]
    profile: PathBuf,
    /// Accounts the answers are served to (indices i of `acct-i`).
    #[arg(long, value_delimiter = ',', default_values_t = [3usize, 41])]
    served: Vec<usize>,
    /// Accounts the provider lists (acct-0 .. acct-(M-1)).
    #[arg(long, default_value_t = 100)]
    accounts: usize,
    /// Teacher answers, split evenly over the served accounts.
    #[arg(long, default_value_t = 160)]
    train: usize,
    /// Held-out prompts each student answers.
    #[arg(long, default_value_t = 200)]
    held_out: usize,
    /// Most tokens per teacher and student answer.
    #[arg(long, default_value_t = 150)]
    max_tokens: usize,
    /// Sampling temperature of the students' answers.
    #[arg(long, default_value_t = 0.7)]
    student_temperature: f64,
    /// CPU threads for the model.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Seed of the prompt order, the answers and the students.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Cache and output directory.
    #[arg(long, default_value = "target/accounts-students")]
    out: PathBuf,
}

/// One audited student.
struct Row {
    student: &'static str,
    listed: String,
    scored: u64,
    attributed: Vec<String>,
    served_log10_p: Vec<(String, f64)>,
    best_other_log10_p: f64,
    others_ks_p: f64,
    master_log10_p: f64,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let started = Instant::now();
    set_threads(args.threads)?;
    let session = Profile::open(&args.profile)?;
    let green = session.green_list().clone();
    let corpus =
        corpus::default_path().context("human-text corpus not found: set TRACEMARK_CORPUS")?;
    let texts = corpus::read_texts(&corpus)?;
    let prompts = PromptSets::from_texts(&texts, args.train, args.held_out, 0, args.seed)?;
    let load = LoadOptions {
        fast_matmul: true,
        ..LoadOptions::candle()
    };
    let model = tracemark_model::locate_default_model()?;
    let t = Instant::now();
    let (answers, teacher) = teacher_answers(&args, &model, load, &green, &prompts.train)?;
    let teacher_seconds = t.elapsed().as_secs_f64();
    let answer_tokens: usize = answers.iter().map(|s| s.response_ids.len()).sum();
    let human = human_samples(&teacher, &texts, answer_tokens, args.seed)?;
    let human_tokens: usize = human.iter().map(|s| s.response_ids.len()).sum();
    let vocab = teacher.vocab_size();
    let stop = teacher.stop_ids().to_vec();
    let held_out = teacher.encode(&prompts.held_out)?;
    let mixed: Vec<&Sample> = answers.iter().chain(&human).collect();
    let human_only: Vec<&Sample> = human.iter().collect();
    let served: Vec<String> = args.served.iter().map(|i| format!("acct-{i}")).collect();
    let listed: Vec<String> = (0..args.accounts).map(|i| format!("acct-{i}")).collect();
    let unlisted: Vec<String> = (args.accounts..2 * args.accounts)
        .map(|i| format!("acct-{i}"))
        .collect();
    write_list(&args.out.join("accounts.txt"), &listed)?;
    write_list(&args.out.join("accounts-unlisted.txt"), &unlisted)?;
    let mut rows = Vec::new();
    for (name, training) in [("answers + human", &mixed), ("human only", &human_only)] {
        let student = train_student(
            vocab,
            NgramConfig::default(),
            training,
            stop.first().copied(),
        )?;
        let outputs = student_outputs(&student, &held_out, &args, &stop)?;
        let file = format!(
            "student-{}.jsonl",
            name.split(' ').next().unwrap_or("student")
        );
        write_outputs(&args.out.join(file), &outputs)?;
        rows.push(audit(
            &green,
            name,
            &outputs,
            &listed,
            &served,
            "acct-0..",
            args.accounts,
        )?);
        if name == "answers + human" {
            rows.push(audit(
                &green,
                name,
                &outputs,
                &unlisted,
                &served,
                "others",
                args.accounts,
            )?);
        }
    }
    print_table(
        &args,
        &rows,
        answers.len(),
        answer_tokens,
        human_tokens,
        teacher_seconds,
    );
    println!("\n{:.0} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// The teacher's answers to `prompts`, prompt i served to account `served[i % S]`, cached per
/// account; also returns the teacher (for its tokenizer and stop tokens).
fn teacher_answers(
    args: &Args,
    model: &Path,
    load: LoadOptions,
    green: &GreenList,
    prompts: &[String],
) -> Result<(Vec<Sample>, Teacher)> {
    let s = args.served.len().max(1);
    let mut answers = Vec::new();
    let mut last = None;
    for (j, &account) in args.served.iter().enumerate() {
        // One cache directory per account: the cache key names the key, not the account.
        let teacher = Teacher::load(
            model,
            load.clone(),
            &args.out.join(format!("cache-acct-{account}")),
        )?;
        let id = format!("acct-{account}");
        let drawing = green
            .clone()
            .with_account(AccountKey::for_green_list(green, &id)?);
        let mine: Vec<String> = prompts.iter().skip(j).step_by(s).cloned().collect();
        let options = GenerateOptions {
            max_tokens: args.max_tokens,
            min_tokens: 0,
            sampling: Sampling::new(1.0, None, None)?,
            seed: args.seed << 20 | j as u64,
            batch_size: 8,
        };
        answers.extend(teacher.answers(&mine, Some(&drawing), &options, |p| {
            eprint!(
                "\r{id}: {}/{} answers, {} tokens generated in {:.0} s   ",
                p.done, p.total, p.generated_tokens, p.seconds
            );
        })?);
        eprintln!();
        last = Some(teacher);
    }
    Ok((answers, last.context("no served account")?))
}

/// Human documents (tokenized, at most 400 tokens each, no prompt) adding up to about `tokens`.
fn human_samples(
    teacher: &Teacher,
    texts: &[String],
    tokens: usize,
    seed: u64,
) -> Result<Vec<Sample>> {
    let tokenizer = teacher.generator().tokenizer();
    let mut out = Vec::new();
    let mut total = 0;
    for i in permutation(texts.len(), seed ^ 0x0048_554d_414e) {
        if total >= tokens {
            break;
        }
        let mut ids = tokenizer.encode(&texts[i])?;
        ids.truncate(400);
        total += ids.len();
        out.push(Sample {
            prompt_ids: Vec::new(),
            response_ids: ids,
        });
    }
    Ok(out)
}

fn student_outputs(
    student: &NgramModel,
    held_out: &[Vec<u32>],
    args: &Args,
    stop: &[u32],
) -> Result<Vec<Sample>> {
    Ok(student_answers(
        student,
        held_out,
        args.max_tokens,
        args.student_temperature,
        args.seed.wrapping_mul(1_000_003),
        stop,
    )?)
}

/// The per-account audit of `outputs` against `ids`, and the master audit.
fn audit(
    green: &GreenList,
    student: &'static str,
    outputs: &[Sample],
    ids: &[String],
    served: &[String],
    listed: &str,
    m: usize,
) -> Result<Row> {
    let keys = ids
        .iter()
        .map(|id| AccountKey::for_green_list(green, id))
        .collect::<watermark_core::Result<Vec<_>>>()?;
    let mut accounts = AccountAudit::new(green.clone(), keys, AuditOptions::default())?;
    let mut master = Audit::new(green.clone(), AuditOptions::default())?;
    for s in outputs {
        accounts.add_output(&s.prompt_ids, &s.response_ids)?;
        master.add_output(&s.prompt_ids, &s.response_ids)?;
    }
    let report = accounts.report().attribution;
    let is_served = |id: &str| served.iter().any(|s| s == id);
    let others: Vec<f64> = report
        .accounts
        .iter()
        .filter(|a| !is_served(&a.account))
        .map(|a| 10f64.powf(a.log10_p_value))
        .collect();
    Ok(Row {
        student,
        listed: format!("{m} ({listed})"),
        scored: report.scored,
        attributed: report.attributed().map(|a| a.account.clone()).collect(),
        served_log10_p: report
            .accounts
            .iter()
            .filter(|a| is_served(&a.account))
            .map(|a| (a.account.clone(), a.corrected_log10_p_value))
            .collect(),
        best_other_log10_p: report
            .accounts
            .iter()
            .filter(|a| !is_served(&a.account))
            .map(|a| a.corrected_log10_p_value)
            .fold(0.0, f64::min),
        others_ks_p: ks_uniform(&others).1,
        master_log10_p: master.score().log10_p_value,
    })
}

fn print_table(
    args: &Args,
    rows: &[Row],
    answers: usize,
    answer_tokens: usize,
    human_tokens: usize,
    teacher_seconds: f64,
) {
    println!(
        "Which account? through n-gram students of the default model (SmolLM2-135M, T = 1, fast matmul); default scheme.\n\
         Teacher: {answers} answers ({answer_tokens} tokens) served to {} ({:.0} s of generation this run, the rest cached).\n\
         Students: order-3 Kneser-Ney, trained on those answers and {human_tokens} tokens of human text (or the human text only),\n\
         each answering {} held-out prompts at T = {} (at most {} tokens). FPR 1e-6 family-wise.\n",
        args.served.iter().map(|i| format!("acct-{i}")).collect::<Vec<_>>().join(", "),
        teacher_seconds,
        args.held_out,
        args.student_temperature,
        args.max_tokens
    );
    println!("| student | accounts listed | scored | attributed | served: corrected log10 p | best other corrected log10 p | others' KS p | master log10 p |");
    println!("|---|---|---|---|---|---|---|---|");
    for r in rows {
        let served = if r.served_log10_p.is_empty() {
            "not listed".to_string()
        } else {
            r.served_log10_p
                .iter()
                .map(|(id, p)| format!("{id} {p:.1}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let attributed = if r.attributed.is_empty() {
            "none".to_string()
        } else {
            r.attributed.join(", ")
        };
        println!(
            "| {} | {} | {} | {attributed} | {served} | {:.2} | {:.2} | {:.1} |",
            r.student, r.listed, r.scored, r.best_other_log10_p, r.others_ks_p, r.master_log10_p
        );
    }
}

fn write_list(path: &Path, ids: &[String]) -> Result<()> {
    std::fs::create_dir_all(path.parent().unwrap_or(Path::new(".")))?;
    std::fs::write(
        path,
        ids.iter().map(|id| format!("{id}\n")).collect::<String>(),
    )?;
    Ok(())
}

/// The students' answers as `tracemark audit --suspect` reads them.
fn write_outputs(path: &Path, outputs: &[Sample]) -> Result<()> {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    for s in outputs {
        let line = serde_json::json!({"prompt_tokens": s.prompt_ids, "tokens": s.response_ids});
        writeln!(f, "{line}")?;
    }
    Ok(())
}
