//! The backward pass (`#[attn(backward)]`): the gradients of q, k and v against an f64
//! reference of the attention's derivative, for every option and both plans of the forward,
//! on every instruction set; f64 kernels against finite differences of their own forward;
//! the same bits on any number of threads; NaN, rows that see no key, and outputs that held
//! anything.

use attn_runtime::simd::{Isa, with_isa};
use attn_runtime::threads::with_threads;
use attn_runtime::{Array, Tensor, ValidLengthError, attention};
use attn_tests::{
    Mask, Problem, Rng, assert_gradients_within, expand, naive_gradients_f32, reference_gradients,
    repeat_heads, sum_groups,
};

attention! {
    /// Tiled: tiles and key blocks with tails.
    #[attn(backward)]
    fn tiled<q: [2, 70, 16], k: [2, 130, 16], v: [2, 130, 8]>;
    /// Unrolled forward (the textbook example's shape).
    #[attn(backward)]
    fn small<q: [1, 2, 3], k: [1, 4, 3], v: [1, 4, 3]>;
    /// Causal and square, with a scale.
    #[attn(backward, causal, scale = 0.3)]
    fn causal_square<q: [2, 50, 16], k: [2, 50, 16], v: [2, 50, 8]>;
    /// Causal from the top left, fewer queries than keys.
    #[attn(backward, causal(top_left))]
    fn top_left<q: [1, 2, 40, 24], k: [1, 2, 70, 24], v: [1, 2, 70, 16]>;
    /// Causal from the bottom right with more queries than keys: the first 30 rows see no key.
    #[attn(backward, causal(bottom_right))]
    fn bottom_right<q: [1, 2, 70, 24], k: [1, 2, 40, 24], v: [1, 2, 40, 16]>;
    /// A sliding window.
    #[attn(backward, causal(bottom_right), window = 20)]
    fn windowed<q: [1, 2, 50, 16], k: [1, 2, 90, 16], v: [1, 2, 90, 16]>;
    /// A soft cap that bends most scores.
    #[attn(backward, softcap = 2.0)]
    fn capped<q: [1, 30, 16], k: [1, 80, 16], v: [1, 80, 8]>;
    /// A mask broadcast over the heads, a bias over the batch, and a soft cap.
    #[attn(backward, mask = [2, 1, 30, 80], bias = [1, 2, 30, 80], softcap = 4.0)]
    fn masked<q: [2, 2, 30, 16], k: [2, 2, 80, 16], v: [2, 2, 80, 8]>;
    /// Valid keys and queries.
    #[attn(backward, valid_lengths, valid_queries)]
    fn padded<q: [2, 20, 16], k: [2, 90, 16], v: [2, 90, 8]>;
    /// Valid keys under a causal mask aligned bottom right.
    #[attn(backward, valid_lengths, causal(bottom_right))]
    fn padded_causal<q: [2, 2, 12, 16], k: [2, 2, 70, 16], v: [2, 2, 70, 16]>;
    /// Three query heads for each key/value head.
    #[attn(backward)]
    fn grouped<q: [2, 6, 20, 16], k: [2, 2, 50, 16], v: [2, 2, 50, 8]>;
    /// Grouped, causal, the heads and the keys left to the call.
    /// Three tiles of query rows per head, two heads a group: a pair of tiles spans two
    /// query heads.
    #[attn(backward)]
    fn grouped_odd<q: [1, 4, 15, 16], k: [1, 2, 40, 16], v: [1, 2, 40, 8]>;
    #[attn(backward, causal(bottom_right))]
    fn grouped_generic<q: [1, Hq, 20, 16], k: [1, Hkv, N, 16], v: [1, Hkv, N, 16]>;
    /// Every size left to the call.
    #[attn(backward)]
    fn any_shape<q: [B, Nq, D], k: [B, Nk, D], v: [B, Nk, Dv]>;
    /// Keys in three chunks, whose shares of the queries' gradient are summed.
    #[attn(backward, causal(bottom_right))]
    fn long<q: [1, 2, 20, 16], k: [1, 2, 1100, 16], v: [1, 2, 1100, 16]>;
    /// Enough work for threads: three chunks of keys, two query heads sharing them.
    #[attn(backward, causal(bottom_right))]
    fn split<q: [1, 2, 60, 32], k: [1, 1, 1500, 32], v: [1, 1, 1500, 32]>;
    /// Many problems of one chunk each, shared among threads whole.
    #[attn(backward, mask = [4, 1, 64, 64])]
    fn many<q: [4, 4, 64, 32], k: [4, 4, 64, 32], v: [4, 4, 64, 32]>;
}

