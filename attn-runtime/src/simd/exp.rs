//! `exp` for the softmax, on any [`Simd`]: within 2 ulp of the correctly rounded result on
//! `(-inf, 0]`, 0 below the f32 range, NaN for NaN.
//!
//! `exp(x) = 2^n · exp(r)` with `n = round(x / ln 2)` and `r = x - n ln 2` (Cody and Waite's
//! two-part `ln 2`, so that `r` is exact to a few ulp), `exp(r) = 1 + r + r^2 P(r)` on
//! `|r| <= ln 2 / 2` with `P` of degree 4 ([`POLYNOMIAL`]), and `2^n` applied in two halves
//! so that each factor is a normal number and results in the subnormal range are rounded
//! once.
//!
//! Two forms evaluate the polynomial: [`exp`] by Estrin's scheme, whose chain of dependent
//! steps is short (a row of a few scores waits on it), and [`exp_in_bulk`] by Horner's rule,
//! fewer instructions in a longer chain (a block of scores keeps many chains in flight). The
//! tiled softmax uses the second: W3 4% faster in A/B runs of `profile_w3`, together with
//! the rounding by [`ROUNDING_SHIFT`].

use super::{Lane, Simd};

/// Below this every result rounds to 0 (exp(-104) is already under half the smallest
/// subnormal); clamping here keeps `n` small and turns -inf into 0.
const CLAMP: f32 = -110.0;
/// Above this every result overflows (exp(88.73) is already past `f32::MAX`); clamping here
/// keeps `n` within what [`ROUNDING_SHIFT`] and [`Simd::scale_by_pow2_wide`] take, and turns
/// +inf into +inf.
const CLAMP_ABOVE: f32 = 89.0;
const LOG2_E: f32 = std::f32::consts::LOG2_E;
/// 1.5 · 2^23: a sum with it has no bits below the units, so `(t + it) - it` is `t` rounded
/// to a whole number, for |t| < 2^22 (here |t| <= 159, after the clamps).
const ROUNDING_SHIFT: f32 = 12_582_912.0;
/// ln 2 = LN2_HI + LN2_LO, with LN2_HI = 355/512 exact in 9 bits, so `n · LN2_HI` is exact.
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
/// `P(r) = c2 + c3 r + .. + c6 r^4`, from `c6` down to `c2`: the minimax polynomial for the
/// relative error of `1 + r + r^2 P(r)` against `exp(r)` on `|r| <= 0.34658`, by Remez's
/// algorithm (40 digits, then rounded to f32): at most 3.1e-9, 0.03 ulp. Close to `1/k!`,
/// but a degree lower than the Taylor series of the same accuracy (degree 7, 5.2e-9): one
/// operation less per exponential.
const POLYNOMIAL: [f32; 5] = [
    0.001_381_461,
    0.008_368_711,
    0.041_668_39,
    0.166_665_21,
    0.499_999_94,
];

/// `exp(x)` in every lane of `x`.
///
/// ```
/// use attn_runtime::simd::{Portable, Simd, exp};
/// let out = exp(Portable, [0.0, -1.0, -200.0, f32::NEG_INFINITY]);
/// assert_eq!(out[0], 1.0);
/// assert_eq!(out[1], (-1.0f32).exp());
/// assert_eq!((out[2], out[3]), (0.0, 0.0));
/// assert!(exp(Portable, [f32::NAN, -0.5, -87.0, -103.0])[0].is_nan());
/// ```
#[inline(always)]
pub fn exp<S: Simd>(simd: S, x: S::V) -> S::V {
    // `min` returns its second operand when either is NaN, so a NaN passes.
    exp_of_nonpositive(simd, simd.min(simd.splat(CLAMP_ABOVE), x))
}

/// [`exp`] for `x <= 0` (or NaN, or at most [`CLAMP_ABOVE`]): the softmax's `s - max`, which
/// needs no clamp from above. That clamp, one instruction per vector, cost W3 2%.
#[inline(always)]
pub(crate) fn exp_of_nonpositive<S: Simd>(simd: S, x: S::V) -> S::V {
    let (p, n) = exp_of_nonpositive_unscaled(simd, x);
    simd.scale_by_pow2_wide(p, n)
}

