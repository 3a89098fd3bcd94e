//! The linear projections of the layer form: embeddings to the heads of q, k and v, and the
//! merged heads through the output projection.

use crate::simd::{Isa, Simd, WithSimd, dispatch};
use crate::weights::Linear;

/// `y[r] = W · x[r] + b` for every input row `r`, on the active instruction set and, with the
/// `threads` feature, split by rows over threads when the work pays (each row is computed
/// the same way on any thread).
///
/// Blocks of 4 rows x 4 output features share their loads (see [`block`]).
pub(crate) fn rows<const IN: usize, const OUT: usize>(
    x: &[[f32; IN]],
    linear: &Linear<IN, OUT>,
    y: &mut [[f32; OUT]],
) {
    let isa = Isa::active();
    #[cfg(feature = "threads")]
    {
        let flops = (x.len() * IN * OUT * 2) as u64;
        let threads = crate::threads::for_work(flops);
        if threads > 1 {
            let chunk = x.len().div_ceil(threads);
            let shares = x
                .chunks(chunk)
                .zip(y.chunks_mut(chunk))
                .map(|(x, y)| Rows { x, linear, y })
                .collect();
            crate::threads::run_shares(shares, |rows| dispatch(isa, rows));
            return;
        }
    }
    dispatch(isa, Rows { x, linear, y });
}

struct Rows<'a, const IN: usize, const OUT: usize> {
    x: &'a [[f32; IN]],
    linear: &'a Linear<IN, OUT>,
    y: &'a mut [[f32; OUT]],
}

impl<const IN: usize, const OUT: usize> WithSimd for Rows<'_, IN, OUT> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        let mut rows = self.x.chunks_exact(ROWS);
        let mut outputs = self.y.chunks_exact_mut(ROWS);
        for (x, y) in (&mut rows).zip(&mut outputs) {
            block::<S, ROWS, IN, OUT>(simd, x, self.linear, y);
        }
        for (x, y) in rows
            .remainder()
            .chunks(1)
            .zip(outputs.into_remainder().chunks_mut(1))
        {
            block::<S, 1, IN, OUT>(simd, x, self.linear, y);
        }
    }
}

/// Input rows per block: each load of a weight row serves this many rows.
const ROWS: usize = 4;
/// Output features per block: each load of an input row serves this many features.
const FEATURES: usize = 4;

/// `y[r] = W · x[r] + b` for `MR` rows: blocks of `MR` rows x 4 features, each with its own
/// vector of partial sums over the input, reduced once at the end. A row's arithmetic is the
/// same in a block of 4 as alone.
#[inline(always)]
fn block<S: Simd, const MR: usize, const IN: usize, const OUT: usize>(
    simd: S,
    x: &[[f32; IN]],
    linear: &Linear<IN, OUT>,
    y: &mut [[f32; OUT]],
) {
    let (weight, bias) = (linear.weight(), linear.bias());
    let vectors = IN / S::LANES;
    for first in (0..OUT).step_by(FEATURES) {
        let features = FEATURES.min(OUT - first);
        let mut acc = [[simd.splat(0.0); FEATURES]; MR];
        for c in 0..vectors {
            let mut w = [simd.splat(0.0); FEATURES];
            for (f, w) in w.iter_mut().enumerate().take(features) {
                *w = simd.load(&weight[first + f][c * S::LANES..]);
            }
            for (r, acc) in acc.iter_mut().enumerate() {
                let input = simd.load(&x[r][c * S::LANES..]);
                for (f, acc) in acc.iter_mut().enumerate().take(features) {
                    *acc = simd.mul_add(w[f], input, *acc);
                }
            }
        }
        for (r, acc) in acc.iter().enumerate() {
            for (f, acc) in acc.iter().enumerate().take(features) {
                let o = first + f;
                let mut value = simd.reduce_sum(*acc);
                for i in vectors * S::LANES..IN {
                    value += weight[o][i] * x[r][i];
                }
                if let Some(bias) = bias {
                    value += bias[o];
                }
                y[r][o] = value;
            }
        }
    }
}