/// How the kernel's key/value heads relate to the reference's: `group` query heads share
/// each of `kv_heads` heads in each of `batch` entries (a group of 1: no grouping, the
/// other counts unused).
#[derive(Clone, Copy)]
struct Heads {
    batch: usize,
    kv_heads: usize,
    group: usize,
}

const UNGROUPED: Heads = Heads {
    batch: 1,
    kv_heads: 1,
    group: 1,
};

/// Runs `run` (a forward and its backward into the three gradients) on every instruction
/// set, each time into gradients full of NaN, and holds them to the reference of `problem`
/// with `d_out`. `q`, `k` and `v` are the kernel's inputs, flat. Returns each instruction
/// set's gradients.
fn check_on_every_isa<Q: Array<Element = f32>, K: Array<Element = f32>, V: Array<Element = f32>>(
    what: &str,
    problem: &Problem,
    heads: Heads,
    [q, k, v, d_out]: [&[f32]; 4],
    run: impl Fn(&mut Tensor<Q>, &mut Tensor<K>, &mut Tensor<V>),
) -> Vec<(Isa, [Vec<f32>; 3])> {
    let Heads {
        batch,
        kv_heads,
        group,
    } = heads;
    let repeat = |x: &[f32], depth| match group {
        1 => x.to_vec(),
        _ => repeat_heads(x, batch, kv_heads, group, problem.keys * depth),
    };
    let (k_ref, v_ref) = (repeat(k, problem.depth), repeat(v, problem.value_depth));
    let summed = |g: attn_tests::Gradients| match group {
        1 => g,
        _ => attn_tests::Gradients {
            dk: sum_groups(&g.dk, batch, kv_heads, group, problem.keys * problem.depth),
            dv: sum_groups(
                &g.dv,
                batch,
                kv_heads,
                group,
                problem.keys * problem.value_depth,
            ),
            dq: g.dq,
        },
    };
    let reference = summed(reference_gradients(problem, q, &k_ref, &v_ref, d_out));
    let naive = summed(naive_gradients_f32(problem, q, &k_ref, &v_ref, d_out));
    attn_tests::instruction_sets()
        .map(|isa| {
            let nan = |len| vec![f32::NAN; len];
            let mut dq = Tensor::<Q>::from_vec(nan(Q::LEN)).unwrap();
            let mut dk = Tensor::<K>::from_vec(nan(K::LEN)).unwrap();
            let mut dv = Tensor::<V>::from_vec(nan(V::LEN)).unwrap();
            with_isa(isa, || run(&mut dq, &mut dk, &mut dv)).unwrap();
            let actual = [dq.as_flat(), dk.as_flat(), dv.as_flat()];
            let errors =
                assert_gradients_within(&format!("{what} on {isa}"), &reference, &naive, actual);
            eprintln!("{what} on {isa}: (error, naive f32 error) of dq, dk, dv: {errors:?}");
            (isa, actual.map(<[f32]>::to_vec))
        })
        .collect()
}

