//! The `mask = [..]` and `bias = [..]` options, broadcast over the axes declared 1, and the
//! `return_weights` option, against the f64 reference on every instruction set.

use attn_runtime::simd::with_isa;
use attn_runtime::{Plan, Tensor, attention};
use attn_tests::{
    Mask, Problem, Rng, assert_accurate, assert_lse_accurate, assert_weights_accurate, expand,
};

attention! {
    /// A key-padding style mask, one per batch entry, broadcast over the heads; tiled, with
    /// several query blocks and a short last key block.
    #[attn(mask = [B, 1, Nq, Nk], return_weights, return_lse)]
    fn masked<q: [B, H, Nq, 16], k: [B, H, Nk, 16], v: [B, H, Nk, 8]>
    where B = 2, H = 3, Nq = 70, Nk = 130;

    /// A per-head bias (as ALiBi), broadcast over the batch, under a causal mask.
    #[attn(bias = [1, H, N, N], causal, return_weights)]
    fn biased_causal<q: [2, H, N, 24], k: [2, H, N, 24], v: [2, H, N, 24]>
    where H = 2, N = 67;

    /// Rank 3: a mask over the keys only and a bias over queries and keys, soft-capped, the
    /// key count left to the call.
    #[attn(mask = [B, 1, N], bias = [1, 5, N], softcap = 3.0)]
    fn both<q: [B, 5, 32], k: [B, N, 32], v: [B, N, 32]>
    where B = 3;

    /// The textbook shape with a mask: tiled, as the mask is known only at run time.
    #[attn(mask = [1, 2, 4], return_weights)]
    fn tiny_masked<q: [1, 2, 3], k: [1, 4, 3], v: [1, 4, 3]>;

    /// The textbook shape with its weights: unrolled.
    #[attn(return_weights, return_lse)]
    fn tiny<q: [1, 2, 3], k: [1, 4, 3], v: [1, 4, 3]>;

    /// A mask and a bias broadcast over the keys: a row attends to all keys or to none, and a
    /// per-row constant added to every score changes nothing.
    #[attn(mask = [B, Nq, 1], bias = [1, Nq, 1])]
    fn rows_only<q: [B, Nq, 8], k: [B, 70, 8], v: [B, 70, 8]> where B = 2, Nq = 9;

    /// Weights of a sliding window, tiled.
    #[attn(causal, window = 20, return_weights)]
    fn windowed<q: [1, 100, 16], k: [1, 100, 16], v: [1, 100, 16]>;
}

/// A keep-mask of `n` entries, mostly true, with whole rows false where `n` allows.
fn keep(rng: &mut Rng, n: usize) -> Vec<bool> {
    (0..n).map(|_| rng.below(4) != 0).collect()
}

#[test]
fn a_mask_broadcast_over_heads_hides_keys_and_weights_match() {
    let mut rng = Rng::new(11);
    let q = rng.tensor::<[[[[f32; 16]; 70]; 3]; 2]>(2.0);
    let k = rng.tensor::<[[[[f32; 16]; 130]; 3]; 2]>(2.0);
    let v = rng.tensor::<[[[[f32; 8]; 130]; 3]; 2]>(1.0);
    let mut mask = Box::new([[[[true; 130]; 70]; 1]; 2]);
    let flat = mask
        .as_flattened_mut()
        .as_flattened_mut()
        .as_flattened_mut();
    flat.copy_from_slice(&keep(&mut rng, flat.len()));
    // Row 5 of batch entry 1 attends to nothing: its output and weights are 0.
    mask[1][0][5] = [false; 130];
    let declared = mask.as_flattened().as_flattened().as_flattened().to_vec();
    let problem = Problem::with_default_scale(6, 70, 130, 16, 8).with_keep(expand(
        &declared,
        [2, 1, 70, 130],
        [2, 3, 70, 130],
    ));
    assert!(matches!(masked::INFO.plan, Plan::Tiled { .. }));
    for isa in attn_tests::instruction_sets() {
        let mut out = Tensor::<[[[[f32; 8]; 70]; 3]; 2]>::zeros();
        let mut weights = Tensor::<[[[[f32; 130]; 70]; 3]; 2]>::zeros();
        let mut lse = [[[0.0f32; 70]; 3]; 2];
        with_isa(isa, || {
            masked_into(&q, &k, &v, &mask, &mut out, &mut weights, &mut lse)
        })
        .unwrap();
        let what = format!("masked on {isa}");
        let (q, k, v) = (q.as_flat(), k.as_flat(), v.as_flat());
        assert_accurate(&what, &problem, q, k, v, out.as_flat());
        assert_weights_accurate(&what, &problem, q, k, weights.as_flat());
        assert_lse_accurate(&what, &problem, q, k, lse.as_flattened().as_flattened());
        for h in 0..3 {
            assert_eq!(out[1][h][5], [0.0; 8], "a fully masked row gives 0");
            assert_eq!(weights[1][h][5], [0.0; 130]);
            assert_eq!(lse[1][h][5], f32::NEG_INFINITY);
        }
    }
}

