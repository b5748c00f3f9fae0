//! The experiments' watermark keys, derived from a public seed so that a run (and the
//! radioactivity experiment's teacher cache, which is keyed by the key's fingerprint) can be
//! reproduced exactly. A real deployment draws its key with `tracemark keygen`; reports show only
//! the fingerprint either way.
//!
//! Both experiments number their keys the same way: index 0 is the key of the experiment's
//! watermarked texts, 1, 2, … the independent keys of its null checks (the evaluation's
//! false-positive test, the radioactivity experiment's null keys). They derive them differently
//! because each derivation predates the other and the published numbers (the evaluation report,
//! the radioactivity tables and caches) depend on the exact key bytes: the evaluation expands
//! `seed ^ tag ^ index` with ChaCha8, the radioactivity experiment hashes a label, the seed and
//! the index with SHA-256. Both are frozen; the tests below pin their fingerprints.

use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};
use watermark_core::SecretKey;

/// Whose keys: each experiment has its own frozen derivation (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Experiment {
    /// The evaluation report (`make eval`).
    Eval,
    /// The radioactivity experiment (`make radioactivity`).
    Radioactivity,
}

impl Experiment {
    /// Key `index` of the run seeded with `seed`: 0 for the watermarked texts, 1… for the null
    /// checks.
    pub fn key(self, seed: u64, index: u64) -> SecretKey {
        match self {
            Experiment::Eval => {
                // "evalkey\0" as a tag, so that the eval's streams differ from other ChaCha8
                // streams seeded with the same number.
                let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x6576_616c_6b65_7900 ^ index);
                let mut bytes = [0u8; 32];
                rng.fill_bytes(&mut bytes);
                SecretKey::from_bytes(bytes)
            }
            Experiment::Radioactivity => {
                let mut h = Sha256::new();
                h.update(b"tracemark radioactivity experiment key");
                h.update(seed.to_le_bytes());
                h.update(index.to_le_bytes());
                SecretKey::from_bytes(h.finalize().into())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fingerprints(e: Experiment, seed: u64) -> Vec<String> {
        (0..3).map(|i| e.key(seed, i).fingerprint()).collect()
    }

    /// The derivations must never change: the published reports, the teacher cache and the
    /// README's numbers all depend on these exact keys.
    #[test]
    fn derivations_are_frozen() {
        assert_eq!(
            fingerprints(Experiment::Eval, 2024),
            ["211512023059abfc", "21ff606e5d5f90f8", "b57977d31cd34457"]
        );
        assert_eq!(
            fingerprints(Experiment::Radioactivity, 1),
            ["72453ab73811fc36", "33b25f5f31c47a6e", "5f6ab3ee8655acbd"]
        );
        assert_eq!(
            fingerprints(Experiment::Radioactivity, 99),
            ["fc254a91a4bc4532", "90b5a963c6863132", "1950f4906a016c22"]
        );
    }

    #[test]
    fn keys_are_reproducible_and_distinct() {
        for e in [Experiment::Eval, Experiment::Radioactivity] {
            assert_eq!(e.key(1, 0).fingerprint(), e.key(1, 0).fingerprint());
            assert_ne!(e.key(1, 0).fingerprint(), e.key(1, 1).fingerprint());
            assert_ne!(e.key(1, 0).fingerprint(), e.key(2, 0).fingerprint());
        }
        assert_ne!(
            Experiment::Eval.key(1, 0).fingerprint(),
            Experiment::Radioactivity.key(1, 0).fingerprint()
        );
    }
}
