//! The in-register path of tiny unrolled kernels (`__private::in_registers`: every operand
//! of a problem in one or two AVX-512VL registers): each shape that fits, on every instruction
//! set this machine has (the straight-line code on the others), against the f64 reference;
//! that the path is taken exactly where it should be; NaN, large scores, and every output
//! written.

use attn_runtime::__private::in_registers;
use attn_runtime::simd::{Isa, with_isa};
use attn_runtime::{Array, Tensor, attention};
use attn_tests::{Problem, Rng, accurate_on_every_isa, repeat_heads};

attention! {
    /// The textbook shape: 8 scores, 2 x (3 + 1) outputs and sums.
    fn textbook<q: [1, 2, 3], k: [1, 4, 3], v: [1, 4, 3]>;
    /// One query over eight keys: the scores fill a register, k and v two each.
    fn eight_keys<q: [1, 1, 2], k: [1, 8, 2], v: [1, 8, 2]>;
    /// Three keys: row maxima by rotations inside groups of three lanes; two batch entries.
    fn three_keys<q: [2, 2, 5], k: [2, 3, 5], v: [2, 3, 3]>;
    /// Four query heads over two key/value heads, two batch entries.
    fn grouped<q: [2, 4, 2, 2], k: [2, 2, 3, 2], v: [2, 2, 3, 1]>;
    /// Three heads, each with its own keys and values, two batch entries.
    fn heads<q: [2, 3, 2, 2], k: [2, 3, 3, 2], v: [2, 3, 3, 1]>;
    /// Rows of one key each.
    fn one_key<q: [1, 4, 4], k: [1, 1, 4], v: [1, 1, 1]>;
    /// One lane too wide (3 x (3 + 1) = 12 output lanes): straight-line code only.
    fn too_wide<q: [1, 3, 2], k: [1, 2, 2], v: [1, 2, 3]>;
}

/// Whether this machine should run the in-register path when nothing is forced, by the
/// operating system's word rather than the runtime's own detection: the CPU flags of
/// `/proc/cpuinfo` name every feature the path is compiled with. `None` where there is no
/// such file (the test then says it skipped that check).
fn path_expected() -> Option<bool> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    let flags = info.lines().find(|line| line.starts_with("flags"))?;
    let has = |feature: &str| flags.split_whitespace().any(|flag| flag == feature);
    let cpu = ["avx512f", "avx512vl", "avx2", "fma"].into_iter().all(has);
    Some(cpu && Isa::active() == Isa::Avx512)
}

/// Runs `kernel` on every supported instruction set, with inputs of `magnitude` drawn from
/// `seed`, and holds each result to the reference.
fn check<Q, K, V, O>(
    what: &str,
    (batch, heads, kv_heads): (usize, usize, usize),
    (queries, keys, depth, value_depth): (usize, usize, usize, usize),
    (magnitude, seed): (f32, u64),
    kernel: fn(&Q, &K, &V, &mut O),
) where
    Q: Array<Element = f32>,
    K: Array<Element = f32>,
    V: Array<Element = f32>,
    O: Array<Element = f32>,
{
    let mut rng = Rng::new(seed);
    let (q, k, v) = (
        rng.tensor::<Q>(magnitude),
        rng.tensor::<K>(magnitude),
        rng.tensor::<V>(magnitude),
    );
    let group = heads / kv_heads;
    let k_all = repeat_heads(k.as_flat(), batch, kv_heads, group, keys * depth);
    let v_all = repeat_heads(v.as_flat(), batch, kv_heads, group, keys * value_depth);
    let problem = Problem::with_default_scale(batch * heads, queries, keys, depth, value_depth);
    accurate_on_every_isa(
        &format!("{what}, magnitude {magnitude}"),
        &problem,
        [q.as_flat(), &k_all, &v_all],
        |out: &mut Tensor<O>| kernel(&q, &k, &v, out),
    );
}

#[test]
fn every_shape_that_fits_matches_the_reference_on_every_instruction_set() {
    for inputs in [(1.0, 1), (4.0, 2), (30.0, 3)] {
        check("textbook", (1, 1, 1), (2, 4, 3, 3), inputs, textbook_into);
        check(
            "eight keys",
            (1, 1, 1),
            (1, 8, 2, 2),
            inputs,
            eight_keys_into,
        );
        check(
            "three keys",
            (2, 1, 1),
            (2, 3, 5, 3),
            inputs,
            three_keys_into,
        );
        check("grouped", (2, 4, 2), (2, 3, 2, 1), inputs, grouped_into);
        check("heads", (2, 3, 3), (2, 3, 2, 1), inputs, heads_into);
        check("one key", (1, 1, 1), (4, 1, 4, 1), inputs, one_key_into);
        check("too wide", (1, 1, 1), (3, 2, 2, 3), inputs, too_wide_into);
    }
}

