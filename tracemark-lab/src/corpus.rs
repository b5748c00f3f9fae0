//! The human-written corpus both experiments read: gzip JSONL, one document a line, with a
//! `genre` and a `text`. The evaluation scores its documents as human text; the radioactivity
//! experiment turns their openings into prompts.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

/// What reading the corpus can fail on.
#[derive(Debug, thiserror::Error)]
pub enum CorpusError {
    /// The file could not be opened or decompressed.
    #[error("{path}: {source}")]
    Io {
        /// The corpus file.
        path: PathBuf,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
    /// A line that is not a JSON object.
    #[error("{path}: bad corpus: line {line}: {source}")]
    Json {
        /// The corpus file.
        path: PathBuf,
        /// The line, counted from 1.
        line: usize,
        /// What failed.
        #[source]
        source: serde_json::Error,
    },
    /// Not one document in the file.
    #[error("{path}: bad corpus: no documents")]
    Empty {
        /// The corpus file.
        path: PathBuf,
    },
}

/// One corpus document as stored.
#[derive(Debug, Clone)]
pub struct HumanDoc {
    /// The document's genre (`unknown` when the line has none).
    pub genre: String,
    /// The document (empty when the line has none).
    pub text: String,
}

/// The corpus to use when none is given: `TRACEMARK_CORPUS` when set and not empty, else the
/// shared copy beside the checkout (`../shared/corpora/human-dev.jsonl.gz`, where
/// `scripts/fetch-corpus.sh` puts it); `None` when neither is a file.
pub fn default_path() -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("TRACEMARK_CORPUS")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from),
        Some(PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/corpora/human-dev.jsonl.gz"
        ))),
    ];
    candidates.into_iter().flatten().find(|p| p.is_file())
}

/// Every document of the corpus, in file order (blank lines skipped).
pub fn read_documents(path: &Path) -> Result<Vec<HumanDoc>, CorpusError> {
    read_records(path, |v| {
        Some(HumanDoc {
            genre: v["genre"].as_str().unwrap_or("unknown").to_string(),
            text: v["text"].as_str().unwrap_or("").to_string(),
        })
    })
}

/// The `text` of every document that has one, in file order.
pub fn read_texts(path: &Path) -> Result<Vec<String>, CorpusError> {
    read_records(path, |v| v["text"].as_str().map(str::to_string))
}

/// `record` applied to each non-blank line's JSON, keeping the `Some`s; an error when none is
/// kept.
fn read_records<T>(
    path: &Path,
    record: impl Fn(&serde_json::Value) -> Option<T>,
) -> Result<Vec<T>, CorpusError> {
    let io = |source| CorpusError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let mut out = Vec::new();
    for (n, line) in BufReader::new(flate2::read::GzDecoder::new(file))
        .lines()
        .enumerate()
    {
        let line = line.map_err(io)?;
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value =
            serde_json::from_str(&line).map_err(|source| CorpusError::Json {
                path: path.to_path_buf(),
                line: n + 1,
                source,
            })?;
        out.extend(record(&v));
    }
    if out.is_empty() {
        return Err(CorpusError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    fn gz_file(name: &str, lines: &str) -> PathBuf {
        let path = std::env::temp_dir().join(format!(
            "tracemark-corpus-{}-{name}.jsonl.gz",
            std::process::id()
        ));
        let file = std::fs::File::create(&path).unwrap();
        let mut gz = flate2::write::GzEncoder::new(file, flate2::Compression::fast());
        gz.write_all(lines.as_bytes()).unwrap();
        gz.finish().unwrap();
        path
    }

    #[test]
    fn documents_and_texts_read_the_same_lines() {
        let path = gz_file(
            "ok",
            "{\"genre\": \"news\", \"text\": \"One.\"}\n\n{\"text\": \"Two.\"}\n{\"genre\": \"x\"}\n",
        );
        let docs = read_documents(&path).unwrap();
        let genres: Vec<&str> = docs.iter().map(|d| d.genre.as_str()).collect();
        assert_eq!(genres, ["news", "unknown", "x"]);
        assert_eq!(docs[2].text, "");
        // A line without a text gives no text (and does not shift the others).
        assert_eq!(read_texts(&path).unwrap(), ["One.", "Two."]);
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn bad_and_empty_corpora_are_errors() {
        let bad = gz_file("bad", "{\"text\": \"fine\"}\nnot json\n");
        let e = read_documents(&bad).unwrap_err();
        assert!(matches!(e, CorpusError::Json { line: 2, .. }), "{e}");
        let empty = gz_file("empty", "\n\n");
        assert!(matches!(read_texts(&empty), Err(CorpusError::Empty { .. })));
        for p in [bad, empty] {
            std::fs::remove_file(p).unwrap();
        }
        assert!(matches!(
            read_texts(Path::new("/nonexistent/corpus.jsonl.gz")),
            Err(CorpusError::Io { .. })
        ));
    }
}