#[test]
fn gradients_of_a_tiled_kernel() {
    let mut rng = Rng::new(170);
    let q = rng.tensor::<[[[f32; 16]; 70]; 2]>(1.0);
    let k = rng.tensor::<[[[f32; 16]; 130]; 2]>(1.0);
    let v = rng.tensor::<[[[f32; 8]; 130]; 2]>(1.0);
    let d_out = rng.tensor::<[[[f32; 8]; 70]; 2]>(1.0);
    let problem = Problem::with_default_scale(2, 70, 130, 16, 8);
    let inputs = [q.as_flat(), k.as_flat(), v.as_flat(), d_out.as_flat()];
    check_on_every_isa("tiled", &problem, UNGROUPED, inputs, |dq, dk, dv| {
        let mut out = Tensor::<[[[f32; 8]; 70]; 2]>::zeros();
        let mut lse = [[0.0f32; 70]; 2];
        tiled_into(&q, &k, &v, &mut out, &mut lse);
        tiled_backward_into(&q, &k, &v, &out, &lse, &d_out, dq, dk, dv);
    });
}

#[test]
fn gradients_of_an_unrolled_kernel() {
    let (q, k, v) = attn_tests::textbook();
    let d_out = [[[1.0, -2.0, 0.5], [0.25, 1.0, -1.0]]];
    let problem = Problem::with_default_scale(1, 2, 4, 3, 3);
    let flat = |x: &[[[f32; 3]; 2]; 1]| x.as_flattened().as_flattened().to_vec();
    let inputs = [
        &flat(&q)[..],
        k.as_flattened().as_flattened(),
        v.as_flattened().as_flattened(),
        &flat(&d_out)[..],
    ];
    check_on_every_isa("small", &problem, UNGROUPED, inputs, |dq, dk, dv| {
        let (out, lse) = small(&q, &k, &v);
        small_backward_into(&q, &k, &v, &out, &lse, &d_out, dq, dk, dv);
    });
}

/// Random q, k, v and d_out of the shapes `Q`, `K`, `V` and `O`, of `magnitude` (d_out of 1).
fn inputs<
    Q: Array<Element = f32>,
    K: Array<Element = f32>,
    V: Array<Element = f32>,
    O: Array<Element = f32>,
>(
    seed: u64,
    magnitude: f32,
) -> (Tensor<Q>, Tensor<K>, Tensor<V>, Tensor<O>) {
    let mut rng = Rng::new(seed);
    (
        rng.tensor(magnitude),
        rng.tensor(magnitude),
        rng.tensor(1.0),
        rng.tensor(1.0),
    )
}

#[test]
fn gradients_under_causal_masks_and_windows() {
    let (q, k, v, d_out) = inputs::<
        [[[f32; 16]; 50]; 2],
        [[[f32; 16]; 50]; 2],
        [[[f32; 8]; 50]; 2],
        [[[f32; 8]; 50]; 2],
    >(171, 1.0);
    let mut problem = Problem::with_default_scale(2, 50, 50, 16, 8).masked(Mask::TopLeft);
    problem.scale = 0.3;
    let flat = [q.as_flat(), k.as_flat(), v.as_flat(), d_out.as_flat()];
    check_on_every_isa("causal_square", &problem, UNGROUPED, flat, |dq, dk, dv| {
        let (out, lse) = causal_square(&q, &k, &v);
        causal_square_backward_into(&q, &k, &v, &out, &lse, &d_out, dq, dk, dv);
    });

    let (q, k, v, d_out) = inputs::<
        [[[[f32; 24]; 40]; 2]; 1],
        [[[[f32; 24]; 70]; 2]; 1],
        [[[[f32; 16]; 70]; 2]; 1],
        [[[[f32; 16]; 40]; 2]; 1],
    >(172, 1.0);
    let problem = Problem::with_default_scale(2, 40, 70, 24, 16).masked(Mask::TopLeft);
    let flat = [q.as_flat(), k.as_flat(), v.as_flat(), d_out.as_flat()];
    check_on_every_isa("top_left", &problem, UNGROUPED, flat, |dq, dk, dv| {
        let (out, lse) = top_left(&q, &k, &v);
        top_left_backward_into(&q, &k, &v, &out, &lse, &d_out, dq, dk, dv);
    });

    let (q, k, v, d_out) = inputs::<
        [[[[f32; 24]; 70]; 2]; 1],
        [[[[f32; 24]; 40]; 2]; 1],
        [[[[f32; 16]; 40]; 2]; 1],
        [[[[f32; 16]; 70]; 2]; 1],
    >(173, 1.0);
    let problem = Problem::with_default_scale(2, 70, 40, 24, 16).masked(Mask::BottomRight);
    let flat = [q.as_flat(), k.as_flat(), v.as_flat(), d_out.as_flat()];
    let gradients = check_on_every_isa("bottom_right", &problem, UNGROUPED, flat, |dq, dk, dv| {
        let (out, lse) = bottom_right(&q, &k, &v);
        bottom_right_backward_into(&q, &k, &v, &out, &lse, &d_out, dq, dk, dv);
    });
    // The rows that see no key contribute nothing, and their own gradient is 0.
    for (isa, [dq, ..]) in &gradients {
        for head in dq.chunks_exact(70 * 24) {
            assert!(head[..30 * 24].iter().all(|&x| x == 0.0), "{isa}");
        }
    }

    let (q, k, v, d_out) = inputs::<
        [[[[f32; 16]; 50]; 2]; 1],
        [[[[f32; 16]; 90]; 2]; 1],
        [[[[f32; 16]; 90]; 2]; 1],
        [[[[f32; 16]; 50]; 2]; 1],
    >(174, 1.0);
    let problem = Problem::with_default_scale(2, 50, 90, 16, 16)
        .masked(Mask::BottomRight)
        .windowed(20);
    let flat = [q.as_flat(), k.as_flat(), v.as_flat(), d_out.as_flat()];
    check_on_every_isa("windowed", &problem, UNGROUPED, flat, |dq, dk, dv| {
        let (out, lse) = windowed(&q, &k, &v);
        windowed_backward_into(&q, &k, &v, &out, &lse, &d_out, dq, dk, dv);
    });
}

