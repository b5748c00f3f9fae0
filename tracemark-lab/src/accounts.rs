//! The account experiments: identification from text (how often the account that wrote a
//! document is named among M at a family-wise FPR), the master watermark's strength with and
//! without accounts, and attribution through n-gram students trained on the answers served to
//! a few accounts.
//!
//! The teacher is the core's synthetic language model, made to depend on the last three tokens
//! (through a hash) rather than on one: an account's draw is a function of the window and the
//! next-token distribution, and with a first-order model it would walk short cycles that a real
//! model's long context does not produce.

use serde::Serialize;
use watermark_core::account::{detect_accounts, AccountAudit, AccountKey, AccountOptions};
use watermark_core::stats::ks_uniform;
use watermark_core::{detect, AuditOptions, DetectOptions, Fpr, GreenList, Result as CoreResult};
use watermark_core::{splitmix, Sampling, SecretKey, SyntheticLm, WatermarkSampler};

use crate::ngram::{NgramConfig, NgramModel, NgramSampler};

/// Vocabulary of the synthetic teacher.
pub const VOCAB: u32 = 1000;
/// Candidates the teacher samples among (top-k), at temperature 1.
pub const TOP_K: usize = 50;

/// Master key number `i` of an experiment.
pub fn master_key(i: u64) -> SecretKey {
    SecretKey::from_bytes(std::array::from_fn(|b| {
        splitmix(0x1ab0_0000 ^ (i << 8) ^ b as u64) as u8
    }))
}

/// The ids `acct-0` … `acct-(m-1)`, derived under `master`.
pub fn accounts(master: &SecretKey, m: usize) -> CoreResult<Vec<AccountKey>> {
    (0..m)
        .map(|a| AccountKey::derive(master, &format!("acct-{a}")))
        .collect()
}

/// One teacher document: a 4-token prompt and `len` tokens drawn with `green` (which may carry
/// an account), with its mean entropy (nats) of the sampled distribution.
pub fn document(green: &GreenList, doc: u64, len: usize, sharpness: f32) -> CoreResult<Document> {
    draw(Some(green), green.vocab_size(), doc, len, sharpness)
}

/// [`document`] with the watermark or without (`None`: the same model and prompt, unbiased).
fn draw(
    green: Option<&GreenList>,
    vocab: u32,
    doc: u64,
    len: usize,
    sharpness: f32,
) -> CoreResult<Document> {
    let lm = SyntheticLm::new(vocab, sharpness, splitmix(doc));
    let prompt: Vec<u32> = (0..4)
        .map(|j| (splitmix(doc ^ (j << 40)) % u64::from(vocab)) as u32)
        .collect();
    let mut sampler =
        WatermarkSampler::new(green.cloned(), Sampling::new(1.0, Some(TOP_K), None)?, doc);
    let mut context = prompt.clone();
    let mut entropy = 0.0;
    for _ in 0..len {
        let n = context.len();
        let state = context[n - 3..]
            .iter()
            .fold(0u64, |h, &t| splitmix(h ^ u64::from(t)));
        let mut row = lm.logits(&[(state % u64::from(vocab)) as u32]);
        entropy += top_k_entropy(&row);
        let t = sampler.sample(&context, &mut row)?;
        context.push(t);
    }
    let text = context.split_off(prompt.len());
    Ok(Document {
        prompt,
        text,
        entropy: entropy / len.max(1) as f64,
    })
}

/// A teacher document.
#[derive(Clone, Debug)]
pub struct Document {
    /// The prompt's ids.
    pub prompt: Vec<u32>,
    /// The answer's ids.
    pub text: Vec<u32>,
    /// Mean entropy of the unbiased top-k distribution, nats per token.
    pub entropy: f64,
}

/// Entropy (nats) of softmax over the `TOP_K` largest logits.
fn top_k_entropy(row: &[f32]) -> f64 {
    let mut top: Vec<f64> = row.iter().map(|&x| f64::from(x)).collect();
    top.sort_by(|a, b| b.total_cmp(a));
    top.truncate(TOP_K);
    let max = top[0];
    let w: Vec<f64> = top.iter().map(|x| (x - max).exp()).collect();
    let z: f64 = w.iter().sum();
    -w.iter().map(|x| x / z).map(|p| p * p.ln()).sum::<f64>()
}

/// One row of the identification table.
#[derive(Clone, Debug, Serialize)]
pub struct IdentificationRow {
    /// Accounts tested (M).
    pub accounts: usize,
    /// Documents.
    pub documents: usize,
    /// Tokens per document.
    pub tokens: usize,
    /// Mean entropy of the teacher's distribution, nats per token.
    pub entropy: f64,
    /// Mean scored tokens per document.
    pub scored: f64,
    /// The writing account named.
    pub correct: usize,
    /// Another account named (a false attribution).
    pub wrong: usize,
    /// Documents watermarked under the master key at the same FPR.
    pub master_detected: usize,
}

