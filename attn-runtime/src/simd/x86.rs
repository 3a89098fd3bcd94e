//! AVX2+FMA and AVX-512F, each behind one `#[target_feature]` wrapper.
//!
//! [`Avx2`] and [`Avx512`] have a private field: they are only made inside [`run_avx2`] and
//! [`run_avx512`], which [`super::dispatch`] calls only after checking that the CPU has the
//! instruction set. Every intrinsic below relies on that, as its `SAFETY` line says.

use super::elements::Element;
use super::{Simd, WithSimd};
use half::{bf16, f16};
use std::arch::x86_64::*;

/// 256-bit AVX2 vectors with FMA (and F16C, which converts f16), 8 lanes.
#[derive(Clone, Copy, Debug)]
pub struct Avx2 {
    _checked: (),
}

/// 512-bit AVX-512F vectors, 16 lanes (AVX-512F converts f16 itself).
#[derive(Clone, Copy, Debug)]
pub struct Avx512 {
    _checked: (),
}

#[target_feature(enable = "avx2,fma,f16c")]
fn avx2<Op: WithSimd>(op: Op) -> Op::Output {
    op.with_simd(Avx2 { _checked: () })
}

#[target_feature(enable = "avx512f,avx2,fma")]
fn avx512<Op: WithSimd>(op: Op) -> Op::Output {
    op.with_simd(Avx512 { _checked: () })
}

/// Runs `op` with AVX2 and FMA. The caller has checked that the CPU has both.
pub(super) fn run_avx2<Op: WithSimd>(op: Op) -> Op::Output {
    // SAFETY: `dispatch` calls this only when `Isa::Avx2.is_supported()`.
    unsafe { avx2(op) }
}

/// Runs `op` with AVX-512F. The caller has checked that the CPU has it.
pub(super) fn run_avx512<Op: WithSimd>(op: Op) -> Op::Output {
    // SAFETY: `dispatch` calls this only when `Isa::Avx512.is_supported()`.
    unsafe { avx512(op) }
}

/// `_MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC`: round to nearest, ties to even.
const NEAREST: i32 = 0x08;

impl Simd for Avx2 {
    const LANES: usize = 8;
    type V = __m256;