#[test]
fn gradients_through_a_soft_cap_a_mask_and_a_bias() {
    // Scores up to about 16 / sqrt(16) · 9 = 36: the cap of 2 bends nearly all of them.
    let (q, k, v, d_out) = inputs::<
        [[[f32; 16]; 30]; 1],
        [[[f32; 16]; 80]; 1],
        [[[f32; 8]; 80]; 1],
        [[[f32; 8]; 30]; 1],
    >(175, 3.0);
    let problem = Problem::with_default_scale(1, 30, 80, 16, 8).capped(2.0);
    let flat = [q.as_flat(), k.as_flat(), v.as_flat(), d_out.as_flat()];
    check_on_every_isa("capped", &problem, UNGROUPED, flat, |dq, dk, dv| {
        let (out, lse) = capped(&q, &k, &v);
        capped_backward_into(&q, &k, &v, &out, &lse, &d_out, dq, dk, dv);
    });

    let (q, k, v, d_out) = inputs::<
        [[[[f32; 16]; 30]; 2]; 2],
        [[[[f32; 16]; 80]; 2]; 2],
        [[[[f32; 8]; 80]; 2]; 2],
        [[[[f32; 8]; 30]; 2]; 2],
    >(176, 2.0);
    let mut rng = Rng::new(177);
    let mut mask = Box::new([[[[true; 80]; 30]; 1]; 2]);
    let mut bias = Box::new([[[[0.0f32; 80]; 30]; 2]; 1]);
    let flat_mask = mask
        .as_flattened_mut()
        .as_flattened_mut()
        .as_flattened_mut();
    // Every fourth key hidden, and all of row 7's in the first batch entry.
    for (i, keep) in flat_mask.iter_mut().enumerate() {
        *keep = rng.below(4) != 0 && !(7 * 80..8 * 80).contains(&i);
    }
    for b in bias
        .as_flattened_mut()
        .as_flattened_mut()
        .as_flattened_mut()
    {
        *b = rng.uniform(1.0);
    }
    let problem = Problem::with_default_scale(4, 30, 80, 16, 8)
        .capped(4.0)
        .with_keep(expand(
            mask.as_flattened().as_flattened().as_flattened(),
            [2, 1, 30, 80],
            [2, 2, 30, 80],
        ))
        .with_bias(expand(
            bias.as_flattened().as_flattened().as_flattened(),
            [1, 2, 30, 80],
            [2, 2, 30, 80],
        ));
    let flat = [q.as_flat(), k.as_flat(), v.as_flat(), d_out.as_flat()];
    check_on_every_isa("masked", &problem, UNGROUPED, flat, |dq, dk, dv| {
        let (out, lse) = masked(&q, &k, &v, &mask, &bias);
        masked_backward_into(&q, &k, &v, &mask, &bias, &out, &lse, &d_out, dq, dk, dv);
    });
}

