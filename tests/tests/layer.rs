//! The layer form: embeddings projected to heads, attention, heads merged and projected;
//! weights from slices and safetensors files, and the embedding table, with their errors.

use attn_runtime::simd::with_isa;
use attn_runtime::{Embedding, Linear, Tensor, TokenError, WeightError, ZeroPadded, attention};
use attn_tests::{LayerShape, LayerWeights, Mask, Rng, assert_layer_accurate};

attention! {
    /// An encoder layer as `nn.MultiheadAttention` (biases everywhere, an output projection),
    /// over any number of tokens.
    #[attn(split_heads)]
    fn encoder<x: [B, N, Dm], q: [B, H, N, Dh], k: [B, H, N, Dh], v: [B, H, N, Dh], out: [B, N, Dm]>
    where B = 2, Dm = 64, H = 4, Dh = 16;

    /// Grouped-query heads, values of another depth, no output projection: tiny, unrolled.
    fn grouped<x: [1, 3, 6], q: [1, 4, 3, 2], k: [1, 2, 3, 2], v: [1, 2, 3, 3]>;

    /// A layer over padded batches: a key-padding mask and run-time valid lengths, forwarded
    /// to the attention inside.
    #[attn(mask = [2, 1, 1, N], valid_lengths)]
    fn padded<x: [2, N, 8], q: [2, 2, N, 4], k: [2, 2, N, 4], v: [2, 2, N, 4]>;

    /// A layer over sentences of different lengths in one batch: each entry's valid tokens
    /// are its valid queries and keys.
    #[attn(valid_lengths, valid_queries)]
    fn sentences<x: [2, 8, 8], q: [2, 2, 8, 4], k: [2, 2, 8, 4], v: [2, 2, 8, 4], out: [2, 8, 8]>;

    /// Sentences in a capacity whose heads (2 MiB each) live in maps a thread reuses.
    #[attn(split_heads, valid_lengths, valid_queries)]
    fn long_sentences<x: [2, N, 128], q: [2, 2, N, 64], k: [2, 2, N, 64], v: [2, 2, N, 64], out: [2, N, 128]>
    where N = 2048;

    /// The same without an output projection: the heads side by side.
    #[attn(split_heads, valid_lengths, valid_queries)]
    fn long_side_by_side<x: [2, N, 128], q: [2, 2, N, 64], k: [2, 2, N, 64], v: [2, 2, N, 64]>
    where N = 2048;

    /// Short sentences, their heads side by side.
    #[attn(valid_lengths, valid_queries)]
    fn side_by_side<x: [2, 8, 8], q: [2, 2, 8, 4], k: [2, 2, 8, 4], v: [2, 2, 8, 4]>;

    /// The same layer over one sentence of exactly `N` tokens.
    fn sentence<x: [1, N, 8], q: [1, 2, N, 4], k: [1, 2, N, 4], v: [1, 2, N, 4], out: [1, N, 8]>;

    /// A causal decoder layer that also returns its attention weights.
    #[attn(causal, return_weights)]
    fn decoder<x: [1, N, 32], q: [1, 2, N, 16], k: [1, 2, N, 16], v: [1, 2, N, 16], out: [1, N, 24]>;
}

/// Random weights `[out, in]` and, if `bias`, a bias `[out]`.
fn random_linear(
    rng: &mut Rng,
    inputs: usize,
    outputs: usize,
    bias: bool,
) -> (Vec<f32>, Option<Vec<f32>>) {
    let scale = 1.0 / (inputs as f32).sqrt();
    let weight = rng.values(inputs * outputs, scale);
    (weight, bias.then(|| rng.values(outputs, 0.1)))
}

fn load<const IN: usize, const OUT: usize>(
    name: &str,
    (w, b): &(Vec<f32>, Option<Vec<f32>>),
) -> Linear<IN, OUT> {
    Linear::from_slices(name, w, b.as_deref()).expect("the shapes match")
}

/// Random projections of `D` features to `D`, with biases: a layer's q, k, v and output.
fn random_projections<const D: usize>(rng: &mut Rng) -> [Linear<D, D>; 4] {
    ["q", "k", "v", "o"].map(|name| load(name, &random_linear(rng, D, D, true)))
}

fn view((w, b): &(Vec<f32>, Option<Vec<f32>>)) -> (&[f32], Option<&[f32]>) {
    (w, b.as_deref())
}

