//! The AVX512-VNNI version of `packed::dot_scalar`: the same integer sums (`vpdpbusd`) and the
//! same float operations in the same order, so the same bits.
//!
//! The only unsafe code is here: the `#[target_feature]` function, called only after runtime
//! detection, and its unaligned loads, whose bounds [`dot`] checks first.
//!
//! The AVX-512 intrinsics are stable since Rust 1.89, above the workspace's declared MSRV (1.85);
//! but candle-core 0.11.1, pinned by the workspace, already calls the same ones
//! (`quantized/repack_x86.rs`), so the workspace does not build before 1.89 anyway.
#![allow(clippy::incompatible_msrv)]

use std::arch::x86_64::*;
use std::sync::OnceLock;

use super::packed::{reduce, ActivationRow, Format, WeightRow};

/// Whether this CPU has the instructions the kernel uses (checked once).
pub(super) fn available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512bw")
            && is_x86_feature_detected!("avx512vl")
            && is_x86_feature_detected!("avx512vnni")
    })
}

/// `packed::dot_scalar` with AVX512-VNNI; `None` when the CPU lacks it or the rows' lengths do
/// not match (the caller then runs the scalar code).
pub(super) fn dot(w: &WeightRow, a: &ActivationRow) -> Option<f32> {
    let pairs = a.scales.len() / 2;
    let pair_bytes = match w.format {
        Format::Q4_1 => 32,
        Format::Q8_0 => 64,
    };
    let consistent = available()
        && w.quants.len() == pairs * pair_bytes
        && w.scales.len() == 2 * pairs
        && a.quants.len() == pairs * 64
        && a.offsets.len() == pairs * 16
        && a.sums.len() % 16 == 0
        && (w.format == Format::Q8_0 || w.mins.len() == a.sums.len());
    if !consistent {
        return None;
    }
    // SAFETY: the CPU features were detected above, and every load below stays inside the
    // slices whose lengths were just checked: pair `p < pairs` reads `pair_bytes` weight bytes
    // at `p * pair_bytes`, 64 activation bytes at `p * 64`, 16 offsets at `p * 16`, two scales
    // at `2 * p`; the offset sums read 16 values at multiples of 16 below `sums.len()`.
    let (lanes, mins) = unsafe { dot_avx512(w, a, pairs) };
    let mut total = reduce(&lanes);
    if w.format == Format::Q4_1 {
        total += reduce(&mins);
    }
    Some(total)
}

/// The lane accumulators of the scaled integer sums and of Q4_1's offset terms.
///
/// # Safety
/// The CPU must have AVX512F/BW/VL/VNNI and the slices the lengths that [`dot`] checks.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn dot_avx512(w: &WeightRow, a: &ActivationRow, pairs: usize) -> ([f32; 16], [f32; 16]) {
    let mut acc = _mm512_setzero_ps();
    let low_nibbles = _mm256_set1_epi8(0x0F);
    for p in 0..pairs {
        // SAFETY (all loads): in bounds, see `dot`.
        let acts = unsafe { _mm512_loadu_si512(a.quants.as_ptr().add(p * 64).cast()) };
        let sums = match w.format {
            Format::Q4_1 => {
                // SAFETY: in bounds, see `dot`.
                let raw = unsafe { _mm256_loadu_si256(w.quants.as_ptr().add(p * 32).cast()) };
                let lo = _mm256_and_si256(raw, low_nibbles);
                let hi = _mm256_and_si256(_mm256_srli_epi16(raw, 4), low_nibbles);
                let weights = _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
                _mm512_dpbusd_epi32(_mm512_setzero_si512(), weights, acts)
            }
            Format::Q8_0 => {
                // SAFETY: in bounds, see `dot`.
                let (weights, correction) = unsafe {
                    (
                        _mm512_loadu_si512(w.quants.as_ptr().add(p * 64).cast()),
                        _mm512_loadu_si512(a.offsets.as_ptr().add(p * 16).cast()),
                    )
                };
                let sums = _mm512_dpbusd_epi32(_mm512_setzero_si512(), weights, acts);
                _mm512_sub_epi32(sums, correction)
            }
        };
        // SAFETY: in bounds, see `dot`.
        let (w_scales, a_scales) = unsafe {
            let pair_scales = w.scales.as_ptr().add(2 * p).cast::<i32>().read_unaligned();
            let a_pair = a.scales.as_ptr().add(2 * p).cast::<f64>().read_unaligned();
            (
                _mm512_cvtph_ps(_mm256_set1_epi32(pair_scales)),
                _mm512_castpd_ps(_mm512_set1_pd(a_pair)),
            )
        };
        let scale = _mm512_mul_ps(w_scales, a_scales);
        acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sums), scale, acc);
    }
    let mut lanes = [0f32; 16];
    let mut mins = [0f32; 16];
    // SAFETY: 16 floats into arrays of 16.
    unsafe { _mm512_storeu_ps(lanes.as_mut_ptr(), acc) };
    if w.format == Format::Q4_1 {
        let mut macc = _mm512_setzero_ps();
        for c in (0..a.sums.len()).step_by(16) {
            // SAFETY: in bounds, see `dot` (both lengths are equal multiples of 16).
            let (m, s) = unsafe {
                (
                    _mm512_cvtph_ps(_mm256_loadu_si256(w.mins.as_ptr().add(c).cast())),
                    _mm512_loadu_ps(a.sums.as_ptr().add(c)),
                )
            };
            macc = _mm512_fmadd_ps(m, s, macc);
        }
        // SAFETY: 16 floats into an array of 16.
        unsafe { _mm512_storeu_ps(mins.as_mut_ptr(), macc) };
    }
    (lanes, mins)
}