    #[inline(always)]
    fn splat(self, x: f32) -> __m256 {
        // SAFETY: an `Avx2` exists only where AVX2 and FMA are available (see the module).
        unsafe { _mm256_set1_ps(x) }
    }
    #[inline(always)]
    fn load(self, src: &[f32]) -> __m256 {
        let src = &src[..8];
        // SAFETY: `src` has 8 readable f32 (the slice above checked it); AVX is available.
        unsafe { _mm256_loadu_ps(src.as_ptr()) }
    }
    #[inline(always)]
    fn load_f16(self, src: &[f16]) -> __m256 {
        let src = &src[..8];
        // SAFETY: `src` has 8 readable f16, 16 bytes (the slice above checked it); an `Avx2`
        // exists only where AVX2 and F16C are available (see the module).
        unsafe { _mm256_cvtph_ps(_mm_loadu_si128(src.as_ptr().cast())) }
    }
    #[inline(always)]
    fn load_bf16(self, src: &[bf16]) -> __m256 {
        let src = &src[..8];
        // SAFETY: `src` has 8 readable bf16, 16 bytes (the slice above checked it); AVX2 is
        // available (see the module). A bf16 is the high half of an f32's bits.
        unsafe {
            let wide = _mm256_cvtepu16_epi32(_mm_loadu_si128(src.as_ptr().cast()));
            _mm256_castsi256_ps(_mm256_slli_epi32::<16>(wide))
        }
    }
    #[inline(always)]
    fn store(self, dst: &mut [f32], v: __m256) {
        let dst = &mut dst[..8];
        // SAFETY: `dst` has 8 writable f32 (the slice above checked it); AVX is available.
        unsafe { _mm256_storeu_ps(dst.as_mut_ptr(), v) }
    }
    #[inline(always)]
    fn add(self, a: __m256, b: __m256) -> __m256 {
        // SAFETY: AVX is available (see the module).
        unsafe { _mm256_add_ps(a, b) }
    }
    #[inline(always)]
    fn sub(self, a: __m256, b: __m256) -> __m256 {
        // SAFETY: AVX is available (see the module).
        unsafe { _mm256_sub_ps(a, b) }
    }
    #[inline(always)]
    fn mul(self, a: __m256, b: __m256) -> __m256 {
        // SAFETY: AVX is available (see the module).
        unsafe { _mm256_mul_ps(a, b) }
    }
    #[inline(always)]
    fn div(self, a: __m256, b: __m256) -> __m256 {
        // SAFETY: AVX is available (see the module).
        unsafe { _mm256_div_ps(a, b) }
    }
    #[inline(always)]
    fn mul_add(self, a: __m256, b: __m256, c: __m256) -> __m256 {
        // SAFETY: FMA is available (see the module).
        unsafe { _mm256_fmadd_ps(a, b, c) }
    }
    #[inline(always)]
    fn max(self, a: __m256, b: __m256) -> __m256 {
        // SAFETY: AVX is available (see the module).
        unsafe { _mm256_max_ps(a, b) }
    }
    #[inline(always)]
    fn min(self, a: __m256, b: __m256) -> __m256 {
        // SAFETY: AVX is available (see the module).
        unsafe { _mm256_min_ps(a, b) }
    }
    #[inline(always)]
    fn round(self, a: __m256) -> __m256 {
        // SAFETY: AVX is available (see the module).
        unsafe { _mm256_round_ps::<NEAREST>(a) }
    }
    #[inline(always)]
    fn scale_by_pow2(self, a: __m256, n: __m256) -> __m256 {
        // SAFETY: AVX2 is available (see the module).
        unsafe {
            let biased = _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127));
            _mm256_mul_ps(a, _mm256_castsi256_ps(_mm256_slli_epi32::<23>(biased)))
        }
    }
    #[inline(always)]
    fn select_lt(self, a: __m256, b: __m256, yes: __m256, no: __m256) -> __m256 {
        // SAFETY: AVX is available (see the module).
        unsafe { _mm256_blendv_ps(no, yes, _mm256_cmp_ps::<_CMP_LT_OQ>(a, b)) }
    }
    #[inline(always)]
    fn reduce_max(self, a: __m256) -> f32 {
        // SAFETY: AVX is available (see the module).
        unsafe {
            let quarter = _mm_max_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps::<1>(a));
            let pair = _mm_max_ps(quarter, _mm_movehl_ps(quarter, quarter));
            _mm_cvtss_f32(_mm_max_ss(pair, _mm_shuffle_ps::<0b01>(pair, pair)))
        }
    }
    #[inline(always)]
    fn reduce_sum(self, a: __m256) -> f32 {
        // SAFETY: AVX is available (see the module).
        unsafe {
            let halves = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps::<1>(a));
            let pairs = _mm_add_ps(halves, _mm_movehl_ps(halves, halves));
            _mm_cvtss_f32(_mm_add_ss(pairs, _mm_shuffle_ps::<0b01>(pairs, pairs)))
        }
    }
    #[inline(always)]
    fn all_at_most(self, a: __m256, b: __m256) -> bool {
        // SAFETY: AVX is available (see the module).
        unsafe { _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_LE_OQ>(a, b)) == 0xff }
    }
    #[inline(always)]
    fn pack_keys(self, keys: &[f32], depth: usize, count: usize, packed: &mut [f32], block: usize) {
        // SAFETY: an `Avx2` exists only where AVX2 and FMA are available (see the module).
        unsafe { pack_keys_avx2(keys, depth, count, packed, block) }
    }
    fn pack_keys_widened<T: Element>(
        self,
        keys: &[T],
        depth: usize,
        count: usize,
        packed: &mut [f32],
        block: usize,
    ) {
        // SAFETY: an `Avx2` exists only where AVX2, FMA and F16C are available.
        unsafe { pack_keys_widened_avx2(keys, depth, count, packed, block) }
    }
}

impl Simd for Avx512 {
    const LANES: usize = 16;
    type V = __m512;