#[test]
fn an_encoder_layer_matches_the_f64_reference_on_every_instruction_set() {
    let mut rng = Rng::new(21);
    let ws: Vec<_> = (0..4)
        .map(|_| random_linear(&mut rng, 64, 64, true))
        .collect();
    let (query, key, value, output) = (
        load::<64, 64>("q_proj", &ws[0]),
        load::<64, 64>("k_proj", &ws[1]),
        load::<64, 64>("v_proj", &ws[2]),
        load::<64, 64>("out_proj", &ws[3]),
    );
    let weights = LayerWeights {
        query: view(&ws[0]),
        key: view(&ws[1]),
        value: view(&ws[2]),
        output: Some(view(&ws[3])),
    };
    let x = rng.tensor::<[[[f32; 64]; 37]; 2]>(1.0);
    let shape = LayerShape {
        batch: 2,
        tokens: 37,
        width: 64,
        heads: 4,
        kv_heads: 4,
        depth: 16,
        value_depth: 16,
        scale: 0.25,
        mask: Mask::None,
    };
    for isa in attn_tests::instruction_sets() {
        let out = with_isa(isa, || {
            let mut out = Tensor::<[[[f32; 64]; 37]; 2]>::zeros();
            encoder_into(&x, &query, &key, &value, &output, &mut out);
            out
        })
        .unwrap();
        assert_layer_accurate(
            &format!("encoder on {isa}"),
            &shape,
            &weights,
            x.as_flat(),
            out.as_flat(),
        );
    }
}

#[test]
fn grouped_heads_without_an_output_projection_merge_side_by_side() {
    let mut rng = Rng::new(22);
    let (wq, wk, wv) = (
        random_linear(&mut rng, 6, 8, false),
        random_linear(&mut rng, 6, 4, true),
        random_linear(&mut rng, 6, 6, true),
    );
    let x = [[
        [0.1, -0.4, 0.9, 0.3, -0.2, 0.5],
        [0.7, 0.2, -0.6, 0.0, 0.4, -0.1],
        [-0.3, 0.8, 0.1, -0.5, 0.6, 0.2],
    ]];
    let out = grouped(&x, &load(".q", &wq), &load(".k", &wk), &load(".v", &wv));
    let shape = LayerShape {
        batch: 1,
        tokens: 3,
        width: 6,
        heads: 4,
        kv_heads: 2,
        depth: 2,
        value_depth: 3,
        scale: (1.0 / 2f64.sqrt()) as f32,
        mask: Mask::None,
    };
    let weights = LayerWeights {
        query: view(&wq),
        key: view(&wk),
        value: view(&wv),
        output: None,
    };
    let flat: Vec<f32> = x.as_flattened().as_flattened().to_vec();
    assert_eq!(grouped_attention::INFO.plan, attn_runtime::Plan::Unrolled);
    assert_layer_accurate(
        "grouped",
        &shape,
        &weights,
        &flat,
        out.as_flattened().as_flattened(),
    );
}

#[test]
fn a_causal_layer_returns_the_weights_of_its_heads() {
    let mut rng = Rng::new(23);
    let (wq, wk, wv, wo) = (
        random_linear(&mut rng, 32, 32, true),
        random_linear(&mut rng, 32, 32, false),
        random_linear(&mut rng, 32, 32, true),
        random_linear(&mut rng, 32, 24, true),
    );
    let x = rng.tensor::<[[[f32; 32]; 70]; 1]>(1.0);
    let mut out = Tensor::<[[[f32; 24]; 70]; 1]>::zeros();
    let mut attention_weights = Tensor::<[[[[f32; 70]; 70]; 2]; 1]>::zeros();
    decoder_into(
        &x,
        &load("q", &wq),
        &load("k", &wk),
        &load("v", &wv),
        &load("o", &wo),
        &mut out,
        &mut attention_weights,
    );
    let shape = LayerShape {
        batch: 1,
        tokens: 70,
        width: 32,
        heads: 2,
        kv_heads: 2,
        depth: 16,
        value_depth: 16,
        scale: 0.25,
        mask: Mask::TopLeft,
    };
    let weights = LayerWeights {
        query: view(&wq),
        key: view(&wk),
        value: view(&wv),
        output: Some(view(&wo)),
    };
    assert_layer_accurate("decoder", &shape, &weights, x.as_flat(), out.as_flat());
    for head in attention_weights[0].iter() {
        for (i, row) in head.iter().enumerate() {
            let sum: f32 = row.iter().sum();
            assert!((sum - 1.0).abs() < 1e-5, "row {i} sums to {sum}");
            assert!(
                row[i + 1..].iter().all(|&w| w == 0.0),
                "row {i} sees no later token"
            );
        }
    }
}

