//! The edge cases of docs/DESIGN.md section 6, on both plans: NaN reaches exactly the rows it
//! touches, a score of +inf gives NaN, large finite scores do not overflow, zero keys give 0.

use attn_runtime::simd::with_isa;
use attn_runtime::threads::with_threads;
use attn_runtime::{Plan, Tensor, attention};
use attn_tests::Rng;

attention! {
    /// Unrolled: every size known and small.
    fn unrolled<q: [1, 3, 4], k: [1, 5, 4], v: [1, 5, 2]>;
    /// Tiled: the key count left to the call.
    fn tiled<q: [1, 3, 4], k: [1, N, 4], v: [1, N, 2]>;
    /// Soft-capped, unrolled and tiled.
    #[attn(softcap = 5.0)]
    fn capped_unrolled<q: [1, 3, 4], k: [1, 5, 4], v: [1, 5, 2]>;
    #[attn(softcap = 5.0)]
    fn capped_tiled<q: [1, 3, 4], k: [1, N, 4], v: [1, N, 2]>;
    /// Any number of query rows over 517 keys: rows land in different tiles, blocks and
    /// threads' shares as the count changes.
    fn rows<q: [1, Nq, 40], k: [1, 517, 40], v: [1, 517, 24]>;
    /// Two problems in a row, their last key block partly filled.
    fn two_problems<q: [2, Nq, 40], k: [2, 517, 40], v: [2, 517, 24]>;
}

type Q = [[[f32; 4]; 3]; 1];
type K = [[[f32; 4]; 5]; 1];
type V = [[[f32; 2]; 5]; 1];
type Out = [[[f32; 2]; 3]; 1];

fn inputs() -> (Q, K, V) {
    let mut q = [[[0.0; 4]; 3]; 1];
    let mut k = [[[0.0; 4]; 5]; 1];
    let mut v = [[[0.0; 2]; 5]; 1];
    for (i, row) in q[0].iter_mut().enumerate() {
        *row = [0.1 * i as f32, 0.2, -0.3, 0.4];
    }
    for (j, row) in k[0].iter_mut().enumerate() {
        *row = [0.5, -0.1 * j as f32, 0.3, 0.2];
    }
    for (j, row) in v[0].iter_mut().enumerate() {
        *row = [j as f32, 1.0 - j as f32];
    }
    (q, k, v)
}

/// Both plans on the same input: they must agree on which outputs are NaN, and on the rest.
fn both(q: &Q, k: &K, v: &V) -> Out {
    assert_eq!(unrolled::INFO.plan, Plan::Unrolled);
    assert!(matches!(tiled::info::<5>().plan, Plan::Tiled { .. }));
    let a = unrolled(q, k, v);
    for isa in attn_tests::instruction_sets() {
        let b = with_isa(isa, || tiled(q, k, v)).expect("a supported instruction set");
        let pairs = a
            .iter()
            .flatten()
            .flatten()
            .zip(b.iter().flatten().flatten());
        for (x, y) in pairs {
            assert_eq!(
                x.is_nan(),
                y.is_nan(),
                "the plans disagree on NaN ({isa}): {a:?} {b:?}"
            );
            if !x.is_nan() {
                assert!(
                    (x - y).abs() <= 1e-6 * (1.0 + x.abs()),
                    "{isa}: {a:?} {b:?}"
                );
            }
        }
    }
    a
}

fn row_is_nan(out: &Out, i: usize) -> bool {
    out[0][i].iter().all(|x| x.is_nan())
}

fn row_is_finite(out: &Out, i: usize) -> bool {
    out[0][i].iter().all(|x| x.is_finite())
}

#[test]
fn a_nan_query_reaches_only_its_row() {
    let (mut q, k, v) = inputs();
    q[0][1][2] = f32::NAN;
    let out = both(&q, &k, &v);
    assert!(row_is_nan(&out, 1));
    assert!(row_is_finite(&out, 0) && row_is_finite(&out, 2));
}

#[test]
fn a_nan_key_reaches_every_row() {
    let (q, mut k, v) = inputs();
    k[0][3][0] = f32::NAN;
    let out = both(&q, &k, &v);
    assert!((0..3).all(|i| row_is_nan(&out, i)));
}

#[test]
fn a_nan_value_reaches_its_column_in_every_row() {
    let (q, k, mut v) = inputs();
    v[0][2][1] = f32::NAN;
    let out = both(&q, &k, &v);
    for i in 0..3 {
        assert!(out[0][i][1].is_nan() && out[0][i][0].is_finite(), "{out:?}");
    }
}

#[test]
fn a_score_of_plus_infinity_gives_nan_in_its_row() {
    let (mut q, k, v) = inputs();
    // k's first column is 0.5 for every key, so every score of this row is +inf.
    q[0][0] = [f32::INFINITY, 0.0, 0.0, 0.0];
    let out = both(&q, &k, &v);
    assert!(row_is_nan(&out, 0));
    assert!(row_is_finite(&out, 1) && row_is_finite(&out, 2));
}

#[test]
fn large_finite_scores_give_the_softmax_limit() {
    let (mut q, k, v) = inputs();
    // Scores of 1e29 and more, finite and far apart: exp would overflow without the max
    // subtracted. Key j scores (0.5 + 0.1 j) · 1e30 / 2, so key 4 takes all the weight.
    q[0][0] = [1e30, -1e30, 0.0, 0.0];
    let out = both(&q, &k, &v);
    assert_eq!(
        out[0][0],
        [4.0, -3.0],
        "all weight on key 4, whose value is [4, -3]"
    );
}