/// `out[b][h][n][d] = (W · x[b][n] + b)[h·D + d]`: one projection of the embeddings, split
/// into `H` heads of depth `D` (`W = H·D` features). With `counts`, only the first
/// `counts[b]` tokens of batch entry `b` are projected (the valid queries, or keys, of a layer
/// with valid lengths): the rows after them are left as they are, which no kernel reads.
///
/// ```
/// use attn_runtime::Linear;
/// // Two heads of depth 1: feature 0 is head 0, feature 1 head 1.
/// let linear = Linear::<2, 2>::from_slices("p", &[1.0, 0.0, 0.0, 1.0], None)?;
/// let mut heads = [[[[0.0f32; 1]; 2]; 2]; 1];
/// attn_runtime::__private::project_heads(&[[[3.0, 4.0], [5.0, 6.0]]], &linear, &mut heads, None);
/// assert_eq!(heads, [[[[3.0], [5.0]], [[4.0], [6.0]]]]);
/// // Only the first token of the entry.
/// let mut heads = [[[[0.0f32; 1]; 2]; 2]; 1];
/// attn_runtime::__private::project_heads(&[[[3.0, 4.0], [5.0, 6.0]]], &linear, &mut heads, Some(&[1]));
/// assert_eq!(heads, [[[[3.0], [0.0]], [[4.0], [0.0]]]]);
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
    counts: Option<&[usize; B]>,
) {
    const {
        assert!(
            W == H * D,
            "a projection to H heads of depth D has H·D features"
        )
    };
    let mut features = crate::Tensor::<[[f32; W]; N]>::zeros();
    for (b, (x, out)) in x.iter().zip(out.iter_mut()).enumerate() {
        let tokens = counted(counts, b, N);
        rows(&x[..tokens], linear, &mut features[..tokens]);
        // Feature h·D + d of token n is lane d of head h's row n.
        for (n, token) in features[..tokens].iter().enumerate() {
            for (h, head) in out.iter_mut().enumerate() {
                head[n].copy_from_slice(&token[h * D..][..D]);
            }
        }
    }
}

/// The tokens of batch entry `b` that count: `counts[b]`, at most `n`, or all `n`. A count
/// past `n` is the kernel's error to report (before it writes anything); here it only must
/// not index past the tokens.
fn counted<const B: usize>(counts: Option<&[usize; B]>, b: usize, n: usize) -> usize {
    counts.map_or(n, |counts| counts[b].min(n))
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
/// With `counts`, the rows of batch entry `b` from `counts[b]` on are 0 and not computed
/// (a layer's query rows past their valid count, as its attention's rows are).
///
/// ```
/// use attn_runtime::Linear;
/// // Sums the two heads, plus 1.
/// let output = Linear::<2, 1>::from_slices("o", &[1.0, 1.0], Some(&[1.0]))?;
/// let mut out = [[[9.0f32; 1]; 2]; 1];
/// let heads = [[[[3.0], [5.0]], [[4.0], [6.0]]]];
/// attn_runtime::__private::merge_heads_project(&heads, &output, &mut out, None);
/// assert_eq!(out, [[[8.0], [12.0]]]);
/// attn_runtime::__private::merge_heads_project(&heads, &output, &mut out, Some(&[1]));
/// assert_eq!(out, [[[8.0], [0.0]]]);
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
    counts: Option<&[usize; B]>,
) {
    let mut merged = crate::Tensor::<[[[f32; W]; N]; 1]>::zeros();
    for (b, out) in out.iter_mut().enumerate() {
        let tokens = counted(counts, b, N);
        merge_heads(std::array::from_ref(&heads[b]), &mut merged);
        rows(&merged[0][..tokens], linear, &mut out[..tokens]);
        out[tokens..].fill([0.0; DO]);
    }
}