#[test]
fn gradients_of_valid_keys_and_queries() {
    let (q, k, v, mut d_out) = inputs::<
        [[[f32; 16]; 20]; 2],
        [[[f32; 16]; 90]; 2],
        [[[f32; 8]; 90]; 2],
        [[[f32; 8]; 20]; 2],
    >(178, 1.0);
    let (valid_keys, valid_queries) = ([70, 90], [13, 20]);
    let problem =
        Problem::with_default_scale(2, 20, 90, 16, 8).with_valid_keys(valid_keys.to_vec());
    // Rows past the valid queries contribute nothing: as if their d_out were 0.
    let mut d_out_valid = d_out.clone();
    d_out_valid[0][13..].fill([0.0; 8]);
    let flat = [q.as_flat(), k.as_flat(), v.as_flat(), d_out_valid.as_flat()];
    let gradients = check_on_every_isa("padded", &problem, UNGROUPED, flat, |dq, dk, dv| {
        let (out, lse) = padded(&q, &k, &v, &valid_keys, &valid_queries).unwrap();
        padded_backward_into(
            &q,
            &k,
            &v,
            &valid_keys,
            &valid_queries,
            &out,
            &lse,
            &d_out,
            dq,
            dk,
            dv,
        )
        .unwrap();
    });
    for (isa, [dq, dk, _]) in &gradients {
        assert!(
            dq[13 * 16..20 * 16].iter().all(|&x| x == 0.0),
            "{isa}: padding rows"
        );
        assert!(
            dk[70 * 16..90 * 16].iter().all(|&x| x == 0.0),
            "{isa}: padding keys"
        );
    }

    let (q, k, v, d_out_causal) = inputs::<
        [[[[f32; 16]; 12]; 2]; 2],
        [[[[f32; 16]; 70]; 2]; 2],
        [[[[f32; 16]; 70]; 2]; 2],
        [[[[f32; 16]; 12]; 2]; 2],
    >(179, 1.0);
    let valid = [5, 70];
    let problem = Problem::with_default_scale(4, 12, 70, 16, 16)
        .masked(Mask::BottomRight)
        .with_valid_keys(vec![5, 5, 70, 70]);
    let flat = [
        q.as_flat(),
        k.as_flat(),
        v.as_flat(),
        d_out_causal.as_flat(),
    ];
    check_on_every_isa("padded_causal", &problem, UNGROUPED, flat, |dq, dk, dv| {
        let (out, lse) = padded_causal(&q, &k, &v, &valid).unwrap();
        padded_causal_backward_into(&q, &k, &v, &valid, &out, &lse, &d_out_causal, dq, dk, dv)
            .unwrap();
    });

    // A count past the capacity is an error, and nothing is written.
    let (out, lse) = padded(&q_of(&d_out), &k_of(), &v_of(), &[90, 90], &[20, 20]).unwrap();
    let mut dq = Tensor::<[[[f32; 16]; 20]; 2]>::from_vec(vec![7.0; 640]).unwrap();
    let mut dk = Tensor::<[[[f32; 16]; 90]; 2]>::from_vec(vec![7.0; 2880]).unwrap();
    let mut dv = Tensor::<[[[f32; 8]; 90]; 2]>::from_vec(vec![7.0; 1440]).unwrap();
    d_out[1][0][0] = 1.0;
    let error = padded_backward_into(
        &q_of(&d_out),
        &k_of(),
        &v_of(),
        &[90, 91],
        &[20, 20],
        &out,
        &lse,
        &d_out,
        &mut dq,
        &mut dk,
        &mut dv,
    );
    assert_eq!(
        error,
        Err(ValidLengthError {
            batch_entry: 1,
            counted: attn_runtime::Counted::Keys,
            valid: 91,
            capacity: 90,
        })
    );
    assert!(
        [dq.as_flat(), dk.as_flat(), dv.as_flat()]
            .iter()
            .all(|x| x.iter().all(|&x| x == 7.0))
    );
    let error = padded_backward(
        &q_of(&d_out),
        &k_of(),
        &v_of(),
        &[90, 90],
        &[21, 0],
        &out,
        &lse,
        &d_out,
    );
    assert_eq!(error.map(|_| ()).unwrap_err().valid, 21);
}