    #[inline(always)]
    fn splat(self, x: f32) -> __m512 {
        // SAFETY: an `Avx512` exists only where AVX-512F is available (see the module).
        unsafe { _mm512_set1_ps(x) }
    }
    #[inline(always)]
    fn load(self, src: &[f32]) -> __m512 {
        let src = &src[..16];
        // SAFETY: `src` has 16 readable f32 (the slice above checked it); AVX-512F is available.
        unsafe { _mm512_loadu_ps(src.as_ptr()) }
    }
    #[inline(always)]
    fn load_f16(self, src: &[f16]) -> __m512 {
        let src = &src[..16];
        // SAFETY: `src` has 16 readable f16, 32 bytes (the slice above checked it); AVX-512F
        // is available (see the module).
        unsafe { _mm512_cvtph_ps(_mm256_loadu_si256(src.as_ptr().cast())) }
    }
    #[inline(always)]
    fn load_bf16(self, src: &[bf16]) -> __m512 {
        let src = &src[..16];
        // SAFETY: `src` has 16 readable bf16, 32 bytes (the slice above checked it);
        // AVX-512F is available (see the module). A bf16 is the high half of an f32's bits.
        unsafe {
            let wide = _mm512_cvtepu16_epi32(_mm256_loadu_si256(src.as_ptr().cast()));
            _mm512_castsi512_ps(_mm512_slli_epi32::<16>(wide))
        }
    }
    #[inline(always)]
    fn store(self, dst: &mut [f32], v: __m512) {
        let dst = &mut dst[..16];
        // SAFETY: `dst` has 16 writable f32 (the slice above checked it); AVX-512F is available.
        unsafe { _mm512_storeu_ps(dst.as_mut_ptr(), v) }
    }
    #[inline(always)]
    fn add(self, a: __m512, b: __m512) -> __m512 {
        // SAFETY: AVX-512F is available (see the module).
        unsafe { _mm512_add_ps(a, b) }
    }
    #[inline(always)]
    fn sub(self, a: __m512, b: __m512) -> __m512 {
        // SAFETY: AVX-512F is available (see the module).
        unsafe { _mm512_sub_ps(a, b) }
    }
    #[inline(always)]
    fn mul(self, a: __m512, b: __m512) -> __m512 {
        // SAFETY: AVX-512F is available (see the module).
        unsafe { _mm512_mul_ps(a, b) }
    }
    #[inline(always)]
    fn div(self, a: __m512, b: __m512) -> __m512 {
        // SAFETY: AVX-512F is available (see the module).
        unsafe { _mm512_div_ps(a, b) }
    }
    #[inline(always)]
    fn mul_add(self, a: __m512, b: __m512, c: __m512) -> __m512 {
        // SAFETY: AVX-512F is available (see the module).
        unsafe { _mm512_fmadd_ps(a, b, c) }
    }
    #[inline(always)]
    fn max(self, a: __m512, b: __m512) -> __m512 {
        // SAFETY: AVX-512F is available (see the module).
        unsafe { _mm512_max_ps(a, b) }
    }
    #[inline(always)]
    fn min(self, a: __m512, b: __m512) -> __m512 {
        // SAFETY: AVX-512F is available (see the module).
        unsafe { _mm512_min_ps(a, b) }
    }
    #[inline(always)]
    fn round(self, a: __m512) -> __m512 {
        // SAFETY: AVX-512F is available (see the module).
        unsafe { _mm512_roundscale_ps::<NEAREST>(a) }
    }
    #[inline(always)]
    fn scale_by_pow2(self, a: __m512, n: __m512) -> __m512 {
        // SAFETY: AVX-512F is available (see the module).
        unsafe { _mm512_scalef_ps(a, n) }
    }
    #[inline(always)]
    fn scale_by_pow2_wide(self, a: __m512, n: __m512) -> __m512 {
        // `vscalefps` rounds into the subnormals itself: one instruction for the whole range.
        self.scale_by_pow2(a, n)
    }
    #[inline(always)]
    fn select_lt(self, a: __m512, b: __m512, yes: __m512, no: __m512) -> __m512 {
        // SAFETY: AVX-512F is available (see the module).
        unsafe { _mm512_mask_blend_ps(_mm512_cmp_ps_mask::<_CMP_LT_OQ>(a, b), no, yes) }
    }
    #[inline(always)]
    fn reduce_max(self, a: __m512) -> f32 {
        // SAFETY: AVX-512F is available (see the module).
        unsafe {
            // Halve the vector until one lane is left.
            let half = _mm256_max_ps(
                _mm512_castps512_ps256(a),
                _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(a))),
            );
            let quarter = _mm_max_ps(
                _mm256_castps256_ps128(half),
                _mm256_extractf128_ps::<1>(half),
            );
            let pair = _mm_max_ps(quarter, _mm_movehl_ps(quarter, quarter));
            _mm_cvtss_f32(_mm_max_ss(pair, _mm_shuffle_ps::<0b01>(pair, pair)))
        }
    }
    #[inline(always)]
    fn reduce_sum(self, a: __m512) -> f32 {
        // SAFETY: AVX-512F is available (see the module).
        unsafe { _mm512_reduce_add_ps(a) }
    }
    #[inline(always)]
    fn all_at_most(self, a: __m512, b: __m512) -> bool {
        // SAFETY: AVX-512F is available (see the module).
        unsafe { _mm512_cmp_ps_mask::<_CMP_LE_OQ>(a, b) == 0xffff }
    }
    #[inline(always)]
    fn pack_keys(self, keys: &[f32], depth: usize, count: usize, packed: &mut [f32], block: usize) {
        // SAFETY: an `Avx512` exists only where AVX-512F is available (see the module).
        unsafe { pack_keys_avx512(keys, depth, count, packed, block) }
    }
    fn pack_keys_widened<T: Element>(
        self,
        keys: &[T],
        depth: usize,
        count: usize,
        packed: &mut [f32],
        block: usize,
    ) {
        // SAFETY: an `Avx512` exists only where AVX-512F, AVX2 and FMA are available.
        unsafe { pack_keys_widened_avx512(keys, depth, count, packed, block) }
    }
}