#[test]
fn weights_of_the_wrong_shape_are_errors_naming_the_tensor_and_both_shapes() {
    let error = Linear::<64, 64>::from_slices("q_proj", &[0.0; 64 * 32], None).unwrap_err();
    assert_eq!(
        error,
        WeightError::Length {
            tensor: "q_proj.weight".into(),
            expected: vec![64, 64],
            actual: 2048
        }
    );
    assert_eq!(
        error.to_string(),
        "`q_proj.weight` holds 2048 values, but the layer expects shape [64, 64] ([out, in]), 4096 values"
    );
    let bytes = attn_runtime::safetensors::serialize_f32([
        ("q_proj.weight", vec![32, 64], &[0.5f32; 32 * 64][..]),
        ("q_proj.bias", vec![32], &[0.25f32; 32][..]),
        ("wte", vec![10, 64], &[1.0f32; 640][..]),
    ])
    .unwrap();
    let file = attn_runtime::safetensors::from_bytes(&bytes).unwrap();
    let loaded = Linear::<64, 32>::from_safetensors(&file, "q_proj").unwrap();
    assert_eq!(loaded.weight()[31][63], 0.5);
    assert_eq!(loaded.bias(), Some(&[0.25; 32]));
    assert_eq!(
        Linear::<64, 64>::from_safetensors(&file, "q_proj").unwrap_err(),
        WeightError::Shape {
            tensor: "q_proj.weight".into(),
            expected: vec![64, 64],
            actual: vec![32, 64]
        }
    );
    assert_eq!(
        Linear::<64, 32>::from_safetensors(&file, "k_proj").unwrap_err(),
        WeightError::Missing {
            tensor: "k_proj.weight".into()
        }
    );
    let table = Embedding::<10, 64>::from_safetensors(&file, "wte").unwrap();
    assert_eq!(table.table()[9], [1.0; 64]);
}

#[test]
fn token_ids_become_the_layers_embeddings_and_an_id_out_of_range_is_an_error() {
    let mut rng = Rng::new(24);
    let table = Embedding::<50, 6>::from_slice("wte", &rng.values(50 * 6, 1.0)).unwrap();
    let ids = [[3u32, 49, 0]];
    let x = table.embed(&ids).unwrap();
    assert_eq!(x[0][1], table.table()[49]);
    let (wq, wk, wv) = (
        random_linear(&mut rng, 6, 8, false),
        random_linear(&mut rng, 6, 4, false),
        random_linear(&mut rng, 6, 6, false),
    );
    let from_ids = grouped(&x, &load("q", &wq), &load("k", &wk), &load("v", &wv));
    let gathered = [[table.table()[3], table.table()[49], table.table()[0]]];
    assert_eq!(
        from_ids,
        grouped(&gathered, &load("q", &wq), &load("k", &wk), &load("v", &wv))
    );
    assert_eq!(
        table.embed(&[[3u32, 50, 0]]).unwrap_err(),
        TokenError {
            batch_entry: 0,
            position: 1,
            id: 50,
            vocabulary: 50
        }
    );
}

#[test]
fn a_layer_forwards_its_mask_and_valid_lengths_to_its_attention() {
    let mut rng = Rng::new(25);
    let (wq, wk, wv) = (
        random_linear(&mut rng, 8, 8, true),
        random_linear(&mut rng, 8, 8, true),
        random_linear(&mut rng, 8, 8, true),
    );
    let (query, key, value) = (load::<8, 8>("q", &wq), load("k", &wk), load("v", &wv));
    let x: [[[f32; 8]; 6]; 2] =
        std::array::from_fn(|_| std::array::from_fn(|_| std::array::from_fn(|_| rng.uniform(1.0))));
    // Entry 0 hides key 1 by its mask; entry 1 has 4 valid keys of 6.
    let mut mask = [[[[true; 6]]]; 2];
    mask[0][0][0][1] = false;
    let out = padded(&x, &query, &key, &value, &mask, &[6, 4]).unwrap();
    // The same as projecting by hand and calling the attention inside.
    let (q, k, v) = (project(&x, &query), project(&x, &key), project(&x, &value));
    let heads = padded_attention(&q, &k, &v, &mask, &[6, 4]).unwrap();
    for b in 0..2 {
        for n in 0..6 {
            for h in 0..2 {
                assert_eq!(out[b][n][h * 4..h * 4 + 4], heads[b][h][n]);
            }
        }
    }
    let error = padded(&x, &query, &key, &value, &mask, &[7, 4]).unwrap_err();
    assert_eq!((error.batch_entry, error.valid), (0, 7));
}

