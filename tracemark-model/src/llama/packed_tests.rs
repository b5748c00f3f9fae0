use super::*;
use candle_core::{Device, Tensor};

/// Deterministic values in about [-2, 2], with a few large "outlier" columns like SmolLM2's.
fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|i| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let v = (s >> 40) as f32 / (1u64 << 24) as f32 * 4.0 - 2.0;
            if i % 97 == 5 {
                v * 40.0
            } else {
                v
            }
        })
        .collect()
}

fn quantized(rows: usize, cols: usize, dtype: GgmlDType, seed: u64) -> QTensor {
    let w = Tensor::from_vec(values(rows * cols, seed), (rows, cols), &Device::Cpu).unwrap();
    QTensor::quantize(&w, dtype).unwrap()
}

fn packed(q: &QTensor) -> PackedMatrix {
    PackedMatrix::from_qtensor(q)
        .unwrap()
        .expect("a format the kernel runs")
}

/// Row `r`'s weights as stored, back to f32 (`d * u + m`, or `d * (u - 128)`).
fn dequantize_row(m: &PackedMatrix, r: usize) -> Vec<f32> {
    let w = m.row(r);
    let mut out = vec![0f32; m.pairs * PAIR];
    for p in 0..m.pairs {
        let u = unpack_pair(&w, p);
        for half in 0..2 {
            let b = 2 * p + half;
            let d = f16_to_f32(w.scales[b]);
            for e in 0..BLOCK {
                let u = u[pair_position(half, e)] as f32;
                out[b * BLOCK + e] = match m.format {
                    Format::Q4_1 => d * u + f16_to_f32(w.mins[b]),
                    Format::Q8_0 => d * (u - 128.0),
                };
            }
        }
    }
    out.truncate(m.cols);
    out
}

const SHAPES: &[(usize, usize)] = &[(1, 32), (7, 96), (16, 576), (33, 1568), (5, 64)];
const FORMATS: &[GgmlDType] = &[GgmlDType::Q4_1, GgmlDType::Q8_0];

#[test]
fn f16_conversion_is_exact() {
    let cases = [
        (0x0000, 0.0),
        (0x3C00, 1.0),
        (0xC000, -2.0),
        (0x3555, 0.333_251_95),
        (0x7BFF, 65504.0),
        (0x0001, 5.960_464_5e-8),
        (0x03FF, 6.097_555e-5),
        (0x0400, 6.103_515_6e-5),
    ];
    for (bits, want) in cases {
        assert_eq!(f16_to_f32(bits), want, "{bits:#06x}");
    }
    assert!(f16_to_f32(0x7E00).is_nan());
    assert_eq!(f16_to_f32(0xFC00), f32::NEG_INFINITY);
    assert_eq!(f16_to_f32(0x8000).to_bits(), (-0f32).to_bits());
}

/// The repacked weights are the file's weights, bit for bit (through candle's dequantization).
#[test]
fn packing_keeps_the_weights() {
    for &dtype in FORMATS {
        for &(rows, cols) in SHAPES {
            let q = quantized(rows, cols, dtype, 3);
            let want = q
                .dequantize(&Device::Cpu)
                .unwrap()
                .to_vec2::<f32>()
                .unwrap();
            let m = packed(&q);
            for (r, want) in want.iter().enumerate() {
                assert_eq!(
                    &dequantize_row(&m, r),
                    want,
                    "{dtype:?} ({rows}, {cols}) row {r}"
                );
            }
        }
    }
}

/// The SIMD kernel gives exactly the scalar reference's bits.
#[test]
fn simd_equals_scalar() {
    if !kernel_available() {
        eprintln!("note: no AVX512-VNNI on this CPU, only the scalar kernel is tested");
        return;
    }
    for &dtype in FORMATS {
        for &(rows, cols) in SHAPES {
            let m = packed(&quantized(rows, cols, dtype, 5));
            let x = values(4 * cols, 11);
            let acts = QuantizedActivations::new(&x, cols, m.pairs);
            let tile: [ActivationRow; 4] = std::array::from_fn(|i| acts.row(i));
            for r in 0..rows {
                let w = m.row(r);
                let tiled = dot_rows(&w, tile.each_ref(), true);
                for (i, a) in tile.iter().enumerate() {
                    let scalar = dot_scalar(&w, a);
                    let simd = dot(&w, a, true);
                    assert_eq!(
                        simd.to_bits(),
                        scalar.to_bits(),
                        "{dtype:?} ({rows}, {cols})"
                    );
                    assert_eq!(
                        tiled[i].to_bits(),
                        scalar.to_bits(),
                        "{dtype:?} ({rows}, {cols}), tile row {i}"
                    );
                }
            }
        }
    }
}