/// [`Simd::pack_keys`] with AVX2: squares of 8 x 8 transposed in registers. One function,
/// compiled in this crate, so the kernels do not each carry a copy.
#[target_feature(enable = "avx2,fma")]
fn pack_keys_avx2(keys: &[f32], depth: usize, count: usize, packed: &mut [f32], block: usize) {
    let simd = Avx2 { _checked: () };
    super::pack::pack_keys_by_squares(keys, depth, count, packed, block, 8, |src, dst| {
        simd.transpose(src, depth, dst, block)
    });
}

/// [`Simd::pack_keys`] with AVX-512: squares of 16 x 16 transposed in registers.
#[target_feature(enable = "avx512f,avx2,fma")]
fn pack_keys_avx512(keys: &[f32], depth: usize, count: usize, packed: &mut [f32], block: usize) {
    let simd = Avx512 { _checked: () };
    super::pack::pack_keys_by_squares(keys, depth, count, packed, block, 16, |src, dst| {
        simd.transpose(src, depth, dst, block)
    });
}

/// [`Simd::pack_keys_widened`] with AVX2: each row of a square of 8 x 8 widened as it is
/// loaded, then transposed as f32.
#[target_feature(enable = "avx2,fma,f16c")]
fn pack_keys_widened_avx2<T: Element>(
    keys: &[T],
    depth: usize,
    count: usize,
    packed: &mut [f32],
    block: usize,
) {
    let simd = Avx2 { _checked: () };
    super::pack::pack_keys_by_squares(keys, depth, count, packed, block, 8, |src, dst| {
        let mut rows = [simd.splat(0.0); 8];
        for (i, row) in rows.iter_mut().enumerate() {
            *row = T::load(simd, &src[i * depth..]);
        }
        simd.transpose_rows(rows, dst, block)
    });
}

/// [`Simd::pack_keys_widened`] with AVX-512: squares of 16 x 16, widened as loaded.
#[target_feature(enable = "avx512f,avx2,fma")]
fn pack_keys_widened_avx512<T: Element>(
    keys: &[T],
    depth: usize,
    count: usize,
    packed: &mut [f32],
    block: usize,
) {
    let simd = Avx512 { _checked: () };
    super::pack::pack_keys_by_squares(keys, depth, count, packed, block, 16, |src, dst| {
        let mut rows = [simd.splat(0.0); 16];
        for (i, row) in rows.iter_mut().enumerate() {
            *row = T::load(simd, &src[i * depth..]);
        }
        simd.transpose_rows(rows, dst, block)
    });
}