#[test]
fn a_bias_broadcast_over_the_batch_adds_to_the_scores_under_causal() {
    let mut rng = Rng::new(12);
    let q = rng.tensor::<[[[[f32; 24]; 67]; 2]; 2]>(1.0);
    let k = rng.tensor::<[[[[f32; 24]; 67]; 2]; 2]>(1.0);
    let v = rng.tensor::<[[[[f32; 24]; 67]; 2]; 2]>(1.0);
    // ALiBi: a slope per head times the distance to the key.
    let mut bias = [[[[0.0f32; 67]; 67]; 2]; 1];
    for (h, head) in bias[0].iter_mut().enumerate() {
        for (i, row) in head.iter_mut().enumerate() {
            for (j, b) in row.iter_mut().enumerate() {
                *b = -0.5 / (h + 1) as f32 * (i as f32 - j as f32).abs();
            }
        }
    }
    let declared = bias.as_flattened().as_flattened().as_flattened().to_vec();
    let problem = Problem::with_default_scale(4, 67, 67, 24, 24)
        .masked(Mask::TopLeft)
        .with_bias(expand(&declared, [1, 2, 67, 67], [2, 2, 67, 67]));
    for isa in attn_tests::instruction_sets() {
        let (out, weights) = with_isa(isa, || {
            let mut weights = Tensor::<[[[[f32; 67]; 67]; 2]; 2]>::zeros();
            let mut out = Tensor::<[[[[f32; 24]; 67]; 2]; 2]>::zeros();
            biased_causal_into(&q, &k, &v, &bias, &mut out, &mut weights);
            (out, weights)
        })
        .unwrap();
        let what = format!("biased_causal on {isa}");
        let (q, k, v) = (q.as_flat(), k.as_flat(), v.as_flat());
        assert_accurate(&what, &problem, q, k, v, out.as_flat());
        assert_weights_accurate(&what, &problem, q, k, weights.as_flat());
        for row in 0..67 {
            let sum: f32 = weights[1][1][row].iter().sum();
            assert!((sum - 1.0).abs() < 1e-5, "row {row} sums to {sum}");
            assert!(weights[1][1][row][row + 1..].iter().all(|&w| w == 0.0));
        }
    }
}