/// [`exp_of_nonpositive`] but its last step: `(p, n)` with `exp(x) = p · 2^n`, for code
/// that scales by an instruction the [`Simd`] type does not expose (the in-register
/// kernels' 8-lane `vscalefps` of AVX-512VL).
#[inline(always)]
pub(crate) fn exp_of_nonpositive_unscaled<S: Simd>(simd: S, x: S::V) -> (S::V, S::V) {
    let (n, r) = reduce(simd, x);
    // Estrin's scheme: the same polynomial as Horner's rule in half the dependent steps,
    // which is what a short row of exponentials waits for.
    let r2 = simd.mul(r, r);
    let r4 = simd.mul(r2, r2);
    // Each coefficient splat by hand: `array::map`'s closure is not always inlined, and a
    // call in the unrolled kernels' exponentials doubled W1's time.
    let [c6, c5, c4, c3, c2] = POLYNOMIAL;
    let [c6, c5, c4, c3, c2] = [
        simd.splat(c6),
        simd.splat(c5),
        simd.splat(c4),
        simd.splat(c3),
        simd.splat(c2),
    ];
    // p(r) = (c2 + c3 r) + r^2 (c4 + c5 r) + r^4 c6.
    let p23 = simd.mul_add(r, c3, c2);
    let p45 = simd.mul_add(r, c5, c4);
    let p = simd.mul_add(r4, c6, simd.mul_add(r2, p45, p23));
    // exp(r) = 1 + r + r^2 p(r): the two leading terms added last, for accuracy.
    (simd.add(simd.mul_add(r2, p, r), simd.splat(1.0)), n)
}

/// [`exp`] for many vectors at once, where the processor is bound by how many instructions
/// it issues rather than by how long one result takes: the same accuracy by a shorter
/// sequence with a longer chain (the polynomial by Horner's rule, see the module). Its
/// results may differ from [`exp`]'s in the last bit.
///
/// ```
/// use attn_runtime::simd::{Portable, exp_in_bulk};
/// let out = exp_in_bulk(Portable, [0.0, -1.0, -200.0, f32::NEG_INFINITY]);
/// assert_eq!(out[0], 1.0);
/// assert!((out[1] - (-1.0f32).exp()).abs() <= f32::EPSILON * out[1]);
/// assert_eq!((out[2], out[3]), (0.0, 0.0));
/// assert_eq!(exp_in_bulk(Portable, [100.0; 4])[0], f32::INFINITY);
/// ```
#[inline(always)]
pub fn exp_in_bulk<S: Simd>(simd: S, x: S::V) -> S::V {
    exp_of_nonpositive_in_bulk(simd, simd.min(simd.splat(CLAMP_ABOVE), x))
}

/// [`exp_of_nonpositive`] for many vectors at once (the tiled softmax, a block of scores at
/// a time), where the processor is bound by how many instructions it issues rather than by
/// how long one result takes: the polynomial by Horner's rule, 6 multiply-adds in one chain
/// against Estrin's 8 operations and their register copies (`vfmadd213ps` overwrites an
/// operand that Estrin's scheme still needs). The same accuracy, not always the same bits.
#[inline(always)]
pub(crate) fn exp_of_nonpositive_in_bulk<S: Simd>(simd: S, x: S::V) -> S::V {
    let (n, r) = reduce(simd, x);
    // 1 + r (1 + r (c2 + r (c3 + .. + r c6))), each step one multiply-add whose accumulator
    // is dead afterwards, so none needs a copy.
    let mut p = simd.splat(POLYNOMIAL[0]);
    for c in &POLYNOMIAL[1..] {
        p = simd.mul_add(p, r, simd.splat(*c));
    }
    let p = simd.mul_add(p, r, simd.splat(1.0));
    let p = simd.mul_add(p, r, simd.splat(1.0));
    simd.scale_by_pow2_wide(p, n)
}

/// The range reduction of both forms: `x = n ln 2 + r`, `n` whole, `|r| <= ln 2 / 2`, after
/// the clamp from below (which `max` passes a NaN through: it returns its second operand).
#[inline(always)]
fn reduce<S: Simd>(simd: S, x: S::V) -> (S::V, S::V) {
    let x = simd.max(simd.splat(CLAMP), x);
    // n = round(x / ln 2) by adding and subtracting 1.5 · 2^23, which leaves the sum no
    // bits below the units: a multiply-add and a subtraction, where a rounding instruction
    // after the multiplication costs three operations (`vrndscaleps` is two).
    let shifted = simd.mul_add(x, simd.splat(LOG2_E), simd.splat(ROUNDING_SHIFT));
    let n = simd.sub(shifted, simd.splat(ROUNDING_SHIFT));
    let r = simd.mul_add(n, simd.splat(-LN2_HI), x);
    (n, simd.mul_add(n, simd.splat(-LN2_LO), r))
}

