//! The element types the micro-kernels read as stored: f32, and f16 and bf16, which each
//! instruction set widens to f32 in registers as it loads them ([`Simd::load_f16`],
//! [`Simd::load_bf16`]: F16C and AVX-512F convert f16, bf16 is a shift). The kernels compute
//! in f32 either way; a 16-bit cache is read at half the bytes, never copied to f32 first.

use super::Simd;
use half::{bf16, f16};

mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for half::f16 {}
    impl Sealed for half::bf16 {}
}

/// An element type q, k and v may be stored in: f32, f16 or bf16. Sealed.
///
/// ```
/// use attn_runtime::__private::Element;
/// use attn_runtime::half::bf16;
/// use attn_runtime::simd::{Portable, Simd};
/// let stored = [bf16::from_f32(1.5); 4];
/// assert_eq!(Portable.reduce_sum(bf16::load(Portable, &stored)), 6.0);
/// assert_eq!(bf16::from_f32(-2.0).widen(), -2.0);
/// ```
pub trait Element: Copy + Send + Sync + 'static + sealed::Sealed {
    /// `S::LANES` values from the start of `src`, widened to f32. Panics if `src` is shorter.
    fn load<S: Simd>(simd: S, src: &[Self]) -> S::V;
    /// One value, widened to f32.
    fn widen(self) -> f32;
    /// The rows themselves when they are already f32, so that they are read in place.
    fn as_f32<const D: usize>(rows: &[[Self; D]]) -> Option<&[[f32; D]]>;
    /// [`Simd::pack_keys`], widening as it packs.
    fn pack_keys<S: Simd>(
        simd: S,
        keys: &[Self],
        depth: usize,
        count: usize,
        packed: &mut [f32],
        block: usize,
    );
}

impl Element for f32 {
    #[inline(always)]
    fn load<S: Simd>(simd: S, src: &[f32]) -> S::V {
        simd.load(src)
    }
    #[inline(always)]
    fn widen(self) -> f32 {
        self
    }
    #[inline(always)]
    fn as_f32<const D: usize>(rows: &[[f32; D]]) -> Option<&[[f32; D]]> {
        Some(rows)
    }
    #[inline(always)]
    fn pack_keys<S: Simd>(
        simd: S,
        keys: &[f32],
        depth: usize,
        count: usize,
        packed: &mut [f32],
        block: usize,
    ) {
        simd.pack_keys(keys, depth, count, packed, block);
    }
}

/// The 16-bit types, which differ only in how a vector of them is widened.
macro_rules! sixteen_bits {
    ($($ty:ident: $load:ident,)*) => {$(
        impl Element for $ty {
            #[inline(always)]
            fn load<S: Simd>(simd: S, src: &[$ty]) -> S::V {
                simd.$load(src)
            }
            #[inline(always)]
            fn widen(self) -> f32 {
                self.to_f32()
            }
            #[inline(always)]
            fn as_f32<const D: usize>(_: &[[$ty; D]]) -> Option<&[[f32; D]]> {
                None
            }
            #[inline(always)]
            fn pack_keys<S: Simd>(
                simd: S,
                keys: &[$ty],
                depth: usize,
                count: usize,
                packed: &mut [f32],
                block: usize,
            ) {
                simd.pack_keys_widened(keys, depth, count, packed, block);
            }
        }
    )*};
}

sixteen_bits! {
    f16: load_f16,
    bf16: load_bf16,
}

/// `rows` as f32: the rows themselves when they are f32, else widened into the first rows
/// of `buffer` (as many as both have).
///
/// ```
/// use attn_runtime::__private::rows_in_f32;
/// use attn_runtime::half::f16;
/// use attn_runtime::simd::Portable;
/// let rows = [[f16::from_f32(0.5); 5]; 2];
/// let mut buffer = [[0.0f32; 5]; 6];
/// assert_eq!(rows_in_f32(Portable, &rows, &mut buffer), [[0.5f32; 5]; 2]);
/// ```
#[inline(always)]
pub fn rows_in_f32<'a, S: Simd, T: Element, const D: usize>(
    simd: S,
    rows: &'a [[T; D]],
    buffer: &'a mut [[f32; D]],
) -> &'a [[f32; D]] {
    if let Some(rows) = T::as_f32(rows) {
        return rows;
    }
    let count = rows.len().min(buffer.len());
    widen_into(simd, &rows[..count], &mut buffer[..count]);
    &buffer[..count]
}

/// Copies `rows` into the first rows of `buffer`, widened to f32 (as many as both have).
///
/// ```
/// use attn_runtime::__private::widen_into;
/// use attn_runtime::half::bf16;
/// use attn_runtime::simd::Portable;
/// let mut buffer = [[0.0f32; 3]; 2];
/// widen_into(Portable, &[[bf16::from_f32(4.0); 3]], &mut buffer);
/// assert_eq!(buffer, [[4.0, 4.0, 4.0], [0.0; 3]]);
/// ```
#[inline(always)]
pub fn widen_into<S: Simd, T: Element, const D: usize>(
    simd: S,
    rows: &[[T; D]],
    buffer: &mut [[f32; D]],
) {
    if let Some(rows) = T::as_f32(rows) {
        let count = rows.len().min(buffer.len());
        buffer[..count].copy_from_slice(&rows[..count]);
        return;
    }
    let full = D / S::LANES * S::LANES;
    for (row, wide) in rows.iter().zip(buffer.iter_mut()) {
        for d in (0..full).step_by(S::LANES) {
            simd.store(&mut wide[d..], T::load(simd, &row[d..]));
        }
        for d in full..D {
            wide[d] = row[d].widen();
        }
    }
}