#[test]
fn a_mask_and_a_bias_combine_in_rank_3_with_a_soft_cap() {
    for keys in [1usize, 16, 77] {
        let mut rng = Rng::new(keys as u64);
        let q: Vec<f32> = rng.values(3 * 5 * 32, 3.0);
        let k: Vec<f32> = rng.values(3 * keys * 32, 3.0);
        let v: Vec<f32> = rng.values(3 * keys * 32, 1.0);
        let mask = keep(&mut rng, 3 * keys);
        let mut bias = rng.values(5 * keys, 2.0);
        // -inf masks a key as the mask does.
        bias[0] = f32::NEG_INFINITY;
        let problem = Problem::with_default_scale(3, 5, keys, 32, 32)
            .capped(3.0)
            .with_keep(expand(&mask, [3, 1, 1, keys], [3, 1, 5, keys]))
            .with_bias(expand(&bias, [1, 1, 5, keys], [3, 1, 5, keys]));
        macro_rules! run {
            ($($n:literal)*) => {
                match keys {
                    $($n => {
                        let q = Tensor::<[[[f32; 32]; 5]; 3]>::from_slice(&q).unwrap();
                        let k = Tensor::<[[[f32; 32]; $n]; 3]>::from_slice(&k).unwrap();
                        let v = Tensor::<[[[f32; 32]; $n]; 3]>::from_slice(&v).unwrap();
                        let mask: [[[bool; $n]; 1]; 3] = std::array::from_fn(|b| {
                            [std::array::from_fn(|j| mask[b * $n + j])]
                        });
                        let bias: [[[f32; $n]; 5]; 1] = [std::array::from_fn(|i| {
                            std::array::from_fn(|j| bias[i * $n + j])
                        })];
                        for isa in attn_tests::instruction_sets() {
                            let out = with_isa(isa, || both(&q, &k, &v, &mask, &bias)).unwrap();
                            let what = format!("both with {keys} keys on {isa}");
                            let flat = out.as_flattened().as_flattened();
                            assert_accurate(&what, &problem, q.as_flat(), k.as_flat(), v.as_flat(), flat);
                        }
                    })*
                    _ => unreachable!(),
                }
            };
        }
        run!(1 16 77);
    }
}

#[test]
fn weights_of_tiny_kernels_unrolled_and_tiled_agree_with_the_reference() {
    let (q, k, v) = attn_tests::textbook();
    assert_eq!(tiny::INFO.plan, Plan::Unrolled);
    assert!(matches!(tiny_masked::INFO.plan, Plan::Tiled { .. }));
    let flat = |x: &[[[f32; 3]; 4]; 1]| x.as_flattened().as_flattened().to_vec();
    let (qf, kf, vf) = (q.as_flattened().as_flattened(), flat(&k), flat(&v));
    let problem = Problem::with_default_scale(1, 2, 4, 3, 3);
    let (out, weights, lse) = tiny(&q, &k, &v);
    assert_accurate(
        "tiny",
        &problem,
        qf,
        &kf,
        &vf,
        out.as_flattened().as_flattened(),
    );
    assert_weights_accurate(
        "tiny",
        &problem,
        qf,
        &kf,
        weights.as_flattened().as_flattened(),
    );
    assert_lse_accurate("tiny", &problem, qf, &kf, lse.as_flattened());
    let mask = [[[true, false, true, true], [false; 4]]];
    let problem = problem.with_keep(mask.as_flattened().as_flattened().to_vec());
    for isa in attn_tests::instruction_sets() {
        let (out, weights) = with_isa(isa, || tiny_masked(&q, &k, &v, &mask)).unwrap();
        let what = format!("tiny_masked on {isa}");
        assert_accurate(
            &what,
            &problem,
            qf,
            &kf,
            &vf,
            out.as_flattened().as_flattened(),
        );
        assert_weights_accurate(
            &what,
            &problem,
            qf,
            &kf,
            weights.as_flattened().as_flattened(),
        );
        assert_eq!(weights[0][0][1], 0.0, "a masked key has weight 0");
        assert_eq!(out[0][1], [0.0; 3], "a row that attends to nothing gives 0");
    }
}

