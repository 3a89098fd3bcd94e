//! Attention problems small enough to live in registers, on AVX-512VL's 8-lane registers.
//!
//! For the textbook shape (2 queries, 4 keys, depth 3) the straight-line scalar code spends
//! most of its time moving single floats; here each operand of one (batch, head) problem is
//! two loads, and every rearrangement the formula needs is one permute (`vpermps`,
//! `vpermt2ps`) with a constant index vector:
//!
//! - scores, lane `i·Nk + j`: `Σ_d q[i][d] · k[j][d]`, over `d` one multiply-add of two
//!   permuted registers;
//! - row maxima by rotations inside each row's lanes (1, 2, 4 lanes: `⌈log2 Nk⌉` steps);
//! - weights `exp(s - max)` in one vector;
//! - outputs, lane `i·(Dv+1) + e`: `Σ_j w[i][j] · v[j][e]`, with the extra lane `e = Dv`
//!   multiplying by 1, so that it accumulates the row's sum for free;
//! - each output lane divided by its row's sum, both brought to lane `i·Dv + e` by one
//!   permute each, and one store.
//!
//! W1 (the textbook shape) takes 9 ns this way and 22 ns by the straight-line code;
//! `bench/examples/w1_bound.rs` times it beside hand-written versions. The 256-bit
//! registers are deliberate: the same sequence on 512-bit registers took 37 ns there (38 in
//! a trial with its loads made like these: the wider arithmetic itself, for a reason this
//! VM's missing performance counters cannot show).

use super::Simd;
use super::x86::Avx2;
use std::arch::x86_64::*;

/// Lane indices into a table of two registers: 0..8 the first, 8..16 the second.
type Lanes = [i32; 8];

/// The lanes of one register.
const LANES: usize = attn_rules::REGISTER_LANES;
/// The lanes of two registers.
const TABLE: usize = 2 * LANES;

/// Whether a problem of `queries x keys`, depth `depth` and value depth `value_depth` fits:
/// its scores and its outputs (with one sum lane per row) in one register, q, k and v each
/// in two. attn's shared rule, by which the macro emits the in-register call.
pub(crate) const fn fits(queries: usize, keys: usize, depth: usize, value_depth: usize) -> bool {
    attn_rules::fits_in_registers(queries, keys, depth, value_depth)
}

/// The constant index vectors of one shape, computed at compile time. Lanes that hold no
/// score or output read lane 0, whatever it holds (a NaN there included): no used lane
/// ever reads an unused one.
struct Layout<const NQ: usize, const NK: usize, const D: usize, const DV: usize> {
    /// `query[d]`, lane `i·Nk + j`: `q[i][d]`.
    query: [Lanes; D],
    /// `key[d]`, lane `i·Nk + j`: `k[j][d]`.
    key: [Lanes; D],
    /// Rotation by 1, 2 and 4 lanes inside each row's `Nk` score lanes.
    rotation: [Lanes; 3],
    /// `weight[j]`, lane `i·(Dv+1) + e`: the score lane `i·Nk + j`.
    weight: [Lanes; NK],
    /// `value[j]`, lane `i·(Dv+1) + e`: `v[j][e]` (`e < Dv`).
    value: [Lanes; NK],
    /// The lanes `i·(Dv+1) + Dv` that accumulate each row's sum.
    sums: u8,
    /// Lane `i·Dv + e`: the output lane `i·(Dv+1) + e`.
    outputs: Lanes,
    /// Lane `i·Dv + e`: the sum lane of row `i`.
    row_sums: Lanes,
}

impl<const NQ: usize, const NK: usize, const D: usize, const DV: usize> Layout<NQ, NK, D, DV> {
    const NEW: Self = Self::new();

