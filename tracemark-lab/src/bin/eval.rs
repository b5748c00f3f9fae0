//! `make eval`: the evaluation report on the default model (see `tracemark_lab::eval`).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::Parser;
use tracemark_lab::corpus;
use tracemark_lab::eval::{self, EvalConfig, EvalInputs, Results, Size};
use tracemark_model::generate::Generator;
use tracemark_model::llama::LoadOptions;

/// Power, theory check, quality, false positives and robustness of the watermark on the default
/// model, written as Markdown tables and PNG plots.
#[derive(Debug, Parser)]
struct Args {
    /// tiny (seconds, for the test), default (minutes on 2 cores) or large.
    #[arg(long, default_value = "default")]
    size: String,
    /// Report folder (created).
    #[arg(long, default_value = "target/eval-report")]
    out: PathBuf,
    /// Human-text corpus (gzip JSONL with genre and text); default TRACEMARK_CORPUS, else
    /// ../shared/corpora/human-dev.jsonl.gz (`bash scripts/fetch-corpus.sh` prints a path).
    #[arg(long)]
    corpus: Option<PathBuf>,
    /// Prompts file (JSONL with kind and prompt).
    #[arg(long)]
    prompts: Option<PathBuf>,
    /// Texts per configuration, instead of the size's.
    #[arg(long)]
    texts: Option<usize>,
    /// Rows per forward pass.
    #[arg(long)]
    batch: Option<usize>,
    /// candle threads (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
    /// candle's fast Q8_0 kernel: 3–4x faster, less faithful to the weights (the report says
    /// which was used).
    #[arg(long)]
    fast_matmul: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(n) = args.threads {
        tracemark_model::llama::set_threads(n)?;
    }
    let started = Instant::now();
    let size: Size = args.size.parse()?;
    let mut cfg = EvalConfig::for_size(size);
    if let Some(n) = args.texts {
        cfg.prompts = n;
    }
    if let Some(b) = args.batch {
        cfg.batch_size = b;
    }
    let corpus_path = args.corpus.or_else(corpus::default_path).context(
        "no human-text corpus: pass --corpus, set TRACEMARK_CORPUS, or run scripts/fetch-corpus.sh",
    )?;
    let corpus = corpus::read_documents(&corpus_path)?;
    let prompts = eval::read_prompts(&args.prompts.unwrap_or_else(eval::default_prompts_path))?;
    let model_path = tracemark_model::locate_default_model()?;
    let options = LoadOptions {
        fast_matmul: args.fast_matmul,
        ..LoadOptions::candle()
    };
    let generator = Generator::load(&model_path, &options)?;
    let model_note = if args.fast_matmul {
        "Q8_0 weights, fast_matmul kernel (less faithful)".to_string()
    } else {
        "Q8_0 weights, exact kernels".to_string()
    };
    let inputs = EvalInputs {
        generator: &generator,
        prompts,
        corpus,
        model_note,
    };
    let outcome = eval::run(&cfg, &inputs, &args.out, |line| eprintln!("{line}"))?;
    print_headlines(&cfg, &outcome.results);
    println!(
        "report: {} ({:.0} s)",
        outcome.report.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The report's headline figures on stdout: power at the longest length, false positives on all
/// human text, copy-paste and paraphrase.
fn print_headlines(cfg: &EvalConfig, r: &Results) {
    println!("headline figures ({:?} size):", cfg.size);
    for row in r.power.iter().filter(|p| p.length == cfg.max_tokens) {
        println!(
            "  power  {:<45} T={}  TPR@1e-3 {:.1}%  TPR@1e-5 {:.1}%  z>4 {:.1}%",
            row.config.label(),
            row.length,
            100.0 * row.tpr_1e3,
            100.0 * row.tpr_1e5,
            100.0 * row.z_over_4
        );
    }
    for row in r.fpr.iter().filter(|f| f.genre == "all") {
        println!(
            "  human text  α={:e}  flagged {}/{}",
            row.alpha, row.flagged, row.tests
        );
    }
    for row in &r.paste {
        println!(
            "  copy-paste {}/{}  AUC plain {:.3}  windowed {:.3}",
            row.passage, row.total, row.auc_plain_z, row.auc_windowed
        );
    }
    if let Some(p) = &r.paraphrase {
        println!(
            "  paraphrase  TPR@1e-3 {:.1}%  mean z {:.2} (before {:.2})  AUC {:.3}",
            100.0 * p.tpr_1e3,
            p.mean_z,
            p.mean_z_before,
            p.auc
        );
    }
}
