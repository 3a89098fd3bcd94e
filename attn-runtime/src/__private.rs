//! What generated kernels call. Not a public API: names and signatures change with the
//! macro, which is always the same version as this crate.

pub use crate::padded::{PaddingUnread, padding_zeroed};
pub use crate::project::{merge_heads, merge_heads_project, pad, project_heads};
pub use crate::simd::Simd;
pub use crate::simd::elements::{Element, rows_in_f32, widen_into};
pub use crate::simd::pack::{Aligned, pack_keys, pack_values, values_on_lines};
pub use crate::tiled::{
    Ahead, Alignment, Kernel, MAX_LANES, Operands, Output, PartialRow, Problems, Rows, TILE_ROWS,
    Tiled, accumulate_values, accumulate_values_by_row, add_bias, backward, block_length,
    default_scale, fetched_by_row, inverse_sums, is_direct, keep_only, log_sum_exp, mask_causal,
    merge_partials, next_block, normalize, online_softmax, row_dots, rows_on_lines, run, scores,
    scores_direct, softcap_scores, visible_keys, write_weights,
};
pub use typenum::{Const, Mod, ToUInt, U};

/// A tensor of unspecified values (what a dropped tensor of its size left, or zeros): a
/// layer's buffers, each of whose elements that is read is first written.
///
/// ```
/// let t = attn_runtime::__private::scratch_tensor::<[f32; 4]>();
/// assert_eq!(t.as_flat().len(), 4);
/// ```
pub fn scratch_tensor<A: crate::Array>() -> crate::Tensor<A> {
    crate::Tensor::scratch()
}

/// Held by a remainder of 0 only: generated kernels whose head counts are const generics
/// require `Hq % Hkv` (computed by typenum) to implement it, so that a call with q's heads
/// not a multiple of k's is a type error that says so.
///
/// ```compile_fail
/// use attn_runtime::attention;
/// attention! { fn grouped<q: [1, Hq, 2, 4], k: [1, Hkv, 2, 4], v: [1, Hkv, 2, 4]>; }
/// // error[E0277]: q's 6 heads are not a multiple of k's 4 heads
/// grouped(&[[[[0.0; 4]; 2]; 6]], &[[[[0.0; 4]; 2]; 4]], &[[[[0.0; 4]; 2]; 4]]);
/// ```
///
/// ```
/// use attn_runtime::attention;
/// attention! { fn grouped<q: [1, Hq, 2, 4], k: [1, Hkv, 2, 4], v: [1, Hkv, 2, 4]>; }
/// let out = grouped(&[[[[0.0; 4]; 2]; 6]], &[[[[1.0; 4]; 2]; 3]], &[[[[1.0; 4]; 2]; 3]]);
/// assert_eq!(out[0][5][1], [1.0; 4]);
/// ```
#[diagnostic::on_unimplemented(
    message = "q's {HQ} heads are not a multiple of k's {HKV} heads",
    label = "grouped-query attention: each key/value head serves Hq / Hkv query heads",
    note = "give q a multiple of k's heads (or as many: multi-head attention)"
)]
pub trait QueryHeadsPerKeyHead<const HQ: usize, const HKV: usize> {}

impl<const HQ: usize, const HKV: usize> QueryHeadsPerKeyHead<HQ, HKV> for typenum::U0 {}

/// The bound a kernel whose head counts are const generics puts on its functions:
/// `(): GroupedHeads<HQ, HKV>`, held when `HQ % HKV` (computed by typenum) is 0, so that a call
/// with q's heads not a multiple of k's fails with [`QueryHeadsPerKeyHead`]'s message. The
/// typenum bounds live on this impl rather than in the kernel's `where` clause: there, with
/// one count known (`U<2>`), rustc normalizes the known side and cannot then prove the bound
/// the kernel itself states.
///
/// ```
/// fn grouped<const HQ: usize>() where (): attn_runtime::__private::GroupedHeads<HQ, 2> {}
/// grouped::<4>();
/// ```
///
/// ```compile_fail
/// fn grouped<const HQ: usize>() where (): attn_runtime::__private::GroupedHeads<HQ, 2> {}
/// grouped::<3>(); // error[E0277]: q's 3 heads are not a multiple of k's 2 heads
/// ```
pub trait GroupedHeads<const HQ: usize, const HKV: usize> {}

