//! Grouped-query and multi-query attention: query head `h` reads key/value head
//! `h / (Hq / Hkv)`, as PyTorch's `enable_gqa`. Checked against the f64 reference on the
//! same computation with the key/value heads repeated, on every instruction set.

use attn_runtime::simd::with_isa;
use attn_runtime::{Array, Plan, Tensor, attention};
use attn_tests::{Mask, Problem, Rng, assert_accurate, repeat_heads};

attention! {
    /// Six query heads over two key/value heads: tiled.
    fn grouped<q: [2, 6, Nq, 16], k: [2, 2, Nk, 16], v: [2, 2, Nk, 8]>;
    /// One key/value head for four query heads (multi-query): unrolled.
    fn multi_query<q: [1, 4, 2, 4], k: [1, 1, 3, 4], v: [1, 1, 3, 2]>;
    /// Head counts left to the call.
    fn any_heads<q: [1, Hq, N, 8], k: [1, Hkv, N, 8], v: [1, Hkv, N, 8]>;
    /// Grouped and causal.
    #[attn(causal(bottom_right))]
    fn grouped_causal<q: [1, 4, 3, 16], k: [1, 2, N, 16], v: [1, 2, N, 16]>;
}

/// Runs a grouped kernel on random inputs and checks it against the reference.
#[allow(clippy::too_many_arguments)]
fn check<
    Q: Array<Element = f32>,
    K: Array<Element = f32>,
    V: Array<Element = f32>,
    O: Array<Element = f32>,
>(
    what: &str,
    batch: usize,
    (heads, kv_heads): (usize, usize),
    (queries, keys, depth, value_depth): (usize, usize, usize, usize),
    mask: Mask,
    seed: u64,
    kernel: fn(&Q, &K, &V, &mut O),
) {
    let mut rng = Rng::new(seed);
    let q = Tensor::<Q>::from_vec(rng.values(Q::LEN, 1.0)).unwrap();
    let k = Tensor::<K>::from_vec(rng.values(K::LEN, 1.0)).unwrap();
    let v = Tensor::<V>::from_vec(rng.values(V::LEN, 1.0)).unwrap();
    let group = heads / kv_heads;
    let k_all = repeat_heads(k.as_flat(), batch, kv_heads, group, keys * depth);
    let v_all = repeat_heads(v.as_flat(), batch, kv_heads, group, keys * value_depth);
    let problem =
        Problem::with_default_scale(batch * heads, queries, keys, depth, value_depth).masked(mask);
    for isa in attn_tests::instruction_sets() {
        let mut out = Tensor::<O>::zeros();
        with_isa(isa, || kernel(&q, &k, &v, &mut out)).unwrap();
        let what = format!("{what} on {isa}");
        assert_accurate(&what, &problem, q.as_flat(), &k_all, &v_all, out.as_flat());
    }
}

#[test]
fn grouped_query_heads_read_their_group_s_key_value_head() {
    check::<
        [[[[f32; 16]; 70]; 6]; 2],
        [[[[f32; 16]; 130]; 2]; 2],
        [[[[f32; 8]; 130]; 2]; 2],
        [[[[f32; 8]; 70]; 6]; 2],
    >(
        "grouped (70, 130)",
        2,
        (6, 2),
        (70, 130, 16, 8),
        Mask::None,
        1,
        grouped_into,
    );
    check::<
        [[[[f32; 4]; 2]; 4]; 1],
        [[[[f32; 4]; 3]; 1]; 1],
        [[[[f32; 2]; 3]; 1]; 1],
        [[[[f32; 2]; 2]; 4]; 1],
    >(
        "multi_query",
        1,
        (4, 1),
        (2, 3, 4, 2),
        Mask::None,
        2,
        multi_query_into,
    );
    assert_eq!(multi_query::INFO.plan, Plan::Unrolled);
    check::<
        [[[[f32; 8]; 50]; 6]; 1],
        [[[[f32; 8]; 50]; 3]; 1],
        [[[[f32; 8]; 50]; 3]; 1],
        [[[[f32; 8]; 50]; 6]; 1],
    >(
        "any_heads 6 over 3",
        1,
        (6, 3),
        (50, 50, 8, 8),
        Mask::None,
        3,
        any_heads_into,
    );
    check::<
        [[[[f32; 16]; 3]; 4]; 1],
        [[[[f32; 16]; 200]; 2]; 1],
        [[[[f32; 16]; 200]; 2]; 1],
        [[[[f32; 16]; 3]; 4]; 1],
    >(
        "grouped_causal",
        1,
        (4, 2),
        (3, 200, 16, 16),
        Mask::BottomRight,
        4,
        grouped_causal_into,
    );
}

#[test]
fn the_shape_facts_count_the_key_value_heads() {
    let info = grouped::info::<70, 130>();
    assert_eq!((info.shape.heads, info.shape.kv_heads), (6, 2));
    // q: 2·6·70·16, k: 2·2·130·16, v: 2·2·130·8 values of 4 bytes.
    assert_eq!(
        info.bytes_read,
        4 * (2 * 6 * 70 * 16 + 2 * 2 * 130 * 16 + 2 * 2 * 130 * 8)
    );
}
