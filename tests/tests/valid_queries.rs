//! Valid query counts: the rows past a batch entry's count are 0 (weights 0, log-sum-exp
//! -inf) whatever the output held, and the others are those of a kernel of that many queries,
//! aligned bottom right to the valid keys; a count past the capacity is an error with nothing
//! written. Both plans that take run-time counts (tiled f32, f64 rows), on every instruction
//! set.

use attn_runtime::half::bf16;
use attn_runtime::simd::with_isa;
use attn_runtime::{Counted, Tensor, ValidLengthError, ZeroPadded, attention};
use attn_tests::{Mask, Problem, Rng, reference, reference_lse, reference_weights};

attention! {
    /// Prompts of any length up to 16 tokens, in two batch entries.
    #[attn(valid_lengths, valid_queries, causal(bottom_right), return_weights, return_lse)]
    fn prompt<q: [2, 2, 16, 8], k: [2, 2, 16, 8], v: [2, 2, 16, 4]>;
    /// The same in f64.
    #[attn(dtype = f64, valid_lengths, valid_queries, causal(bottom_right), return_weights, return_lse)]
    fn prompt_f64<q: [2, 2, 16, 8], k: [2, 2, 16, 8], v: [2, 2, 16, 4]>;
    /// In bf16, rank 3.
    #[attn(dtype = bf16, valid_lengths, valid_queries, causal(bottom_right))]
    fn prompt_bf16<q: [2, 16, 8], k: [2, 16, 8], v: [2, 16, 4]>;
    /// The same in f32, which the bf16 kernel computes.
    #[attn(valid_lengths, valid_queries, causal(bottom_right))]
    fn prompt_rank3<q: [2, 16, 8], k: [2, 16, 8], v: [2, 16, 4]>;
    /// Fewer query rows than a tile over 2,048 keys: the keys are split into chunks and merged.
    #[attn(valid_lengths, valid_queries, causal(bottom_right))]
    fn draft<q: [2, 4, 4, 8], k: [2, 2, 2048, 8], v: [2, 2, 2048, 4]>;
}

/// Checks one kernel's outputs (as f64) against the reference of each entry and head: `vq`
/// queries over `vk` keys, aligned bottom right.
#[allow(clippy::too_many_arguments)]
fn check(
    what: &str,
    [q, k, v]: [&[f32]; 3],
    (valid_keys, valid_queries): ([usize; 2], [usize; 2]),
    out: &[f64],
    weights: &[f64],
    lse: &[f64],
    tolerance: f64,
) {
    for entry in 0..2 {
        let (vq, vk) = (valid_queries[entry], valid_keys[entry]);
        for head in 0..2 {
            let problem_index = entry * 2 + head;
            let rows = |data: &[f32], len: usize, depth: usize| {
                data[problem_index * 16 * depth..][..len * depth].to_vec()
            };
            let (qs, ks, vs) = (rows(q, vq, 8), rows(k, vk, 8), rows(v, vk, 4));
            let problem = Problem::with_default_scale(1, vq, vk, 8, 4).masked(Mask::BottomRight);
            let expected = reference(&problem, &qs, &ks, &vs);
            let expected_weights = reference_weights(&problem, &qs, &ks);
            let expected_lse = reference_lse(&problem, &qs, &ks);
            for i in 0..16 {
                let row = problem_index * 16 + i;
                let out_row = &out[row * 4..][..4];
                let weights_row = &weights[row * 16..][..16];
                if i >= vq {
                    assert!(
                        out_row.iter().all(|&x| x == 0.0),
                        "{what}: padding row {row}"
                    );
                    assert!(
                        weights_row.iter().all(|&w| w == 0.0),
                        "{what}: padding weights"
                    );
                    assert_eq!(lse[row], f64::NEG_INFINITY, "{what}: padding lse {row}");
                    continue;
                }
                for (d, (&x, &e)) in out_row.iter().zip(&expected[i * 4..][..4]).enumerate() {
                    assert!(
                        (x - e).abs() <= tolerance * (1.0 + e.abs()),
                        "{what}: out {row}.{d}: {x} against {e}"
                    );
                }
                for (j, &w) in weights_row.iter().enumerate() {
                    let e = if j < vk {
                        expected_weights[i * vk + j]
                    } else {
                        0.0
                    };
                    assert!(
                        (w - e).abs() <= tolerance,
                        "{what}: weight {row}.{j}: {w} against {e}"
                    );
                }
                let e = expected_lse[i];
                if e.is_infinite() {
                    assert_eq!(lse[row], e, "{what}: lse {row}");
                } else {
                    assert!(
                        (lse[row] - e).abs() <= tolerance * (1.0 + e.abs()),
                        "{what}: lse {row}"
                    );
                }
            }
        }
    }
}

