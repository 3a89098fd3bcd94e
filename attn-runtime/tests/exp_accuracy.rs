//! The vector `exp` against the correctly rounded result, densely over (-inf, 0], on every
//! instruction set this machine has.

mod common;

use attn_runtime::simd::{Isa, Simd, WithSimd, dispatch, exp_f32};

/// Distance in ulp between two finite non-negative f32.
fn ulps(a: f32, b: f32) -> u32 {
    a.to_bits().abs_diff(b.to_bits())
}

/// The vector functions under test.
#[derive(Clone, Copy, Debug)]
enum Function {
    Exp,
    /// `exp_in_bulk`, the form of the tiled softmax.
    ExpInBulk,
    Tanh,
}

/// Both forms of `exp`.
const EXPS: [Function; 2] = [Function::Exp, Function::ExpInBulk];

/// `function` of every input in `xs`, a vector at a time, on one instruction set.
struct MapAll<'a> {
    function: Function,
    xs: &'a [f32],
    out: &'a mut [f32],
}

impl WithSimd for MapAll<'_> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        for (x, y) in self
            .xs
            .chunks_exact(S::LANES)
            .zip(self.out.chunks_exact_mut(S::LANES))
        {
            let x = simd.load(x);
            let fx = match self.function {
                Function::Exp => attn_runtime::simd::exp(simd, x),
                Function::ExpInBulk => attn_runtime::simd::exp_in_bulk(simd, x),
                Function::Tanh => attn_runtime::simd::tanh(simd, x),
            };
            simd.store(y, fx);
        }
    }
}

/// `function` of `xs` on `isa`.
fn map_all(isa: Isa, function: Function, xs: &[f32]) -> Vec<f32> {
    let mut out = vec![0.0f32; xs.len()];
    dispatch(
        isa,
        MapAll {
            function,
            xs,
            out: &mut out,
        },
    );
    out
}

/// Every `stride`-th f32 from -0.0 down to -(the first value whose exp is 0), plus edges.
fn inputs(stride: u32) -> Vec<f32> {
    let last = (-104.0f32).to_bits();
    let mut xs: Vec<f32> = ((-0.0f32).to_bits()..=last)
        .step_by(stride as usize)
        .map(f32::from_bits)
        .collect();
    xs.extend([
        -0.0, 0.0, -1e-45, -87.33655, -87.3366, -103.0, -103.97, -103.98, -104.0,
    ]);
    while !xs.len().is_multiple_of(16) {
        xs.push(-1.0);
    }
    xs
}

fn worst_ulps(isa: Isa, function: Function, xs: &[f32]) -> (u32, f32) {
    let out = map_all(isa, function, xs);
    let mut worst = (0, 0.0);
    for (&x, &y) in xs.iter().zip(&out) {
        let exact = (x as f64).exp() as f32;
        let error = ulps(y, exact);
        if error > worst.0 {
            worst = (error, x);
        }
    }
    worst
}

#[test]
fn within_two_ulp_on_every_instruction_set() {
    // About 11 million inputs: every 97th f32 of (-104, 0], which covers every binade.
    let xs = inputs(97);
    for isa in common::instruction_sets() {
        for function in EXPS {
            let (error, at) = worst_ulps(isa, function, &xs);
            println!(
                "{function:?} on {isa}: worst {error} ulp at x = {at:e} over {} inputs",
                xs.len()
            );
            assert!(
                error <= 2,
                "{function:?} on {isa}: {error} ulp at x = {at:e}"
            );
        }
    }
}

#[test]
fn the_scalar_form_matches() {
    for x in inputs(100_003) {
        let exact = (x as f64).exp() as f32;
        assert!(
            ulps(exp_f32(x), exact) <= 2,
            "exp_f32({x:e}) = {}",
            exp_f32(x)
        );
    }
}

#[test]
fn flushes_to_zero_below_the_range_and_keeps_nan() {
    for isa in common::instruction_sets() {
        let mut xs = vec![-105.0, -1000.0, f32::NEG_INFINITY, f32::MIN, f32::NAN];
        xs.resize(16, 0.0);
        for function in EXPS {
            let out = map_all(isa, function, &xs);
            assert_eq!(&out[..4], &[0.0; 4], "{function:?} on {isa}");
            assert!(out[4].is_nan(), "{function:?} on {isa}");
            assert_eq!(out[5], 1.0, "{function:?} on {isa}");
        }
    }
}

#[test]
fn tanh_within_four_ulp_on_every_instruction_set() {
    // Every 61st f32 of [0, 20] and its negative: tanh is odd, and 1 beyond.
    let mut xs: Vec<f32> = (0..=20.0f32.to_bits())
        .step_by(61)
        .map(f32::from_bits)
        .flat_map(|x| [x, -x])
        .collect();
    xs.extend([
        f32::INFINITY,
        f32::NEG_INFINITY,
        0.3,
        -0.3,
        0.29999998,
        1e-30,
    ]);
    while !xs.len().is_multiple_of(16) {
        xs.push(0.5);
    }
    for isa in common::instruction_sets() {
        let out = map_all(isa, Function::Tanh, &xs);
        let mut worst = (0, 0.0f32);
        for (&x, &y) in xs.iter().zip(&out) {
            let exact = (x as f64).tanh() as f32;
            // The sign of a zero does not matter to a soft cap; any other sign does.
            let wrong_sign = y != 0.0 && exact != 0.0 && y.signum() != exact.signum();
            let error = ulps(y.abs(), exact.abs()) + u32::from(wrong_sign) * 1000;
            if error > worst.0 {
                worst = (error, x);
            }
        }
        println!(
            "tanh on {isa}: worst {} ulp at x = {:e} over {} inputs",
            worst.0,
            worst.1,
            xs.len()
        );
        assert!(worst.0 <= 4, "{isa}: {} ulp at x = {:e}", worst.0, worst.1);
    }
}

#[test]
fn positive_arguments_within_two_ulp_then_infinity() {
    // Every 101st f32 of (0, 88.72], where exp is finite, then arguments whose exp overflows:
    // before `exp` clamped from above, exp(200) came back 0 and exp(+inf) NaN on the paths
    // without AVX-512.
    let mut xs: Vec<f32> = (0.0f32.to_bits()..=88.72f32.to_bits())
        .step_by(101)
        .map(f32::from_bits)
        .collect();
    xs.resize(xs.len().next_multiple_of(16), 1.0);
    let overflow = [88.73, 89.0, 200.0, 1e4, 1e7, 1e30, f32::MAX, f32::INFINITY];
    for isa in common::instruction_sets() {
        for function in EXPS {
            let (error, at) = worst_ulps(isa, function, &xs);
            assert!(
                error <= 2,
                "{function:?} on {isa}: {error} ulp at x = {at:e}"
            );
            let mut big = overflow.to_vec();
            big.resize(16, 88.73);
            let out = map_all(isa, function, &big);
            assert!(
                out.iter().all(|y| *y == f32::INFINITY),
                "{function:?} on {isa}: {out:?}"
            );
        }
    }
    for x in overflow {
        assert_eq!(exp_f32(x), f32::INFINITY, "exp_f32({x:e})");
    }
}