impl<const HQ: usize, const HKV: usize> GroupedHeads<HQ, HKV> for ()
where
    Const<HQ>: ToUInt,
    Const<HKV>: ToUInt,
    U<HQ>: core::ops::Rem<U<HKV>>,
    Mod<U<HQ>, U<HKV>>: QueryHeadsPerKeyHead<HQ, HKV>,
{
}

/// The `dtype = f64` kernels.
pub mod scalar {
    pub use crate::scalar::{Broadcast, Causal, Problem, backward, run, seen_keys};
}

/// `dst = src` as f32, for f16 and bf16 kernels, which compute in f32.
///
/// ```
/// use attn_runtime::half::f16;
/// let mut wide = [0.0f32; 2];
/// attn_runtime::__private::widen(&[f16::from_f32(1.5), f16::from_f32(-2.0)], &mut wide);
/// assert_eq!(wide, [1.5, -2.0]);
/// ```
#[inline]
pub fn widen<T: Half>(src: &[T], dst: &mut [f32]) {
    T::widen(src, dst);
}

/// `dst = src` rounded to the nearest f16 or bf16.
///
/// ```
/// use attn_runtime::half::bf16;
/// let mut narrow = [bf16::ZERO; 1];
/// attn_runtime::__private::narrow(&[1.0f32], &mut narrow);
/// assert_eq!(narrow[0], bf16::ONE);
/// ```
#[inline]
pub fn narrow<T: Half>(src: &[f32], dst: &mut [T]) {
    T::narrow(src, dst);
}

/// The output of a 16-bit kernel with valid query counts, rounded from its f32 copy `src`
/// into `dst`, both of batch entries of problems (heads) of `rows` rows of `width` values:
/// entry `b`'s rows below `valid[b]` rounded, its rows from `valid[b]` up to `written[b]`
/// (a `ZeroPadded` output's record; all of them without one) set to 0, the rest left as
/// they are. Only the rows rounded are read from `src`: its padding may hold anything.
///
/// ```
/// use attn_runtime::half::bf16;
/// let src = [1.0f32, 2.0, f32::NAN, 4.0]; // one entry, one problem of four rows of one value
/// let mut dst = [bf16::ONE; 4];
/// attn_runtime::__private::narrow_rows(&src, &mut dst, 4, 1, &[2], Some(&[3]));
/// assert_eq!(dst.map(f32::from), [1.0, 2.0, 0.0, 1.0]);
/// attn_runtime::__private::narrow_rows(&src, &mut dst, 4, 1, &[1], None);
/// assert_eq!(dst.map(f32::from), [1.0, 0.0, 0.0, 0.0]);
/// ```
pub fn narrow_rows<T: Half + bytemuck::Zeroable>(
    src: &[f32],
    dst: &mut [T],
    rows: usize,
    width: usize,
    valid: &[usize],
    written: Option<&[usize]>,
) {
    // Never 0, which `chunks` refuses: a kernel's sizes are positive, so these are too.
    let problem = (rows * width).max(1);
    let entry = (src.len() / valid.len().max(1)).max(1);
    for (b, (src, dst)) in src.chunks(entry).zip(dst.chunks_mut(entry)).enumerate() {
        let valid = valid[b].min(rows);
        let padding = crate::padded::rows_to_clear(valid, rows, written, b);
        for (src, dst) in src.chunks(problem).zip(dst.chunks_mut(problem)) {
            T::narrow(&src[..valid * width], &mut dst[..valid * width]);
            dst[padding.start * width..padding.end * width].fill(T::zeroed());
        }
    }
}

/// The 16-bit element types, stored as such and computed in f32.
pub trait Half: Copy {
    /// Widens a slice to f32.
    fn widen(src: &[Self], dst: &mut [f32]);
    /// Rounds a slice of f32 to nearest.
    fn narrow(src: &[f32], dst: &mut [Self]);
}

macro_rules! half_type {
    ($t:ty) => {
        impl Half for $t {
            fn widen(src: &[Self], dst: &mut [f32]) {
                use half::slice::HalfFloatSliceExt;
                src.convert_to_f32_slice(dst);
            }
            fn narrow(src: &[f32], dst: &mut [Self]) {
                use half::slice::HalfFloatSliceExt;
                dst.convert_from_f32_slice(src);
            }
        }
    };
}
half_type!(half::f16);
half_type!(half::bf16);
pub use crate::valid::check_valid_lengths;

