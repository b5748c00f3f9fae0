//! Reading mode for a suspect whose tokenizer is not the profile's: its predictions are mapped
//! onto our tokens through the text.
//!
//! For each position `i` of our text, the suspect reads the context and the *text of our first
//! `i` tokens*, tokenized its own way, and predicts one of its tokens; that token's text counts
//! as a prediction for position `i` when it is exactly one of our tokens. Both what the suspect
//! read and whether a prediction counts depend only on the text before position `i`. That is
//! what keeps the audit exact: a rule that looked past it, such as "score where both
//! tokenizations happen to share a boundary in the whole text", would look at our token `i`,
//! which the watermark biased, and would bias an innocent suspect's score with it.
//!
//! Cost: one pass over the whole text serves every position whose prefix the suspect tokenizes
//! the same way alone as inside the whole text (word starts, typically); each other position
//! needs a pass of its own over its prefix.

use watermark_core::TextTokenizer;

use crate::error::Result;
use crate::reading::SequenceLogits;

/// The suspect's predictions over one of our texts, mapped onto our tokens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlignedPredictions {
    /// `predictions[i]`: our token for the suspect's top-1 after the text of our first `i`
    /// tokens, or `None` when its text is not exactly one of our tokens (or the prefix ends
    /// inside a character, or there is nothing to read yet).
    pub predictions: Vec<Option<u32>>,
    /// Forward passes run (the whole text's included).
    pub passes: usize,
}

/// Two tokenizers and the suspect model behind one of them.
pub struct CrossReader<'a, M: SequenceLogits + ?Sized> {
    model: &'a M,
    suspect: &'a TextTokenizer,
    ours: &'a TextTokenizer,
}

impl<M: SequenceLogits + ?Sized> std::fmt::Debug for CrossReader<'_, M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CrossReader")
            .field("suspect", self.suspect)
            .field("ours", self.ours)
            .finish_non_exhaustive()
    }
}

impl<'a, M: SequenceLogits + ?Sized> CrossReader<'a, M> {
    /// A reader of our texts by `model`, which reads through `suspect`; `ours` is the profile's.
    pub fn new(model: &'a M, suspect: &'a TextTokenizer, ours: &'a TextTokenizer) -> Self {
        CrossReader {
            model,
            suspect,
            ours,
        }
    }

    /// The predictions at every position of `text` (our token ids), read after `context` (the
    /// prompt as the suspect sees it, as text).
    pub fn predictions(&self, context: &str, text: &[u32]) -> Result<AlignedPredictions> {
        // What the suspect reads before each position, as its own tokens (None: no prediction).
        let mut reads: Vec<Option<Vec<u32>>> = Vec::with_capacity(text.len());
        for read in prefixes(self.ours, context, text)? {
            let ids = match read {
                Some(read) => Some(self.suspect.encode_fragment(&read)?),
                None => None,
            };
            reads.push(ids.filter(|ids| !ids.is_empty()));
        }
        let whole = self.ours.decode(text)?;
        let mut passes = Passes::default();
        let whole_ids = self.suspect.encode_fragment(&format!("{context}{whole}"))?;
        if !whole_ids.is_empty() {
            passes.run(self.model, whole_ids)?;
        }
        // Longest first, so that a shorter read is often a prefix of one already run.
        let mut top1: Vec<Option<u32>> = vec![None; text.len()];
        for i in (0..text.len()).rev() {
            if let Some(read) = &reads[i] {
                top1[i] = Some(passes.last_row_argmax(self.model, read)?);
            }
        }
        let mut predictions = Vec::with_capacity(text.len());
        for token in top1 {
            predictions.push(match token {
                Some(token) => our_token(self.ours, &self.suspect.decode(&[token])?)?,
                None => None,
            });
        }
        Ok(AlignedPredictions {
            predictions,
            passes: passes.done.len(),
        })
    }
}

/// What the suspect reads before each position of `text` (our token ids): `context` followed
/// by the text of our first `i` tokens; `None` where there is nothing to read or our token
/// `i` starts inside a character (no text boundary there). Depends only on the prefix.
pub fn prefixes(ours: &TextTokenizer, context: &str, text: &[u32]) -> Result<Vec<Option<String>>> {
    let mut reads = Vec::with_capacity(text.len());
    for i in 0..text.len() {
        let prefix = ours.decode(&text[..i])?;
        let read = format!("{context}{prefix}");
        let usable = !read.is_empty() && !prefix.ends_with(char::REPLACEMENT_CHARACTER);
        reads.push(usable.then_some(read));
    }
    Ok(reads)
}

/// Our token whose text is exactly `piece` (the text of a token the suspect predicted), if
/// there is one.
pub fn our_token(ours: &TextTokenizer, piece: &str) -> Result<Option<u32>> {
    if piece.is_empty() || piece.contains(char::REPLACEMENT_CHARACTER) {
        return Ok(None);
    }
    let ids = ours.encode_fragment(piece)?;
    Ok(match ids.as_slice() {
        [one] => Some(*one),
        _ => None,
    })
}

/// The sequences read so far, each with the argmax of every row of its logits.
#[derive(Default)]
struct Passes {
    done: Vec<(Vec<u32>, Vec<u32>)>,
}

impl Passes {
    fn run<M: SequenceLogits + ?Sized>(&mut self, model: &M, ids: Vec<u32>) -> Result<()> {
        let argmax = model.forward_all(&ids)?.argmax(1)?.to_vec1::<u32>()?;
        self.done.push((ids, argmax));
        Ok(())
    }

    /// The model's top-1 after reading `read`, from a pass over any sequence that starts with
    /// it (the model is causal), or from a new pass over `read` itself.
    fn last_row_argmax<M: SequenceLogits + ?Sized>(
        &mut self,
        model: &M,
        read: &[u32],
    ) -> Result<u32> {
        let found = self
            .done
            .iter()
            .find(|(ids, _)| ids.len() >= read.len() && ids[..read.len()] == *read);
        if let Some((_, argmax)) = found {
            return Ok(argmax[read.len() - 1]);
        }
        self.run(model, read.to_vec())?;
        let newest = self.done.len() - 1;
        Ok(self.done[newest].1[read.len() - 1])
    }
}