#[test]
fn weights_of_a_sliding_window_are_zero_outside_it() {
    let mut rng = Rng::new(5);
    let q: Vec<f32> = rng.values(100 * 16, 1.0);
    let k: Vec<f32> = rng.values(100 * 16, 1.0);
    let v: Vec<f32> = rng.values(100 * 16, 1.0);
    let problem = Problem::with_default_scale(1, 100, 100, 16, 16)
        .masked(Mask::TopLeft)
        .windowed(20);
    let q3 = Tensor::<[[[f32; 16]; 100]; 1]>::from_slice(&q).unwrap();
    let k3 = Tensor::<[[[f32; 16]; 100]; 1]>::from_slice(&k).unwrap();
    let v3 = Tensor::<[[[f32; 16]; 100]; 1]>::from_slice(&v).unwrap();
    for isa in attn_tests::instruction_sets() {
        let (out, weights) = with_isa(isa, || windowed(&q3, &k3, &v3)).unwrap();
        let what = format!("windowed on {isa}");
        assert_accurate(
            &what,
            &problem,
            &q,
            &k,
            &v,
            out.as_flattened().as_flattened(),
        );
        assert_weights_accurate(
            &what,
            &problem,
            &q,
            &k,
            weights.as_flattened().as_flattened(),
        );
        for (i, row) in weights[0].iter().enumerate() {
            let from = (i + 1).saturating_sub(20);
            assert!(row[..from].iter().chain(&row[i + 1..]).all(|&w| w == 0.0));
        }
    }
}

#[test]
fn a_nan_or_plus_infinite_bias_gives_nan_in_its_row_only() {
    let q = [[[0.5f32; 32]; 5]; 3];
    let k = [[[0.25f32; 32]; 4]; 3];
    let v = [[[1.0f32; 32]; 4]; 3];
    let mask = [[[true; 4]; 1]; 3];
    let mut bias = [[[0.0f32; 4]; 5]; 1];
    bias[0][1][2] = f32::NAN;
    bias[0][3][0] = f32::INFINITY;
    for isa in attn_tests::instruction_sets() {
        let out = with_isa(isa, || both(&q, &k, &v, &mask, &bias)).unwrap();
        for entry in &out {
            for (i, row) in entry.iter().enumerate() {
                if i == 1 || i == 3 {
                    assert!(row.iter().all(|x| x.is_nan()), "{isa}: row {i} is NaN");
                } else {
                    assert!(
                        row.iter().all(|&x| (x - 1.0).abs() < 1e-6),
                        "{isa}: row {i}"
                    );
                }
            }
        }
    }
}

#[test]
fn a_mask_or_bias_broadcast_over_the_keys_acts_on_whole_rows() {
    let mut rng = Rng::new(13);
    let q = rng.tensor::<[[[f32; 8]; 9]; 2]>(1.0);
    let k = rng.tensor::<[[[f32; 8]; 70]; 2]>(1.0);
    let v = rng.tensor::<[[[f32; 8]; 70]; 2]>(1.0);
    let mask: [[[bool; 1]; 9]; 2] =
        std::array::from_fn(|b| std::array::from_fn(|i| [(b + i) % 3 != 0]));
    let bias: [[[f32; 1]; 9]; 1] = [std::array::from_fn(|i| [i as f32 * 100.0])];
    let keep = expand(
        mask.as_flattened().as_flattened(),
        [2, 1, 9, 1],
        [2, 1, 9, 70],
    );
    let bias_full = expand(
        bias.as_flattened().as_flattened(),
        [1, 1, 9, 1],
        [2, 1, 9, 70],
    );
    let problem = Problem::with_default_scale(2, 9, 70, 8, 8)
        .with_keep(keep)
        .with_bias(bias_full);
    for isa in attn_tests::instruction_sets() {
        let out = with_isa(isa, || rows_only(&q, &k, &v, &mask, &bias)).unwrap();
        let what = format!("rows_only on {isa}");
        assert_accurate(
            &what,
            &problem,
            q.as_flat(),
            k.as_flat(),
            v.as_flat(),
            out.as_flattened().as_flattened(),
        );
        assert_eq!(
            out[0][0], [0.0; 8],
            "a row whose one mask entry is false gives 0"
        );
    }
}
