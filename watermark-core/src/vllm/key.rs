//! vLLM's watermark key: a 64-bit integer, and the sub-keys `derive_watermark_key` makes of it.

use sha2::{Digest, Sha256};

/// vLLM's `derive_watermark_key(key, domain)`: the first 8 bytes, big-endian, of
/// SHA-256(domain || key as 8 big-endian bytes). The dual-key scheme's keys A and B are
/// `derive_watermark_key(key, b"key_a")` and `(key, b"key_b")`.
pub fn derive_watermark_key(key: u64, domain: &[u8]) -> u64 {
    let mut hasher = Sha256::new();
    hasher.update(domain);
    hasher.update(key.to_be_bytes());
    let digest = hasher.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

/// Fingerprint of a vLLM key, safe to print: the first 16 hex digits of
/// SHA-256("tracemark-vllm-key-fingerprint" || key as 8 big-endian bytes).
pub fn key_fingerprint(key: u64) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"tracemark-vllm-key-fingerprint");
    hasher.update(key.to_be_bytes());
    hex::encode(&hasher.finalize()[..8])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derivation_is_sha256_of_domain_then_key() {
        // SHA-256("key_a" || 00..00) computed independently: its first 8 bytes.
        let digest = Sha256::digest([b"key_a".as_slice(), &[0u8; 8]].concat());
        let expected = u64::from_be_bytes(digest[..8].try_into().unwrap());
        assert_eq!(derive_watermark_key(0, b"key_a"), expected);
        assert_ne!(
            derive_watermark_key(1, b"key_a"),
            derive_watermark_key(1, b"key_b")
        );
    }

    #[test]
    fn fingerprints_differ_and_do_not_show_the_key() {
        let fp = key_fingerprint(42);
        assert_eq!(fp.len(), 16);
        assert_ne!(fp, key_fingerprint(43));
        assert_ne!(fp, format!("{:016x}", 42u64));
    }
}