/// Fixed inputs of `padded`'s shapes for the error cases (their values do not matter).
fn q_of(_: &Tensor<[[[f32; 8]; 20]; 2]>) -> Tensor<[[[f32; 16]; 20]; 2]> {
    Tensor::zeros()
}
fn k_of() -> Tensor<[[[f32; 16]; 90]; 2]> {
    Tensor::zeros()
}
fn v_of() -> Tensor<[[[f32; 8]; 90]; 2]> {
    Tensor::zeros()
}

#[test]
fn gradients_of_grouped_heads_summed_over_their_query_heads() {
    // A grouped kernel against the reference: its shape (batch, query heads, key/value
    // heads, queries, keys, depth, value depth), its inputs' seed, and its causal mask.
    macro_rules! check {
        ($forward:ident, $backward:ident, $seed:literal,
         ($b:literal, $hq:literal, $hkv:literal, $nq:literal, $nk:literal, $d:literal, $dv:literal)
         $(, masked($mask:expr))?) => {{
            let (q, k, v, d_out) = inputs::<
                [[[[f32; $d]; $nq]; $hq]; $b],
                [[[[f32; $d]; $nk]; $hkv]; $b],
                [[[[f32; $dv]; $nk]; $hkv]; $b],
                [[[[f32; $dv]; $nq]; $hq]; $b],
            >($seed, 1.0);
            let problem = Problem::with_default_scale($b * $hq, $nq, $nk, $d, $dv);
            $(let problem = problem.masked($mask);)?
            let heads = Heads {
                batch: $b,
                kv_heads: $hkv,
                group: $hq / $hkv,
            };
            let flat = [q.as_flat(), k.as_flat(), v.as_flat(), d_out.as_flat()];
            check_on_every_isa(stringify!($forward), &problem, heads, flat, |dq, dk, dv| {
                let (out, lse) = $forward(&q, &k, &v);
                $backward(&q, &k, &v, &out, &lse, &d_out, dq, dk, dv);
            });
        }};
    }
    check!(
        grouped,
        grouped_backward_into,
        180,
        (2, 6, 2, 20, 50, 16, 8)
    );
    check!(
        grouped_generic,
        grouped_generic_backward_into,
        181,
        (1, 4, 1, 20, 33, 16, 16),
        masked(Mask::BottomRight)
    );
    check!(
        grouped_odd,
        grouped_odd_backward_into,
        182,
        (1, 4, 2, 15, 40, 16, 8)
    );
}

#[test]
fn gradients_of_sizes_left_to_the_call() {
    macro_rules! at {
        ($(($b:literal, $nq:literal, $nk:literal, $d:literal, $dv:literal)),*) => {$({
            let (q, k, v, d_out) = inputs::<
                [[[f32; $d]; $nq]; $b],
                [[[f32; $d]; $nk]; $b],
                [[[f32; $dv]; $nk]; $b],
                [[[f32; $dv]; $nq]; $b],
            >($b * 1000 + $nq * 10 + $nk, 1.0);
            let problem = Problem::with_default_scale($b, $nq, $nk, $d, $dv);
            let flat = [q.as_flat(), k.as_flat(), v.as_flat(), d_out.as_flat()];
            let what = concat!("any_shape ", stringify!(($b, $nq, $nk, $d, $dv)));
            check_on_every_isa(what, &problem, UNGROUPED, flat, |dq, dk, dv| {
                let (out, lse) = any_shape(&q, &k, &v);
                any_shape_backward_into(&q, &k, &v, &out, &lse, &d_out, dq, dk, dv);
            });
        })*};
    }
    // Depths of a vector and a half and of less than one; one key; keys past a block.
    at!((1, 7, 65, 24, 20), (2, 1, 1, 5, 3), (1, 13, 129, 64, 64));
}

