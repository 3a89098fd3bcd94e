//! Every operation of every instruction set this machine has (each is a small `unsafe`
//! intrinsic call on x86) against the one-lane reference, on the same inputs.

mod common;

use attn_runtime::half::{bf16, f16};
use attn_runtime::simd::{Isa, Lane, Simd, WithSimd, dispatch};

/// Applies each operation lane by lane with `S` and returns the results, in order.
struct AllOps<'a> {
    a: &'a [f32],
    b: &'a [f32],
    c: &'a [f32],
}

impl WithSimd for AllOps<'_> {
    type Output = Vec<Vec<f32>>;
    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) -> Vec<Vec<f32>> {
        let mut results = Vec::new();
        for start in (0..self.a.len()).step_by(S::LANES) {
            let (a, b, c) = (
                simd.load(&self.a[start..]),
                simd.load(&self.b[start..]),
                simd.load(&self.c[start..]),
            );
            let n = simd.round(simd.mul(c, simd.splat(50.0)));
            let ops = [
                simd.splat(2.5),
                simd.add(a, b),
                simd.sub(a, b),
                simd.mul(a, b),
                simd.mul_add(a, b, c),
                simd.max(a, b),
                simd.round(simd.mul(a, simd.splat(7.3))),
                simd.scale_by_pow2(a, n),
                simd.div(a, b),
                simd.select_lt(a, b, a, c),
            ];
            for (k, op) in ops.into_iter().enumerate() {
                let mut lanes = vec![0.0; S::LANES];
                simd.store(&mut lanes, op);
                if results.len() <= k {
                    results.push(Vec::new());
                }
                results[k].extend(lanes);
            }
            let reductions = [simd.reduce_max(a), simd.reduce_sum(a)];
            for (k, value) in reductions.into_iter().enumerate() {
                if results.len() <= 10 + k {
                    results.push(Vec::new());
                }
                results[10 + k].push(value);
            }
            // The last step of exp: into the subnormals, n in [-160, 0).
            let wide = simd.scale_by_pow2_wide(
                simd.mul_add(c, simd.splat(0.25), simd.splat(1.0)),
                simd.round(simd.mul_add(c, simd.splat(40.0), simd.splat(-80.0))),
            );
            let mut lanes = vec![0.0; S::LANES];
            simd.store(&mut lanes, wide);
            if results.len() <= 12 {
                results.push(Vec::new());
            }
            results[12].extend(lanes);
            // all_at_most: one flag per vector, against `b` (mixed), against the vector's
            // own max (true) and against a NaN (false).
            let max = simd.splat(simd.reduce_max(a));
            let flags = [
                simd.all_at_most(a, b),
                simd.all_at_most(a, max),
                simd.all_at_most(a, simd.splat(f32::NAN)),
                simd.all_at_most(simd.splat(f32::NAN), max),
            ];
            if results.len() <= 13 {
                results.push(Vec::new());
            }
            results[13].extend(flags.map(f32::from));
        }
        results
    }
}