    const fn new() -> Self {
        let mut layout = Layout {
            query: [[0; 8]; D],
            key: [[0; 8]; D],
            rotation: [[0; 8]; 3],
            weight: [[0; 8]; NK],
            value: [[0; 8]; NK],
            sums: 0,
            outputs: [0; 8],
            row_sums: [0; 8],
        };
        // A shape that does not fit never runs (`attend` declines it), but its layout is
        // still evaluated wherever `attend` is instantiated: all lanes 0, not an overflow.
        if !fits(NQ, NK, D, DV) {
            return layout;
        }
        let mut i = 0;
        while i < NQ {
            let mut j = 0;
            while j < NK {
                let lane = i * NK + j;
                let mut d = 0;
                while d < D {
                    layout.query[d][lane] = table_lane(i * D + d, NQ * D);
                    layout.key[d][lane] = table_lane(j * D + d, NK * D);
                    d += 1;
                }
                let mut step = 0;
                while step < 3 {
                    layout.rotation[step][lane] = (i * NK + (j + (1 << step)) % NK) as i32;
                    step += 1;
                }
                let mut e = 0;
                while e <= DV {
                    let out = i * (DV + 1) + e;
                    layout.weight[j][out] = lane as i32;
                    if e < DV {
                        layout.value[j][out] = table_lane(j * DV + e, NK * DV);
                    }
                    e += 1;
                }
                j += 1;
            }
            layout.sums |= 1 << (i * (DV + 1) + DV);
            let mut e = 0;
            while e < DV {
                layout.outputs[i * DV + e] = (i * (DV + 1) + e) as i32;
                layout.row_sums[i * DV + e] = (i * (DV + 1) + DV) as i32;
                e += 1;
            }
            i += 1;
        }
        layout
    }
}

/// One call's operands, every problem one after another: `q` (`Nq x D` each) and `out`
/// (`Nq x Dv`) one per problem, `k` (`Nk x D`) and `v` (`Nk x Dv`) one per `GROUP` of
/// consecutive problems (grouped-query attention).
pub(crate) struct Operands<'a> {
    /// The queries of every problem.
    pub q: &'a [f32],
    /// The keys of every group of problems.
    pub k: &'a [f32],
    /// The values of every group of problems.
    pub v: &'a [f32],
    /// The outputs of every problem.
    pub out: &'a mut [f32],
    /// The factor on every score.
    pub scale: f32,
}

/// Runs every problem of `operands`; false, with nothing written, when the CPU lacks
/// AVX-512VL, the shape does not [`fits`], or the lengths do not describe `PROBLEMS` whole
/// problems (the macro always passes whole ones).
pub(crate) fn attend<
    const NQ: usize,
    const NK: usize,
    const D: usize,
    const DV: usize,
    const GROUP: usize,
    const PROBLEMS: usize,
>(
    operands: Operands,
) -> bool {
    let cpu = cpu_has_avx512vl();
    // The shape's fit is decided at compile time: no test of it runs per call.
    if !cpu || !const { fits(NQ, NK, D, DV) } || GROUP == 0 {
        return false;
    }
    let Operands { q, k, v, .. } = &operands;
    let whole = operands.out.len() == PROBLEMS * NQ * DV
        && q.len() == PROBLEMS * NQ * D
        && PROBLEMS.is_multiple_of(GROUP)
        && k.len() == PROBLEMS / GROUP * NK * D
        && v.len() == PROBLEMS / GROUP * NK * DV;
    if !whole {
        return false;
    }
    // SAFETY: AVX-512F, AVX-512VL, AVX2 and FMA were detected just above; the lengths were
    // checked against the shape.
    unsafe { attend_avx512vl::<NQ, NK, D, DV, GROUP, PROBLEMS>(operands) };
    true
}

/// Whether the CPU has every feature the in-register path is compiled with: those of
/// [`Isa::Avx512`](super::Isa::Avx512) and AVX-512VL, and F16C, which the `Avx2` token it
/// uses promises. Detected once: the textbook kernel
/// takes 13 ns, and four feature tests at every call cost it 2 ns (W1 0.013 -> 0.015 us in
/// alternating runs of the attention benchmark).
pub(crate) fn cpu_has_avx512vl() -> bool {
    static DETECTED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *DETECTED.get_or_init(|| {
        super::Isa::Avx512.is_supported()
            && is_x86_feature_detected!("avx512vl")
            && is_x86_feature_detected!("f16c")
    })
}

/// The problems of [`attend`], whose lengths it checked.
#[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
fn attend_avx512vl<
    const NQ: usize,
    const NK: usize,
    const D: usize,
    const DV: usize,
    const GROUP: usize,
    const PROBLEMS: usize,