#[test]
fn gradients_over_keys_in_chunks() {
    let (q, k, v, d_out) = inputs::<
        [[[[f32; 16]; 20]; 2]; 1],
        [[[[f32; 16]; 1100]; 2]; 1],
        [[[[f32; 16]; 1100]; 2]; 1],
        [[[[f32; 16]; 20]; 2]; 1],
    >(182, 1.0);
    let problem = Problem::with_default_scale(2, 20, 1100, 16, 16).masked(Mask::BottomRight);
    let flat = [q.as_flat(), k.as_flat(), v.as_flat(), d_out.as_flat()];
    check_on_every_isa("long", &problem, UNGROUPED, flat, |dq, dk, dv| {
        let (out, lse) = long(&q, &k, &v);
        long_backward_into(&q, &k, &v, &out, &lse, &d_out, dq, dk, dv);
    });
}

/// The gradients of `split` (three chunks of keys, grouped heads) and of `many` (sixteen
/// problems), on `threads` threads.
fn threaded(isa: Isa, threads: usize) -> [Vec<f32>; 6] {
    let (q, k, v, d_out) = inputs::<
        [[[[f32; 32]; 60]; 2]; 1],
        [[[[f32; 32]; 1500]; 1]; 1],
        [[[[f32; 32]; 1500]; 1]; 1],
        [[[[f32; 32]; 60]; 2]; 1],
    >(183, 1.0);
    let (mut dq, mut dk, mut dv) = (Tensor::zeros(), Tensor::zeros(), Tensor::zeros());
    with_isa(isa, || {
        with_threads(threads, || {
            let (out, lse) = split(&q, &k, &v);
            split_backward_into(&q, &k, &v, &out, &lse, &d_out, &mut dq, &mut dk, &mut dv);
        })
    })
    .unwrap();
    let (q2, k2, v2, d_out2) = inputs::<
        [[[[f32; 32]; 64]; 4]; 4],
        [[[[f32; 32]; 64]; 4]; 4],
        [[[[f32; 32]; 64]; 4]; 4],
        [[[[f32; 32]; 64]; 4]; 4],
    >(184, 1.0);
    let mut mask = Box::new([[[[true; 64]; 64]; 1]; 4]);
    for (i, keep) in mask
        .as_flattened_mut()
        .as_flattened_mut()
        .as_flattened_mut()
        .iter_mut()
        .enumerate()
    {
        *keep = i % 5 != 2;
    }
    let (mut dq2, mut dk2, mut dv2) = (Tensor::zeros(), Tensor::zeros(), Tensor::zeros());
    with_isa(isa, || {
        with_threads(threads, || {
            let (out, lse) = many(&q2, &k2, &v2, &mask);
            many_backward_into(
                &q2, &k2, &v2, &mask, &out, &lse, &d_out2, &mut dq2, &mut dk2, &mut dv2,
            );
        })
    })
    .unwrap();
    [
        dq.as_flat(),
        dk.as_flat(),
        dv.as_flat(),
        dq2.as_flat(),
        dk2.as_flat(),
        dv2.as_flat(),
    ]
    .map(<[f32]>::to_vec)
}

#[test]
fn gradients_are_bit_identical_on_any_number_of_threads() {
    for isa in attn_tests::instruction_sets() {
        let one = threaded(isa, 1);
        for threads in [2, 3] {
            assert!(threaded(isa, threads) == one, "{isa}, {threads} threads");
        }
    }
}

