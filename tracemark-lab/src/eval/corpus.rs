//! The human-written corpus, cut into fixed-length token documents per genre.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use watermark_core::TextTokenizer;

use super::{Error, Result};

/// One corpus document as stored: gzip JSONL with `genre` and `text`.
#[derive(Debug, Clone)]
pub struct HumanDoc {
    pub genre: String,
    pub text: String,
}

/// The corpus path to use when none is given: `TRACEMARK_CORPUS`, else the shared copy beside
/// the checkout (`scripts/fetch-corpus.sh` prints where it put one).
pub fn default_corpus_path() -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("TRACEMARK_CORPUS").map(PathBuf::from),
        Some(PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/corpora/human-dev.jsonl.gz"
        ))),
    ];
    candidates.into_iter().flatten().find(|p| p.is_file())
}

/// Every document of a gzip JSONL corpus.
pub fn read_corpus(path: &Path) -> Result<Vec<HumanDoc>> {
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let mut docs = Vec::new();
    for (n, line) in BufReader::new(flate2::read::GzDecoder::new(file))
        .lines()
        .enumerate()
    {
        let line = line.map_err(io)?;
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(&line).map_err(|e| Error::Corpus {
            path: path.to_path_buf(),
            reason: format!("line {}: {e}", n + 1),
        })?;
        docs.push(HumanDoc {
            genre: v["genre"].as_str().unwrap_or("unknown").to_string(),
            text: v["text"].as_str().unwrap_or("").to_string(),
        });
    }
    if docs.is_empty() {
        return Err(Error::Corpus {
            path: path.to_path_buf(),
            reason: "no documents".into(),
        });
    }
    Ok(docs)
}

/// Up to `per_genre` documents of exactly `len` tokens for each genre: the genre's texts, in
/// corpus order, tokenized and cut into consecutive pieces (short texts such as quotations run
/// together; long ones give several pieces).
pub fn token_documents(
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

/// `n` runs of `len` consecutive tokens from the longest texts (for pasting into), or fewer
/// when the corpus has no more.
pub fn long_passages(
    docs: &[HumanDoc],
    tokenizer: &TextTokenizer,
    len: usize,
    n: usize,
) -> Result<Vec<Vec<u32>>> {
    let mut by_length: Vec<&HumanDoc> = docs.iter().collect();
    by_length.sort_by_key(|d| std::cmp::Reverse(d.text.len()));
    let mut out = Vec::new();
    for d in by_length {
        if out.len() >= n {
            break;
        }
        let ids = tokenizer.encode(&d.text)?;
        for piece in ids.chunks_exact(len.max(1)) {
            if out.len() >= n {
                break;
            }
            out.push(piece.to_vec());
        }
    }
    Ok(out)
}