#[test]
fn a_layer_with_valid_counts_reads_only_the_valid_tokens_and_zeroes_the_rest() {
    let mut rng = Rng::new(26);
    let [query, key, value, output] = random_projections::<8>(&mut rng);
    // Entry 0 has 5 tokens, entry 1 all 8; the padding is NaN, which would show if read.
    let lengths = [5, 8];
    let mut x = [[[f32::NAN; 8]; 8]; 2];
    for (b, &length) in lengths.iter().enumerate() {
        for token in &mut x[b][..length] {
            *token = std::array::from_fn(|_| rng.uniform(1.0));
        }
    }
    let mut out = [[[7.0f32; 8]; 8]; 2];
    sentences_into(
        &x, &query, &key, &value, &output, &lengths, &lengths, &mut out,
    )
    .unwrap();
    for (b, &length) in lengths.iter().enumerate() {
        let alone: [[[f32; 8]; 5]; 1] = sentence(
            &[x[b][..5].try_into().unwrap()],
            &query,
            &key,
            &value,
            &output,
        );
        let expected: Vec<[f32; 8]> = match length {
            5 => alone[0].to_vec(),
            _ => sentence(&[x[b]], &query, &key, &value, &output)[0].to_vec(),
        };
        for (n, (row, expected)) in out[b][..length].iter().zip(&expected).enumerate() {
            for (a, e) in row.iter().zip(expected) {
                assert!((a - e).abs() <= 1e-5, "entry {b}, token {n}: {a} vs {e}");
            }
        }
        assert!(
            out[b][length..].iter().flatten().all(|&o| o == 0.0),
            "padding rows are 0"
        );
    }
    // A count past the capacity: an error, and nothing written.
    let before = out;
    let error = sentences_of(
        &x,
        [&query, &key, &value, &output],
        [5, 8],
        [9, 8],
        &mut out,
    );
    assert_eq!(error.unwrap_err().valid, 9);
    assert_eq!(out, before);
}

/// `sentences_into` with `valid_keys` and `valid_queries` into `out`.
fn sentences_of(
    x: &[[[f32; 8]; 8]; 2],
    [query, key, value, output]: [&Linear<8, 8>; 4],
    valid_keys: [usize; 2],
    valid_queries: [usize; 2],
    out: &mut impl attn_runtime::PaddedOutput<[[[f32; 8]; 8]; 2]>,
) -> Result<(), attn_runtime::ValidLengthError> {
    sentences_into(
        x,
        query,
        key,
        value,
        output,
        &valid_keys,
        &valid_queries,
        out,
    )
}

/// `x` through `linear`, split into 2 heads of depth 4.
fn project(x: &[[[f32; 8]; 6]; 2], linear: &Linear<8, 8>) -> [[[[f32; 4]; 6]; 2]; 2] {
    std::array::from_fn(|b| {
        std::array::from_fn(|h| {
            std::array::from_fn(|n| {
                let y = linear.apply(&x[b][n]);
                std::array::from_fn(|d| y[h * 4 + d])
            })
        })
    })
}