#[test]
fn the_path_runs_where_the_cpu_has_avx512vl_and_nowhere_else() {
    let (q, k, v) = attn_tests::textbook();
    let (q, k, v) = (
        q.as_flattened().as_flattened(),
        k.as_flattened().as_flattened(),
        v.as_flattened().as_flattened(),
    );
    let mut out = [f32::NAN; 6];
    let ran = in_registers::<2, 4, 3, 3, 1, 1>(q, k, v, &mut out, 0.5);
    match path_expected() {
        Some(expected) => assert_eq!(ran, expected),
        None => eprintln!("skipped: no /proc/cpuinfo to say whether the path should run"),
    }
    assert_eq!(out.iter().all(|x| x.is_finite()), ran, "{out:?}");
    // Forced onto another instruction set, or given lengths of another shape, it declines
    // and writes nothing.
    let mut untouched = [f32::NAN; 6];
    let forced = with_isa(Isa::Portable, || {
        in_registers::<2, 4, 3, 3, 1, 1>(q, k, v, &mut untouched, 0.5)
    });
    assert_eq!(forced, Ok(false));
    assert!(!in_registers::<2, 4, 3, 3, 1, 2>(
        q,
        k,
        v,
        &mut untouched,
        0.5
    ));
    assert!(!in_registers::<2, 4, 3, 3, 2, 1>(
        q,
        k,
        v,
        &mut untouched,
        0.5
    ));
    assert!(!in_registers::<2, 4, 3, 2, 1, 1>(
        q,
        k,
        v,
        &mut untouched,
        0.5
    ));
    assert!(!in_registers::<3, 3, 2, 3, 1, 1>(
        &q[..6],
        &k[..6],
        &v[..9],
        &mut [0.0; 9],
        0.5
    ));
    assert!(untouched.iter().all(|x| x.is_nan()));
}

#[test]
fn the_textbook_gives_the_same_output_on_the_path_and_off_it() {
    let (q, k, v) = attn_tests::textbook();
    // On the path: the in-register routine itself, which must have run; off it: the
    // straight-line code, forced onto the portable instruction set.
    let mut on = [f32::NAN; 6];
    let (q_flat, k_flat, v_flat) = (
        q.as_flattened().as_flattened(),
        k.as_flattened().as_flattened(),
        v.as_flattened().as_flattened(),
    );
    let scale = 1.0 / 3.0f32.sqrt();
    if !in_registers::<2, 4, 3, 3, 1, 1>(q_flat, k_flat, v_flat, &mut on, scale) {
        eprintln!("skipped: this CPU does not run the in-register path");
        return;
    }
    let off = with_isa(Isa::Portable, || textbook(&q, &k, &v)).unwrap();
    for (a, b) in on.iter().zip(off.as_flattened().as_flattened()) {
        assert!(
            (a - b).abs() <= 1e-6 * (1.0 + b.abs()),
            "{on:?} against {off:?}"
        );
    }
}

#[test]
fn a_nan_key_makes_nan_only_the_rows_of_the_heads_that_read_it() {
    let mut rng = Rng::new(7);
    let q = rng.tensor::<[[[[f32; 2]; 2]; 4]; 2]>(1.0);
    let mut k = rng.tensor::<[[[[f32; 2]; 3]; 2]; 2]>(1.0);
    let v = rng.tensor::<[[[[f32; 1]; 3]; 2]; 2]>(1.0);
    // Batch entry 1, key/value head 0: read by query heads 0 and 1 of that entry.
    k[1][0][2][1] = f32::NAN;
    for isa in attn_tests::instruction_sets() {
        let out = with_isa(isa, || grouped(&q, &k, &v)).unwrap();
        for (b, entry) in out.iter().enumerate() {
            for (h, head) in entry.iter().enumerate() {
                let reads_nan = b == 1 && h < 2;
                for row in head {
                    assert_eq!(row[0].is_nan(), reads_nan, "{isa}: batch {b} head {h}");
                }
            }
        }
    }
}

#[test]
fn scores_far_beyond_exp_s_range_do_not_overflow() {
    // Scores of about ±1e4: exp would overflow without the row maximum subtracted first.
    let q = [[[100.0, 0.0, 0.0], [0.0, -100.0, 100.0]]];
    let k = [[
        [100.0, 0.0, 0.0],
        [0.0, 100.0, 0.0],
        [-100.0, 0.0, 0.0],
        [0.0, 0.0, 100.0],
    ]];
    let v = [[
        [1.0, 2.0, 3.0],
        [4.0, 5.0, 6.0],
        [7.0, 8.0, 9.0],
        [10.0, 11.0, 12.0],
    ]];
    for isa in attn_tests::instruction_sets() {
        let out = with_isa(isa, || textbook(&q, &k, &v)).unwrap();
        // Row 0 puts all its weight on key 0, row 1 on key 3 (the others score far lower).
        assert_eq!(out[0][0], [1.0, 2.0, 3.0], "{isa}");
        assert_eq!(out[0][1], [10.0, 11.0, 12.0], "{isa}");
    }
}
