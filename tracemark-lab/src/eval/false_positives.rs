//! False positives: human-written documents tested against keys that never saw them.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;
use tracemark_plot::{Chart, ReferenceLine, Series};
use watermark_core::stats::clopper_pearson;
use watermark_core::GreenList;
use watermark_core::TextTokenizer;
use watermark_core::TupleSet;
use watermark_core::{detect_in_corpus, DetectOptions, Detection, Score};

use super::config::EvalConfig;
use super::report::{frac, plot, table};
use super::Result;
use crate::corpus::HumanDoc;
use crate::keys::Experiment;

/// False positives on human text at one nominal rate.
#[derive(Debug, Clone, Serialize)]
pub struct FprRow {
    pub genre: String,
    pub alpha: f64,
    pub tests: usize,
    pub flagged: usize,
    pub ci95: (f64, f64),
}

/// The rows of the section: the corpus cut into token documents, each scored against every
/// false-positive key.
pub(super) fn rows(
    cfg: &EvalConfig,
    corpus: &[HumanDoc],
    tokenizer: &TextTokenizer,
    vocab: u32,
) -> Result<Vec<FprRow>> {
    let docs = token_documents(
        corpus,
        tokenizer,
        cfg.fpr_doc_tokens,
        cfg.fpr_docs_per_genre,
    )?;
    score_documents(cfg, &docs, vocab)
}

/// Up to `per_genre` documents of exactly `len` tokens for each genre: the genre's texts, in
/// corpus order, tokenized and cut into consecutive pieces (short texts such as quotations run
/// together; long ones give several pieces).
fn token_documents(
    docs: &[HumanDoc],
    tokenizer: &TextTokenizer,
    len: usize,
    per_genre: usize,
) -> Result<BTreeMap<String, Vec<Vec<u32>>>> {
    let mut out: BTreeMap<String, Vec<Vec<u32>>> = BTreeMap::new();
    let mut buffers: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    for d in docs {
        let done = out.get(&d.genre).map_or(0, Vec::len);
        if done >= per_genre || d.text.trim().is_empty() {
            continue;
        }
        let buf = buffers.entry(d.genre.clone()).or_default();
        buf.extend(tokenizer.encode(&d.text)?);
        let pieces = out.entry(d.genre.clone()).or_default();
        while buf.len() >= len && pieces.len() < per_genre {
            let rest = buf.split_off(len);
            pieces.push(std::mem::replace(buf, rest));
        }
    }
    out.retain(|_, v| !v.is_empty());
    Ok(out)
}

/// Every human document scored against every (scheme, key), each tuple counted once per key
/// across the whole corpus so that the documents' p-values are independent.
fn score_documents(
    cfg: &EvalConfig,
    docs: &BTreeMap<String, Vec<Vec<u32>>>,
    vocab: u32,
) -> Result<Vec<FprRow>> {
    let mut by_genre: BTreeMap<String, Vec<Score>> = BTreeMap::new();
    let total_tokens: usize = docs.values().flatten().map(Vec::len).sum();
    for &k in &cfg.schemes {
        for &g in &cfg.gammas {
            for key_i in 0..cfg.fpr_keys {
                let key = Experiment::Eval.key(cfg.seed, 1 + key_i as u64);
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
                        by_genre
                            .entry(genre.clone())
                            .or_default()
                            .push(d.header.score);
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

/// The false-positive section: the table and the empirical-against-nominal chart.
pub(super) fn write(md: &mut String, cfg: &EvalConfig, rows: &[FprRow], out: &Path) -> Result<()> {
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
