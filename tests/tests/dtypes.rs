//! `dtype = f64` (all in f64) and `dtype = f16` / `dtype = bf16` (stored 16-bit, computed in
//! f32), against the f64 reference on inputs the element type holds exactly.
//!
//! Tolerances, relative to `1 + |reference|`: f64 within 1e-12 (the reference computes in
//! f64 too, in another order); f16 within 2^-10 and bf16 within 2^-7, twice the relative
//! rounding of one value to the type (the output is rounded once, after an f32 computation
//! whose own error is far smaller).

use attn_runtime::half::{bf16, f16};
use attn_runtime::simd::with_isa;
use attn_runtime::{Plan, Tensor, attention};
use attn_tests::{
    Mask, Problem, Rng, assert_lse_accurate, reference, reference_lse, reference_weights,
};

attention! {
    /// Rank 4, grouped heads, causal from the bottom right with a window, both extra
    /// outputs.
    #[attn(dtype = f64, causal(bottom_right), window = 9, return_weights, return_lse)]
    fn wide<q: [2, 4, 30, 16], k: [2, 2, 40, 16], v: [2, 2, 40, 8]>;

    /// Rank 3 with a mask, a bias, a soft cap and valid lengths; the key count left to the call.
    #[attn(dtype = f64, mask = [B, 1, N], bias = [1, 6, N], softcap = 2.5, valid_lengths)]
    fn wide_masked<q: [B, 6, 16], k: [B, N, 16], v: [B, N, 16]> where B = 2;

    /// f16, tiled, with the log-sum-exp (in f32).
    #[attn(dtype = f16, return_lse)]
    fn half<q: [2, 3, 70, 32], k: [2, 3, 90, 32], v: [2, 3, 90, 32]>;

    /// bf16, unrolled, causal.
    #[attn(dtype = bf16, causal)]
    fn brain<q: [1, 4, 3], k: [1, 4, 3], v: [1, 4, 3]>;

    /// Tiled, its 16-bit keys and values widened as they are packed: depth 40 leaves edges
    /// beside the transposed squares, and 77 keys a short last block.
    #[attn(dtype = bf16)]
    fn brain_tiled<q: [2, 2, 50, 40], k: [2, 2, 77, 40], v: [2, 2, 77, 24]>;
    /// The same in f16.
    #[attn(dtype = f16)]
    fn half_tiled<q: [2, 2, 50, 40], k: [2, 2, 77, 40], v: [2, 2, 77, 24]>;
    /// A decode step read as stored, its keys split into chunks: depth 72 leaves lanes over
    /// after the vectors, and value rows of 136 a whole single-row pass of 8 vectors and 8
    /// columns over.
    #[attn(dtype = bf16, causal(bottom_right))]
    fn brain_decode<q: [1, 2, 1, 72], k: [1, 2, 2500, 72], v: [1, 2, 2500, 136]>;
    /// The same in f16.
    #[attn(dtype = f16, causal(bottom_right))]
    fn half_decode<q: [1, 2, 1, 72], k: [1, 2, 2500, 72], v: [1, 2, 2500, 136]>;
}

/// `n` values that f16 and bf16 both hold exactly... or just f16, rounded by `round`.
fn rounded(rng: &mut Rng, n: usize, round: impl Fn(f32) -> f32) -> Vec<f32> {
    rng.values(n, 1.5).into_iter().map(round).collect()
}

/// Every output within `tolerance · (1 + |reference|)`.
fn assert_close(what: &str, actual: &[f64], expected: &[f64], tolerance: f64) {
    assert_eq!(actual.len(), expected.len(), "{what}: length");
    for (i, (&x, &r)) in actual.iter().zip(expected).enumerate() {
        if r.is_infinite() {
            assert_eq!(x, r, "{what}: {i}");
            continue;
        }
        let error = (x - r).abs() / (1.0 + r.abs());
        assert!(
            error <= tolerance,
            "{what}: {i} is {x}, the reference {r}: {error:e}"
        );
    }
}

