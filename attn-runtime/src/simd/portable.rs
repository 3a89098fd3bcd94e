//! The portable instruction set: plain Rust over arrays of 4 lanes, which the compiler
//! vectorizes for the target's baseline (SSE2 on x86-64, NEON on aarch64): one 128-bit
//! register per vector, so that a tile's 6 x 2 accumulators fit SSE2's 16 registers. Against
//! 8 lanes (two registers each, and spills), W3 and W4 run 5-9% faster on this path and a
//! one-kernel crate builds in 0.58 s instead of 0.72 s (profile_w3 with `ATTN_ISA=scalar`;
//! the build-cost crate).

use super::Simd;

/// Portable vectors of 4 lanes. Always available.
///
/// ```
/// use attn_runtime::simd::{Portable, Simd};
/// let v = Portable.load(&[1.0, 2.0, 3.0, 4.0]);
/// assert_eq!(Portable.reduce_sum(v), 10.0);
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct Portable;

const LANES: usize = 4;

// Plain loops rather than `map` and `array::from_fn`, whose closures are not always inlined.

#[inline(always)]
fn map(mut a: [f32; LANES], f: impl Fn(f32) -> f32) -> [f32; LANES] {
    for x in &mut a {
        *x = f(*x);
    }
    a
}

#[inline(always)]
fn zip(mut a: [f32; LANES], b: [f32; LANES], f: impl Fn(f32, f32) -> f32) -> [f32; LANES] {
    for (x, y) in a.iter_mut().zip(b) {
        *x = f(*x, y);
    }
    a
}

/// One f32 as a vector of one lane: the scalar form of every kernel step, such as
/// [`super::exp_f32`].
///
/// ```
/// use attn_runtime::simd::{Lane, Simd};
/// assert_eq!(Lane.mul_add(2.0, 3.0, 1.0), 7.0);
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct Lane;

impl Simd for Lane {
    const LANES: usize = 1;
    type V = f32;

    #[inline(always)]
    fn splat(self, x: f32) -> f32 {
        x
    }
    #[inline(always)]
    fn load(self, src: &[f32]) -> f32 {
        src[0]
    }
    #[inline(always)]
    fn load_f16(self, src: &[half::f16]) -> f32 {
        src[0].to_f32()
    }
    #[inline(always)]
    fn load_bf16(self, src: &[half::bf16]) -> f32 {
        src[0].to_f32()
    }
    #[inline(always)]
    fn store(self, dst: &mut [f32], v: f32) {
        dst[0] = v;
    }
    #[inline(always)]
    fn add(self, a: f32, b: f32) -> f32 {
        a + b
    }
    #[inline(always)]
    fn sub(self, a: f32, b: f32) -> f32 {
        a - b
    }
    #[inline(always)]
    fn mul(self, a: f32, b: f32) -> f32 {
        a * b
    }
    #[inline(always)]
    fn div(self, a: f32, b: f32) -> f32 {
        a / b
    }
    /// Two roundings, as [`Portable::mul_add`].
    #[inline(always)]
    fn mul_add(self, a: f32, b: f32, c: f32) -> f32 {
        a * b + c
    }
    #[inline(always)]
    fn max(self, a: f32, b: f32) -> f32 {
        if a > b { a } else { b }
    }
    #[inline(always)]
    fn min(self, a: f32, b: f32) -> f32 {
        if a < b { a } else { b }
    }
    /// Adding and subtracting 1.5 · 2^23 rounds to the nearest integer, ties to even, for
    /// `|a| < 2^22`, with two additions that every target has (`round_ties_even` is a library
    /// call without SSE4.1). No test of the range: it cost a tenth of the textbook kernel.
    #[inline(always)]
    fn round(self, a: f32) -> f32 {
        const MAGIC: f32 = 12_582_912.0;
        (a + MAGIC) - MAGIC
    }
    /// `2^n` is built from the bits of `n + 127 + 1.5 · 2^23`, whose low bits are `n + 127`,
    /// shifted into the exponent field: no float-to-int conversion, which Rust makes
    /// saturating and which would keep the compiler from vectorizing a row.
    #[inline(always)]
    fn scale_by_pow2(self, a: f32, n: f32) -> f32 {
        const BIASED_MAGIC: f32 = 127.0 + 12_582_912.0;
        a * f32::from_bits((n + BIASED_MAGIC).to_bits() << 23)
    }
    #[inline(always)]
    fn select_lt(self, a: f32, b: f32, yes: f32, no: f32) -> f32 {
        if a < b { yes } else { no }
    }
    #[inline(always)]
    fn reduce_max(self, a: f32) -> f32 {
        a
    }
    #[inline(always)]
    fn reduce_sum(self, a: f32) -> f32 {
        a
    }
    #[inline(always)]
    fn all_at_most(self, a: f32, b: f32) -> bool {
        a <= b
    }
}