/// Against the f32 product: the only loss is the activations' rounding, at most half a step
/// (`scale / 2`) per value, so the error is bounded by `sum |w| * scale / 2` (plus float
/// rounding, far smaller).
#[test]
fn matmul_error_is_bounded_by_the_activation_rounding() {
    for &dtype in FORMATS {
        for &(rows, cols) in SHAPES {
            let q = quantized(rows, cols, dtype, 7);
            let w = q
                .dequantize(&Device::Cpu)
                .unwrap()
                .to_vec2::<f32>()
                .unwrap();
            let m = packed(&q);
            let x = values(2 * cols, 13);
            let y = m.matmul(&x);
            assert_eq!(y.len(), 2 * rows);
            for (i, xr) in x.chunks_exact(cols).enumerate() {
                for (r, wr) in w.iter().enumerate() {
                    let mut exact = 0f64;
                    let mut bound = 0f64;
                    let mut scale_of_abs = 0f64;
                    for (block_w, block_x) in wr.chunks_exact(BLOCK).zip(xr.chunks_exact(BLOCK)) {
                        let amax = block_x.iter().fold(0f32, |a, v| a.max(v.abs())) as f64;
                        for (&wv, &xv) in block_w.iter().zip(block_x) {
                            exact += wv as f64 * xv as f64;
                            bound += (wv as f64).abs() * amax / 127.0 / 2.0;
                            scale_of_abs += (wv as f64 * xv as f64).abs();
                        }
                    }
                    let got = y[i * rows + r] as f64;
                    let limit = bound * 1.001 + 1e-5 * scale_of_abs + 1e-6;
                    assert!(
                        (got - exact).abs() <= limit,
                        "{dtype:?} ({rows}, {cols}) [{i}, {r}]: {got} vs {exact}, limit {limit}"
                    );
                }
            }
        }
    }
}

/// A row's result does not depend on the other rows of the batch, nor on stacking.
#[test]
fn rows_are_independent() {
    for &dtype in FORMATS {
        let (rows, cols) = (40, 96);
        let a = packed(&quantized(rows, cols, dtype, 17));
        let b = packed(&quantized(9, cols, dtype, 19));
        // 9 rows: two tiles of the multi-row kernel and one row alone.
        let x = values(9 * cols, 23);
        let batch = a.matmul(&x);
        for (i, xr) in x.chunks_exact(cols).enumerate() {
            assert_eq!(a.matmul(xr), batch[i * rows..(i + 1) * rows]);
        }
        let both = PackedMatrix::stack(vec![a.clone(), b.clone()]).unwrap();
        assert_eq!(both.rows, rows + 9);
        let y = both.matmul(&x[..cols]);
        assert_eq!(y[..rows], a.matmul(&x[..cols])[..]);
        assert_eq!(y[rows..], b.matmul(&x[..cols])[..]);
    }
    let q4 = packed(&quantized(4, 64, GgmlDType::Q4_1, 1));
    let q8 = packed(&quantized(4, 64, GgmlDType::Q8_0, 1));
    assert!(PackedMatrix::stack(vec![q4, q8]).is_err());
}

/// A NaN or infinite activation gives NaN outputs (the model then refuses its logits).
#[test]
fn broken_activations_propagate() {
    let m = packed(&quantized(3, 64, GgmlDType::Q4_1, 29));
    for bad in [f32::NAN, f32::INFINITY] {
        let mut x = values(64, 31);
        x[40] = bad;
        assert!(m.matmul(&x).iter().all(|v| v.is_nan()), "{bad}");
    }
}

#[test]
fn other_formats_are_left_to_candle() {
    let q = quantized(2, 256, GgmlDType::Q4K, 1);
    assert!(PackedMatrix::from_qtensor(&q).unwrap().is_none());
}

/// The two-addition rounding equals `round_ties_even` on the activations' range (every
/// eighth step, the ties included) and beyond it.
#[test]
fn small_rounding_is_round_ties_even() {
    for i in -1200..=1200 {
        let x = i as f32 / 8.0 + 0.125 * (i % 3) as f32 / 7.0;
        assert_eq!(round_ties_even_small(x), x.round_ties_even(), "{x}");
    }
    for x in [
        0.5f32,
        1.5,
        2.5,
        -0.5,
        -1.5,
        126.5,
        -126.5,
        4_194_304.0,
        1e9,
        -1e9,
    ] {
        assert_eq!(round_ties_even_small(x), x.round_ties_even(), "{x}");
    }
}