/// `values` into the nested f64 array `array`.
fn f64_array<A>(mut array: Box<A>, values: &[f32], flat: impl Fn(&mut A) -> &mut [f64]) -> Box<A> {
    for (slot, &x) in flat(&mut array).iter_mut().zip(values) {
        *slot = x as f64;
    }
    array
}

#[test]
fn f64_kernels_compute_in_f64_with_every_option() {
    let mut rng = Rng::new(31);
    let (qv, kv, vv) = (
        rng.values(2 * 4 * 30 * 16, 2.0),
        rng.values(2 * 2 * 40 * 16, 2.0),
        rng.values(2 * 2 * 40 * 8, 1.0),
    );
    type Q = [[[[f64; 16]; 30]; 4]; 2];
    type K = [[[[f64; 16]; 40]; 2]; 2];
    type V = [[[[f64; 8]; 40]; 2]; 2];
    let q = f64_array::<Q>(Box::new([[[[0.0; 16]; 30]; 4]; 2]), &qv, |a| {
        a.as_flattened_mut().as_flattened_mut().as_flattened_mut()
    });
    let k = f64_array::<K>(Box::new([[[[0.0; 16]; 40]; 2]; 2]), &kv, |a| {
        a.as_flattened_mut().as_flattened_mut().as_flattened_mut()
    });
    let v = f64_array::<V>(Box::new([[[[0.0; 8]; 40]; 2]; 2]), &vv, |a| {
        a.as_flattened_mut().as_flattened_mut().as_flattened_mut()
    });
    assert_eq!(wide::INFO.plan, Plan::Scalar);
    assert_eq!(wide::INFO.shape.element_bytes, 8);
    let mut out = Box::new([[[[0.0f64; 8]; 30]; 4]; 2]);
    let mut weights = Box::new([[[[0.0f64; 40]; 30]; 4]; 2]);
    let mut lse = Box::new([[[0.0f64; 30]; 4]; 2]);
    wide_into(&q, &k, &v, &mut out, &mut weights, &mut lse);
    // The reference folds heads into problems: expand k and v to one head per query head.
    let expand = |values: &[f32], rows: usize| -> Vec<f32> {
        let mut out = Vec::new();
        for b in 0..2 {
            for h in 0..4 {
                let g = h / 2;
                out.extend_from_slice(&values[(b * 2 + g) * rows..][..rows]);
            }
        }
        out
    };
    let (k8, v8) = (expand(&kv, 40 * 16), expand(&vv, 40 * 8));
    let problem = Problem::with_default_scale(8, 30, 40, 16, 8)
        .masked(Mask::BottomRight)
        .windowed(9);
    let expected = reference(&problem, &qv, &k8, &v8);
    let flat = out.as_flattened().as_flattened().as_flattened();
    assert_close("wide", flat, &expected, 1e-12);
    let weights_flat = weights.as_flattened().as_flattened().as_flattened();
    let expected_weights = reference_weights(&problem, &qv, &k8);
    assert_close("wide weights", weights_flat, &expected_weights, 1e-12);
    // Query 0 of 30, aligned to the last of 40 keys, sees keys 2..=10.
    let first = &weights[0][0][0];
    assert!(first[..2].iter().chain(&first[11..]).all(|&w| w == 0.0));
    let lse_flat = lse.as_flattened().as_flattened();
    assert_close(
        "wide lse",
        lse_flat,
        &reference_lse(&problem, &qv, &k8),
        1e-12,
    );
}