impl Avx2 {
    /// The token, for code of this crate that checked for AVX2 and FMA by other means (the
    /// in-register kernels, which need AVX-512VL, a superset).
    ///
    /// # Safety
    /// The CPU must have AVX2, FMA and F16C.
    #[inline(always)]
    pub(super) unsafe fn assume_available() -> Avx2 {
        Avx2 { _checked: () }
    }

    /// Transposes a square of 8 x 8: `dst[j * dst_stride + i] = src[i * src_stride + j]`.
    /// Panics if a row lies past the end of `src` or `dst`.
    #[inline(always)]
    fn transpose(self, src: &[f32], src_stride: usize, dst: &mut [f32], dst_stride: usize) {
        // One check for the whole square rather than two per row: with them, packing a
        // block of 64 keys took 470 ns rather than 290.
        assert!(square_fits(src.len(), src_stride, 8));
        let mut rows = [self.splat(0.0); 8];
        for (i, row) in rows.iter_mut().enumerate() {
            // SAFETY: AVX is available (see the module); row `i` of the square,
            // `src[i * src_stride..][..8]`, lies within `src` (checked above).
            *row = unsafe { _mm256_loadu_ps(src.as_ptr().add(i * src_stride)) };
        }
        self.transpose_rows(rows, dst, dst_stride);
    }

    /// Stores the columns of a square of 8 rows: `dst[j * dst_stride + i] = rows[i][j]`.
    /// Panics if a column lies past the end of `dst`.
    #[inline(always)]
    fn transpose_rows(self, rows: [__m256; 8], dst: &mut [f32], dst_stride: usize) {
        assert!(square_fits(dst.len(), dst_stride, 8));
        // SAFETY: AVX is available (see the module); only register operations.
        let columns = unsafe {
            // Pairs of rows interleaved, then pairs of pairs: in each 128-bit half, 4 rows
            // of one column; the halves then joined.
            let mut t = [_mm256_setzero_ps(); 8];
            for p in 0..4 {
                t[2 * p] = _mm256_unpacklo_ps(rows[2 * p], rows[2 * p + 1]);
                t[2 * p + 1] = _mm256_unpackhi_ps(rows[2 * p], rows[2 * p + 1]);
            }
            let mut s = [_mm256_setzero_ps(); 8];
            for h in 0..2 {
                let (lo, hi) = (t[4 * h], t[4 * h + 1]);
                let (lo2, hi2) = (t[4 * h + 2], t[4 * h + 3]);
                s[4 * h] = _mm256_shuffle_ps::<0x44>(lo, lo2);
                s[4 * h + 1] = _mm256_shuffle_ps::<0xee>(lo, lo2);
                s[4 * h + 2] = _mm256_shuffle_ps::<0x44>(hi, hi2);
                s[4 * h + 3] = _mm256_shuffle_ps::<0xee>(hi, hi2);
            }
            let mut columns = [_mm256_setzero_ps(); 8];
            for c in 0..4 {
                columns[c] = _mm256_permute2f128_ps::<0x20>(s[c], s[4 + c]);
                columns[4 + c] = _mm256_permute2f128_ps::<0x31>(s[c], s[4 + c]);
            }
            columns
        };
        for (j, column) in columns.into_iter().enumerate() {
            // SAFETY: AVX is available (see the module); column `j` of the square,
            // `dst[j * dst_stride..][..8]`, lies within `dst` (checked at the top).
            unsafe { _mm256_storeu_ps(dst.as_mut_ptr().add(j * dst_stride), column) };
        }
    }
}

