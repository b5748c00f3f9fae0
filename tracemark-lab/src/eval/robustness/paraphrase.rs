//! Paraphrase: the model rewrites the watermarked texts without the watermark.

use std::fmt::Write as _;

use serde::Serialize;
use watermark_core::GreenList;
use watermark_core::Sampling;

use crate::eval::attacks::auc;
use crate::eval::config::EvalConfig;
use crate::eval::generation::{self, Generated, Job, Limits};
use crate::eval::report::{num, pct, table};
use crate::eval::run::EvalInputs;
use crate::eval::scoring::{mean, mean_z, scores_alone, tpr, z_of, z_over_4, FPR_1E3};
use crate::eval::Result;

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

/// The model rewrites each watermarked text (and each plain one, as controls) without the
/// watermark; the rewrites are scored alone, as an auditor would see them.
pub(super) fn row(
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
    let sw = scores_alone(green, rw)?;
    let sp = scores_alone(green, rp)?;
    let before = scores_alone(green, wm)?;
    let zw: Vec<f64> = sw.iter().map(z_of).collect();
    let zp: Vec<f64> = sp.iter().map(z_of).collect();
    Ok(Some(ParaphraseRow {
        texts: rw.len(),
        mean_tokens: mean(rw.iter().map(|x| x.tokens.len() as f64)),
        tpr_1e3: tpr(&sw, FPR_1E3),
        z_over_4: z_over_4(&sw),
        mean_z: mean_z(&sw),
        mean_z_before: mean_z(&before),
        auc: auc(&zw, &zp),
    }))
}

/// The paraphrase subsection: one table row.
pub(super) fn write(md: &mut String, p: &ParaphraseRow) {
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