#[test]
fn zero_keys_give_zeros() {
    let q = [[[1.0f32; 4]; 3]; 1];
    let out = tiled::<0>(&q, &[[]], &[[]]);
    assert_eq!(out, [[[0.0; 2]; 3]; 1]);
}

#[test]
fn results_are_deterministic() {
    // Seven queries as a kernel of their own (rows 0-5 one tile, row 6 another), and as rows
    // 301..308 of a 600-row kernel (other places in their tiles, another block, and on two
    // threads near where the shares meet), on every instruction set: the same bits.
    let mut rng = Rng::new(5);
    let k = rng.tensor::<[[[f32; 40]; 517]; 1]>(1.0);
    let v = rng.tensor::<[[[f32; 24]; 517]; 1]>(1.0);
    let long_q = rng.tensor::<[[[f32; 40]; 600]; 1]>(1.0);
    let short_q =
        Tensor::<[[[f32; 40]; 7]; 1]>::from_slice(long_q[0][301..308].as_flattened()).unwrap();
    for isa in attn_tests::instruction_sets() {
        let mut short = Tensor::<[[[f32; 24]; 7]; 1]>::zeros();
        with_isa(isa, || rows_into(&short_q, &k, &v, &mut short)).unwrap();
        for threads in [1, 2] {
            let mut long = Tensor::<[[[f32; 24]; 600]; 1]>::zeros();
            with_threads(threads, || {
                with_isa(isa, || rows_into(&long_q, &k, &v, &mut long)).unwrap();
            });
            assert!(
                long[0][301..308] == short[0],
                "{isa}, {threads} threads: a row's result depends on where it is computed"
            );
        }
    }
}

#[test]
fn a_problem_after_one_with_nan_and_infinities_is_untouched_by_it() {
    // One thread walks problem 0, then problem 1, in one scratch (packed keys and values, a
    // tile of scores): what problem 0 left there must not reach problem 1, with one query
    // row (keys and values read as stored) and with two tiles of rows (packed).
    fn check<const NQ: usize>() {
        let mut rng = Rng::new(11);
        let q = rng.tensor::<[[[f32; 40]; NQ]; 2]>(1.0);
        let clean_k = rng.tensor::<[[[f32; 40]; 517]; 2]>(1.0);
        let clean_v = rng.tensor::<[[[f32; 24]; 517]; 2]>(1.0);
        let (mut k, mut v) = (clean_k.clone(), clean_v.clone());
        for (j, (key, value)) in k[0].iter_mut().zip(v[0].iter_mut()).enumerate() {
            let bad = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY][j % 3];
            *key = [bad; 40];
            *value = [bad; 24];
        }
        for isa in attn_tests::instruction_sets() {
            let run = |k, v| {
                let mut out = Tensor::<[[[f32; 24]; NQ]; 2]>::zeros();
                with_threads(1, || {
                    with_isa(isa, || two_problems_into(&q, k, v, &mut out)).unwrap();
                });
                out
            };
            let (clean, after_bad) = (run(&clean_k, &clean_v), run(&k, &v));
            assert!(after_bad[0].as_flattened().iter().all(|x| x.is_nan()));
            assert!(clean[1].as_flattened().iter().all(|x| x.is_finite()));
            assert!(
                after_bad[1] == clean[1],
                "{isa}, {NQ} queries: problem 0 reached problem 1"
            );
        }
    }
    check::<1>();
    check::<12>();
}

#[test]
fn a_nan_in_a_long_sequence_reaches_every_row() {
    let q = Tensor::<[[[f32; 4]; 3]; 1]>::from_vec(vec![0.1; 12]).unwrap();
    let mut k = Tensor::<[[[f32; 4]; 1000]; 1]>::from_vec(vec![0.2; 4000]).unwrap();
    let v = Tensor::<[[[f32; 2]; 1000]; 1]>::from_vec(vec![1.0; 2000]).unwrap();
    k[0][777][3] = f32::NAN;
    let mut out = Tensor::<[[[f32; 2]; 3]; 1]>::zeros();
    tiled_into(&q, &k, &v, &mut out);
    assert!(out.as_flat().iter().all(|x| x.is_nan()));
}

#[test]
fn with_a_soft_cap_infinite_scores_become_the_cap() {
    let (mut q, k, v) = inputs();
    // Every score of row 0 is +inf, capped to 5: all keys tie, the output is the values' mean.
    q[0][0] = [f32::INFINITY, 0.0, 0.0, 0.0];
    let mean = [2.0, -1.0];
    let unrolled = capped_unrolled(&q, &k, &v);
    assert_eq!(unrolled[0][0], mean);
    for isa in attn_tests::instruction_sets() {
        let tiled = with_isa(isa, || capped_tiled(&q, &k, &v)).unwrap();
        assert!(
            tiled[0][0]
                .iter()
                .zip(mean)
                .all(|(x, m)| (x - m).abs() < 1e-6),
            "{isa}: {tiled:?}"
        );
        assert!(row_is_finite(&tiled, 1) && row_is_finite(&tiled, 2));
    }
}
