//! `make accounts`: the account experiments' tables (README, "Which account?").
//!
//! 1. Identification from text: documents of 150 tokens written for one of M accounts, each
//!    tested against all M at family-wise FPR 1e-6, for M = 10, 100, 10^4.
//! 2. The master watermark's TPR at 200 tokens with accounts and without (same prompts, same
//!    models): the account must not weaken it.
//! 3. Attribution through n-gram students trained on answers served to {a, b} of 100 accounts
//!    and to 20 of 1,000.

use std::time::Instant;

use anyhow::Result;
use clap::Parser;
use tracemark_lab::accounts::{
    identification, master_radioactivity, master_tpr, student_attribution,
};

#[derive(Parser, Debug)]
#[command(about = "Which account? Identification, master strength and student attribution")]
struct Args {
    /// Documents per identification row (and per TPR estimate).
    #[arg(long, default_value_t = 200)]
    documents: usize,
    /// Teacher answers each student trains on.
    #[arg(long, default_value_t = 2000)]
    train: usize,
    /// Answers each student writes for its audit.
    #[arg(long, default_value_t = 400)]
    audit: usize,
    /// Only the student experiment (skip identification and TPR).
    #[arg(long)]
    students_only: bool,
    /// Sampling temperature of the students' answers.
    #[arg(long, default_value_t = 0.7)]
    student_temperature: f64,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let started = Instant::now();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("Which account? synthetic teacher (vocabulary 1000, top-k 50, T = 1), default scheme");
    println!("(previous 2, gamma 0.25, delta 2); {threads} CPU threads.\n");
    if !args.students_only {
        text_tables(&args)?;
    }
    student_table(&args)?;
    radioactivity_cost(&args)?;
    println!("\n{:.0} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// Identification from text, and the master TPR with and without accounts.
fn text_tables(args: &Args) -> Result<()> {
    println!(
        "Identification at 150 tokens, family-wise FPR 1e-6 ({} documents a row)\n",
        args.documents
    );
    println!("| accounts | sharpness | entropy (nats/token) | scored | identified | wrong | master detected |");
    println!("|---|---|---|---|---|---|---|");
    for (sharpness, key) in [(1.0f32, 1u64), (2.0, 2), (3.0, 9)] {
        for m in [10usize, 100, 10_000] {
            let r = identification(key, m, args.documents, 150, sharpness, 1e-6)?;
            let n = r.documents as f64;
            println!(
                "| {} | {sharpness} | {:.2} | {:.0} | {:.3} | {:.3} | {:.3} |",
                r.accounts,
                r.entropy,
                r.scored,
                r.correct as f64 / n,
                r.wrong as f64 / n,
                r.master_detected as f64 / n
            );
        }
    }

    println!(
        "\nMaster TPR at 200 tokens, FPR 1e-6 ({} documents each)\n",
        args.documents
    );
    println!("| sharpness | with accounts | without (today's single key) |");
    println!("|---|---|---|");
    for (sharpness, key) in [(1.0f32, 3u64), (2.0, 4), (3.0, 5)] {
        let (with, without) = master_tpr(key, args.documents, 200, sharpness, 1e-6)?;
        println!("| {sharpness} | {with:.3} | {without:.3} |");
    }

    Ok(())
}

/// Attribution through n-gram students.
fn student_table(args: &Args) -> Result<()> {
    println!(
        "\nStudents (order-3 n-gram, {} teacher answers of 150 tokens, {} audit answers at T = {})\n",
        args.train, args.audit, args.student_temperature
    );
    println!("| accounts | served | scored | attributed | worst served corrected log10 p | best other corrected log10 p | others' KS p | master log10 p |");
    println!("|---|---|---|---|---|---|---|---|");
    let twenty: Vec<usize> = (0..20).map(|i| i * 37 % 1000).collect();
    // The last student learned only from an account outside the list of 100: the null.
    for (m, served, key) in [
        (100usize, vec![3usize, 41], 6u64),
        (1000, twenty, 7),
        (100, vec![100], 8),
    ] {
        let row = student_attribution(
            key,
            m,
            &served,
            args.train,
            args.audit,
            150,
            args.student_temperature,
            1e-6,
        )?;
        let served_list = if row.served.len() > 3 {
            format!("{} accounts", row.served.len())
        } else {
            row.served.join(", ")
        };
        let attributed = if row.attributed.len() > 3 {
            let all_served = row.attributed.iter().all(|a| row.served.contains(a));
            format!(
                "{} ({})",
                row.attributed.len(),
                if all_served {
                    "all served"
                } else {
                    "some not served"
                }
            )
        } else if row.attributed.is_empty() {
            "none".to_string()
        } else {
            row.attributed.join(", ")
        };
        println!(
            "| {} | {served_list} | {} | {attributed} | {} | {:.2} | {:.2} | {:.1} |",
            row.accounts,
            row.scored,
            row.worst_served_log10_p
                .map_or("-".to_string(), |p| format!("{p:.1}")),
            row.best_other_log10_p,
            row.others_ks_p,
            row.master_log10_p
        );
    }
    Ok(())
}

/// Radioactivity at ρ = 10% with accounts and without: the master audit of students trained on
/// the same answers, a tenth of them watermarked, for 100 accounts in turn or for no account.
fn radioactivity_cost(args: &Args) -> Result<()> {
    println!(
        "\nRadioactivity at rho = 10% (order-3 n-gram students, {} teacher answers, {} audit \
         answers at T = {}; master audit, log10 p (scored))\n",
        args.train, args.audit, args.student_temperature
    );
    println!("| key | with 100 accounts | without (today's single key) |");
    println!("|---|---|---|");
    for key in [11u64, 12, 13] {
        let mut cells = Vec::new();
        for served in [Some(100), None] {
            let (log10_p, scored) = master_radioactivity(
                key,
                0.10,
                served,
                args.train,
                args.audit,
                150,
                args.student_temperature,
            )?;
            cells.push(format!("{log10_p:.1} ({scored})"));
        }
        println!("| {key} | {} | {} |", cells[0], cells[1]);
    }
    Ok(())
}
