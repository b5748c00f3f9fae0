//! The sampling hook on candle tensors, in the style of candle-transformers'
//! `apply_repeat_penalty`: logits in, biased logits out, same shape, dtype and device.
//!
//! Cost: one device round trip per call (a batch is one round trip, not one per row). The row
//! goes to the host, is widened to f32, biased by the slice hook ([`crate::hook`]), and comes
//! back. This is the chosen design, not a shortcut: the green list is a keyed PRF (ChaCha8)
//! computed on the CPU, so even a dense δ-mask added on the device would have to be built on
//! the host and uploaded first, which moves as many bytes as this and adds a second kernel. It
//! is also exact: f32 logits get bit-for-bit the slice hook's result, f16/bf16 logits get that
//! f32 result rounded once to their dtype (widening is exact, so entries that are not green,
//! padding included, come back unchanged), and f64 logits get `x + δ` in f64.

use candle_core::{DType, Device, Tensor};

use crate::error::{Error, Result};
use crate::green::GreenList;
use crate::hook;

/// Adds δ to the green logits after `context` (the prompt and every token generated so far).
///
/// `logits` has shape `(V)`, where V may exceed the vocabulary (a padded lm_head: the padding is
/// left as it is), dtype f32, f16, bf16 or f64, on any device. The result has the same shape,
/// dtype and device. With too little context the values come back unchanged, exactly as the
/// detector leaves such a token unscored. Errors as [`crate::hook::apply_watermark`], plus
/// [`Error::BatchShape`] for another rank and [`Error::InvalidParameter`] for another dtype.
///
/// ```
/// use candle_core::{DType, Device, Tensor};
/// use watermark_core::candle_hook::apply_watermark;
/// use watermark_core::{GreenList, Scheme, SecretKey};
///
/// let green = GreenList::new(&SecretKey::from_bytes([1; 32]), Scheme::default(), 1000)?;
/// let logits = Tensor::zeros(1000, DType::F32, &Device::Cpu)?;
/// let biased = apply_watermark(&logits, &green, &[17, 42])?;
///
/// // The green tokens (about γ = 1/4 of them) now carry δ = 2; the rest are untouched.
/// let row = biased.to_vec1::<f32>()?;
/// assert!(row.iter().all(|&x| x == 0.0 || x == 2.0));
/// let greens = row.iter().filter(|&&x| x == 2.0).count();
/// assert!((150..350).contains(&greens), "{greens}");
/// # Ok::<(), watermark_core::Error>(())
/// ```
pub fn apply_watermark(logits: &Tensor, green: &GreenList, context: &[u32]) -> Result<Tensor> {
    if logits.rank() != 1 {
        return Err(Error::BatchShape(format!(
            "apply_watermark takes logits of shape (V), got {:?}; use apply_watermark_batch for (B, V)",
            logits.dims()
        )));
    }
    on_host(logits, |row| hook::apply_watermark(green, context, row))
}

/// [`apply_watermark`] on logits of shape `(B, V)` with one context per row, in one round trip.
/// Shape `(V)` is taken as a batch of one. Any other rank, or `B != contexts.len()`, is
/// [`Error::BatchShape`].
pub fn apply_watermark_batch<C: AsRef<[u32]>>(
    logits: &Tensor,
    green: &GreenList,
    contexts: &[C],
) -> Result<Tensor> {
    match *logits.dims() {
        [_] if contexts.len() == 1 => apply_watermark(logits, green, contexts[0].as_ref()),
        [_] => Err(Error::BatchShape(format!(
            "logits of shape (V) are 1 row but {} contexts were given",
            contexts.len()
        ))),
        [rows, _] if rows == contexts.len() => on_host(logits, |flat| {
            hook::apply_watermark_batch(green, contexts, flat)
        }),
        [rows, _] => Err(Error::BatchShape(format!(
            "logits have {rows} rows but {} contexts were given",
            contexts.len()
        ))),
        _ => Err(Error::BatchShape(format!(
            "logits must have shape (V) or (B, V), got {:?}",
            logits.dims()
        ))),
    }
}

