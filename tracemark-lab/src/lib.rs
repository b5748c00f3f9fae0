//! Experiments that produce tracemark's evidence: the evaluation report and the radioactivity
//! experiment (n-gram students, and neural students fine-tuned by gradient descent in
//! [`neural`]). Each module is one experiment (or a piece one of them needs); the binaries in
//! `src/bin/` run them.

pub mod accounts;
pub mod corpus;
pub mod eval;
pub mod keys;
pub mod neural;
pub mod ngram;
pub mod radioactivity;