>(
    Operands {
        q,
        k,
        v,
        out,
        scale,
    }: Operands,
) {
    let layout = &Layout::<NQ, NK, D, DV>::NEW;
    // SAFETY: `attend` checked AVX2, FMA and F16C (`cpu_has_avx512vl`); this function is
    // compiled for AVX2 and FMA, and the token's F16C loads are not used here.
    let simd = unsafe { Avx2::assume_available() };
    let ones = simd.splat(1.0);
    // Lengths the compiler knows, so that the slices below need no checks.
    let (q, k, v) = (
        &q[..PROBLEMS * NQ * D],
        &k[..PROBLEMS / GROUP * NK * D],
        &v[..PROBLEMS / GROUP * NK * DV],
    );
    for (p, out) in out[..PROBLEMS * NQ * DV]
        .chunks_exact_mut(NQ * DV)
        .enumerate()
    {
        let (q_lo, q_hi) = two_registers(&q[p * NQ * D..][..NQ * D]);
        let (k_lo, k_hi) = two_registers(&k[p / GROUP * NK * D..][..NK * D]);
        let (v_lo, v_hi) = two_registers(&v[p / GROUP * NK * DV..][..NK * DV]);
        let mut scores = simd.splat(0.0);
        for d in 0..D {
            let q_d = from_two(q_lo, &layout.query[d], q_hi);
            let k_d = from_two(k_lo, &layout.key[d], k_hi);
            scores = simd.mul_add(q_d, k_d, scores);
        }
        let scores = simd.mul(scores, simd.splat(scale));
        let mut max = scores;
        for rotation in layout.rotation.iter().take(rotations(NK)) {
            max = simd.max(max, from_one(max, rotation));
        }
        let (weights, pow2) = super::exp_of_nonpositive_unscaled(simd, simd.sub(scores, max));
        // `vscalefps` scales into the subnormals in one step, where AVX2 takes two.
        let weights = _mm256_scalef_ps(weights, pow2);
        let mut sums_and_outputs = simd.splat(0.0);
        for j in 0..NK {
            let value = or_ones(from_two(v_lo, &layout.value[j], v_hi), layout.sums, ones);
            let weight = from_one(weights, &layout.weight[j]);
            sums_and_outputs = simd.mul_add(weight, value, sums_and_outputs);
        }
        let outputs = from_one(sums_and_outputs, &layout.outputs);
        let sums = from_one(sums_and_outputs, &layout.row_sums);
        store_first(simd, out, simd.div(outputs, sums));
    }
}

/// The rotations (by 1, 2, 4 lanes) after which every lane of a row of `keys` has seen the
/// row's maximum: `⌈log2 keys⌉`.
const fn rotations(keys: usize) -> usize {
    keys.next_power_of_two().trailing_zeros() as usize
}

/// Lane `l` of the result: lane `lanes[l]` of the table `lo, hi` (16 lanes).
#[target_feature(enable = "avx512f,avx512vl")]
#[inline]
fn from_two(lo: __m256, lanes: &Lanes, hi: __m256) -> __m256 {
    // SAFETY: reads the 8 i32 of `lanes`.
    let lanes = unsafe { _mm256_loadu_si256(lanes.as_ptr().cast()) };
    _mm256_permutex2var_ps(lo, lanes, hi)
}

/// Lane `l` of the result: lane `lanes[l]` of `v`.
#[target_feature(enable = "avx512f,avx512vl")]
#[inline]
fn from_one(v: __m256, lanes: &Lanes) -> __m256 {
    // SAFETY: reads the 8 i32 of `lanes`.
    let lanes = unsafe { _mm256_loadu_si256(lanes.as_ptr().cast()) };
    _mm256_permutexvar_ps(lanes, v)
}

/// `v` with 1 in the lanes that `ones_at` sets.
#[target_feature(enable = "avx512f,avx512vl")]
#[inline]
fn or_ones(v: __m256, ones_at: u8, ones: __m256) -> __m256 {
    _mm256_mask_blend_ps(ones_at, v, ones)
}

