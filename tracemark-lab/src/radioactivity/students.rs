//! The students: n-gram models trained on the teacher's answers, answering prompts (for the
//! closed-model audit) and predicting over our texts (for the reading-mode audit).

use crate::ngram::{NgramConfig, NgramModel, NgramSampler, NgramTrainer};

use super::{Result, Sample};

/// A student trained on `samples` (prompt, answer, then `stop` when given, so that it learns to
/// end its answers).
pub fn train_student(
    vocab_size: u32,
    config: NgramConfig,
    samples: &[&Sample],
    stop: Option<u32>,
) -> Result<NgramModel> {
    let mut trainer = NgramTrainer::new(vocab_size, config)?;
    let mut seq = Vec::new();
    for s in samples {
        seq.clear();
        seq.extend_from_slice(&s.prompt_ids);
        seq.extend_from_slice(&s.response_ids);
        seq.extend(stop);
        trainer.add_sequence(&seq)?;
    }
    Ok(trainer.build())
}

/// The student's answers to `prompts` (token ids), answer `i` drawn with seed `seed + i`.
pub fn student_answers(
    student: &NgramModel,
    prompts: &[Vec<u32>],
    max_tokens: usize,
    temperature: f64,
    seed: u64,
    stop: &[u32],
) -> Result<Vec<Sample>> {
    let mut sampler = NgramSampler::new(student, temperature, seed)?;
    prompts
        .iter()
        .enumerate()
        .map(|(i, p)| {
            sampler.reseed(seed.wrapping_add(i as u64));
            Ok(Sample {
                prompt_ids: p.clone(),
                response_ids: sampler.generate(p, max_tokens, stop)?,
            })
        })
        .collect()
}

/// An n-gram student's reading-mode predictions over `texts`.
pub fn student_predictions(student: &NgramModel, texts: &[&Sample]) -> Result<Vec<Vec<u32>>> {
    texts
        .iter()
        .map(|s| Ok(student.predictions(&s.prompt_ids, &s.response_ids)?))
        .collect()
}