#[test]
fn every_operation_matches_the_one_lane_reference() {
    let n = 64;
    let a: Vec<f32> = (0..n)
        .map(|i| ((i * 37 % 64) as f32 - 31.5) * 0.37)
        .collect();
    let b: Vec<f32> = (0..n)
        .map(|i| ((i * 11 % 64) as f32 - 20.0) * 0.53)
        .collect();
    let c: Vec<f32> = (0..n)
        .map(|i| ((i * 5 % 64) as f32 - 32.0) / 16.0)
        .collect();
    let reference = dispatch(
        Isa::Portable,
        AllOps {
            a: &a,
            b: &b,
            c: &c,
        },
    );
    let one_lane = AllOps {
        a: &a,
        b: &b,
        c: &c,
    }
    .with_simd(Lane);
    for isa in common::instruction_sets() {
        let got = dispatch(
            isa,
            AllOps {
                a: &a,
                b: &b,
                c: &c,
            },
        );
        // The elementwise operations (splat, add, sub, mul, max, round, scale_by_pow2, div,
        // select_lt, scale_by_pow2_wide) agree exactly, but for mul_add: FMA rounds once.
        for op in [0, 1, 2, 3, 5, 6, 7, 8, 9, 12] {
            assert_eq!(got[op], one_lane[op], "{isa}: operation {op}");
            assert_eq!(got[op], reference[op], "{isa}: operation {op}");
        }
        for (x, y) in got[4].iter().zip(&one_lane[4]) {
            assert!(
                (x - y).abs() <= 1e-5 * (1.0 + y.abs()),
                "{isa}: mul_add {x} vs {y}"
            );
        }
        // scale_by_pow2_wide is the correctly rounded a · 2^n, subnormals included.
        for (i, &x) in got[12].iter().enumerate() {
            let a = 1.0 + c[i] as f64 * 0.25;
            let n = (c[i] as f64 * 40.0 - 80.0).round_ties_even();
            assert_eq!(
                x,
                (a * n.exp2()) as f32,
                "{isa}: scale_by_pow2_wide lane {i}"
            );
        }
        // all_at_most, per vector, against the lanes compared one by one.
        let lanes = n / got[10].len();
        for (v, flags) in got[13].chunks(4).enumerate() {
            let (a, b) = (&a[v * lanes..][..lanes], &b[v * lanes..][..lanes]);
            let mixed = a.iter().zip(b).all(|(a, b)| a <= b);
            assert_eq!(
                flags,
                [f32::from(mixed), 1.0, 0.0, 0.0],
                "{isa}: all_at_most"
            );
        }
        // Reductions, per vector: the max exactly, the sum to rounding.
        let lanes = got[10].len();
        for v in 0..lanes {
            let chunk = &a[v * (n / lanes)..(v + 1) * (n / lanes)];
            let max = chunk.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let sum: f32 = chunk.iter().sum();
            assert_eq!(got[10][v], max, "{isa}: reduce_max");
            assert!(
                (got[11][v] - sum).abs() <= 1e-4,
                "{isa}: reduce_sum {} vs {sum}",
                got[11][v]
            );
        }
    }
}

#[test]
fn loads_and_stores_touch_exactly_their_lanes() {
    struct RoundTrip<'a>(&'a [f32], &'a mut [f32]);
    impl WithSimd for RoundTrip<'_> {
        type Output = usize;
        #[inline(always)]
        fn with_simd<S: Simd>(self, simd: S) -> usize {
            simd.store(&mut self.1[1..], simd.load(&self.0[1..]));
            S::LANES
        }
    }
    for isa in common::instruction_sets() {
        let src: Vec<f32> = (0..18).map(|i| i as f32).collect();
        let mut dst = vec![-1.0; 18];
        let lanes = dispatch(isa, RoundTrip(&src, &mut dst));
        for (i, &x) in dst.iter().enumerate() {
            let expected = if (1..=lanes).contains(&i) {
                i as f32
            } else {
                -1.0
            };
            assert_eq!(x, expected, "{isa}: lane {i}");
        }
    }
}

#[test]
fn a_short_slice_is_a_panic_not_a_read_past_its_end() {
    struct Short<'a>(&'a [f32]);
    impl WithSimd for Short<'_> {
        type Output = ();
        #[inline(always)]
        fn with_simd<S: Simd>(self, simd: S) {
            std::hint::black_box(simd.load(self.0));
        }
    }
    for isa in common::instruction_sets() {
        let short = [1.0f32; 3];
        let result = std::panic::catch_unwind(|| dispatch(isa, Short(&short)));
        assert!(result.is_err(), "{isa}");
    }
}

#[test]
fn prefetch_is_only_a_hint() {
    let data: Vec<f32> = (0..100).map(|i| i as f32).collect();
    for at in 0..=data.len() {
        attn_runtime::simd::prefetch(&data[at..]);
    }
    assert!(data.iter().enumerate().all(|(i, &x)| x == i as f32));
}

/// `pack_keys` for one shape on one instruction set.
struct Pack<'a, const DEPTH: usize, const KB: usize> {
    keys: &'a [[f32; DEPTH]],
}

impl<const DEPTH: usize, const KB: usize> WithSimd for Pack<'_, DEPTH, KB> {
    type Output = Vec<[f32; KB]>;
    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) -> Vec<[f32; KB]> {
        // NaN where nothing is written would show through.
        let mut packed = [[f32::NAN; KB]; DEPTH];
        attn_runtime::__private::pack_keys(simd, self.keys, &mut packed);
        packed.to_vec()
    }
}