#[test]
fn rows_past_the_count_are_zero_and_the_others_a_shorter_kernels() {
    let mut rng = Rng::new(23);
    let (q, k, v) = (
        rng.values(2 * 2 * 16 * 8, 1.0),
        rng.values(2 * 2 * 16 * 8, 1.0),
        rng.values(2 * 2 * 16 * 4, 1.0),
    );
    let f64s = |x: &[f32]| x.iter().map(|&x| f64::from(x)).collect::<Vec<_>>();
    // A prompt of 5 tokens; 16 queries over 12 keys (the first 4 see none).
    for (valid_keys, valid_queries) in [([5, 12], [5, 16]), ([16, 16], [1, 0]), ([3, 16], [16, 9])]
    {
        for isa in attn_tests::instruction_sets() {
            let qt = Tensor::<[[[[f32; 8]; 16]; 2]; 2]>::from_slice(&q).unwrap();
            let kt = Tensor::<[[[[f32; 8]; 16]; 2]; 2]>::from_slice(&k).unwrap();
            let vt = Tensor::<[[[[f32; 4]; 16]; 2]; 2]>::from_slice(&v).unwrap();
            let mut out =
                Tensor::<[[[[f32; 4]; 16]; 2]; 2]>::from_vec(vec![f32::NAN; 256]).unwrap();
            let mut weights =
                Tensor::<[[[[f32; 16]; 16]; 2]; 2]>::from_vec(vec![f32::NAN; 1024]).unwrap();
            let mut lse = Tensor::<[[[f32; 16]; 2]; 2]>::from_vec(vec![f32::NAN; 64]).unwrap();
            with_isa(isa, || {
                prompt_into(
                    &qt,
                    &kt,
                    &vt,
                    &valid_keys,
                    &valid_queries,
                    &mut out,
                    &mut weights,
                    &mut lse,
                )
            })
            .unwrap()
            .unwrap();
            check(
                &format!("f32 on {isa}, keys {valid_keys:?}, queries {valid_queries:?}"),
                [&q, &k, &v],
                (valid_keys, valid_queries),
                &f64s(out.as_flat()),
                &f64s(weights.as_flat()),
                &f64s(lse.as_flat()),
                1e-5,
            );
        }
        let qt = Tensor::<[[[[f64; 8]; 16]; 2]; 2]>::from_slice(&f64s(&q)).unwrap();
        let kt = Tensor::<[[[[f64; 8]; 16]; 2]; 2]>::from_slice(&f64s(&k)).unwrap();
        let vt = Tensor::<[[[[f64; 4]; 16]; 2]; 2]>::from_slice(&f64s(&v)).unwrap();
        let mut out = Tensor::<[[[[f64; 4]; 16]; 2]; 2]>::from_vec(vec![f64::NAN; 256]).unwrap();
        let mut weights =
            Tensor::<[[[[f64; 16]; 16]; 2]; 2]>::from_vec(vec![f64::NAN; 1024]).unwrap();
        let mut lse = Tensor::<[[[f64; 16]; 2]; 2]>::from_vec(vec![f64::NAN; 64]).unwrap();
        prompt_f64_into(
            &qt,
            &kt,
            &vt,
            &valid_keys,
            &valid_queries,
            &mut out,
            &mut weights,
            &mut lse,
        )
        .unwrap();
        check(
            &format!("f64, keys {valid_keys:?}, queries {valid_queries:?}"),
            [&q, &k, &v],
            (valid_keys, valid_queries),
            out.as_flat(),
            weights.as_flat(),
            lse.as_flat(),
            // The reference's scale is an f32, 1.7e-8 off the f64 kernel's 1 / sqrt(8).
            1e-7,
        );
    }
}

#[test]
fn a_count_past_the_queries_is_an_error_and_nothing_is_written() {
    let q = Tensor::<[[[[f32; 8]; 16]; 2]; 2]>::zeros();
    let v = Tensor::<[[[[f32; 4]; 16]; 2]; 2]>::zeros();
    let mut out = Tensor::<[[[[f32; 4]; 16]; 2]; 2]>::from_vec(vec![7.0; 256]).unwrap();
    let mut weights = Tensor::<[[[[f32; 16]; 16]; 2]; 2]>::zeros();
    let mut lse = Tensor::<[[[f32; 16]; 2]; 2]>::zeros();
    let error = prompt_into(
        &q,
        &q,
        &v,
        &[16, 16],
        &[3, 17],
        &mut out,
        &mut weights,
        &mut lse,
    )
    .unwrap_err();
    assert_eq!(
        error,
        ValidLengthError {
            batch_entry: 1,
            counted: Counted::Queries,
            valid: 17,
            capacity: 16
        }
    );
    assert_eq!(
        error.to_string(),
        "batch entry 1 has 17 valid queries, but the kernel has 16 queries"
    );
    assert!(
        out.as_flat().iter().all(|&x| x == 7.0),
        "nothing half-written"
    );
}

