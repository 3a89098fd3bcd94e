//! The log-sum-exp each kernel with `return_lse` returns beside its output, on both plans,
//! with masks and padding, on every instruction set.

use attn_runtime::simd::with_isa;
use attn_runtime::{Plan, Tensor, attention};
use attn_tests::{Mask, Problem, Rng, assert_accurate, assert_lse_accurate};

attention! {
    /// Tiled.
    #[attn(return_lse)]
    fn tiled<q: [2, 70, 16], k: [2, 130, 16], v: [2, 130, 8]>;
    /// Unrolled.
    #[attn(return_lse)]
    fn small<q: [1, 2, 3], k: [1, 4, 3], v: [1, 4, 3]>;
    /// Rank 4, causal, padded: some rows see no key.
    #[attn(return_lse, valid_lengths, causal(bottom_right))]
    fn masked<q: [2, 2, 6, 8], k: [2, 2, 10, 8], v: [2, 2, 10, 8]>;
}

#[test]
fn the_log_sum_exp_of_each_row() {
    let mut rng = Rng::new(70);
    let (q, k, v) = (
        rng.values(2 * 70 * 16, 1.0),
        rng.values(2 * 130 * 16, 1.0),
        rng.values(2 * 130 * 8, 1.0),
    );
    let q = Tensor::<[[[f32; 16]; 70]; 2]>::from_vec(q).unwrap();
    let k = Tensor::<[[[f32; 16]; 130]; 2]>::from_vec(k).unwrap();
    let v = Tensor::<[[[f32; 8]; 130]; 2]>::from_vec(v).unwrap();
    let problem = Problem::with_default_scale(2, 70, 130, 16, 8);
    for isa in attn_tests::instruction_sets() {
        let mut out = Tensor::<[[[f32; 8]; 70]; 2]>::zeros();
        let mut lse = [[0.0f32; 70]; 2];
        with_isa(isa, || tiled_into(&q, &k, &v, &mut out, &mut lse)).unwrap();
        let what = format!("tiled on {isa}");
        assert_accurate(
            &what,
            &problem,
            q.as_flat(),
            k.as_flat(),
            v.as_flat(),
            out.as_flat(),
        );
        assert_lse_accurate(
            &what,
            &problem,
            q.as_flat(),
            k.as_flat(),
            lse.as_flattened(),
        );
    }

    let q = [[[0.3, -0.2, 0.1], [1.0, 2.0, -1.0]]];
    let kv = [[
        [0.5, 0.1, -0.3],
        [0.2, 0.2, 0.2],
        [-1.0, 0.0, 1.0],
        [0.7, -0.7, 0.0],
    ]];
    let (out, lse) = small(&q, &kv, &kv);
    let problem = Problem::with_default_scale(1, 2, 4, 3, 3);
    let flat = |x: &[[f32; 3]]| x.iter().flatten().copied().collect::<Vec<_>>();
    assert_accurate(
        "small",
        &problem,
        &flat(&q[0]),
        &flat(&kv[0]),
        &flat(&kv[0]),
        &flat(&out[0]),
    );
    assert_lse_accurate(
        "small",
        &problem,
        &flat(&q[0]),
        &flat(&kv[0]),
        lse.as_flattened(),
    );
    assert_eq!(small::INFO.plan, Plan::Unrolled);
}

#[test]
fn rows_that_see_no_key_have_a_log_sum_exp_of_minus_infinity() {
    let mut rng = Rng::new(71);
    let q = rng.tensor::<[[[[f32; 8]; 6]; 2]; 2]>(1.0);
    let k = rng.tensor::<[[[[f32; 8]; 10]; 2]; 2]>(1.0);
    let v = rng.tensor::<[[[[f32; 8]; 10]; 2]; 2]>(1.0);
    // Entry 0 has 3 valid keys: with the 6 queries aligned to the last of them, queries 0..3
    // see none. Entry 1 has all 10.
    let valid = [3, 10];
    let problem = Problem::with_default_scale(4, 6, 10, 8, 8)
        .masked(Mask::BottomRight)
        .with_valid_keys(vec![3, 3, 10, 10]);
    for isa in attn_tests::instruction_sets() {
        let (out, lse) = with_isa(isa, || masked(&q, &k, &v, &valid))
            .unwrap()
            .unwrap();
        assert_eq!(lse[0][0][..3], [f32::NEG_INFINITY; 3], "{isa}");
        let what = format!("masked on {isa}");
        let out: Vec<f32> = out.iter().flatten().flatten().flatten().copied().collect();
        assert_accurate(&what, &problem, q.as_flat(), k.as_flat(), v.as_flat(), &out);
        let lse: Vec<f32> = lse.iter().flatten().flatten().copied().collect();
        assert_lse_accurate(&what, &problem, q.as_flat(), k.as_flat(), &lse);
    }
}