impl Simd for Portable {
    const LANES: usize = LANES;
    type V = [f32; LANES];

    #[inline(always)]
    fn splat(self, x: f32) -> Self::V {
        [x; LANES]
    }
    #[inline(always)]
    fn load(self, src: &[f32]) -> Self::V {
        let mut v = [0.0; LANES];
        v.copy_from_slice(&src[..LANES]);
        v
    }
    #[inline(always)]
    fn load_f16(self, src: &[half::f16]) -> Self::V {
        let mut v = [0.0; LANES];
        for (x, stored) in v.iter_mut().zip(&src[..LANES]) {
            *x = stored.to_f32();
        }
        v
    }
    #[inline(always)]
    fn load_bf16(self, src: &[half::bf16]) -> Self::V {
        let mut v = [0.0; LANES];
        for (x, stored) in v.iter_mut().zip(&src[..LANES]) {
            *x = stored.to_f32();
        }
        v
    }
    #[inline(always)]
    fn store(self, dst: &mut [f32], v: Self::V) {
        dst[..LANES].copy_from_slice(&v);
    }
    #[inline(always)]
    fn add(self, a: Self::V, b: Self::V) -> Self::V {
        zip(a, b, |x, y| x + y)
    }
    #[inline(always)]
    fn sub(self, a: Self::V, b: Self::V) -> Self::V {
        zip(a, b, |x, y| x - y)
    }
    #[inline(always)]
    fn mul(self, a: Self::V, b: Self::V) -> Self::V {
        zip(a, b, |x, y| x * y)
    }
    #[inline(always)]
    fn div(self, a: Self::V, b: Self::V) -> Self::V {
        zip(a, b, |x, y| x / y)
    }
    /// Two roundings: without FMA in the target's baseline, `f32::mul_add` would be a slow
    /// library call.
    #[inline(always)]
    fn mul_add(self, a: Self::V, b: Self::V, c: Self::V) -> Self::V {
        let mut out = c;
        for ((x, a), b) in out.iter_mut().zip(a).zip(b) {
            *x += a * b;
        }
        out
    }
    #[inline(always)]
    fn max(self, a: Self::V, b: Self::V) -> Self::V {
        zip(a, b, |x, y| Lane.max(x, y))
    }
    #[inline(always)]
    fn min(self, a: Self::V, b: Self::V) -> Self::V {
        zip(a, b, |x, y| Lane.min(x, y))
    }
    #[inline(always)]
    fn round(self, a: Self::V) -> Self::V {
        map(a, |x| Lane.round(x))
    }
    #[inline(always)]
    fn scale_by_pow2(self, a: Self::V, n: Self::V) -> Self::V {
        zip(a, n, |x, n| Lane.scale_by_pow2(x, n))
    }
    #[inline(always)]
    fn select_lt(self, a: Self::V, b: Self::V, yes: Self::V, no: Self::V) -> Self::V {
        let mut out = no;
        for i in 0..LANES {
            out[i] = Lane.select_lt(a[i], b[i], yes[i], no[i]);
        }
        out
    }
    #[inline(always)]
    fn reduce_max(self, a: Self::V) -> f32 {
        a.into_iter().fold(f32::NEG_INFINITY, f32::max)
    }
    #[inline(always)]
    fn reduce_sum(self, a: Self::V) -> f32 {
        // Pairwise, as the vector instruction sets reduce.
        let [a0, a1, a2, a3] = a;
        (a0 + a2) + (a1 + a3)
    }
    #[inline(always)]
    fn all_at_most(self, a: Self::V, b: Self::V) -> bool {
        a.into_iter().zip(b).all(|(a, b)| a <= b)
    }
    #[inline(always)]
    fn pack_keys(self, keys: &[f32], depth: usize, count: usize, packed: &mut [f32], block: usize) {
        pack_keys_portable(keys, depth, count, packed, block);
    }
}

/// [`Simd::pack_keys`] by squares of 4 x 4, each row read and each column written as one
/// array (which the compiler keeps in vector registers): 64 keys of depth 64 in about
/// 1,000 ns, 1,480 element by element (`bench/examples/micro.rs`). One function, compiled
/// in this crate.
fn pack_keys_portable(keys: &[f32], depth: usize, count: usize, packed: &mut [f32], block: usize) {
    super::pack::pack_keys_by_squares(keys, depth, count, packed, block, LANES, |src, dst| {
        let mut rows = [[0.0f32; LANES]; LANES];
        for (i, row) in rows.iter_mut().enumerate() {
            row.copy_from_slice(&src[i * depth..][..LANES]);
        }
        for j in 0..LANES {
            let column = [rows[0][j], rows[1][j], rows[2][j], rows[3][j]];
            dst[j * block..][..LANES].copy_from_slice(&column);
        }
    });
}