#[test]
fn f64_masks_biases_caps_and_valid_lengths_match_the_reference() {
    let mut rng = Rng::new(32);
    const N: usize = 23;
    let (qv, kv, vv) = (
        rng.values(2 * 6 * 16, 2.0),
        rng.values(2 * N * 16, 2.0),
        rng.values(2 * N * 16, 1.0),
    );
    let keep: Vec<bool> = (0..2 * N).map(|_| rng.below(4) != 0).collect();
    let bias: Vec<f32> = rng.values(6 * N, 1.0);
    let q = f64_array(Box::new([[[0.0; 16]; 6]; 2]), &qv, |a| {
        a.as_flattened_mut().as_flattened_mut()
    });
    let k = f64_array(Box::new([[[0.0; 16]; N]; 2]), &kv, |a| {
        a.as_flattened_mut().as_flattened_mut()
    });
    let v = f64_array(Box::new([[[0.0; 16]; N]; 2]), &vv, |a| {
        a.as_flattened_mut().as_flattened_mut()
    });
    let mask: [[[bool; N]; 1]; 2] =
        std::array::from_fn(|b| [std::array::from_fn(|j| keep[b * N + j])]);
    let bias64: [[[f64; N]; 6]; 1] = [std::array::from_fn(|i| {
        std::array::from_fn(|j| bias[i * N + j] as f64)
    })];
    let valid = [N, 11];
    let out = wide_masked(&q, &k, &v, &mask, &bias64, &valid).unwrap();
    let expand = |per: &dyn Fn(usize, usize, usize) -> f32| -> Vec<f32> {
        (0..2 * 6 * N)
            .map(|x| per(x / (6 * N), x / N % 6, x % N))
            .collect()
    };
    let problem = Problem::with_default_scale(2, 6, N, 16, 16)
        .capped(2.5)
        .with_valid_keys(valid.to_vec())
        .with_keep(
            expand(&|b, _, j| if keep[b * N + j] { 1.0 } else { 0.0 })
                .into_iter()
                .map(|x| x == 1.0)
                .collect(),
        )
        .with_bias(expand(&|_, i, j| bias[i * N + j]));
    let expected = reference(&problem, &qv, &kv, &vv);
    assert_close(
        "wide_masked",
        out.as_flattened().as_flattened(),
        &expected,
        1e-12,
    );
    let error = wide_masked(&q, &k, &v, &mask, &bias64, &[N + 1, 0]).unwrap_err();
    assert_eq!(
        (error.batch_entry, error.valid, error.capacity),
        (0, N + 1, N)
    );
}

#[test]
fn f16_and_bf16_kernels_store_16_bits_and_compute_in_f32() {
    let mut rng = Rng::new(33);
    let to_f16 = |x: f32| f16::from_f32(x).to_f32();
    let (qv, kv, vv) = (
        rounded(&mut rng, 2 * 3 * 70 * 32, to_f16),
        rounded(&mut rng, 2 * 3 * 90 * 32, to_f16),
        rounded(&mut rng, 2 * 3 * 90 * 32, to_f16),
    );
    let halves =
        |values: &[f32]| -> Vec<f16> { values.iter().map(|&x| f16::from_f32(x)).collect() };
    // Tensors hold f16 as they hold f32.
    let q = Tensor::<[[[[f16; 32]; 70]; 3]; 2]>::from_vec(halves(&qv)).unwrap();
    let k = Tensor::<[[[[f16; 32]; 90]; 3]; 2]>::from_vec(halves(&kv)).unwrap();
    let v = Tensor::<[[[[f16; 32]; 90]; 3]; 2]>::from_vec(halves(&vv)).unwrap();
    let problem = Problem::with_default_scale(6, 70, 90, 32, 32);
    let expected = reference(&problem, &qv, &kv, &vv);
    for isa in attn_tests::instruction_sets() {
        let mut out = Tensor::<[[[[f16; 32]; 70]; 3]; 2]>::zeros();
        let mut lse = Box::new([[[0.0f32; 70]; 3]; 2]);
        with_isa(isa, || half_into(&q, &k, &v, &mut out, &mut lse)).unwrap();
        let out: Vec<f64> = out.as_flat().iter().map(|x| x.to_f64()).collect();
        assert_close(&format!("f16 on {isa}"), &out, &expected, 2f64.powi(-10));
        assert_lse_accurate(
            "f16 lse",
            &problem,
            &qv,
            &kv,
            lse.as_flattened().as_flattened(),
        );
    }

    let to_bf16 = |x: f32| bf16::from_f32(x).to_f32();
    let values = rounded(&mut rng, 3 * 4 * 3, to_bf16);
    let b = |i: usize| bf16::from_f32(values[i]);
    let [q, k, v]: [[[[bf16; 3]; 4]; 1]; 3] = std::array::from_fn(|t| {
        [std::array::from_fn(|r| {
            std::array::from_fn(|d| b(t * 12 + r * 3 + d))
        })]
    });
    assert_eq!(brain::INFO.plan, Plan::Unrolled);
    assert_eq!(brain::INFO.shape.element_bytes, 2);
    let out = brain(&q, &k, &v);
    let problem = Problem::with_default_scale(1, 4, 4, 3, 3).masked(Mask::TopLeft);
    let expected = reference(&problem, &values[..12], &values[12..24], &values[24..]);
    let out: Vec<f64> = out
        .as_flattened()
        .as_flattened()
        .iter()
        .map(|x| x.to_f64())
        .collect();
    assert_close("bf16", &out, &expected, 2f64.powi(-7));
}