/// Runs an f32 slice hook on the logits, flattened in row-major order, on the host; returns the
/// result in the logits' shape, dtype and device. The dtype is checked before anything moves.
fn on_host(logits: &Tensor, bias: impl FnOnce(&mut [f32]) -> Result<()>) -> Result<Tensor> {
    let dtype = logits.dtype();
    let host = match dtype {
        DType::F32 | DType::F16 | DType::BF16 => {
            // Widening f16/bf16 to f32 is exact, so the hook sees the very values the model made.
            let mut row = logits
                .to_device(&Device::Cpu)?
                .to_dtype(DType::F32)?
                .flatten_all()?
                .to_vec1::<f32>()?;
            bias(&mut row)?;
            Tensor::from_vec(row, logits.shape(), &Device::Cpu)?.to_dtype(dtype)?
        }
        DType::F64 => {
            // Narrowing f64 to f32 would round every entry, so take only the δ-mask from the
            // hook (a zero row biased) and add it in f64.
            let mut row = logits
                .to_device(&Device::Cpu)?
                .flatten_all()?
                .to_vec1::<f64>()?;
            let mut mask = vec![0.0f32; row.len()];
            bias(&mut mask)?;
            for (x, &d) in row.iter_mut().zip(&mask) {
                if d != 0.0 {
                    *x += f64::from(d);
                }
            }
            Tensor::from_vec(row, logits.shape(), &Device::Cpu)?
        }
        other if other.is_int() => {
            return Err(Error::InvalidParameter(format!(
                "logits dtype {} is an integer type; the watermark biases floating-point logits (f32, f16, bf16 or f64)",
                other.as_str()
            )))
        }
        other => {
            return Err(Error::InvalidParameter(format!(
                "logits dtype {} is not supported; convert the logits to f32, f16, bf16 or f64 first",
                other.as_str()
            )))
        }
    };
    Ok(host.to_device(logits.device())?)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::Seeding;
    use proptest::prelude::*;

    use crate::hook::tests::{green, schemes, VOCAB};

    fn half_dtypes() -> impl Strategy<Value = DType> {
        prop_oneof![Just(DType::F16), Just(DType::BF16)]
    }

    fn float_dtypes() -> impl Strategy<Value = DType> {
        prop_oneof![Just(DType::F32), Just(DType::F16), Just(DType::BF16)]
    }

    fn contexts() -> impl Strategy<Value = Vec<u32>> {
        prop::collection::vec(0..VOCAB, 0..6)
    }

    fn tensor(values: &[f32], dims: &[usize], dtype: DType) -> Tensor {
        Tensor::from_vec(values.to_vec(), dims, &Device::Cpu)
            .unwrap()
            .to_dtype(dtype)
            .unwrap()
    }

    /// The values widened to f32, flattened. Widening f16/bf16 is exact and injective (NaN
    /// payloads aside), so equal f32 bits here means equal bits in the tensor's own dtype.
    fn widened(t: &Tensor) -> Vec<f32> {
        t.to_dtype(DType::F32)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
    }

    fn bits(t: &Tensor) -> Vec<u32> {
        widened(t).iter().map(|x| x.to_bits()).collect()
    }

    /// The oracle, independent of the slice hook: each entry of `input` widened to f32, plus δ
    /// where `is_green` says so, rounded once to the input's dtype by candle's own `to_dtype`.
    fn oracle(input: &Tensor, g: &GreenList, context: &[u32]) -> Tensor {
        let delta = g.scheme().delta;
        let row: Vec<f32> = widened(input)
            .iter()
            .enumerate()
            .map(|(t, &x)| {
                let is_green =
                    t < VOCAB as usize && g.is_green(context, t as u32).unwrap() == Some(true);
                if is_green {
                    x + delta
                } else {
                    x
                }
            })
            .collect();
        tensor(&row, input.dims(), input.dtype())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn f32_equals_the_slice_hook_bit_for_bit(
            g in schemes(),
            context in contexts(),
            pad in 0usize..9,
            raw in prop::collection::vec(-30.0f32..30.0, VOCAB as usize + 8),
        ) {
            let raw = &raw[..VOCAB as usize + pad];
            let got = apply_watermark(&tensor(raw, &[raw.len()], DType::F32), &g, &context).unwrap();
            let mut want = raw.to_vec();
            hook::apply_watermark(&g, &context, &mut want).unwrap();
            prop_assert_eq!(got.dtype(), DType::F32);
            prop_assert_eq!(got.dims(), &[raw.len()][..]);
            prop_assert_eq!(bits(&got), want.iter().map(|x| x.to_bits()).collect::<Vec<_>>());
        }

        #[test]
        fn half_precision_is_the_f32_sum_rounded_once(
            g in schemes(),
            dtype in half_dtypes(),
            context in contexts(),
            pad in 0usize..9,
            raw in prop::collection::vec(-30.0f32..30.0, VOCAB as usize + 8),
        ) {
            let raw = &raw[..VOCAB as usize + pad];
            let input = tensor(raw, &[raw.len()], dtype);
            let got = apply_watermark(&input, &g, &context).unwrap();
            prop_assert_eq!(got.dtype(), dtype);
            prop_assert_eq!(got.dims(), input.dims());
            prop_assert_eq!(bits(&got), bits(&oracle(&input, &g, &context)));
        }

        #[test]
        fn batch_equals_rows(
            g in schemes(),
            dtype in float_dtypes(),
            ctxs in prop::collection::vec(contexts(), 1..5),
            pad in 0usize..9,
            raw in prop::collection::vec(-30.0f32..30.0, 4 * (VOCAB as usize + 8)),
        ) {
            let v = VOCAB as usize + pad;
            let b = ctxs.len();
            let input = tensor(&raw[..b * v], &[b, v], dtype);
            let got = apply_watermark_batch(&input, &g, &ctxs).unwrap();
            prop_assert_eq!(got.dtype(), dtype);
            prop_assert_eq!(got.dims(), &[b, v][..]);
            for (i, c) in ctxs.iter().enumerate() {
                let row = apply_watermark(&input.get(i).unwrap(), &g, c).unwrap();
                prop_assert_eq!(bits(&got.get(i).unwrap()), bits(&row));
            }
        }
    }

    #[test]
    fn padding_is_untouched() {
        let g = green(Seeding::Previous, 2);
        let v = VOCAB as usize + 7;
        let padding = [
            f32::NEG_INFINITY,
            -0.0,
            0.0,
            1.0e4,
            -3.5,
            f32::INFINITY,
            f32::NAN,
        ];
        let mut raw = vec![1.25f32; v];
        raw[VOCAB as usize..].copy_from_slice(&padding);
        for dtype in [DType::F32, DType::F16, DType::BF16, DType::F64] {
            let input = tensor(&raw, &[v], dtype);
            let got = apply_watermark(&input, &g, &[3, 4]).unwrap();
            let (before, after) = (bits(&input), bits(&got));
            assert_eq!(
                &after[VOCAB as usize..],
                &before[VOCAB as usize..],
                "{dtype:?}"
            );
            // The vocabulary part did change: some token is green.
            assert_ne!(
                &after[..VOCAB as usize],
                &before[..VOCAB as usize],
                "{dtype:?}"
            );
            let batch = apply_watermark_batch(
                &tensor(&[raw.clone(), raw.clone()].concat(), &[2, v], dtype),
                &g,
                &[[3u32, 4], [5, 6]],
            )
            .unwrap();
            for row in bits(&batch).chunks_exact(v) {
                assert_eq!(
                    &row[VOCAB as usize..],
                    &before[VOCAB as usize..],
                    "{dtype:?}"
                );
            }
        }
    }

    #[test]
    fn f64_adds_delta_in_f64() {
        let g = green(Seeding::SelfSeeded, 3);
        let context = [10u32, 20, 30];
        // Values f32 cannot hold exactly: a round trip through f32 would change them.
        let raw: Vec<f64> = (0..VOCAB as usize + 3)
            .map(|i| i as f64 / 3.0 + 1e-12)
            .collect();
        let input = Tensor::from_vec(raw.clone(), raw.len(), &Device::Cpu).unwrap();
        let got = apply_watermark(&input, &g, &context).unwrap();
        assert_eq!(got.dtype(), DType::F64);
        let got = got.to_vec1::<f64>().unwrap();
        for (t, (&x, &y)) in raw.iter().zip(&got).enumerate() {
            let is_green =
                t < VOCAB as usize && g.is_green(&context, t as u32).unwrap() == Some(true);
            let want = if is_green {
                x + f64::from(g.scheme().delta)
            } else {
                x
            };
            assert_eq!(y.to_bits(), want.to_bits(), "token {t}");
        }
    }

    #[test]
    fn non_contiguous_logits_are_read_in_logical_order() {
        let g = green(Seeding::Previous, 1);
        let (b, v) = (3, VOCAB as usize + 2);
        let raw: Vec<f32> = (0..b * v).map(|i| (i % 97) as f32 * 0.5 - 20.0).collect();
        // (V, B) transposed is a (B, V) view with strides (1, B).
        let transposed = tensor(&raw, &[v, b], DType::F32).t().unwrap();
        assert!(!transposed.is_contiguous());
        let ctxs = [[1u32], [2], [3]];
        let got = apply_watermark_batch(&transposed, &g, &ctxs).unwrap();
        let want = apply_watermark_batch(&transposed.contiguous().unwrap(), &g, &ctxs).unwrap();
        assert_eq!(bits(&got), bits(&want));
    }

    #[test]
    fn too_little_context_leaves_the_logits_alone() {
        let g = green(Seeding::Previous, 3);
        for dtype in [DType::F32, DType::F16, DType::BF16, DType::F64] {
            let input = tensor(&vec![1.5; VOCAB as usize], &[VOCAB as usize], dtype);
            let got = apply_watermark(&input, &g, &[1, 2]).unwrap();
            assert_eq!(bits(&got), bits(&input), "{dtype:?}");
        }
    }

    #[test]
    fn bad_shapes_and_dtypes_are_errors_not_panics() {
        let g = green(Seeding::Previous, 2);
        let v = VOCAB as usize;
        let ctx = [1u32, 2];
        let f32s = |dims: &[usize]| tensor(&vec![0.0; dims.iter().product()], dims, DType::F32);

        // Batch size and rank.
        let err = apply_watermark_batch(&f32s(&[2, v]), &g, &[ctx, ctx, ctx]).unwrap_err();
        let msg = err.to_string();
        assert!(
            matches!(err, Error::BatchShape(_)) && msg.contains('2') && msg.contains('3'),
            "{msg}"
        );
        assert!(matches!(
            apply_watermark_batch(&f32s(&[v]), &g, &[ctx, ctx]),
            Err(Error::BatchShape(_))
        ));
        assert!(matches!(
            apply_watermark_batch(&f32s(&[2, 1, v]), &g, &[ctx, ctx]),
            Err(Error::BatchShape(_))
        ));
        assert!(matches!(
            apply_watermark_batch(&f32s(&[]), &g, &[ctx]),
            Err(Error::BatchShape(_))
        ));
        assert!(matches!(
            apply_watermark(&f32s(&[1, v]), &g, &ctx),
            Err(Error::BatchShape(_))
        ));
        assert!(matches!(
            apply_watermark(&f32s(&[1, 1, v]), &g, &ctx),
            Err(Error::BatchShape(_))
        ));

        // Rows shorter than the vocabulary, and context outside it.
        assert!(matches!(
            apply_watermark(&f32s(&[v - 1]), &g, &ctx),
            Err(Error::RowTooShort { .. })
        ));
        assert!(matches!(
            apply_watermark_batch(&f32s(&[2, v - 1]), &g, &[ctx, ctx]),
            Err(Error::RowTooShort { .. })
        ));
        assert!(matches!(
            apply_watermark(&f32s(&[v]), &g, &[1, VOCAB]),
            Err(Error::TokenOutOfVocabulary { .. })
        ));

        // Integer and unsupported float dtypes.
        for dtype in [DType::U8, DType::U32, DType::I64] {
            let err = apply_watermark(&f32s(&[v]).to_dtype(dtype).unwrap(), &g, &ctx).unwrap_err();
            let msg = err.to_string();
            assert!(
                matches!(err, Error::InvalidParameter(_))
                    && msg.contains(dtype.as_str())
                    && msg.contains("integer"),
                "{msg}"
            );
        }
        let f8 = f32s(&[v]).to_dtype(DType::F8E4M3).unwrap();
        assert!(matches!(
            apply_watermark(&f8, &g, &ctx),
            Err(Error::InvalidParameter(_))
        ));
    }

    #[test]
    fn an_empty_batch_is_returned_as_is() {
        let g = green(Seeding::Previous, 2);
        let input = tensor(&[], &[0, VOCAB as usize], DType::BF16);
        let got = apply_watermark_batch(&input, &g, &[] as &[[u32; 2]]).unwrap();
        assert_eq!(got.dims(), &[0, VOCAB as usize]);
        assert_eq!(got.dtype(), DType::BF16);
    }
}