/// Identification accuracy: `documents` documents of `tokens` tokens, document d written for
/// account d mod M, each tested against all M accounts at family-wise `fpr`.
pub fn identification(
    key_index: u64,
    m: usize,
    documents: usize,
    tokens: usize,
    sharpness: f32,
    fpr: f64,
) -> anyhow::Result<IdentificationRow> {
    let master = master_key(key_index);
    let green = GreenList::new(&master, Default::default(), VOCAB)?;
    let all = accounts(&master, m)?;
    let options = AccountOptions {
        fpr: Fpr::new(fpr)?,
        deduplicate: true,
    };
    let detect_options = DetectOptions {
        fpr: Fpr::new(fpr)?,
        ..DetectOptions::default()
    };
    let mut row = IdentificationRow {
        accounts: m,
        documents,
        tokens,
        entropy: 0.0,
        scored: 0.0,
        correct: 0,
        wrong: 0,
        master_detected: 0,
    };
    for d in 0..documents {
        let writer = &all[d % m];
        let drawing = green.clone().with_account(writer.clone());
        let doc = document(&drawing, key_index << 32 | d as u64, tokens, sharpness)?;
        let r = detect_accounts(&green, &all, &doc.prompt, &doc.text, &options)?;
        match r.best.as_deref() {
            Some(id) if id == writer.id() => row.correct += 1,
            Some(_) => row.wrong += 1,
            None => {}
        }
        let master = detect(&green, &doc.prompt, &doc.text, &detect_options)?;
        row.master_detected += usize::from(master.header.watermarked);
        row.entropy += doc.entropy / documents as f64;
        row.scored += r.scored as f64 / documents as f64;
    }
    Ok(row)
}

/// Master TPR at `fpr`: documents drawn with accounts, and the same prompts and models without.
pub fn master_tpr(
    key_index: u64,
    documents: usize,
    tokens: usize,
    sharpness: f32,
    fpr: f64,
) -> anyhow::Result<(f64, f64)> {
    let master = master_key(key_index);
    let green = GreenList::new(&master, Default::default(), VOCAB)?;
    let all = accounts(&master, 100)?;
    let options = DetectOptions {
        fpr: Fpr::new(fpr)?,
        ..DetectOptions::default()
    };
    let (mut with, mut without) = (0usize, 0usize);
    for d in 0..documents {
        let id = key_index << 32 | d as u64;
        let drawing = green.clone().with_account(all[d % 100].clone());
        for (green_used, count) in [(&drawing, &mut with), (&green, &mut without)] {
            let doc = document(green_used, id, tokens, sharpness)?;
            let r = detect(&green, &doc.prompt, &doc.text, &options)?;
            *count += usize::from(r.header.watermarked);
        }
    }
    let n = documents as f64;
    Ok((with as f64 / n, without as f64 / n))
}

/// One student of the attribution experiment.
#[derive(Clone, Debug, Serialize)]
pub struct StudentRow {
    /// Accounts the provider lists.
    pub accounts: usize,
    /// The accounts whose answers the student was trained on.
    pub served: Vec<String>,
    /// Teacher tokens the student was trained on.
    pub training_tokens: usize,
    /// Tuples the audit scored over the student's answers.
    pub scored: u64,
    /// The accounts the audit attributes.
    pub attributed: Vec<String>,
    /// The largest corrected log10 p among the served accounts that are listed (`None` when
    /// none is: the null student).
    pub worst_served_log10_p: Option<f64>,
    /// The smallest corrected log10 p among the others.
    pub best_other_log10_p: f64,
    /// KS p-value of the other accounts' (uncorrected) p-values against Uniform(0, 1).
    pub others_ks_p: f64,
    /// The master audit's log10 p.
    pub master_log10_p: f64,
}

/// Vocabulary of the student experiment's teacher: small enough that a few hundred answers
/// visit each two-token window several times (with 1000 tokens there are 10^6 windows, and a
/// trigram student trained on 10^5 tokens has seen almost none of the windows it writes in).
pub const STUDENT_VOCAB: u32 = 100;

