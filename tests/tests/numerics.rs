//! Every kernel family against the f64 reference of docs/DESIGN.md section 6, over many shapes: all
//! ones, odd sizes, sizes around every tile and unroll threshold, rank 4, unbound lengths at
//! several instantiations, a single query, long sequences and large magnitudes.

use attn_runtime::simd::with_isa;
use attn_runtime::{Array, Plan, Tensor, attention};
use attn_tests::{Mask, Problem, Rng, assert_accurate};

attention! {
    /// The textbook example: unrolled.
    fn textbook<q: [B, Nq, Dk], k: [B, Nk, Dk], v: [B, Nk, Dv]>
    where B = 1, Nq = 2, Nk = 4, Dk = 3, Dv = 3;

    /// Every size left to the call: one definition, tiled, instantiated at many shapes.
    fn any_shape<q: [B, Nq, Dk], k: [B, Nk, Dk], v: [B, Nk, Dv]>;

    /// Rank 4, every size left to the call.
    fn any_heads<q: [B, H, Nq, Dk], k: [B, H, Nk, Dk], v: [B, H, Nk, Dv]>;

    /// Exactly at the unroll limit: 8 queries x 8 keys x (8 + 8) = 1024 multiply-adds.
    fn at_unroll_limit<q: [1, 8, 8], k: [1, 8, 8], v: [1, 8, 8]>;

    /// One query past the unroll limit: tiled, with a partial query tile.
    fn past_unroll_limit<q: [1, 9, 8], k: [1, 8, 8], v: [1, 8, 8]>;

    /// Unrolled over two batch entries and two heads.
    fn small_heads<q: [2, 2, 3, 5], k: [2, 2, 4, 5], v: [2, 2, 4, 2]>;

    /// Known odd sizes: tiled with a tail in both the query tiles and the key blocks.
    fn odd_known<q: [2, 67, 7], k: [2, 131, 7], v: [2, 131, 5]>;

    /// A scale given as an option.
    #[attn(scale = 0.125)]
    fn scaled<q: [1, N, 16], k: [1, N, 16], v: [1, N, 16]>;

    /// A single query against a sequence: decoding.
    fn one_query<q: [1, 4, 1, 64], k: [1, 4, N, 64], v: [1, 4, N, 64]>;

    /// Deep keys: packed 16 at a time, so the packed block stays 64 KiB.
    fn deep<q: [1, 5, 1024], k: [1, N, 1024], v: [1, N, 8]>;

    /// Causal, as many queries as keys: tiled.
    #[attn(causal)]
    fn causal_square<q: [2, N, 16], k: [2, N, 16], v: [2, N, 8]>;

    /// Causal with the queries aligned to the first keys: tiled.
    #[attn(causal(top_left))]
    fn causal_top_left<q: [1, 2, Nq, 24], k: [1, 2, Nk, 24], v: [1, 2, Nk, 16]>;

    /// Causal with the queries aligned to the last keys: tiled.
    #[attn(causal(bottom_right))]
    fn causal_bottom_right<q: [1, 2, Nq, 24], k: [1, 2, Nk, 24], v: [1, 2, Nk, 16]>;

    /// Unrolled, fewer queries than keys: the rows see 1, 2, 3 keys.
    #[attn(causal(top_left))]
    fn small_top_left<q: [1, 3, 4], k: [1, 5, 4], v: [1, 5, 3]>;

    /// Unrolled, fewer queries than keys: the rows see 3, 4, 5 keys.
    #[attn(causal(bottom_right))]
    fn small_bottom_right<q: [1, 3, 4], k: [1, 5, 4], v: [1, 5, 3]>;

    /// A sliding window of 100 keys over a causal mask: tiled.
    #[attn(causal(bottom_right), window = 100)]
    fn windowed<q: [1, 2, Nq, 24], k: [1, 2, Nk, 24], v: [1, 2, Nk, 16]>;

    /// A window of 2 keys, unrolled: each row sees its 2 most recent keys.
    #[attn(causal, window = 2)]
    fn small_window<q: [1, 4, 4], k: [1, 4, 4], v: [1, 4, 3]>;

    /// A soft cap of 5 on scores that reach ±20: tiled.
    #[attn(softcap = 5.0)]
    fn capped<q: [1, Nq, 16], k: [1, Nk, 16], v: [1, Nk, 8]>;

    /// A soft cap, unrolled, with a causal mask.
    #[attn(softcap = 2.5, causal)]
    fn small_capped<q: [1, 3, 4], k: [1, 3, 4], v: [1, 3, 2]>;

    /// Unrolled, more queries than keys: the first two rows see no key and are 0.
    #[attn(causal(bottom_right))]
    fn small_more_queries<q: [1, 5, 4], k: [1, 3, 4], v: [1, 3, 2]>;
    /// Known sizes whose key blocks are shortened: to the keys there are (40 keys, blocks
    /// of 64) and for deep keys and values (depth 300, blocks of 32).
    fn forty_keys<q: [1, 30, 16], k: [1, 40, 16], v: [1, 40, 16]>;
    fn deep_values<q: [1, 8, 300], k: [1, 64, 300], v: [1, 64, 300]>;
}