/// The values of `src` (at most 16) as a table of two registers: lanes 0..8 hold
/// `src[0..8]`, lanes 8..16 the last 8 values (overlapping the first register when there are
/// fewer than 16: see [`table_lane`]), so that no lane past `src` is read. Plain loads where
/// `src` has 8 values or more, a masked load for fewer.
#[target_feature(enable = "avx512f,avx512vl")]
#[inline]
fn two_registers(src: &[f32]) -> (__m256, __m256) {
    let len = src.len().min(TABLE);
    if len < LANES {
        let mask = ((1u32 << len) - 1) as u8;
        // SAFETY: the masked load reads only the first `len` lanes, each inside `src`.
        return unsafe {
            (
                _mm256_maskz_loadu_ps(mask, src.as_ptr()),
                _mm256_setzero_ps(),
            )
        };
    }
    let (first, last) = (&src[..LANES], &src[len - LANES..len]);
    // SAFETY: each load reads 8 f32 of a slice of 8.
    unsafe {
        (
            _mm256_loadu_ps(first.as_ptr()),
            _mm256_loadu_ps(last.as_ptr()),
        )
    }
}

/// The lane of [`two_registers`]' table that holds value `x` of `len` values.
const fn table_lane(x: usize, len: usize) -> i32 {
    if x < LANES {
        x as i32
    } else {
        (x + TABLE - len) as i32
    }
}

/// Writes the first `dst.len()` (at most 8) lanes of `v`: a store to the stack and a copy,
/// which a later read of `dst` can take from the store buffer (a masked store cannot be
/// forwarded: W1 measured 8.4 GFLOP/s with one, 8.8 with this).
#[inline(always)]
fn store_first(simd: Avx2, dst: &mut [f32], v: __m256) {
    let mut lanes = [0.0f32; LANES];
    simd.store(&mut lanes, v);
    let len = dst.len().min(LANES);
    dst[..len].copy_from_slice(&lanes[..len]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cpu_has_it() -> bool {
        let has = cpu_has_avx512vl();
        if !has {
            eprintln!("skipped: this CPU lacks AVX-512VL (or AVX-512F, AVX2, FMA)");
        }
        has
    }

    #[test]
    fn two_registers_put_each_value_where_the_layout_looks_for_it() {
        if !cpu_has_it() {
            return;
        }
        for len in 1..=TABLE {
            // Exactly `len` values in their own allocation, so that a read past them would
            // leave it (the masked load for fewer than 8 must not).
            let src: Vec<f32> = (0..len).map(|x| x as f32 + 1.0).collect();
            let mut table = [0.0f32; TABLE];
            // SAFETY: the CPU has AVX-512F and AVX-512VL (checked above); the stores write
            // 8 f32 each into halves of a local array of 16.
            unsafe {
                let (lo, hi) = two_registers(&src);
                _mm256_storeu_ps(table.as_mut_ptr(), lo);
                _mm256_storeu_ps(table[LANES..].as_mut_ptr(), hi);
            }
            for (x, value) in src.iter().enumerate() {
                assert_eq!(
                    table[table_lane(x, len) as usize],
                    *value,
                    "len {len}, x {x}"
                );
            }
        }
    }

    #[test]
    fn rotations_cover_a_row_of_any_length() {
        let counts: Vec<usize> = (1..=8).map(rotations).collect();
        assert_eq!(counts, [0, 1, 2, 2, 3, 3, 3, 3]);
    }

    #[test]
    fn the_layout_of_the_textbook_shape() {
        let layout = Layout::<2, 4, 3, 3>::NEW;
        // Score lane 5 is query 1, key 1: q[1][d] is value 3 + d of q, k[1][d] value 3 + d of k.
        assert_eq!(layout.query[2][5], 5);
        assert_eq!(layout.key[2][5], 5);
        // Output lane 6 is query 1, value 2 (lanes 4..8 hold row 1, its sum in lane 7).
        assert_eq!(layout.weight[3][6], 7);
        assert_eq!(layout.value[3][6], table_lane(11, 12));
        assert_eq!(layout.sums, 0b1000_1000);
        assert_eq!(layout.outputs, [0, 1, 2, 4, 5, 6, 0, 0]);
        assert_eq!(layout.row_sums, [3, 3, 3, 7, 7, 7, 0, 0]);
        assert!(!fits(3, 2, 2, 3));
        assert_eq!(Layout::<3, 2, 2, 3>::NEW.sums, 0);
    }
}