#[test]
fn a_layer_reads_nothing_that_reused_memory_held_before() {
    type Heads = [[[[f32; 64]; 2048]; 2]; 2];
    let mut rng = Rng::new(27);
    let [query, key, value, output] = random_projections::<128>(&mut rng);
    let lengths = [37, 300];
    let mut x = Tensor::<[[[f32; 128]; 2048]; 2]>::zeros();
    for (b, &length) in lengths.iter().enumerate() {
        for token in &mut x[b][..length] {
            *token = std::array::from_fn(|_| rng.uniform(1.0));
        }
    }
    let run = || {
        let mut out = Tensor::<[[[f32; 128]; 2048]; 2]>::zeros();
        long_sentences_into(
            &x, &query, &key, &value, &output, &lengths, &lengths, &mut out,
        )
        .unwrap();
        let mut side_by_side = Tensor::<[[[f32; 128]; 2048]; 2]>::zeros();
        long_side_by_side_into(
            &x,
            &query,
            &key,
            &value,
            &lengths,
            &lengths,
            &mut side_by_side,
        )
        .unwrap();
        (out, side_by_side)
    };
    for isa in attn_runtime::simd::Isa::supported() {
        let expected = with_isa(isa, run).unwrap();
        // Maps full of NaN, dropped for the layer to take: one for its output (zeroed), and
        // q's, k's, v's and the heads'.
        let poisoned: Vec<_> = (0..5)
            .map(|_| Tensor::<Heads>::from_vec(vec![f32::NAN; 2 * 2 * 2048 * 64]).unwrap())
            .collect();
        drop(poisoned);
        let (out, side_by_side) = with_isa(isa, run).unwrap();
        assert!(
            out.as_flat() == expected.0.as_flat() && side_by_side.as_flat() == expected.1.as_flat(),
            "{isa:?}: the same bits over reused memory"
        );
        for out in [&out, &side_by_side] {
            for (b, &length) in lengths.iter().enumerate() {
                assert!(out[b][..length].iter().flatten().all(|o| o.is_finite()));
                assert!(out[b][length..].iter().flatten().all(|&o| o == 0.0));
            }
        }
        // The layer did take that memory: its buffers came back with NaN in their padding.
        if cfg!(target_os = "linux") {
            let reused = attn_runtime::__private::scratch_tensor::<Heads>();
            assert!(
                reused[0][0][37][0].is_nan(),
                "{isa:?}: padding left as it was"
            );
            assert!(!reused[0][0][36][0].is_nan(), "{isa:?}: valid rows written");
        }
    }
}

#[test]
fn a_zero_padded_layer_output_writes_only_the_rows_its_last_call_left() {
    let mut rng = Rng::new(28);
    let [query, key, value, output] = random_projections::<8>(&mut rng);
    let x: [[[f32; 8]; 8]; 2] =
        std::array::from_fn(|_| std::array::from_fn(|_| std::array::from_fn(|_| rng.uniform(1.0))));
    let mut projected = ZeroPadded::<[[[f32; 8]; 8]; 2]>::zeros();
    let mut merged = ZeroPadded::<[[[f32; 8]; 8]; 2]>::zeros();
    // Counts that grow and shrink: each shrink leaves rows the next call must clear.
    for lengths in [[8, 8], [3, 8], [8, 1], [5, 0], [8, 8]] {
        let mut full = [[[f32::NAN; 8]; 8]; 2];
        let mut full_merged = [[[f32::NAN; 8]; 8]; 2];
        for isa in attn_tests::instruction_sets() {
            with_isa(isa, || {
                let (query, key, value) = (&query, &key, &value);
                sentences_into(
                    &x, query, key, value, &output, &lengths, &lengths, &mut full,
                )?;
                sentences_into(
                    &x,
                    query,
                    key,
                    value,
                    &output,
                    &lengths,
                    &lengths,
                    &mut projected,
                )?;
                side_by_side_into(&x, query, key, value, &lengths, &lengths, &mut full_merged)?;
                side_by_side_into(&x, query, key, value, &lengths, &lengths, &mut merged)
            })
            .unwrap()
            .unwrap();
            assert_eq!(*projected, full, "{isa}: projected, lengths {lengths:?}");
            assert_eq!(
                *merged, full_merged,
                "{isa}: side by side, lengths {lengths:?}"
            );
            assert_eq!(projected.rows_written(), &lengths[..]);
            assert_eq!(merged.rows_written(), &lengths[..]);
        }
    }
    // A count past the capacity: an error, the output and its record as they were.
    let before = projected.clone();
    let weights = [&query, &key, &value, &output];
    let error = sentences_of(&x, weights, [2, 2], [2, 9], &mut projected);
    assert_eq!(error.unwrap_err().valid, 9);
    assert_eq!(*projected, *before);
    assert_eq!(projected.rows_written(), &[8, 8]);
}
