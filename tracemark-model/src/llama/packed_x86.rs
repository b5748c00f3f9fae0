//! The AVX512-VNNI version of `packed::dot_scalar`: the same integer sums (`vpdpbusd`) and the
//! same float operations in the same order, so the same bits.
//!
//! The only unsafe code is here: the `#[target_feature]` function, called only after runtime
//! detection, and its unaligned loads, whose bounds [`dot_rows`] checks first.
//!
//! The AVX-512 intrinsics are stable since Rust 1.89, above the workspace's declared MSRV (1.85);
//! but candle-core 0.11.1, pinned by the workspace, already calls the same ones
//! (`quantized/repack_x86.rs`), so the workspace does not build before 1.89 anyway.
#![allow(clippy::incompatible_msrv)]

use std::arch::x86_64::*;
use std::sync::OnceLock;

use super::packed::{ActivationRow, Format, WeightRow};

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

/// `packed::dot_scalar` of one weight row with each of `N` activation rows, with AVX512-VNNI;
/// `None` when the CPU lacks it or the rows' lengths do not match (the caller then runs the
/// scalar code). Each weight pair is loaded and unpacked once for all `N` rows, and the rows'
/// accumulators are independent chains; each row still gets the scalar reference's bits.
pub(super) fn dot_rows<const N: usize>(w: &WeightRow, a: [&ActivationRow; N]) -> Option<[f32; N]> {
    let pairs = a.first()?.scales.len() / 2;
    let pair_bytes = match w.format {
        Format::Q4_1 => 32,
        Format::Q8_0 => 64,
    };
    let consistent = available()
        && w.quants.len() == pairs * pair_bytes
        && w.scales.len() == 2 * pairs
        && a.iter().all(|a| {
            a.scales.len() == 2 * pairs
                && a.quants.len() == pairs * 64
                && a.offsets.len() == pairs * 16
                && a.sums.len() % 16 == 0
                && (w.format == Format::Q8_0 || w.mins.len() == a.sums.len())
        });
    if !consistent {
        return None;
    }
    // SAFETY: the CPU features were detected above, and every load below stays inside the
    // slices whose lengths were just checked: pair `p < pairs` reads `pair_bytes` weight bytes
    // at `p * pair_bytes`, and of each activation row 64 bytes at `p * 64`, 16 offsets at
    // `p * 16` and two scales at `2 * p`; the offset sums read 16 values at multiples of 16
    // below `sums.len()`, which is `w.mins.len()` for Q4_1.
    Some(unsafe { dot_avx512(w, &a, pairs) })
}

/// Per activation row, the reduced lane accumulators of the scaled integer sums, plus those of
/// Q4_1's offset terms.
///
/// # Safety
/// The CPU must have AVX512F/BW/VL/VNNI and the slices the lengths that [`dot_rows`] checks.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn dot_avx512<const N: usize>(
    w: &WeightRow,
    a: &[&ActivationRow; N],
    pairs: usize,
) -> [f32; N] {
    let mut acc = [_mm512_setzero_ps(); N];
    let low_nibbles = _mm256_set1_epi8(0x0F);
    for p in 0..pairs {
        let weights = match w.format {
            Format::Q4_1 => {
                // SAFETY: in bounds, see `dot_rows`.
                let raw = unsafe { _mm256_loadu_si256(w.quants.as_ptr().add(p * 32).cast()) };
                let lo = _mm256_and_si256(raw, low_nibbles);
                let hi = _mm256_and_si256(_mm256_srli_epi16(raw, 4), low_nibbles);
                _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1)
            }
            // SAFETY: in bounds, see `dot_rows`.
            Format::Q8_0 => unsafe { _mm512_loadu_si512(w.quants.as_ptr().add(p * 64).cast()) },
        };
        // SAFETY: in bounds, see `dot_rows`.
        let w_scales = unsafe {
            let pair_scales = w.scales.as_ptr().add(2 * p).cast::<i32>().read_unaligned();
            _mm512_cvtph_ps(_mm256_set1_epi32(pair_scales))
        };
        for (acc, a) in acc.iter_mut().zip(a) {
            // SAFETY (all loads): in bounds, see `dot_rows`.
            let acts = unsafe { _mm512_loadu_si512(a.quants.as_ptr().add(p * 64).cast()) };
            let mut sums = _mm512_dpbusd_epi32(_mm512_setzero_si512(), weights, acts);
            if w.format == Format::Q8_0 {
                // SAFETY: in bounds, see `dot_rows`.
                let correction =
                    unsafe { _mm512_loadu_si512(a.offsets.as_ptr().add(p * 16).cast()) };
                sums = _mm512_sub_epi32(sums, correction);
            }
            // SAFETY: in bounds, see `dot_rows`.
            let a_pair = unsafe { a.scales.as_ptr().add(2 * p).cast::<f64>().read_unaligned() };
            let scale = _mm512_mul_ps(w_scales, _mm512_castpd_ps(_mm512_set1_pd(a_pair)));
            *acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sums), scale, *acc);
        }
    }
    let mut totals = acc.map(|acc| reduce_avx512(acc));
    if w.format == Format::Q4_1 {
        let mut macc = [_mm512_setzero_ps(); N];
        for c in (0..w.mins.len()).step_by(16) {
            // SAFETY: in bounds, see `dot_rows` (every row's `sums` is as long as `w.mins`, a
            // multiple of 16).
            let m = unsafe { _mm512_cvtph_ps(_mm256_loadu_si256(w.mins.as_ptr().add(c).cast())) };
            for (macc, a) in macc.iter_mut().zip(a) {
                // SAFETY: as above.
                let s = unsafe { _mm512_loadu_ps(a.sums.as_ptr().add(c)) };
                *macc = _mm512_fmadd_ps(m, s, *macc);
            }
        }
        for (total, macc) in totals.iter_mut().zip(macc) {
            *total += reduce_avx512(macc);
        }
    }
    totals
}

/// `packed::reduce` on a vector: the same fixed tree (lane `i` plus lane `i + width`, for width
/// 8, 4, 2 and 1), so the same bits.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
fn reduce_avx512(v: __m512) -> f32 {
    let high = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1));
    let x = _mm256_add_ps(_mm512_castps512_ps256(v), high);
    let x = _mm_add_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps(x, 1));
    let x = _mm_add_ps(x, _mm_movehl_ps(x, x));
    _mm_cvtss_f32(_mm_add_ss(x, _mm_shuffle_ps(x, x, 1)))
}