/// Valid query counts that grow and shrink from call to call, as prompts in a serving loop:
/// each shrink leaves rows that the next call must turn back into zeros.
const COUNTS: [([usize; 2], [usize; 2]); 6] = [
    ([16, 16], [16, 16]),
    ([5, 12], [5, 16]),
    ([16, 16], [1, 0]),
    ([3, 16], [9, 16]),
    ([0, 16], [0, 2]),
    ([16, 3], [16, 3]),
];

#[test]
fn a_zero_padded_output_writes_only_the_rows_its_last_call_left() {
    let mut rng = Rng::new(29);
    let values = |rng: &mut Rng, len: usize| rng.values(len, 1.0);
    let (q, k, v) = (
        values(&mut rng, 512),
        values(&mut rng, 512),
        values(&mut rng, 256),
    );
    let (qt, kt) = (
        Tensor::<[[[[f32; 8]; 16]; 2]; 2]>::from_slice(&q).unwrap(),
        Tensor::<[[[[f32; 8]; 16]; 2]; 2]>::from_slice(&k).unwrap(),
    );
    let vt = Tensor::<[[[[f32; 4]; 16]; 2]; 2]>::from_slice(&v).unwrap();
    for isa in attn_tests::instruction_sets() {
        let mut padded = ZeroPadded::<[[[[f32; 4]; 16]; 2]; 2]>::zeros();
        for (valid_keys, valid_queries) in COUNTS {
            let mut full =
                Tensor::<[[[[f32; 4]; 16]; 2]; 2]>::from_vec(vec![f32::NAN; 256]).unwrap();
            let mut weights = Tensor::<[[[[f32; 16]; 16]; 2]; 2]>::zeros();
            let mut lse = Tensor::<[[[f32; 16]; 2]; 2]>::zeros();
            with_isa(isa, || {
                let (vk, vq) = (&valid_keys, &valid_queries);
                prompt_into(&qt, &kt, &vt, vk, vq, &mut full, &mut weights, &mut lse).unwrap();
                prompt_into(&qt, &kt, &vt, vk, vq, &mut padded, &mut weights, &mut lse).unwrap();
            })
            .unwrap();
            assert_eq!(*padded, *full, "f32 on {isa}, queries {valid_queries:?}");
            assert_eq!(padded.rows_written(), &valid_queries[..]);
        }
    }

    let f64s = |x: &[f32]| x.iter().map(|&x| f64::from(x)).collect::<Vec<_>>();
    let (qt, kt) = (
        Tensor::<[[[[f64; 8]; 16]; 2]; 2]>::from_slice(&f64s(&q)).unwrap(),
        Tensor::<[[[[f64; 8]; 16]; 2]; 2]>::from_slice(&f64s(&k)).unwrap(),
    );
    let vt = Tensor::<[[[[f64; 4]; 16]; 2]; 2]>::from_slice(&f64s(&v)).unwrap();
    let mut padded = ZeroPadded::<[[[[f64; 4]; 16]; 2]; 2]>::zeros();
    for (valid_keys, valid_queries) in COUNTS {
        let mut full = Tensor::<[[[[f64; 4]; 16]; 2]; 2]>::from_vec(vec![f64::NAN; 256]).unwrap();
        let mut weights = Tensor::<[[[[f64; 16]; 16]; 2]; 2]>::zeros();
        let mut lse = Tensor::<[[[f64; 16]; 2]; 2]>::zeros();
        let (vk, vq) = (&valid_keys, &valid_queries);
        prompt_f64_into(&qt, &kt, &vt, vk, vq, &mut full, &mut weights, &mut lse).unwrap();
        prompt_f64_into(&qt, &kt, &vt, vk, vq, &mut padded, &mut weights, &mut lse).unwrap();
        assert_eq!(*padded, *full, "f64, queries {valid_queries:?}");
        assert_eq!(padded.rows_written(), &valid_queries[..]);
    }

    let bf16s = |x: &[f32]| x.iter().map(|&x| bf16::from_f32(x)).collect::<Vec<_>>();
    let (qt, kt) = (
        Tensor::<[[[bf16; 8]; 16]; 2]>::from_slice(&bf16s(&q[..256])).unwrap(),
        Tensor::<[[[bf16; 8]; 16]; 2]>::from_slice(&bf16s(&k[..256])).unwrap(),
    );
    let vt = Tensor::<[[[bf16; 4]; 16]; 2]>::from_slice(&bf16s(&v[..128])).unwrap();
    // The f32 kernel over the same (rounded) values: the bf16 kernel's rows are its, rounded.
    let widened = |x: &[bf16]| x.iter().map(|&x| f32::from(x)).collect::<Vec<_>>();
    let (qw, kw) = (
        Tensor::<[[[f32; 8]; 16]; 2]>::from_vec(widened(qt.as_flat())).unwrap(),
        Tensor::<[[[f32; 8]; 16]; 2]>::from_vec(widened(kt.as_flat())).unwrap(),
    );
    let vw = Tensor::<[[[f32; 4]; 16]; 2]>::from_vec(widened(vt.as_flat())).unwrap();
    let mut padded = ZeroPadded::<[[[bf16; 4]; 16]; 2]>::zeros();
    for (valid_keys, valid_queries) in COUNTS {
        let mut full = Tensor::<[[[bf16; 4]; 16]; 2]>::from_vec(vec![bf16::NAN; 128]).unwrap();
        let (vk, vq) = (&valid_keys, &valid_queries);
        prompt_bf16_into(&qt, &kt, &vt, vk, vq, &mut full).unwrap();
        prompt_bf16_into(&qt, &kt, &vt, vk, vq, &mut padded).unwrap();
        let mut wide = Tensor::<[[[f32; 4]; 16]; 2]>::from_vec(vec![f32::NAN; 128]).unwrap();
        prompt_rank3_into(&qw, &kw, &vw, vk, vq, &mut wide).unwrap();
        let rounded: Vec<bf16> = wide.as_flat().iter().map(|&x| bf16::from_f32(x)).collect();
        assert_eq!(
            full.as_flat(),
            &rounded[..],
            "bf16, queries {valid_queries:?}"
        );
        assert_eq!(*padded, *full, "bf16, queries {valid_queries:?}");
        assert_eq!(padded.rows_written(), &valid_queries[..]);
    }
}

