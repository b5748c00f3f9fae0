//! The experiment's prompts, derived from the human-written corpus: an opening excerpt of a
//! document inside one of a few instruction templates ("Continue this passage: …").
//!
//! Derived rather than stored, so that a few thousand varied prompts cost no data file, and the
//! corpus is already what `make test` fetches and checks ([`crate::corpus`] reads it).

use std::collections::HashSet;

use super::{permutation, Error, Result};

/// Instruction templates; `{}` is replaced by the excerpt.
const TEMPLATES: [&str; 10] = [
    "Continue this passage: {}",
    "Explain in plain words what this means: {}",
    "Write a short reply to this: {}",
    "What is the main idea of this text? {}",
    "Rewrite this in modern English: {}",
    "Tell a short story that begins with: {}",
    "Is this funny? Say why or why not: {}",
    "Summarize this in two sentences: {}",
    "Give your opinion on this: {}",
    "Write a few sentences on the topic of this quote: {}",
];

/// Longest excerpt, in words.
const MAX_WORDS: usize = 30;
/// Shortest excerpt, in words: shorter openings ("Chapter 1") make poor prompts.
const MIN_WORDS: usize = 5;

/// The opening of a text: whitespace collapsed, cut after the first sentence end past
/// `MIN_WORDS` words, or at `MAX_WORDS` words. `None` for a text too short.
pub fn excerpt(text: &str) -> Option<String> {
    let words: Vec<&str> = text.split_whitespace().collect();
    if words.len() < MIN_WORDS {
        return None;
    }
    let mut end = words.len().min(MAX_WORDS);
    for (i, w) in words.iter().enumerate().take(end).skip(MIN_WORDS - 1) {
        if w.ends_with(['.', '!', '?']) {
            end = i + 1;
            break;
        }
    }
    Some(words[..end].join(" "))
}

/// `n` distinct prompts from `texts`, in a seeded order (documents shuffled, template chosen
/// by position), so that disjoint ranges of the result serve as disjoint prompt sets.
pub fn prompts_from_texts(texts: &[String], n: usize, seed: u64) -> Result<Vec<String>> {
    let out = prompts_up_to(texts, n, seed);
    if out.len() < n {
        return Err(Error::NotEnoughPrompts {
            found: out.len(),
            wanted: n,
        });
    }
    Ok(out)
}

/// The prompts of [`prompts_from_texts`] from position `skip` on, at most `n` of them: as
/// many as the corpus gives, for a set that may be smaller than asked for.
pub fn prompts_after(texts: &[String], skip: usize, n: usize, seed: u64) -> Vec<String> {
    let mut out = prompts_up_to(texts, skip.saturating_add(n), seed);
    out.drain(..skip.min(out.len()));
    out
}

/// The first `n` prompts of the seeded order, or all of them when the corpus gives fewer.
fn prompts_up_to(texts: &[String], n: usize, seed: u64) -> Vec<String> {
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(n);
    for i in permutation(texts.len(), seed) {
        if out.len() == n {
            break;
        }
        let Some(e) = excerpt(&texts[i]) else {
            continue;
        };
        if !seen.insert(e.clone()) {
            continue;
        }
        let template = TEMPLATES[out.len() % TEMPLATES.len()];
        out.push(template.replace("{}", &e));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpts_stop_at_a_sentence_or_a_length() {
        assert_eq!(excerpt("Too short."), None);
        assert_eq!(
            excerpt("A  celebrity is a person\nwho is known. For his well-knownness."),
            Some("A celebrity is a person who is known.".into())
        );
        let long = "word ".repeat(100);
        assert_eq!(excerpt(&long).unwrap().split(' ').count(), MAX_WORDS);
    }

    #[test]
    fn prompts_are_distinct_and_reproducible() {
        let texts: Vec<String> = (0..50)
            .map(|i| format!("This is document number {i} of the test set. More text."))
            .collect();
        let a = prompts_from_texts(&texts, 40, 1).unwrap();
        assert_eq!(a, prompts_from_texts(&texts, 40, 1).unwrap());
        assert_eq!(a.iter().collect::<HashSet<_>>().len(), 40);
        assert_eq!(prompts_after(&texts, 30, 5, 1), a[30..35]);
        assert_eq!(prompts_after(&texts, 45, 20, 1).len(), 5);
        assert!(matches!(
            prompts_from_texts(&texts, 60, 1),
            Err(Error::NotEnoughPrompts {
                found: 50,
                wanted: 60
            })
        ));
    }
}
