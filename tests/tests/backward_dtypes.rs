//! The backward pass of f64 kernels (row by row in f64) against central finite differences
//! of their own forward (a gradient check) and against the f64 reference; of f16 and bf16
//! kernels (computed in f32) against the reference on the values they hold.
//!
//! Tolerances: the gradient check within 1e-7 relative to 1 + the largest gradient (the
//! differences' own error, with a step of 1e-5, is about 1e-10); f64 against the reference
//! within 1e-12 likewise; bf16 within 2^-7 and f16 within 2^-10, four times the unit
//! roundoff of the type (the forward's output, and each gradient, are rounded once; this
//! test measured 1.4e-3 and 8.3e-5).

use attn_runtime::attention;
use attn_runtime::half::{bf16, f16};
use attn_tests::{
    Gradients, Mask, Problem, Rng, expand, reference_gradients, relative_error, repeat_heads,
    sum_groups,
};

attention! {
    /// Grouped heads under a causal mask from the bottom right, a soft cap, a mask and a bias.
    #[attn(backward, dtype = f64, causal(bottom_right), softcap = 3.0, mask = [1, 1, 5, 9], bias = [1, 2, 5, 9])]
    fn all_options<q: [1, 2, 5, 4], k: [1, 1, 9, 4], v: [1, 1, 9, 3]>;
    /// Valid keys and queries and a window.
    #[attn(backward, dtype = f64, valid_lengths, valid_queries, causal, window = 3)]
    fn padded<q: [2, 6, 3], k: [2, 6, 3], v: [2, 6, 2]>;
    /// bf16, tiled and causal.
    #[attn(backward, dtype = bf16, causal)]
    fn brain<q: [1, 2, 40, 16], k: [1, 2, 40, 16], v: [1, 2, 40, 16]>;
    /// f16 with valid lengths.
    #[attn(backward, dtype = f16, valid_lengths)]
    fn half<q: [2, 30, 16], k: [2, 50, 16], v: [2, 50, 8]>;
}

/// The gradient of `loss` at `x` by central differences of step `h`, one element at a time.
fn finite_differences(x: &mut [f64], loss: impl Fn(&[f64]) -> f64) -> Vec<f64> {
    let h = 1e-5;
    (0..x.len())
        .map(|i| {
            let at = x[i];
            x[i] = at + h;
            let up = loss(x);
            x[i] = at - h;
            let down = loss(x);
            x[i] = at;
            (up - down) / (2.0 * h)
        })
        .collect()
}

/// `values` copied into `flat`.
fn fill(flat: &mut [f64], values: &[f64]) {
    flat.copy_from_slice(values);
}