#[test]
fn a_nan_reaches_the_gradients_it_flows_into() {
    let (mut q, k, v, d_out) = inputs::<
        [[[f32; 16]; 70]; 2],
        [[[f32; 16]; 130]; 2],
        [[[f32; 8]; 130]; 2],
        [[[f32; 8]; 70]; 2],
    >(185, 1.0);
    q[0][3][5] = f32::NAN;
    for isa in attn_tests::instruction_sets() {
        let (mut dq, mut dk, mut dv) = (Tensor::zeros(), Tensor::zeros(), Tensor::zeros());
        with_isa(isa, || {
            let (out, lse) = tiled(&q, &k, &v);
            tiled_backward_into(&q, &k, &v, &out, &lse, &d_out, &mut dq, &mut dk, &mut dv);
        })
        .unwrap();
        // Row 3 sees every key of its batch entry: its own gradient, and every key's and
        // value's there, are NaN; the other rows' gradients and the other entry's are not.
        assert!(dq[0][3].iter().all(|x| x.is_nan()), "{isa}");
        let nan = |rows: &[f32]| rows.iter().all(|x| x.is_nan());
        assert!(
            nan(dk[0].as_flattened()) && nan(dv[0].as_flattened()),
            "{isa}"
        );
        let finite = |rows: &[[f32; 16]]| rows.iter().flatten().all(|x| x.is_finite());
        assert!(
            finite(&dq[0][..3]) && finite(&dq[0][4..]) && finite(&dq[1]),
            "{isa}"
        );
        assert!(
            finite(&dk[1]) && dv[1].iter().flatten().all(|x| x.is_finite()),
            "{isa}"
        );
    }
}

attention! {
    /// A bias, to hide keys with -inf as a mask does.
    #[attn(backward, bias = [1, 8, 20])]
    fn biased<q: [1, 8, 16], k: [1, 20, 16], v: [1, 20, 8]>;
    /// The same keys hidden by a mask.
    #[attn(backward, mask = [1, 8, 20])]
    fn hidden<q: [1, 8, 16], k: [1, 20, 16], v: [1, 20, 8]>;
}

#[test]
fn infinite_biases_behave_as_in_the_forward() {
    let (q, k, v, d_out) = inputs::<
        [[[f32; 16]; 8]; 1],
        [[[f32; 16]; 20]; 1],
        [[[f32; 8]; 20]; 1],
        [[[f32; 8]; 8]; 1],
    >(186, 1.0);
    let mut keep = [[[true; 20]; 8]; 1];
    let mut bias = [[[0.0f32; 20]; 8]; 1];
    for (i, (keep, bias)) in keep[0].iter_mut().zip(&mut bias[0]).enumerate() {
        for j in (i % 3..20).step_by(3) {
            (keep[j], bias[j]) = (false, f32::NEG_INFINITY);
        }
    }
    for isa in attn_tests::instruction_sets() {
        let gradients = with_isa(isa, || {
            let (out, lse) = biased(&q, &k, &v, &bias);
            let by_bias = biased_backward(&q, &k, &v, &bias, &out, &lse, &d_out);
            let (out, lse) = hidden(&q, &k, &v, &keep);
            let by_mask = hidden_backward(&q, &k, &v, &keep, &out, &lse, &d_out);
            (by_bias, by_mask)
        })
        .unwrap();
        // -inf hides a key: the gradients are those of a mask that hides it, bit for bit.
        assert!(gradients.0 == gradients.1, "{isa}");
    }
    // A +inf bias makes its row NaN in the forward, and so its gradient, and those of the
    // keys and values that row sees; the other rows' own gradients stay finite.
    let mut bias = [[[0.0f32; 20]; 8]; 1];
    bias[0][2][5] = f32::INFINITY;
    let (out, lse) = biased(&q, &k, &v, &bias);
    assert!(out[0][2].iter().all(|x| x.is_nan()));
    let (dq, dk, dv) = biased_backward(&q, &k, &v, &bias, &out, &lse, &d_out);
    assert!(dq[0][2].iter().all(|x| x.is_nan()));
    assert!(dk[0][5].iter().chain(&dv[0][5]).all(|x| x.is_nan()));
    assert!(dq[0][3].iter().all(|x| x.is_finite()));
}