/// `exp(x)` for one f32, by the same steps as [`exp`].
///
/// ```
/// assert_eq!(attn_runtime::simd::exp_f32(0.0), 1.0);
/// assert_eq!(attn_runtime::simd::exp_f32(-1000.0), 0.0);
/// ```
#[inline(always)]
pub fn exp_f32(x: f32) -> f32 {
    exp(Lane, x)
}

/// Below this |x|, tanh is its Taylor series to degree 11 (the next term is under 1e-9 of
/// the result); above it, `(1 - t) / (1 + t)` with `t = exp(-2|x|)` loses at most one bit.
const TANH_SERIES_BELOW: f32 = 0.3;
/// tanh's Taylor coefficients for x^3, x^5, .., x^11.
const TANH_SERIES: [f32; 5] = [
    -1.0 / 3.0,
    2.0 / 15.0,
    -17.0 / 315.0,
    62.0 / 2835.0,
    -1382.0 / 155_925.0,
];

/// `tanh(x)` in every lane of `x`: ±1 for ±inf, NaN for NaN. For the soft cap of scores.
///
/// ```
/// use attn_runtime::simd::{Portable, tanh};
/// let out = tanh(Portable, [0.0, 0.1, -0.5, 3.0]);
/// assert!((out[1] - 0.1f32.tanh()).abs() < 1e-8 && (out[2] - (-0.5f32).tanh()).abs() < 1e-7);
/// let out = tanh(Portable, [f32::INFINITY, f32::NEG_INFINITY, -20.0, 1e-8]);
/// assert_eq!((out[0], out[1], out[2]), (1.0, -1.0, -1.0));
/// ```
#[inline(always)]
pub fn tanh<S: Simd>(simd: S, x: S::V) -> S::V {
    let zero = simd.splat(0.0);
    let negative = simd.sub(zero, x);
    let magnitude = simd.max(x, negative);
    // Large |x|: tanh|x| = (1 - t) / (1 + t), t = exp(-2|x|); the sign restored by select.
    let t = exp_of_nonpositive(simd, simd.mul(magnitude, simd.splat(-2.0)));
    let one = simd.splat(1.0);
    let large = simd.div(simd.sub(one, t), simd.add(one, t));
    let large = simd.select_lt(x, zero, simd.sub(zero, large), large);
    // Small |x|: x + x^3 (c3 + x^2 (c5 + ..)), odd in x, so the sign comes along.
    let x2 = simd.mul(x, x);
    let mut p = simd.splat(TANH_SERIES[4]);
    for c in TANH_SERIES[..4].iter().rev() {
        p = simd.mul_add(p, x2, simd.splat(*c));
    }
    let small = simd.mul_add(simd.mul(p, x2), x, x);
    // A NaN fails the comparison and takes the large branch, which is NaN too.
    simd.select_lt(magnitude, simd.splat(TANH_SERIES_BELOW), small, large)
}

/// `tanh(x)` for one f32, by the same steps as [`tanh`].
///
/// ```
/// assert!((attn_runtime::simd::tanh_f32(0.7) - 0.7f32.tanh()).abs() < 1e-7);
/// ```
#[inline(always)]
pub fn tanh_f32(x: f32) -> f32 {
    tanh(Lane, x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_softmax_form_is_exp_on_nonpositive_arguments() {
        for bits in (0.0f32.to_bits()..=110.0f32.to_bits()).step_by(9_973) {
            let x = -f32::from_bits(bits);
            assert_eq!(
                exp_of_nonpositive(Lane, x).to_bits(),
                exp_f32(x).to_bits(),
                "{x:e}"
            );
            assert_eq!(
                exp_of_nonpositive_in_bulk(Lane, x).to_bits(),
                exp_in_bulk(Lane, x).to_bits(),
                "{x:e}"
            );
        }
        assert!(exp_of_nonpositive(Lane, f32::NAN).is_nan());
        assert!(exp_of_nonpositive_in_bulk(Lane, f32::NAN).is_nan());
    }
}