#[test]
fn f64_gradients_match_finite_differences_of_the_forward() {
    let mut rng = Rng::new(190);
    let mut wide = |n, magnitude| -> Vec<f64> {
        rng.values(n, magnitude)
            .into_iter()
            .map(f64::from)
            .collect()
    };
    let (qv, kv, vv, gv) = (wide(40, 1.5), wide(36, 1.5), wide(27, 1.0), wide(30, 1.0));
    let mut rng = Rng::new(191);
    let mut mask = [[[[true; 9]; 5]; 1]; 1];
    mask[0][0][2] = [true, false, true, false, true, true, false, true, true];
    let mut bias = [[[[0.0f64; 9]; 5]; 2]; 1];
    for b in bias
        .as_flattened_mut()
        .as_flattened_mut()
        .as_flattened_mut()
    {
        *b = f64::from(rng.uniform(1.0));
    }
    let (mut q, mut k, mut v, mut g) = (
        [[[[0.0; 4]; 5]; 2]; 1],
        [[[[0.0; 4]; 9]; 1]; 1],
        [[[[0.0; 3]; 9]; 1]; 1],
        [[[[0.0; 3]; 5]; 2]; 1],
    );
    fill(
        q.as_flattened_mut().as_flattened_mut().as_flattened_mut(),
        &qv,
    );
    fill(
        k.as_flattened_mut().as_flattened_mut().as_flattened_mut(),
        &kv,
    );
    fill(
        v.as_flattened_mut().as_flattened_mut().as_flattened_mut(),
        &vv,
    );
    fill(
        g.as_flattened_mut().as_flattened_mut().as_flattened_mut(),
        &gv,
    );
    let (out, lse) = all_options(&q, &k, &v, &mask, &bias);
    let (dq, dk, dv) = all_options_backward(&q, &k, &v, &mask, &bias, &out, &lse, &g);
    // The loss Σ out ∘ g, whose gradient with respect to the output is g.
    let loss =
        |q: &[[[[f64; 4]; 5]; 2]; 1], k: &[[[[f64; 4]; 9]; 1]; 1], v: &[[[[f64; 3]; 9]; 1]; 1]| {
            let (out, _) = all_options(q, k, v, &mask, &bias);
            let out = out.as_flattened().as_flattened().as_flattened();
            out.iter().zip(&gv).map(|(o, g)| o * g).sum::<f64>()
        };
    let flat =
        |x: &[[[[f64; 4]; 5]; 2]; 1]| x.as_flattened().as_flattened().as_flattened().to_vec();
    let numeric_q = finite_differences(&mut qv.clone(), |x| {
        let mut q = q;
        fill(
            q.as_flattened_mut().as_flattened_mut().as_flattened_mut(),
            x,
        );
        loss(&q, &k, &v)
    });
    let numeric_k = finite_differences(&mut kv.clone(), |x| {
        let mut k = k;
        fill(
            k.as_flattened_mut().as_flattened_mut().as_flattened_mut(),
            x,
        );
        loss(&q, &k, &v)
    });
    let numeric_v = finite_differences(&mut vv.clone(), |x| {
        let mut v = v;
        fill(
            v.as_flattened_mut().as_flattened_mut().as_flattened_mut(),
            x,
        );
        loss(&q, &k, &v)
    });
    let analytic = [
        flat(&dq),
        dk.as_flattened().as_flattened().as_flattened().to_vec(),
        dv.as_flattened().as_flattened().as_flattened().to_vec(),
    ];
    for (name, (analytic, numeric)) in ["dq", "dk", "dv"]
        .iter()
        .zip(analytic.iter().zip([numeric_q, numeric_k, numeric_v]))
    {
        let error = relative_error(analytic, &numeric);
        eprintln!("{name}: {error:e} from the finite differences");
        assert!(
            error <= 1e-7,
            "{name}: {error:e} from the finite differences"
        );
        assert!(
            numeric.iter().any(|&x| x.abs() > 1e-3),
            "{name} is not all but zero"
        );
    }

    // And the f64 reference of the same derivative.
    let to_f32 = |x: &[f64]| x.iter().map(|&x| x as f32).collect::<Vec<_>>();
    let (q32, k32, v32, g32) = (to_f32(&qv), to_f32(&kv), to_f32(&vv), to_f32(&gv));
    let flat_mask = mask.as_flattened().as_flattened().as_flattened();
    let flat_bias: Vec<f32> = to_f32(bias.as_flattened().as_flattened().as_flattened());
    let problem = Problem::with_default_scale(2, 5, 9, 4, 3)
        .masked(Mask::BottomRight)
        .capped(3.0)
        .with_keep(expand(flat_mask, [1, 1, 5, 9], [1, 2, 5, 9]))
        .with_bias(expand(&flat_bias, [1, 2, 5, 9], [1, 2, 5, 9]));
    let (k2, v2) = (
        repeat_heads(&k32, 1, 1, 2, 36),
        repeat_heads(&v32, 1, 1, 2, 27),
    );
    let reference = reference_gradients(&problem, &q32, &k2, &v2, &g32);
    let expected = [
        reference.dq,
        sum_groups(&reference.dk, 1, 1, 2, 36),
        sum_groups(&reference.dv, 1, 1, 2, 27),
    ];
    for (name, (analytic, expected)) in ["dq", "dk", "dv"]
        .iter()
        .zip(analytic.iter().zip(&expected))
    {
        let error = relative_error(analytic, expected);
        eprintln!("{name}: {error:e} from the reference");
        assert!(error <= 1e-12, "{name}: {error:e} from the reference");
    }
}