/// Runs `kernel` on random inputs of `magnitude` and checks it against the reference.
fn check<
    Q: Array<Element = f32>,
    K: Array<Element = f32>,
    V: Array<Element = f32>,
    O: Array<Element = f32>,
>(
    what: &str,
    problem: Problem,
    magnitude: f32,
    seed: u64,
    kernel: fn(&Q, &K, &V, &mut O),
) {
    let mut rng = Rng::new(seed);
    let [nq, nk, nv, _] = problem.lens();
    let q = Tensor::<Q>::from_vec(rng.values(nq, magnitude)).expect("q's length");
    let k = Tensor::<K>::from_vec(rng.values(nk, magnitude)).expect("k's length");
    let v = Tensor::<V>::from_vec(rng.values(nv, 1.0)).expect("v's length");
    // Each instruction set has its own tiles and vector widths (unrolled kernels have none,
    // and give the same result on each).
    for isa in attn_tests::instruction_sets() {
        let mut out = Tensor::<O>::zeros();
        with_isa(isa, || kernel(&q, &k, &v, &mut out)).expect("a supported instruction set");
        assert_accurate(
            &format!("{what} on {isa}"),
            &problem,
            q.as_flat(),
            k.as_flat(),
            v.as_flat(),
            out.as_flat(),
        );
    }
}

/// Checks `any_shape` at each `(B, Nq, Nk, Dk, Dv)`.
macro_rules! any_shape_at {
    ($magnitude:expr, $(($b:literal, $nq:literal, $nk:literal, $dk:literal, $dv:literal)),* $(,)?) => {$(
        check::<[[[f32; $dk]; $nq]; $b], [[[f32; $dk]; $nk]; $b], [[[f32; $dv]; $nk]; $b], [[[f32; $dv]; $nq]; $b]>(
            concat!("any_shape ", stringify!(($b, $nq, $nk, $dk, $dv))),
            Problem::with_default_scale($b, $nq, $nk, $dk, $dv),
            $magnitude,
            ($b * 1_000_003 + $nq * 1009 + $nk * 31 + $dk) as u64,
            any_shape_into,
        );
    )*};
}

#[test]
fn textbook_matches_the_reference() {
    let (q, k, v) = attn_tests::textbook();
    let out = textbook(&q, &k, &v);
    let flat = |x: &[[[f32; 3]; 4]; 1]| x.iter().flatten().flatten().copied().collect::<Vec<_>>();
    let q_flat: Vec<f32> = q.iter().flatten().flatten().copied().collect();
    let out_flat: Vec<f32> = out.iter().flatten().flatten().copied().collect();
    assert_accurate(
        "textbook",
        &Problem::with_default_scale(1, 2, 4, 3, 3),
        &q_flat,
        &flat(&k),
        &flat(&v),
        &out_flat,
    );
    assert_eq!(textbook::INFO.plan, Plan::Unrolled);
}

#[test]
fn all_ones_give_the_mean_of_the_values() {
    let ones = [[[1.0f32; 3]; 4]; 1];
    let out = textbook(&[[[1.0; 3]; 2]; 1], &ones, &ones);
    assert_eq!(out, [[[1.0; 3]; 2]; 1]);
    let q = Tensor::<[[[f32; 16]; 67]; 1]>::from_vec(vec![1.0; 67 * 16]).unwrap();
    let k = Tensor::<[[[f32; 16]; 131]; 1]>::from_vec(vec![1.0; 131 * 16]).unwrap();
    let mut out = Tensor::<[[[f32; 16]; 67]; 1]>::zeros();
    any_shape_into(&q, &k, &k, &mut out);
    assert!(out.as_flat().iter().all(|&x| (x - 1.0).abs() < 1e-6));
}