/// The weights of one row of an unrolled kernel before normalization: `exp(score - max)`
/// for each score, `max` being at least every score (the row's max). Written over an array so
/// that the compiler computes the exponentials of a row in one vector.
///
/// ```
/// let weights = attn_runtime::__private::exp_shifted([2.0, 1.0], 2.0);
/// assert_eq!(weights[0], 1.0);
/// ```
#[inline(always)]
pub fn exp_shifted<const N: usize>(scores: [f32; N], max: f32) -> [f32; N] {
    scores.map(|score| crate::simd::exp_of_nonpositive(crate::simd::Lane, score - max))
}

/// Runs the problems of an unrolled kernel whose every operand fits in registers, with
/// AVX-512VL's 8-lane registers, when the active instruction set is AVX-512 and the CPU has
/// AVX-512VL; returns false, with nothing written, otherwise (the kernel's straight-line
/// code then runs). `q` holds the problems one after another, `Nq x D` each, `out` likewise
/// (`Nq x Dv`); `k` (`Nk x D`) and `v` (`Nk x Dv`) one per `GROUP` of consecutive problems,
/// as grouped-query attention shares them. A shape fits when its `Nq x Nk` scores and
/// `Nq x (Dv + 1)` outputs and sums take at most 8 lanes, and q, k and v at most 16.
///
/// ```
/// use attn_runtime::__private::in_registers;
/// let q = [1.0, 0.0, 0.0, 1.0]; // 2 queries of depth 2
/// let k = [1.0, 0.0, 0.0, 1.0]; // 2 keys
/// let v = [1.0, 2.0, 3.0, 4.0];
/// let mut out = [f32::NAN; 4];
/// if in_registers::<2, 2, 2, 2, 1, 1>(&q, &k, &v, &mut out, 1.0) {
///     let w = 1.0 / (1.0 + (-1.0f32).exp()); // each query's weight on its own key
///     assert!((out[0] - (w * 1.0 + (1.0 - w) * 3.0)).abs() < 1e-6);
/// } else {
///     assert!(out[0].is_nan()); // nothing written: no AVX-512VL here
/// }
/// ```
#[inline]
pub fn in_registers<
    const NQ: usize,
    const NK: usize,
    const D: usize,
    const DV: usize,
    const GROUP: usize,
    const PROBLEMS: usize,
>(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    out: &mut [f32],
    scale: f32,
) -> bool {
    #[cfg(target_arch = "x86_64")]
    if crate::simd::Isa::active() == crate::simd::Isa::Avx512 {
        let operands = crate::simd::registers::Operands {
            q,
            k,
            v,
            out,
            scale,
        };
        return crate::simd::registers::attend::<NQ, NK, D, DV, GROUP, PROBLEMS>(operands);
    }
    let _ = (q, k, v, out, scale);
    false
}

/// The largest of a row of scores, as a balanced tree of `max` so that a short row waits on
/// few steps. A NaN score may or may not be kept: its row is NaN either way.
///
/// ```
/// assert_eq!(attn_runtime::__private::max_of([1.0, 4.0, 2.0]), 4.0);
/// ```
#[inline(always)]
pub fn max_of<const N: usize>(row: [f32; N]) -> f32 {
    tree(row, &|a, b| if a > b { a } else { b })
}

/// The sum of a row of weights, as a balanced tree of additions.
///
/// ```
/// assert_eq!(attn_runtime::__private::sum_of([1.0, 4.0, 2.0]), 7.0);
/// ```
#[inline(always)]
pub fn sum_of<const N: usize>(row: [f32; N]) -> f32 {
    tree(row, &|a, b| a + b)
}

/// A balanced tree over a row: each pass combines the first half with the second, so a row
/// of `N` waits on `log2(N)` steps. A loop, not recursion: recursion is not inlined, and a
/// call per node cost the textbook kernel more than its arithmetic.
#[inline(always)]
fn tree<const N: usize>(mut values: [f32; N], combine: &impl Fn(f32, f32) -> f32) -> f32 {
    let mut live = N;
    while live > 1 {
        let upper = live.div_ceil(2);
        for i in 0..live - upper {
            values[i] = combine(values[i], values[i + upper]);
        }
        live = upper;
    }
    values.first().copied().unwrap_or(f32::NEG_INFINITY)
}

/// The soft cap of one score of an unrolled kernel: `cap · tanh(score / cap)`.
///
/// ```
/// assert!((attn_runtime::__private::softcap(60.0, 30.0) - 30.0 * 2.0f32.tanh()).abs() < 1e-5);
/// ```
#[inline(always)]
pub fn softcap(score: f32, cap: f32) -> f32 {
    cap * crate::simd::tanh_f32(score / cap)
}