/// Checks `pack_keys` (square blocks by `Simd::transpose`, edges element by element) against
/// its definition, `packed[d][j] = keys[j][d]` and 0 past the last key, for `keys` counts
/// around the vector widths, on every instruction set.
fn check_pack<const DEPTH: usize, const KB: usize>() {
    let all: Vec<[f32; DEPTH]> = (0..KB + 3)
        .map(|j| std::array::from_fn(|d| (j * 1000 + d) as f32))
        .collect();
    for count in [0, 1, 7, 8, 9, 15, 16, 17, 31, 33, KB - 1, KB, KB + 3] {
        let keys = &all[..count.min(all.len())];
        let expected: Vec<[f32; KB]> = (0..DEPTH)
            .map(|d| std::array::from_fn(|j| keys.get(j).map_or(0.0, |key| key[d])))
            .collect();
        for isa in common::instruction_sets() {
            let packed = dispatch(isa, Pack::<DEPTH, KB> { keys });
            assert_eq!(
                packed, expected,
                "{isa}: depth {DEPTH}, block {KB}, {count} keys"
            );
        }
    }
}

#[test]
fn packed_keys_are_the_keys_transposed_on_every_instruction_set() {
    check_pack::<64, 64>();
    check_pack::<3, 16>();
    check_pack::<40, 48>();
    check_pack::<17, 64>();
    check_pack::<128, 32>();
}

#[test]
fn packing_from_or_into_a_short_slice_is_a_panic() {
    /// `Simd::pack_keys` of 32 keys of depth 32 into blocks of 32, with one of the slices a
    /// value short: the transposes check each square before their unchecked loads and
    /// stores, the edges each element.
    struct ShortPack {
        short_keys: bool,
    }
    impl WithSimd for ShortPack {
        type Output = ();
        #[inline(always)]
        fn with_simd<S: Simd>(self, simd: S) {
            let keys = vec![1.0f32; 32 * 32 - usize::from(self.short_keys)];
            let mut packed = vec![0.0f32; 32 * 32 - usize::from(!self.short_keys)];
            simd.pack_keys(&keys, 32, 32, &mut packed, 32);
            std::hint::black_box(&packed);
        }
    }
    for isa in common::instruction_sets() {
        for short_keys in [true, false] {
            let result = std::panic::catch_unwind(|| dispatch(isa, ShortPack { short_keys }));
            assert!(result.is_err(), "{isa}, short keys: {short_keys}");
        }
    }
}

/// Runs every check on one instruction set; panics on the first that fails.
struct SixteenBitsAndSums;

impl WithSimd for SixteenBitsAndSums {
    type Output = ();
    fn with_simd<S: Simd>(self, simd: S) {
        let values: Vec<f32> = (0..64).map(|i| (i as f32 * 0.731).sin() * 40.0).collect();
        let halves: Vec<f16> = values.iter().map(|&x| f16::from_f32(x)).collect();
        let brains: Vec<bf16> = values.iter().map(|&x| bf16::from_f32(x)).collect();
        let mut lanes = [0.0f32; 16];
        for at in (0..64 - S::LANES).step_by(3) {
            simd.store(&mut lanes, simd.load_f16(&halves[at..]));
            let expected: Vec<f32> = halves[at..][..S::LANES]
                .iter()
                .map(|x| x.to_f32())
                .collect();
            assert_eq!(lanes[..S::LANES], expected[..], "f16 from {at}");
            simd.store(&mut lanes, simd.load_bf16(&brains[at..]));
            let expected: Vec<f32> = brains[at..][..S::LANES]
                .iter()
                .map(|x| x.to_f32())
                .collect();
            assert_eq!(lanes[..S::LANES], expected[..], "bf16 from {at}");
        }
        // Packing widened keys gives the packing of the keys widened first (depth 21:
        // squares and edges; 19 keys of a block of 32).
        let (depth, count, block) = (21, 19, 32);
        let keys: Vec<bf16> = (0..depth * count)
            .map(|i| bf16::from_f32((i as f32 * 0.37).cos()))
            .collect();
        let widened: Vec<f32> = keys.iter().map(|x| x.to_f32()).collect();
        let (mut packed, mut expected) = (vec![9.0; depth * block], vec![7.0; depth * block]);
        simd.pack_keys_widened(&keys, depth, count, &mut packed, block);
        simd.pack_keys(&widened, depth, count, &mut expected, block);
        assert_eq!(packed, expected);
    }
}

#[test]
fn sixteen_bit_loads_and_packing_agree_with_widening_first() {
    for isa in common::instruction_sets() {
        dispatch(isa, SixteenBitsAndSums);
    }
}
