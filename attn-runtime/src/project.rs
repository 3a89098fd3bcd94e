//! The linear projections of the layer form: embeddings to the heads of q, k and v, and the
//! merged heads through the output projection.

use crate::simd::{Isa, Simd, WithSimd, dispatch};
use crate::weights::Linear;

/// Calls `emit(r, o, W[o] · x[r] + b[o])` for every input row `r` and output feature `o`, on
/// the active instruction set.
///
/// Four output features share each load of the input row, and each keeps its own vector of
/// partial sums, reduced once at the end of the row.
pub(crate) fn rows<const IN: usize, const OUT: usize>(
    x: &[[f32; IN]],
    linear: &Linear<IN, OUT>,
    emit: impl FnMut(usize, usize, f32),
) {
    dispatch(Isa::active(), Rows { x, linear, emit });
}

struct Rows<'a, const IN: usize, const OUT: usize, E> {
    x: &'a [[f32; IN]],
    linear: &'a Linear<IN, OUT>,
    emit: E,
}

impl<const IN: usize, const OUT: usize, E: FnMut(usize, usize, f32)> WithSimd
    for Rows<'_, IN, OUT, E>
{
    type Output = ();
    #[inline(always)]
    fn with_simd<S: Simd>(mut self, simd: S) {
        const FEATURES: usize = 4;
        let weight = self.linear.weight();
        let bias = self.linear.bias();
        let vectors = IN / S::LANES;
        for (r, row) in self.x.iter().enumerate() {
            'features: for first in (0..OUT).step_by(FEATURES) {
                let features = FEATURES.min(OUT - first);
                let mut acc = [simd.splat(0.0); FEATURES];
                for c in 0..vectors {
                    let input = simd.load(&row[c * S::LANES..]);
                    for (f, acc) in acc.iter_mut().enumerate().take(features) {
                        let w = simd.load(&weight[first + f][c * S::LANES..]);
                        *acc = simd.mul_add(w, input, *acc);
                    }
                }
                for (f, acc) in acc.iter().enumerate().take(features) {
                    let o = first + f;
                    let mut value = simd.reduce_sum(*acc);
                    for i in vectors * S::LANES..IN {
                        value += weight[o][i] * row[i];
                    }
                    if let Some(bias) = bias {
                        value += bias[o];
                    }
                    (self.emit)(r, o, value);
                }
                if features < FEATURES {
                    break 'features;
                }
            }
        }
    }
}

/// `out[b][h][n][d] = (W · x[b][n] + b)[h·D + d]`: one projection of the embeddings, split
/// into `H` heads of depth `D` (`W = H·D` features).
///
/// ```
/// use attn_runtime::Linear;
/// // Two heads of depth 1: feature 0 is head 0, feature 1 head 1.
/// let linear = Linear::<2, 2>::from_slices("p", &[1.0, 0.0, 0.0, 1.0], None)?;
/// let mut heads = [[[[0.0f32; 1]; 1]; 2]; 1];
/// attn_runtime::__private::project_heads(&[[[3.0, 4.0]]], &linear, &mut heads);
/// assert_eq!(heads, [[[[3.0]], [[4.0]]]]);
/// # Ok::<(), attn_runtime::WeightError>(())
/// ```
pub fn project_heads<
    const B: usize,
    const N: usize,
    const DM: usize,
    const W: usize,
    const H: usize,
    const D: usize,
>(
    x: &[[[f32; DM]; N]; B],
    linear: &Linear<DM, W>,
    out: &mut [[[[f32; D]; N]; H]; B],
) {
    const {
        assert!(
            W == H * D,
            "a projection to H heads of depth D has H·D features"
        )
    };
    for (x, out) in x.iter().zip(out.iter_mut()) {
        rows(x, linear, |n, o, value| out[o / D][n][o % D] = value);
    }
}

/// The heads side by side, `out[b][n][h·D + d] = heads[b][h][n][d]`: the layer's output when
/// it has no output projection.
///
/// ```
/// let mut out = [[[0.0f32; 2]; 1]; 1];
/// attn_runtime::__private::merge_heads(&[[[[3.0]], [[4.0]]]], &mut out);
/// assert_eq!(out, [[[3.0, 4.0]]]);
/// ```
pub fn merge_heads<
    const B: usize,
    const N: usize,
    const H: usize,
    const D: usize,
    const W: usize,
>(
    heads: &[[[[f32; D]; N]; H]; B],
    out: &mut [[[f32; W]; N]; B],
) {
    const { assert!(W == H * D, "H heads of depth D merge into H·D features") };
    for (heads, out) in heads.iter().zip(out.iter_mut()) {
        for (h, head) in heads.iter().enumerate() {
            for (row, out) in head.iter().zip(out.iter_mut()) {
                out[h * D..][..D].copy_from_slice(row);
            }
        }
    }
}

/// The merged heads through the output projection: `out[b][n] = Wo · merged[b][n] + bo`.
///
/// ```
/// use attn_runtime::Linear;
/// // Sums the two heads.
/// let output = Linear::<2, 1>::from_slices("o", &[1.0, 1.0], None)?;
/// let mut out = [[[0.0f32; 1]; 1]; 1];
/// attn_runtime::__private::merge_heads_project(&[[[[3.0]], [[4.0]]]], &output, &mut out);
/// assert_eq!(out, [[[7.0]]]);
/// # Ok::<(), attn_runtime::WeightError>(())
/// ```
pub fn merge_heads_project<
    const B: usize,
    const N: usize,
    const H: usize,
    const D: usize,
    const W: usize,
    const DO: usize,
>(
    heads: &[[[[f32; D]; N]; H]; B],
    linear: &Linear<W, DO>,
    out: &mut [[[f32; DO]; N]; B],
) {
    let mut merged = crate::Tensor::<[[[f32; W]; N]; 1]>::zeros();
    for (b, out) in out.iter_mut().enumerate() {
        merge_heads(std::array::from_ref(&heads[b]), &mut merged);
        rows(&merged[0], linear, |n, o, value| out[n][o] = value);
    }
}