#[test]
fn f64_gradients_of_padding_are_zero_and_of_the_rest_match_finite_differences() {
    let mut rng = Rng::new(192);
    let values =
        |rng: &mut Rng, n| -> Vec<f64> { rng.values(n, 1.5).into_iter().map(f64::from).collect() };
    let (qv, kv, vv, gv) = (
        values(&mut rng, 36),
        values(&mut rng, 36),
        values(&mut rng, 24),
        values(&mut rng, 24),
    );
    let (mut q, mut k, mut v, mut g) = (
        [[[0.0; 3]; 6]; 2],
        [[[0.0; 3]; 6]; 2],
        [[[0.0; 2]; 6]; 2],
        [[[0.0; 2]; 6]; 2],
    );
    fill(q.as_flattened_mut().as_flattened_mut(), &qv);
    fill(k.as_flattened_mut().as_flattened_mut(), &kv);
    fill(v.as_flattened_mut().as_flattened_mut(), &vv);
    fill(g.as_flattened_mut().as_flattened_mut(), &gv);
    let (valid_keys, valid_queries) = ([4, 6], [5, 6]);
    let (out, lse) = padded(&q, &k, &v, &valid_keys, &valid_queries).unwrap();
    let (dq, dk, dv) =
        padded_backward(&q, &k, &v, &valid_keys, &valid_queries, &out, &lse, &g).unwrap();
    assert_eq!(dq[0][5], [0.0; 3], "a padding row");
    assert_eq!(
        (dk[0][4], dk[0][5], dv[0][5]),
        ([0.0; 3], [0.0; 3], [0.0; 2]),
        "padding keys"
    );
    let loss = |q: &[[[f64; 3]; 6]; 2], k: &[[[f64; 3]; 6]; 2], v: &[[[f64; 2]; 6]; 2]| {
        let (out, _) = padded(q, k, v, &valid_keys, &valid_queries).unwrap();
        out.as_flattened()
            .as_flattened()
            .iter()
            .zip(&gv)
            .map(|(o, g)| o * g)
            .sum::<f64>()
    };
    let numeric = [
        finite_differences(&mut qv.clone(), |x| {
            let mut q = q;
            fill(q.as_flattened_mut().as_flattened_mut(), x);
            loss(&q, &k, &v)
        }),
        finite_differences(&mut kv.clone(), |x| {
            let mut k = k;
            fill(k.as_flattened_mut().as_flattened_mut(), x);
            loss(&q, &k, &v)
        }),
        finite_differences(&mut vv.clone(), |x| {
            let mut v = v;
            fill(v.as_flattened_mut().as_flattened_mut(), x);
            loss(&q, &k, &v)
        }),
    ];
    let analytic = [
        dq.as_flattened().as_flattened().to_vec(),
        dk.as_flattened().as_flattened().to_vec(),
        dv.as_flattened().as_flattened().to_vec(),
    ];
    for (name, (analytic, numeric)) in ["dq", "dk", "dv"].iter().zip(analytic.iter().zip(&numeric))
    {
        let error = relative_error(analytic, numeric);
        eprintln!("{name}: {error:e} from the finite differences");
        assert!(
            error <= 1e-7,
            "{name}: {error:e} from the finite differences"
        );
    }
}

/// `n` random values that `T` holds exactly, as f32.
fn held<T>(rng: &mut Rng, n: usize, to: impl Fn(f32) -> T, back: impl Fn(T) -> f32) -> Vec<f32> {
    rng.values(n, 1.5)
        .into_iter()
        .map(|x| back(to(x)))
        .collect()
}

/// `values` in `T`, into `flat`.
fn store<T>(flat: &mut [T], values: &[f32], to: impl Fn(f32) -> T) {
    for (slot, &x) in flat.iter_mut().zip(values) {
        *slot = to(x);
    }
}

/// `values` as f32.
fn widen<T: Copy>(values: &[T], back: impl Fn(T) -> f32) -> Vec<f32> {
    values.iter().map(|&x| back(x)).collect()
}

