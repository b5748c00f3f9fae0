//! Philox4x32-10 (Salmon et al., SC'11) and the keyed PRF vLLM's watermark builds on it
//! (`philox4x32-10-v1`): a context of token ids is absorbed four words at a time into a
//! 128-bit state, and the candidate token picks one 32-bit word of a last Philox block.

/// Philox round multipliers and Weyl key increments (the paper's constants).
const M0: u32 = 0xD251_1F53;
const M1: u32 = 0xCD9E_8D57;
const W0: u32 = 0x9E37_79B9;
const W1: u32 = 0xBB67_AE85;

/// Domain words that keep the context absorption and the token step apart ("WMCX", "WMTK").
const CONTEXT_DOMAIN: u32 = 0x574D_4358;
const TOKEN_DOMAIN: u32 = 0x574D_544B;

/// Context slot value for a position before the first generated token (vLLM's `-1`).
pub const PAD_TOKEN: i64 = -1;

/// High and low halves of the 64-bit product of two 32-bit words.
fn mulhilo(a: u32, b: u32) -> (u32, u32) {
    let product = u64::from(a) * u64::from(b);
    ((product >> 32) as u32, product as u32)
}

/// One Philox4x32 block with 10 rounds: the key is bumped between rounds, not after the last.
pub fn philox4x32_10(counter: [u32; 4], key: [u32; 2]) -> [u32; 4] {
    let [mut c0, mut c1, mut c2, mut c3] = counter;
    let [mut k0, mut k1] = key;
    for round in 0..10 {
        let (hi0, lo0) = mulhilo(M0, c0);
        let (hi1, lo1) = mulhilo(M1, c2);
        (c0, c1, c2, c3) = (hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0);
        if round != 9 {
            k0 = k0.wrapping_add(W0);
            k1 = k1.wrapping_add(W1);
        }
    }
    [c0, c1, c2, c3]
}

/// A token id as vLLM feeds it to the PRF: the low 32 bits of its int64 (so -1 is 0xFFFF_FFFF).
fn word(token: i64) -> u32 {
    token as u32
}

/// The 128-bit state a context hashes to under `key`; `context` is oldest token first.
pub fn context_state(key: u64, context: &[i64]) -> [u32; 4] {
    let (k0, k1) = (key as u32, (key >> 32) as u32);
    let width = context.len() as u32;
    let mut state = [CONTEXT_DOMAIN, width, 0, 0];
    for (block_index, block) in context.chunks(4).enumerate() {
        let offset = (block_index * 4) as u32;
        let mut counter = state;
        for (slot, value) in counter.iter_mut().enumerate() {
            // A short last block is padded with 0xFFFF_FFFF - slot, as vLLM pads it.
            let absorbed = block
                .get(slot)
                .map_or(u32::MAX - slot as u32, |&token| word(token));
            *value ^= absorbed;
        }
        state = philox4x32_10(counter, [k0 ^ offset, k1]);
    }
    state
}

/// The PRF's 32-bit output for `token` after a context that hashed to `state`.
pub fn token_word(key: u64, state: [u32; 4], token: i64) -> u32 {
    let (k0, k1) = (key as u32, (key >> 32) as u32);
    let t = word(token);
    let block = philox4x32_10(
        [t >> 2, state[0], state[1], state[2]],
        [k0 ^ state[3], k1 ^ TOKEN_DOMAIN],
    );
    block[(t & 3) as usize]
}

/// The PRF's 32-bit output for (`context`, `token`): `philox4x32-10-v1` before the uniform map.
pub fn prf_word(key: u64, context: &[i64], token: i64) -> u32 {
    token_word(key, context_state(key, context), token)
}

/// vLLM's map of a PRF word to (0, 1): the top 24 bits m give (m + 1) / (2^24 + 1), computed in
/// f64 and rounded to f32, so neither 0 nor 1 can occur.
pub fn word_to_uniform(value: u32) -> f32 {
    let mantissa = f64::from(value >> 8);
    ((mantissa + 1.0) / f64::from((1u32 << 24) + 1)) as f32
}

/// The uniform vLLM's `PhiloxPRF(key).uniform(context, token)` returns.
pub fn uniform(key: u64, context: &[i64], token: i64) -> f32 {
    word_to_uniform(prf_word(key, context, token))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn philox_matches_the_random123_known_answers() {
        // Known-answer vectors of Random123's kat_vectors for philox4x32_10.
        assert_eq!(
            philox4x32_10([0, 0, 0, 0], [0, 0]),
            [0x6627_e8d5, 0xe169_c58d, 0xbc57_ac4c, 0x9b00_dbd8]
        );
        assert_eq!(
            philox4x32_10([u32::MAX; 4], [u32::MAX; 2]),
            [0x408f_276d, 0x41c8_3b0e, 0xa20b_c7c6, 0x6d54_51fd]
        );
        assert_eq!(
            philox4x32_10(
                [0x243f_6a88, 0x85a3_08d3, 0x1319_8a2e, 0x0370_7344],
                [0xa409_3822, 0x299f_31d0]
            ),
            [0xd16c_fe09, 0x94fd_cceb, 0x5001_e420, 0x2412_6ea1]
        );
    }

    #[test]
    fn uniforms_stay_inside_the_open_interval() {
        assert!(word_to_uniform(0) > 0.0);
        assert!(word_to_uniform(u32::MAX) < 1.0);
        assert_eq!(word_to_uniform(0), (1.0 / 16_777_217.0) as f32);
    }

    #[test]
    fn the_context_length_is_part_of_the_hash() {
        // A width-1 context [-1] and a width-4 all-padding context are different states.
        assert_ne!(context_state(7, &[-1]), context_state(7, &[-1, -1, -1, -1]));
        assert_ne!(prf_word(7, &[1, 2], 3), prf_word(8, &[1, 2], 3));
    }
}