/// Runs a 16-bit tiled kernel of shape `[B, H, Nq, D]`, `[B, H, Nk, D]`, `[B, H, Nk, Dv]` on
/// every instruction set, on inputs the type holds exactly, and holds its output to the f64
/// reference within `tolerance`.
macro_rules! check_16_bit {
    ($ty:ident, $kernel:ident, $into:ident, [$b:literal, $h:literal, $nq:literal, $nk:literal, $d:literal, $dv:literal], $mask:expr, $tolerance:expr) => {{
        let mut rng = Rng::new($nk);
        let round = |x: f32| $ty::from_f32(x).to_f32();
        let (qv, kv, vv) = (
            rounded(&mut rng, $b * $h * $nq * $d, round),
            rounded(&mut rng, $b * $h * $nk * $d, round),
            rounded(&mut rng, $b * $h * $nk * $dv, round),
        );
        let stored =
            |values: &[f32]| -> Vec<$ty> { values.iter().map(|&x| $ty::from_f32(x)).collect() };
        let q = Tensor::<[[[[$ty; $d]; $nq]; $h]; $b]>::from_vec(stored(&qv)).unwrap();
        let k = Tensor::<[[[[$ty; $d]; $nk]; $h]; $b]>::from_vec(stored(&kv)).unwrap();
        let v = Tensor::<[[[[$ty; $dv]; $nk]; $h]; $b]>::from_vec(stored(&vv)).unwrap();
        let problem = Problem::with_default_scale($b * $h, $nq, $nk, $d, $dv).masked($mask);
        let expected = reference(&problem, &qv, &kv, &vv);
        assert!(matches!($kernel::INFO.plan, Plan::Tiled { .. }));
        for isa in attn_tests::instruction_sets() {
            let mut out = Tensor::<[[[[$ty; $dv]; $nq]; $h]; $b]>::zeros();
            with_isa(isa, || $into(&q, &k, &v, &mut out)).unwrap();
            let out: Vec<f64> = out.as_flat().iter().map(|x| x.to_f64()).collect();
            let what = format!("{} on {isa}", stringify!($kernel));
            assert_close(&what, &out, &expected, $tolerance);
        }
        $kernel::INFO
    }};
}

#[test]
fn tiled_16_bit_kernels_read_their_inputs_as_stored_within_the_type_s_bound() {
    check_16_bit!(
        bf16,
        brain_tiled,
        brain_tiled_into,
        [2, 2, 50, 77, 40, 24],
        Mask::None,
        2f64.powi(-7)
    );
    check_16_bit!(
        f16,
        half_tiled,
        half_tiled_into,
        [2, 2, 50, 77, 40, 24],
        Mask::None,
        2f64.powi(-10)
    );
    let info = check_16_bit!(
        bf16,
        brain_decode,
        brain_decode_into,
        [1, 2, 1, 2500, 72, 136],
        Mask::BottomRight,
        2f64.powi(-7)
    );
    assert_eq!(info.key_chunks(), 3);
    check_16_bit!(
        f16,
        half_decode,
        half_decode_into,
        [1, 2, 1, 2500, 72, 136],
        Mask::BottomRight,
        2f64.powi(-10)
    );
}