#[test]
fn a_zero_padded_output_of_split_keys_writes_only_the_rows_its_last_call_left() {
    let mut rng = Rng::new(31);
    let q = Tensor::<[[[[f32; 8]; 4]; 4]; 2]>::from_slice(&rng.values(256, 1.0)).unwrap();
    let k = Tensor::<[[[[f32; 8]; 2048]; 2]; 2]>::from_slice(&rng.values(65536, 1.0)).unwrap();
    let v = Tensor::<[[[[f32; 4]; 2048]; 2]; 2]>::from_slice(&rng.values(32768, 1.0)).unwrap();
    // Keys past one chunk of 1,024, so that the chunks are merged.
    let counts = [
        ([2048, 1500], [4, 4]),
        ([2048, 1500], [1, 2]),
        ([1100, 2048], [3, 0]),
        ([2000, 2048], [0, 4]),
    ];
    for isa in attn_tests::instruction_sets() {
        let mut padded = ZeroPadded::<[[[[f32; 4]; 4]; 4]; 2]>::zeros();
        for (valid_keys, valid_queries) in counts {
            let mut full =
                Tensor::<[[[[f32; 4]; 4]; 4]; 2]>::from_vec(vec![f32::NAN; 128]).unwrap();
            with_isa(isa, || {
                draft_into(&q, &k, &v, &valid_keys, &valid_queries, &mut full).unwrap();
                draft_into(&q, &k, &v, &valid_keys, &valid_queries, &mut padded).unwrap();
            })
            .unwrap();
            assert_eq!(*padded, *full, "on {isa}, queries {valid_queries:?}");
            assert_eq!(padded.rows_written(), &valid_queries[..]);
        }
    }
    assert_eq!(draft::INFO.key_chunks(), 2);
}

#[test]
fn a_zero_padded_output_is_left_as_it_was_by_a_count_past_the_queries() {
    let q = Tensor::<[[[[f32; 8]; 16]; 2]; 2]>::from_vec(vec![0.5; 512]).unwrap();
    let v = Tensor::<[[[[f32; 4]; 16]; 2]; 2]>::from_vec(vec![0.25; 256]).unwrap();
    let mut out = ZeroPadded::<[[[[f32; 4]; 16]; 2]; 2]>::zeros();
    let mut weights = Tensor::<[[[[f32; 16]; 16]; 2]; 2]>::zeros();
    let mut lse = Tensor::<[[[f32; 16]; 2]; 2]>::zeros();
    prompt_into(
        &q,
        &q,
        &v,
        &[16, 16],
        &[7, 9],
        &mut out,
        &mut weights,
        &mut lse,
    )
    .unwrap();
    let before = out.clone();
    let error = prompt_into(
        &q,
        &q,
        &v,
        &[16, 16],
        &[2, 17],
        &mut out,
        &mut weights,
        &mut lse,
    );
    assert_eq!(error.unwrap_err().valid, 17);
    assert_eq!(*out, *before, "nothing half-written");
    assert_eq!(out.rows_written(), &[7, 9]);
}
