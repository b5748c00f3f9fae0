//! The first difference between a stored evidence record and a recomputed one.

use serde_json::Value;

/// Where two JSON documents first differ, and the two values there.
#[derive(Clone, Debug, PartialEq)]
pub struct Mismatch {
    /// A JSON path such as `findings.documents[2].statistics.green`.
    pub path: String,
    /// The stored value (compact JSON; `absent` when missing).
    pub stored: String,
    /// The recomputed value.
    pub recomputed: String,
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: the report says {}, recomputed {}",
            self.path,
            shorten(&self.stored),
            shorten(&self.recomputed)
        )
    }
}

/// A value short enough for one error line.
fn shorten(text: &str) -> String {
    const MAX: usize = 120;
    if text.chars().count() <= MAX {
        text.to_string()
    } else {
        format!("{}…", text.chars().take(MAX).collect::<String>())
    }
}

/// The first difference, depth first in the stored document's key order, between `stored`
/// and `recomputed`; object keys listed in `ignored` are skipped at any depth.
pub fn first_mismatch(stored: &Value, recomputed: &Value, ignored: &[&str]) -> Option<Mismatch> {
    walk(stored, recomputed, ignored, String::new())
}

fn walk(stored: &Value, recomputed: &Value, ignored: &[&str], path: String) -> Option<Mismatch> {
    let differ = |path: String| {
        Some(Mismatch {
            path: if path.is_empty() {
                "(root)".into()
            } else {
                path
            },
            stored: stored.to_string(),
            recomputed: recomputed.to_string(),
        })
    };
    match (stored, recomputed) {
        (Value::Object(a), Value::Object(b)) => {
            let keys = a.keys().chain(b.keys().filter(|k| !a.contains_key(*k)));
            for key in keys {
                if ignored.contains(&key.as_str()) {
                    continue;
                }
                let at = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                match (a.get(key), b.get(key)) {
                    (Some(x), Some(y)) => {
                        if let Some(m) = walk(x, y, ignored, at) {
                            return Some(m);
                        }
                    }
                    (x, y) => {
                        let text = |v: Option<&Value>| v.map_or("absent".into(), Value::to_string);
                        return Some(Mismatch {
                            path: at,
                            stored: text(x),
                            recomputed: text(y),
                        });
                    }
                }
            }
            None
        }
        (Value::Array(a), Value::Array(b)) => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                if let Some(m) = walk(x, y, ignored, format!("{path}[{i}]")) {
                    return Some(m);
                }
            }
            if a.len() != b.len() {
                return Some(Mismatch {
                    path: format!("{path} (length)"),
                    stored: a.len().to_string(),
                    recomputed: b.len().to_string(),
                });
            }
            None
        }
        (a, b) if a == b => None,
        _ => differ(path),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_the_first_difference_and_skips_ignored_keys() {
        let a = json!({"created": "x", "f": {"docs": [{"green": 3}, {"green": 5}]}});
        let b = json!({"created": "y", "f": {"docs": [{"green": 3}, {"green": 6}]}});
        let m = first_mismatch(&a, &b, &["created"]).expect("a mismatch");
        assert_eq!(m.path, "f.docs[1].green");
        assert_eq!((m.stored.as_str(), m.recomputed.as_str()), ("5", "6"));
        assert!(first_mismatch(&a, &a, &[]).is_none());
        let c = json!({"created": "y", "f": {"docs": [{"green": 3}]}});
        assert_eq!(
            first_mismatch(&a, &c, &["created"]).expect("length").path,
            "f.docs (length)"
        );
        let d = json!({"created": "x", "f": {"docs": [], "extra": 1}});
        assert!(first_mismatch(&a, &d, &[]).is_some());
    }
}