#[test]
fn unbound_lengths_at_several_instantiations() {
    any_shape_at!(
        1.0,
        (1, 1, 1, 1, 1),
        (1, 2, 4, 3, 3),
        (1, 1, 64, 16, 16),
        (2, 3, 5, 7, 9),
        (1, 67, 131, 13, 11),
        (3, 17, 33, 64, 32),
    );
}

#[test]
fn sizes_around_the_tiles() {
    // Query tiles of 6 and key blocks of 64: one below, at and above each, and two of each.
    any_shape_at!(
        1.0,
        (1, 5, 63, 8, 8),
        (1, 6, 64, 8, 8),
        (1, 7, 65, 8, 8),
        (1, 11, 127, 8, 8),
        (1, 12, 128, 8, 8),
        (1, 13, 129, 8, 8),
    );
}

#[test]
fn known_sizes_with_shortened_key_blocks() {
    for (plan, key_block) in [(forty_keys::INFO.plan, 64), (deep_values::INFO.plan, 32)] {
        assert!(
            matches!(plan, Plan::Tiled { key_block: k, .. } if k == key_block),
            "{plan:?}"
        );
    }
    let problem = Problem::with_default_scale(1, 30, 40, 16, 16);
    check("forty_keys", problem, 1.0, 14, forty_keys_into);
    let problem = Problem::with_default_scale(1, 8, 64, 300, 300);
    check("deep_values", problem, 1.0, 15, deep_values_into);
}

#[test]
fn sizes_around_the_unroll_limit() {
    assert_eq!(at_unroll_limit::INFO.plan, Plan::Unrolled);
    assert!(matches!(past_unroll_limit::INFO.plan, Plan::Tiled { .. }));
    check(
        "at_unroll_limit",
        Problem::with_default_scale(1, 8, 8, 8, 8),
        1.0,
        11,
        at_unroll_limit_into,
    );
    check(
        "past_unroll_limit",
        Problem::with_default_scale(1, 9, 8, 8, 8),
        1.0,
        12,
        past_unroll_limit_into,
    );
}

#[test]
fn odd_sizes() {
    assert!(matches!(odd_known::INFO.plan, Plan::Tiled { .. }));
    check(
        "odd_known",
        Problem::with_default_scale(2, 67, 131, 7, 5),
        1.0,
        13,
        odd_known_into,
    );
}

#[test]
fn rank_four() {
    assert_eq!(small_heads::INFO.plan, Plan::Unrolled);
    check(
        "small_heads",
        Problem::with_default_scale(4, 3, 4, 5, 2),
        1.0,
        14,
        small_heads_into,
    );
    check::<
        [[[[f32; 16]; 37]; 3]; 2],
        [[[[f32; 16]; 70]; 3]; 2],
        [[[[f32; 8]; 70]; 3]; 2],
        [[[[f32; 8]; 37]; 3]; 2],
    >(
        "any_heads (2, 3, 37, 70, 16, 8)",
        Problem::with_default_scale(6, 37, 70, 16, 8),
        1.0,
        15,
        any_heads_into,
    );
}

#[test]
fn the_scale_option() {
    let mut problem = Problem::with_default_scale(1, 100, 100, 16, 16);
    problem.scale = 0.125;
    check("scaled", problem, 2.0, 16, scaled_into::<100>);
}

#[test]
fn a_single_query_over_a_long_sequence() {
    check(
        "one_query 4096",
        Problem::with_default_scale(4, 1, 4096, 64, 64),
        1.0,
        17,
        one_query_into::<4096>,
    );
}

#[test]
fn long_sequences() {
    check::<[[[f32; 64]; 8]; 1], [[[f32; 64]; 4096]; 1], [[[f32; 64]; 4096]; 1], [[[f32; 64]; 8]; 1]>(
        "any_shape (1, 8, 4096, 64, 64)",
        Problem::with_default_scale(1, 8, 4096, 64, 64),
        1.0,
        18,
        any_shape_into,
    );
    check::<
        [[[f32; 64]; 256]; 1],
        [[[f32; 64]; 256]; 1],
        [[[f32; 64]; 256]; 1],
        [[[f32; 64]; 256]; 1],
    >(
        "any_shape (1, 256, 256, 64, 64)",
        Problem::with_default_scale(1, 256, 256, 64, 64),
        1.0,
        19,
        any_shape_into,
    );
}

