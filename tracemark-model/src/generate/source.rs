//! Where the generation loop gets its next-token logits: the llama model with its KV cache, or
//! any function of the context (a synthetic model), behind one batched interface.

use crate::error::{Error, Result};
use crate::llama::{Llama, Session};

/// Next-token logits for a batch of sequences that grow one token at a time.
///
/// The loop prefills a batch of contexts, then alternates: it samples one token per live row,
/// retains the rows that go on, and steps them with their new tokens. Row `j` of every answer
/// belongs to the `j`-th sequence still in the session.
pub trait LogitsSource {
    /// What the source keeps between steps (a KV cache, or the contexts themselves).
    type Session;

    /// Starts a batch: one logits row per context, predicting the token after it.
    fn prefill(&self, contexts: &[Vec<u32>]) -> Result<(Self::Session, Vec<Vec<f32>>)>;

    /// Appends `tokens[j]` to sequence `j` and returns the rows predicting the next tokens.
    fn step(&self, session: &mut Self::Session, tokens: &[u32]) -> Result<Vec<Vec<f32>>>;

    /// Keeps only the sequences at `keep` (indices into the current batch, in that order), so
    /// that finished ones cost nothing more.
    fn retain(&self, session: &mut Self::Session, keep: &[usize]) -> Result<()>;

    /// The longest sequence (prompt and text) the source reads, if it has a limit: the
    /// model's context length.
    fn max_context(&self) -> Option<usize> {
        None
    }
}

impl LogitsSource for Llama {
    type Session = Session;

    fn prefill(&self, contexts: &[Vec<u32>]) -> Result<(Session, Vec<Vec<f32>>)> {
        let (session, logits) = Llama::prefill(self, contexts)?;
        Ok((session, logits.to_vec2::<f32>()?))
    }

    fn step(&self, session: &mut Session, tokens: &[u32]) -> Result<Vec<Vec<f32>>> {
        Ok(Llama::step(self, session, tokens)?.to_vec2::<f32>()?)
    }

    fn retain(&self, session: &mut Session, keep: &[usize]) -> Result<()> {
        session.retain(keep)
    }

    fn max_context(&self) -> Option<usize> {
        Some(self.config().context_length)
    }
}

/// A source made of a function from a whole context to its next-token logits, such as
/// `watermark_core::SyntheticLm::logits`: no cache, each row computed afresh.
#[derive(Clone, Debug)]
pub struct PerContext<F>(pub F);

impl<F: Fn(&[u32]) -> Vec<f32>> LogitsSource for PerContext<F> {
    /// The contexts, prompt included.
    type Session = Vec<Vec<u32>>;

    fn prefill(&self, contexts: &[Vec<u32>]) -> Result<(Self::Session, Vec<Vec<f32>>)> {
        let rows = contexts.iter().map(|c| (self.0)(c)).collect();
        Ok((contexts.to_vec(), rows))
    }

    fn step(&self, session: &mut Self::Session, tokens: &[u32]) -> Result<Vec<Vec<f32>>> {
        if tokens.len() != session.len() {
            return Err(Error::Input(format!(
                "step: {} tokens for a batch of {}",
                tokens.len(),
                session.len()
            )));
        }
        for (context, &token) in session.iter_mut().zip(tokens) {
            context.push(token);
        }
        Ok(session.iter().map(|c| (self.0)(c)).collect())
    }

    fn retain(&self, session: &mut Self::Session, keep: &[usize]) -> Result<()> {
        if let Some(&i) = keep.iter().find(|&&i| i >= session.len()) {
            return Err(Error::Input(format!(
                "retain: index {i} outside a batch of {}",
                session.len()
            )));
        }
        let mut all = std::mem::take(session);
        *session = keep.iter().map(|&i| std::mem::take(&mut all[i])).collect();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn last_token_source() -> PerContext<impl Fn(&[u32]) -> Vec<f32>> {
        PerContext(|c: &[u32]| vec![c.len() as f32, c.last().map_or(-1.0, |&t| t as f32)])
    }

    #[test]
    fn per_context_rows_follow_each_context() {
        let source = last_token_source();
        let (mut session, rows) = source.prefill(&[vec![5], vec![6, 7]]).unwrap();
        assert_eq!(rows, vec![vec![1.0, 5.0], vec![2.0, 7.0]]);
        let rows = source.step(&mut session, &[8, 9]).unwrap();
        assert_eq!(rows, vec![vec![2.0, 8.0], vec![3.0, 9.0]]);
        source.retain(&mut session, &[1]).unwrap();
        assert_eq!(session, vec![vec![6, 7, 9]]);
        let rows = source.step(&mut session, &[3]).unwrap();
        assert_eq!(rows, vec![vec![4.0, 3.0]]);
    }

    #[test]
    fn per_context_refuses_a_mismatched_batch() {
        let source = last_token_source();
        let (mut session, _) = source.prefill(&[vec![1], vec![2]]).unwrap();
        assert!(source.step(&mut session, &[1]).is_err());
        assert!(source.retain(&mut session, &[2]).is_err());
        assert_eq!(session.len(), 2, "a refused retain leaves the batch alone");
    }
}
