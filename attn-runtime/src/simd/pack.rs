//! Packing for the tiled micro-kernels: keys copied to `[depth][key]` (by each instruction
//! set's transposes, [`Simd::pack_keys`], the edges element by element) and value rows
//! copied onto cache lines ([`Aligned`]). Part of the vector layer, which the tiled stages
//! call and which calls nothing above it.

use super::Simd;
use super::elements::{Element, rows_in_f32};

/// Copies up to `KB` keys into `packed` as `[depth][key]`, zero past the last key, by
/// [`Simd::pack_keys`] (16-bit keys widened as they are packed).
///
/// ```
/// use attn_runtime::simd::Portable;
/// let keys = [[1.0, 2.0], [3.0, 4.0]];
/// let mut packed = [[9.0; 16]; 2];
/// attn_runtime::__private::pack_keys(Portable, &keys, &mut packed);
/// assert_eq!(&packed[1][..3], &[2.0, 4.0, 0.0]);
/// ```
#[inline(always)]
pub fn pack_keys<S: Simd, T: Element, const DEPTH: usize, const KB: usize>(
    simd: S,
    keys: &[[T; DEPTH]],
    packed: &mut [[f32; KB]; DEPTH],
) {
    let count = keys.len().min(KB);
    T::pack_keys(
        simd,
        keys[..count].as_flattened(),
        DEPTH,
        count,
        packed.as_flattened_mut(),
        KB,
    );
}

/// [`Simd::pack_keys`] one element at a time: the portable instruction sets' packing, and
/// the edges of the others'.
pub(super) fn pack_keys_by_element<T: Element>(
    keys: &[T],
    depth: usize,
    count: usize,
    packed: &mut [f32],
    block: usize,
) {
    pack_edges(keys, depth, count, packed, block, 0, 0);
}

/// [`Simd::pack_keys`] by squares of `lanes x lanes`, which `transpose(src, dst)` moves from
/// `keys[i * depth + j]` to `packed[j * block + i]` (`src` and `dst` start at the square's
/// first element), and the edges element by element.
#[inline(always)]
pub(super) fn pack_keys_by_squares<T: Element>(
    keys: &[T],
    depth: usize,
    count: usize,
    packed: &mut [f32],
    block: usize,
    lanes: usize,
    transpose: impl Fn(&[T], &mut [f32]),
) {
    let (whole_keys, whole_depth) = (count / lanes * lanes, depth / lanes * lanes);
    for j in (0..whole_keys).step_by(lanes) {
        for d in (0..whole_depth).step_by(lanes) {
            transpose(&keys[j * depth + d..], &mut packed[d * block + j..]);
        }
    }
    pack_edges(keys, depth, count, packed, block, whole_keys, whole_depth);
}

/// The elements of a packing that the squares (`whole_keys` keys by `whole_depth`) left:
/// for `d < whole_depth` the columns from `whole_keys` on, for the deeper rows all of them.
fn pack_edges<T: Element>(
    keys: &[T],
    depth: usize,
    count: usize,
    packed: &mut [f32],
    block: usize,
    whole_keys: usize,
    whole_depth: usize,
) {
    assert!(count <= block && keys.len() >= count * depth && packed.len() >= depth * block);
    // Key by key, each read along its depth (the squares covered the first `whole_depth`
    // of the first `whole_keys` keys).
    for (j, key) in keys.chunks_exact(depth.max(1)).take(count).enumerate() {
        let from = if j < whole_keys { whole_depth } else { 0 };
        for (d, &x) in key.iter().enumerate().skip(from) {
            packed[d * block + j] = x.widen();
        }
    }
    for row in packed.chunks_exact_mut(block.max(1)).take(depth) {
        row[count..].fill(0.0);
    }
}

/// A block of packed keys or values, on a 64-byte boundary: a cache line, so that no vector
/// load of a micro-kernel straddles two lines. One that does costs a second access: the
/// micro-kernels run about 10% slower with their operands 16 bytes off a line (run
/// `bench/examples/micro.rs`), and W3 gained 8% from this alignment (A/B of `profile_w3`).
///
/// ```
/// let block = attn_runtime::__private::Aligned([[0.0f32; 16]; 4]);
/// assert_eq!(&block.0 as *const _ as usize % 64, 0);
/// ```
#[derive(Clone, Copy, Debug)]
#[repr(C, align(64))]
pub struct Aligned<T>(pub T);

/// Copies a block of value rows into `packed`, rows past the block left as they are: the
/// values micro-kernel then loads whole cache lines (see [`Aligned`]).
///
/// ```
/// let values = [[1.0f32, 2.0], [3.0, 4.0]];
/// let mut packed = [[9.0f32; 2]; 3];
/// attn_runtime::__private::pack_values(&values, &mut packed);
/// assert_eq!(packed, [[1.0, 2.0], [3.0, 4.0], [9.0, 9.0]]);
/// ```
#[inline(always)]
pub fn pack_values<const DV: usize>(values: &[[f32; DV]], packed: &mut [[f32; DV]]) {
    let rows = values.len().min(packed.len());
    packed[..rows].copy_from_slice(&values[..rows]);
}

/// A block of value rows as the values micro-kernel reads them: in place when they are f32
/// and every row already starts on a cache line (the block does, and a row is a whole number
/// of lines, as in a [`crate::Tensor`] of rows of 16 f32 or a multiple), else copied into
/// `packed` by [`pack_values`], or widened into it when they are 16-bit.
///
/// ```
/// use attn_runtime::__private::{Aligned, values_on_lines};
/// use attn_runtime::half::bf16;
/// use attn_runtime::simd::Portable;
/// let values = Aligned([[1.0f32; 16]; 3]);
/// let mut packed = [[0.0f32; 16]; 3];
/// let read = values_on_lines(Portable, &values.0[1..], &mut packed);
/// assert!(std::ptr::eq(read, &values.0[1..])); // 64 bytes in: still on a line
/// let narrow = Aligned([[1.0f32; 4]; 3]);
/// let mut packed = [[0.0f32; 4]; 3];
/// let read = values_on_lines(Portable, &narrow.0, &mut packed);
/// assert_eq!(read.as_ptr(), packed.as_ptr()); // rows of 16 bytes: copied
/// let stored = [[bf16::from_f32(2.0); 16]; 3];
/// let read = values_on_lines(Portable, &stored, &mut [[0.0f32; 16]; 3]).to_vec();
/// assert_eq!(read, [[2.0f32; 16]; 3]); // 16-bit: widened
/// ```
#[inline(always)]
pub fn values_on_lines<'a, S: Simd, T: Element, const DV: usize>(
    simd: S,
    values: &'a [[T; DV]],
    packed: &'a mut [[f32; DV]],
) -> &'a [[f32; DV]] {
    let Some(values) = T::as_f32(values) else {
        return rows_in_f32(simd, values, packed);
    };
    let row_bytes = DV * size_of::<f32>();
    if values.as_ptr().addr().is_multiple_of(64) && row_bytes.is_multiple_of(64) {
        return values;
    }
    pack_values(values, packed);
    &packed[..values.len()]
}