#[test]
fn a_tiled_block_holds_its_keys_and_values_packed() {
    // B, Nq, Dk, Nk, Dv (in order of appearance): 2,048 queries make blocks of 516.
    let info = any_shape::info::<1, 2048, 64, 4096, 32>();
    // 64 packed keys of depth 64, a copy of their 64 values of depth 32, a tile of 6 x 64
    // scores, for each of the 516 rows a running max, 16 partial sums and an inverse sum,
    // and the padded copies of a tile's last rows: 6 queries, 6 x 64 weights, 6 outputs.
    assert_eq!(
        info.scratch_bytes,
        4 * (64 * 64 + 64 * 32 + 6 * 64 + 516 * (2 + 16) + 6 * (64 + 64 + 32)),
        "{info}"
    );
}

#[test]
fn sixteen_thousand_keys_need_no_more_than_a_tile_of_scratch() {
    let info = one_query::info::<16384>();
    assert_eq!(info.scratch_bytes, one_query::info::<128>().scratch_bytes);
    // One block of 64 packed keys of depth 64, one tile of 6 x 64 scores, for each of the
    // 6 rows of a query block (one query, rounded up to a tile) a running max, 16 partial
    // sums and an inverse sum, and the padded copies of a tile's last rows.
    assert_eq!(
        info.scratch_bytes,
        4 * (64 * 64 + 6 * 64 + 6 * (2 + 16) + 6 * (64 + 64 + 64)),
        "{info}"
    );
    check(
        "one_query 16384",
        Problem::with_default_scale(4, 1, 16384, 64, 64),
        1.0,
        20,
        one_query_into::<16384>,
    );
}

#[test]
fn large_magnitudes_never_overflow() {
    // Inputs of magnitude 100 and 1000 at depth 16 give scores of about ±1e4 and ±1e6:
    // exp of those overflows f32 unless the running max is subtracted first.
    for magnitude in [100.0, 1000.0, 1e5] {
        any_shape_at!(magnitude, (1, 5, 70, 16, 8), (2, 2, 4, 3, 3));
        check(
            "odd_known, large",
            Problem::with_default_scale(2, 67, 131, 7, 5),
            magnitude,
            21,
            odd_known_into,
        );
        check(
            "textbook shape, large",
            Problem::with_default_scale(1, 2, 4, 3, 3),
            magnitude,
            22,
            textbook_into,
        );
    }
}

/// Checks the causal kernels at `(Nq, Nk)`.
macro_rules! causal_at {
    ($(($nq:literal, $nk:literal)),* $(,)?) => {$(
        check::<[[[[f32; 24]; $nq]; 2]; 1], [[[[f32; 24]; $nk]; 2]; 1], [[[[f32; 16]; $nk]; 2]; 1], [[[[f32; 16]; $nq]; 2]; 1]>(
            concat!("causal_top_left ", stringify!(($nq, $nk))),
            Problem::with_default_scale(2, $nq, $nk, 24, 16).masked(Mask::TopLeft),
            1.0,
            ($nq * 31 + $nk) as u64,
            causal_top_left_into,
        );
        check::<[[[[f32; 24]; $nq]; 2]; 1], [[[[f32; 24]; $nk]; 2]; 1], [[[[f32; 16]; $nk]; 2]; 1], [[[[f32; 16]; $nq]; 2]; 1]>(
            concat!("causal_bottom_right ", stringify!(($nq, $nk))),
            Problem::with_default_scale(2, $nq, $nk, 24, 16).masked(Mask::BottomRight),
            1.0,
            ($nq * 37 + $nk) as u64,
            causal_bottom_right_into,
        );
    )*};
}

#[test]
fn causal_masks_against_the_reference() {
    // Around the tiles (6 rows) and the key blocks (64), with more keys than queries, more
    // queries than keys, one of each, and three query blocks (1,100 rows, at most 516 each).
    causal_at!(
        (1100, 1100),
        (1, 1),
        (5, 3),
        (3, 5),
        (129, 129),
        (300, 700),
        (700, 300),
        (1, 1000),
        (64, 65)
    );
    check(
        "causal_square",
        Problem::with_default_scale(2, 200, 200, 16, 8).masked(Mask::TopLeft),
        1.0,
        40,
        causal_square_into::<200>,
    );
}