#[test]
fn sixteen_bit_gradients_are_those_of_their_values_rounded_once() {
    // bf16, rank 4, causal.
    let mut rng = Rng::new(193);
    let (to, back) = (bf16::from_f32, bf16::to_f32);
    let (qv, kv, vv, gv) = (
        held(&mut rng, 1280, to, back),
        held(&mut rng, 1280, to, back),
        held(&mut rng, 1280, to, back),
        held(&mut rng, 1280, to, back),
    );
    let zero = bf16::ZERO;
    let (mut q, mut k, mut v, mut g) = (
        Box::new([[[[zero; 16]; 40]; 2]; 1]),
        Box::new([[[[zero; 16]; 40]; 2]; 1]),
        Box::new([[[[zero; 16]; 40]; 2]; 1]),
        Box::new([[[[zero; 16]; 40]; 2]; 1]),
    );
    for (array, values) in [(&mut q, &qv), (&mut k, &kv), (&mut v, &vv), (&mut g, &gv)] {
        store(
            array
                .as_flattened_mut()
                .as_flattened_mut()
                .as_flattened_mut(),
            values,
            to,
        );
    }
    let (out, lse) = brain(&q, &k, &v);
    let (dq, dk, dv) = brain_backward(&q, &k, &v, &out, &lse, &g);
    let problem = Problem::with_default_scale(2, 40, 40, 16, 16).masked(Mask::TopLeft);
    let reference = reference_gradients(&problem, &qv, &kv, &vv, &gv);
    let actual =
        [&dq, &dk, &dv].map(|x| widen(x.as_flattened().as_flattened().as_flattened(), back));
    assert_close("bf16", actual, &reference, 2f64.powi(-7));

    // f16, rank 3, valid lengths.
    let (to, back) = (f16::from_f32, f16::to_f32);
    let (qv, kv, vv, gv) = (
        held(&mut rng, 960, to, back),
        held(&mut rng, 1600, to, back),
        held(&mut rng, 800, to, back),
        held(&mut rng, 480, to, back),
    );
    let zero = f16::ZERO;
    let (mut q, mut k, mut v, mut g) = (
        [[[zero; 16]; 30]; 2],
        [[[zero; 16]; 50]; 2],
        [[[zero; 8]; 50]; 2],
        [[[zero; 8]; 30]; 2],
    );
    store(q.as_flattened_mut().as_flattened_mut(), &qv, to);
    store(k.as_flattened_mut().as_flattened_mut(), &kv, to);
    store(v.as_flattened_mut().as_flattened_mut(), &vv, to);
    store(g.as_flattened_mut().as_flattened_mut(), &gv, to);
    let valid = [37, 50];
    let (out, lse) = half(&q, &k, &v, &valid).unwrap();
    let (dq, dk, dv) = half_backward(&q, &k, &v, &valid, &out, &lse, &g).unwrap();
    let problem = Problem::with_default_scale(2, 30, 50, 16, 8).with_valid_keys(valid.to_vec());
    let reference = reference_gradients(&problem, &qv, &kv, &vv, &gv);
    let actual = [
        widen(dq.as_flattened().as_flattened(), back),
        widen(dk.as_flattened().as_flattened(), back),
        widen(dv.as_flattened().as_flattened(), back),
    ];
    assert_close("f16", actual, &reference, 2f64.powi(-10));
}

/// Each of `actual`'s dq, dk and dv within `tolerance` of `reference`'s, relative to 1 + its
/// largest value.
fn assert_close(what: &str, actual: [Vec<f32>; 3], reference: &Gradients, tolerance: f64) {
    let expected = [&reference.dq, &reference.dk, &reference.dv];
    for ((name, actual), expected) in ["dq", "dk", "dv"].iter().zip(actual).zip(expected) {
        let actual: Vec<f64> = actual.iter().map(|&x| x.into()).collect();
        let error = relative_error(&actual, expected);
        eprintln!("{what} {name}: {error:e}");
        assert!(error <= tolerance, "{what} {name}: {error:e}");
    }
}