impl Avx512 {
    /// Transposes a square of 16 x 16: `dst[j * dst_stride + i] = src[i * src_stride + j]`.
    /// Panics if a row lies past the end of `src` or `dst`.
    #[inline(always)]
    fn transpose(self, src: &[f32], src_stride: usize, dst: &mut [f32], dst_stride: usize) {
        // One check for the whole square rather than two per row: with them, packing a
        // block of 64 keys took 470 ns rather than 290.
        assert!(square_fits(src.len(), src_stride, 16));
        let mut rows = [self.splat(0.0); 16];
        for (i, row) in rows.iter_mut().enumerate() {
            // SAFETY: AVX-512F is available (see the module); row `i` of the square,
            // `src[i * src_stride..][..16]`, lies within `src` (checked above).
            *row = unsafe { _mm512_loadu_ps(src.as_ptr().add(i * src_stride)) };
        }
        self.transpose_rows(rows, dst, dst_stride);
    }

    /// Stores the columns of a square of 16 rows: `dst[j * dst_stride + i] = rows[i][j]`.
    /// Panics if a column lies past the end of `dst`.
    #[inline(always)]
    fn transpose_rows(self, rows: [__m512; 16], dst: &mut [f32], dst_stride: usize) {
        assert!(square_fits(dst.len(), dst_stride, 16));
        // SAFETY: AVX-512F is available (see the module); only register operations.
        let columns = unsafe {
            // Rows interleaved in pairs, then in fours (as f64 pairs): each 128-bit block b
            // of u[i + 4g] holds column 4b + i of rows 4g..4g + 4. Two rounds of 128-bit
            // block shuffles then gather each column's four blocks.
            let mut t = [_mm512_setzero_ps(); 16];
            for p in 0..8 {
                t[2 * p] = _mm512_unpacklo_ps(rows[2 * p], rows[2 * p + 1]);
                t[2 * p + 1] = _mm512_unpackhi_ps(rows[2 * p], rows[2 * p + 1]);
            }
            let pd = _mm512_castps_pd;
            let ps = _mm512_castpd_ps;
            let mut u = [_mm512_setzero_ps(); 16];
            for g in 0..4 {
                let (lo, hi, lo2, hi2) = (t[4 * g], t[4 * g + 1], t[4 * g + 2], t[4 * g + 3]);
                u[4 * g] = ps(_mm512_unpacklo_pd(pd(lo), pd(lo2)));
                u[4 * g + 1] = ps(_mm512_unpackhi_pd(pd(lo), pd(lo2)));
                u[4 * g + 2] = ps(_mm512_unpacklo_pd(pd(hi), pd(hi2)));
                u[4 * g + 3] = ps(_mm512_unpackhi_pd(pd(hi), pd(hi2)));
            }
            // Reorder so that u[i + 4g] is column family i of row group g.
            let mut columns = [_mm512_setzero_ps(); 16];
            for i in 0..4 {
                let (g0, g1, g2, g3) = (u[i], u[4 + i], u[8 + i], u[12 + i]);
                let v0 = _mm512_shuffle_f32x4::<0x88>(g0, g1);
                let v1 = _mm512_shuffle_f32x4::<0xdd>(g0, g1);
                let w0 = _mm512_shuffle_f32x4::<0x88>(g2, g3);
                let w1 = _mm512_shuffle_f32x4::<0xdd>(g2, g3);
                columns[i] = _mm512_shuffle_f32x4::<0x88>(v0, w0);
                columns[8 + i] = _mm512_shuffle_f32x4::<0xdd>(v0, w0);
                columns[4 + i] = _mm512_shuffle_f32x4::<0x88>(v1, w1);
                columns[12 + i] = _mm512_shuffle_f32x4::<0xdd>(v1, w1);
            }
            columns
        };
        for (j, column) in columns.into_iter().enumerate() {
            // SAFETY: AVX-512F is available (see the module); column `j` of the square,
            // `dst[j * dst_stride..][..16]`, lies within `dst` (checked at the top).
            unsafe { _mm512_storeu_ps(dst.as_mut_ptr().add(j * dst_stride), column) };
        }
    }
}

/// Whether a square of `lanes x lanes` with rows `stride` apart fits in a slice of `len`:
/// its last row ends at `(lanes - 1) · stride + lanes`.
fn square_fits(len: usize, stride: usize, lanes: usize) -> bool {
    stride
        .checked_mul(lanes - 1)
        .and_then(|start| start.checked_add(lanes))
        .is_some_and(|end| end <= len)
}