#[test]
fn causal_unrolled_rows_see_their_prefix() {
    for (what, mask, kernel) in [
        (
            "small_top_left",
            Mask::TopLeft,
            small_top_left_into as fn(&_, &_, &_, &mut _),
        ),
        (
            "small_bottom_right",
            Mask::BottomRight,
            small_bottom_right_into,
        ),
    ] {
        check(
            what,
            Problem::with_default_scale(1, 3, 5, 4, 3).masked(mask),
            2.0,
            41,
            kernel,
        );
    }
    check(
        "small_more_queries",
        Problem::with_default_scale(1, 5, 3, 4, 2).masked(Mask::BottomRight),
        2.0,
        42,
        small_more_queries_into,
    );
    assert_eq!(small_top_left::INFO.plan, Plan::Unrolled);
}

#[test]
fn rows_that_see_no_key_are_zero() {
    let q = [[[1.0f32; 4]; 5]];
    let kv = [[[2.0f32; 4]; 3]];
    let out = small_more_queries(&q, &kv, &[[[3.0; 2]; 3]]);
    assert_eq!(out[0][..2], [[0.0; 2]; 2]);
    assert_eq!(out[0][2..], [[3.0; 2]; 3]);
    let q = Tensor::<[[[[f32; 24]; 700]; 2]; 1]>::from_vec(vec![0.5; 2 * 700 * 24]).unwrap();
    let k = Tensor::<[[[[f32; 24]; 300]; 2]; 1]>::from_vec(vec![0.5; 2 * 300 * 24]).unwrap();
    let v = Tensor::<[[[[f32; 16]; 300]; 2]; 1]>::from_vec(vec![1.0; 2 * 300 * 16]).unwrap();
    let mut out = Tensor::<[[[[f32; 16]; 700]; 2]; 1]>::zeros();
    causal_bottom_right_into(&q, &k, &v, &mut out);
    for (i, row) in out[0][1].iter().enumerate() {
        let expected = if i < 400 { 0.0 } else { 1.0 };
        assert!(
            row.iter().all(|&x| (x - expected).abs() < 1e-6),
            "row {i}: {row:?}"
        );
    }
}

/// Checks `windowed` at `(Nq, Nk)`.
macro_rules! windowed_at {
    ($(($nq:literal, $nk:literal)),* $(,)?) => {$(
        check::<[[[[f32; 24]; $nq]; 2]; 1], [[[[f32; 24]; $nk]; 2]; 1], [[[[f32; 16]; $nk]; 2]; 1], [[[[f32; 16]; $nq]; 2]; 1]>(
            concat!("windowed ", stringify!(($nq, $nk))),
            Problem::with_default_scale(2, $nq, $nk, 24, 16).masked(Mask::BottomRight).windowed(100),
            1.0,
            ($nq * 41 + $nk) as u64,
            windowed_into,
        );
    )*};
}

#[test]
fn sliding_windows_against_the_reference() {
    // Windows inside one key block, across blocks, and longer than the sequence; with three
    // query blocks, the later ones start their keys at a key block boundary.
    windowed_at!(
        (1100, 1100),
        (1, 1000),
        (300, 700),
        (700, 300),
        (129, 129),
        (5, 3),
        (64, 65),
        (256, 1024)
    );
    check(
        "small_window",
        Problem::with_default_scale(1, 4, 4, 4, 3)
            .masked(Mask::TopLeft)
            .windowed(2),
        2.0,
        43,
        small_window_into,
    );
    assert_eq!(small_window::INFO.plan, Plan::Unrolled);
}

#[test]
fn soft_caps_against_the_reference() {
    // Inputs of magnitude 4 at depth 16 give scaled scores beyond ±5: the cap bends them.
    for magnitude in [0.5, 4.0] {
        check::<
            [[[f32; 16]; 67]; 1],
            [[[f32; 16]; 131]; 1],
            [[[f32; 8]; 131]; 1],
            [[[f32; 8]; 67]; 1],
        >(
            "capped (67, 131)",
            Problem::with_default_scale(1, 67, 131, 16, 8).capped(5.0),
            magnitude,
            50,
            capped_into,
        );
    }
    check(
        "small_capped",
        Problem::with_default_scale(1, 3, 3, 4, 2)
            .masked(Mask::TopLeft)
            .capped(2.5),
        4.0,
        51,
        small_capped_into,
    );
    assert_eq!(small_capped::INFO.plan, Plan::Unrolled);
}

#[test]
fn deep_keys_in_short_key_blocks() {
    assert_eq!(
        deep::info::<70>().plan,
        Plan::Tiled {
            query_block: 6,
            key_block: 16
        }
    );
    check(
        "deep (5, 70, 1024)",
        Problem::with_default_scale(1, 5, 70, 1024, 8),
        0.2,
        60,
        deep_into::<70>,
    );
}