/// Trains an order-3 n-gram student on `train_docs` teacher answers served round-robin to the
/// accounts `served` (indices; one at or above `m` is an account outside the list, for the null
/// student), samples `audit_docs` answers of `tokens` tokens from it at `temperature`, and
/// audits them for each of the `m` listed accounts.
#[allow(clippy::too_many_arguments)]
pub fn student_attribution(
    key_index: u64,
    m: usize,
    served: &[usize],
    train_docs: usize,
    audit_docs: usize,
    tokens: usize,
    temperature: f64,
    fpr: f64,
) -> anyhow::Result<StudentRow> {
    let master = master_key(key_index);
    let green = GreenList::new(&master, Default::default(), STUDENT_VOCAB)?;
    let every = served.iter().map(|&i| i + 1).max().unwrap_or(0).max(m);
    let all = accounts(&master, every)?;
    let mut training = Vec::with_capacity(train_docs);
    for d in 0..train_docs {
        let account = &all[served[d % served.len()]];
        let drawing = green.clone().with_account(account.clone());
        let doc = document(&drawing, key_index << 32 | d as u64, tokens, 1.0)?;
        training.push([doc.prompt, doc.text].concat());
    }
    let student = train_student(&training)?;
    let options = AuditOptions {
        fpr: Fpr::new(fpr)?,
        ..AuditOptions::default()
    };
    let mut audit = AccountAudit::new(green.clone(), all[..m].to_vec(), options.clone())?;
    let mut master_audit = watermark_core::Audit::new(green.clone(), options)?;
    student_answers(
        &student,
        key_index,
        audit_docs,
        tokens,
        temperature,
        |prompt, answer| {
            audit.add_output(prompt, answer)?;
            master_audit.add_output(prompt, answer)?;
            Ok(())
        },
    )?;
    let report = audit.report().attribution;
    let served_ids: Vec<String> = served.iter().map(|&i| all[i].id().to_string()).collect();
    let is_served = |id: &str| served_ids.iter().any(|s| s == id);
    let others: Vec<f64> = report
        .accounts
        .iter()
        .filter(|s| !is_served(&s.account))
        .map(|s| 10f64.powf(s.log10_p_value))
        .collect();
    Ok(StudentRow {
        accounts: m,
        training_tokens: training.iter().map(Vec::len).sum(),
        scored: report.scored,
        attributed: report.attributed().map(|s| s.account.clone()).collect(),
        worst_served_log10_p: report
            .accounts
            .iter()
            .filter(|s| is_served(&s.account))
            .map(|s| s.corrected_log10_p_value)
            .reduce(f64::max),
        best_other_log10_p: report
            .accounts
            .iter()
            .filter(|s| !is_served(&s.account))
            .map(|s| s.corrected_log10_p_value)
            .fold(0.0, f64::min),
        others_ks_p: ks_uniform(&others).1,
        master_log10_p: master_audit.score().log10_p_value,
        served: served_ids,
    })
}

/// The master audit of a student trained on a share `rho` of watermarked answers: the cost of
/// accounts to radioactivity. `accounts`: the watermarked answers are drawn for that many
/// accounts in turn (`None`: today's single key); the other answers are the same prompts and
/// models, unwatermarked. Returns (log10 p, scored tuples) of the student's `audit_docs`
/// answers at `temperature`.
#[allow(clippy::too_many_arguments)]
pub fn master_radioactivity(
    key_index: u64,
    rho: f64,
    accounts_served: Option<usize>,
    train_docs: usize,
    audit_docs: usize,
    tokens: usize,
    temperature: f64,
) -> anyhow::Result<(f64, u64)> {
    let master = master_key(key_index);
    let green = GreenList::new(&master, Default::default(), STUDENT_VOCAB)?;
    let keys = match accounts_served {
        Some(m) => accounts(&master, m)?,
        None => Vec::new(),
    };
    let marked = (rho * train_docs as f64).round() as usize;
    let mut training = Vec::with_capacity(train_docs);
    for d in 0..train_docs {
        // Every (train_docs / marked)-th answer is watermarked, spread over the run.
        let watermarked = marked > 0 && d * marked / train_docs != (d + 1) * marked / train_docs;
        let drawing = match (watermarked, keys.is_empty()) {
            (false, _) => None,
            (true, true) => Some(green.clone()),
            (true, false) => Some(green.clone().with_account(keys[d % keys.len()].clone())),
        };
        let doc = draw(
            drawing.as_ref(),
            STUDENT_VOCAB,
            key_index << 32 | d as u64,
            tokens,
            1.0,
        )?;
        training.push([doc.prompt, doc.text].concat());
    }
    let student = train_student(&training)?;
    let mut audit = watermark_core::Audit::new(green, AuditOptions::default())?;
    student_answers(
        &student,
        key_index,
        audit_docs,
        tokens,
        temperature,
        |prompt, answer| Ok(audit.add_output(prompt, answer)?),
    )?;
    let score = audit.score();
    Ok((score.log10_p_value, score.scored))
}

/// An order-3 n-gram student of the teacher answers `training` (prompt and answer each).
fn train_student(training: &[Vec<u32>]) -> anyhow::Result<NgramModel> {
    Ok(NgramModel::train(
        STUDENT_VOCAB,
        NgramConfig::default(),
        training.iter().map(Vec::as_slice),
    )?)
}

/// The student's `audit_docs` answers of `tokens` tokens at `temperature`, each after its own
/// seeded 4-token prompt, handed to `each(prompt, answer)`.
fn student_answers(
    student: &NgramModel,
    key_index: u64,
    audit_docs: usize,
    tokens: usize,
    temperature: f64,
    mut each: impl FnMut(&[u32], &[u32]) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut sampler = NgramSampler::new(student, temperature, splitmix(key_index))?;
    for d in 0..audit_docs {
        let prompt: Vec<u32> = (0..4)
            .map(|j| (splitmix((1 << 62) ^ (d as u64) << 8 ^ j) % u64::from(STUDENT_VOCAB)) as u32)
            .collect();
        let answer = sampler.generate(&prompt, tokens, &[])?;
        each(&prompt, &answer)?;
    }
    Ok(())
}
