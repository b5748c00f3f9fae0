//! Checks every test vector in WATERMARK-SPEC.md against the implementation, so the spec and
//! the code cannot drift apart.

#![allow(clippy::unwrap_used)]

use watermark_core::{GreenList, Scheme, SecretKey, Seeding};

fn spec_rows() -> Vec<Vec<String>> {
    let spec =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../WATERMARK-SPEC.md"))
            .expect("WATERMARK-SPEC.md at the workspace root");
    let table = spec
        .split("## Test vectors")
        .nth(1)
        .expect("a test-vector section");
    table
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| key"))
        .map(|l| {
            l.trim_matches('|')
                .split('|')
                .map(|c| c.trim().to_string())
                .collect()
        })
        .collect()
}

#[test]
fn every_vector_in_the_spec_holds() {
    let keys = [
        SecretKey::from_bytes(std::array::from_fn(|i| i as u8)),
        SecretKey::from_bytes([0xa5; 32]),
    ];
    assert_eq!(keys[0].fingerprint(), "3aeb63a1f554054b");
    assert_eq!(keys[1].fingerprint(), "d98a7f67dca35e24");
    let rows = spec_rows();
    assert!(
        rows.len() >= 20,
        "expected the spec's 20 vectors, found {}",
        rows.len()
    );
    for row in rows {
        let key = &keys[row[0].parse::<usize>().unwrap()];
        let seeding = match row[1].as_str() {
            "previous" => Seeding::Previous,
            "self-seeded" => Seeding::SelfSeeded,
            other => panic!("unknown seeding {other}"),
        };
        let scheme = Scheme {
            seeding,
            width: row[2].parse().unwrap(),
            gamma: row[3].parse().unwrap(),
            delta: 2.0,
        };
        let context: Vec<u32> = row[4]
            .split_whitespace()
            .map(|x| x.parse().unwrap())
            .collect();
        let token: u32 = row[5].parse().unwrap();
        let green = GreenList::new(key, scheme, 50_000).unwrap();
        let d = green.decide(&context, token).unwrap().unwrap();
        assert_eq!(format!("{:016x}", d.seed), row[6], "seed, row {row:?}");
        assert_eq!(format!("{:04x}", d.value), row[7], "value, row {row:?}");
        assert_eq!(
            if d.green { "green" } else { "red" },
            row[8],
            "verdict, row {row:?}"
        );
    }
}

/// The commitment vectors of the spec's "Key commitments", recomputed.
#[test]
fn every_commitment_vector_in_the_spec_holds() {
    use watermark_core::evidence::{Commitment, PublicParameters};
    let spec =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../WATERMARK-SPEC.md"))
            .unwrap();
    let section = spec
        .split("## Key commitments")
        .nth(1)
        .and_then(|s| s.split("## Test vectors").next())
        .expect("a key-commitment section before the test vectors");
    let keys = [
        SecretKey::from_bytes(std::array::from_fn(|i| i as u8)),
        SecretKey::from_bytes([0xa5; 32]),
    ];
    let rows: Vec<Vec<String>> = section
        .lines()
        .filter(|l| l.starts_with("| c"))
        .map(|l| {
            l.trim_matches('|')
                .split('|')
                .map(|c| c.trim().to_string())
                .collect()
        })
        .collect();
    assert_eq!(rows.len(), 4, "the spec's four commitment vectors");
    for row in rows {
        let key = &keys[row[1].parse::<usize>().unwrap()];
        let seeding = match row[2].as_str() {
            "previous" => Seeding::Previous,
            _ => Seeding::SelfSeeded,
        };
        let parameters = PublicParameters {
            spec: "tracemark-green-v1".into(),
            scheme: Scheme {
                seeding,
                width: row[3].parse().unwrap(),
                gamma: row[4].parse().unwrap(),
                delta: row[5].parse().unwrap(),
            },
            vocab_size: row[6].parse().unwrap(),
            tokenizer_fingerprint: (row[7] != "none").then(|| row[7].clone()),
            key_fingerprint: key.fingerprint(),
        };
        let statement = Commitment::statement(&parameters, &row[9]);
        assert!(statement.contains(&format!("gamma={}\ndelta={}\n", row[4], row[5])));
        let salt = [u8::from_str_radix(&row[8], 16).unwrap(); 32];
        let c = Commitment::with_salt(parameters.clone(), key, row[9].clone(), salt);
        assert_eq!(c.commitment, row[10], "vector {}", row[0]);
        c.open(&parameters, key).unwrap();
    }
}

/// The account section's table: seed, uniform and score of each row (the derived key column is
/// checked by the core's unit tests, where the key bytes are visible).
#[test]
fn every_account_vector_in_the_spec_holds() {
    use watermark_core::account::AccountKey;
    let spec =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../WATERMARK-SPEC.md"))
            .expect("WATERMARK-SPEC.md at the workspace root");
    let table = spec
        .split("### Account test vectors")
        .nth(1)
        .and_then(|t| t.split("## Test vectors").next())
        .expect("an account test-vector section");
    let keys = [
        SecretKey::from_bytes(std::array::from_fn(|i| i as u8)),
        SecretKey::from_bytes([0xa5; 32]),
    ];
    let rows: Vec<Vec<String>> = table
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| key"))
        .map(|l| {
            l.trim_matches('|')
                .split('|')
                .map(|c| c.trim().to_string())
                .collect()
        })
        .collect();
    assert!(
        rows.len() >= 10,
        "expected 10 account vectors, found {}",
        rows.len()
    );
    for row in rows {
        let key = &keys[row[0].parse::<usize>().unwrap()];
        let seeding = match row[1].as_str() {
            "previous" => Seeding::Previous,
            "self-seeded" => Seeding::SelfSeeded,
            other => panic!("unknown seeding {other}"),
        };
        let scheme = Scheme {
            seeding,
            width: row[2].parse().unwrap(),
            gamma: 0.25,
            delta: 2.0,
        };
        let id = if row[3] == "x × 128" {
            "x".repeat(128)
        } else {
            row[3].clone()
        };
        let context: Vec<u32> = row[5]
            .split_whitespace()
            .map(|x| x.parse().unwrap())
            .collect();
        let token: u32 = row[6].parse().unwrap();
        let green = GreenList::new(key, scheme, 50_000).unwrap();
        let account = AccountKey::derive(key, &id).unwrap();
        let (seed, u) = account
            .uniform_after(&green, &context, token)
            .unwrap()
            .unwrap();
        assert_eq!(format!("{seed:016x}"), row[7], "seed, row {row:?}");
        let m = u64::from_str_radix(&row[8], 16).unwrap();
        assert_eq!(
            u,
            (m as f64 + 0.5) / (1u64 << 52) as f64,
            "uniform, row {row:?}"
        );
        let score: f64 = row[9].parse().unwrap();
        assert!(
            (-(1.0 - u).ln() - score).abs() < 1e-14,
            "score, row {row:?}"
        );
    }
}
