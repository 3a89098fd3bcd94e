//! Checked, zero-copy views of flat slices as the nested arrays kernels take: values from a
//! `Vec`, ndarray's `as_slice`, candle's `to_vec` or a memory map, used where they are.
//!
//! A view checks only the length: a slice of `f32` is always aligned for arrays of `f32`, so
//! the one thing that can be wrong is the number of values, which the error names beside the
//! shape.

use crate::tensor::ShapeError;

/// A row-major nested array that a flat slice of its elements can be viewed as, in place:
/// one of the element types (`f32`, `f64`, `half::f16`, `half::bf16`, and `bool` for masks),
/// or `[A; N]` of such an array.
///
/// ```
/// use attn_runtime::View;
/// assert_eq!(<[[f32; 3]; 2] as View>::dims(), vec![2, 3]);
/// assert_eq!(<[[bool; 4]; 1] as View>::dims(), vec![1, 4]);
/// ```
pub trait View: Sized + sealed::Sealed {
    /// The element type.
    type Element;
    /// The sizes of the axes, outermost first.
    fn dims() -> Vec<usize>;
    /// `values` as a slice of `Self`, if their number is a whole number of `Self`.
    fn slice_of(values: &[Self::Element]) -> Option<&[Self]>;
    /// `values` as a mutable slice of `Self`, if their number is a whole number of `Self`.
    fn slice_of_mut(values: &mut [Self::Element]) -> Option<&mut [Self]>;
}

/// Keeps [`View`] to the element types below and arrays of them.
mod sealed {
    pub trait Sealed {}
    impl<A: Sealed, const N: usize> Sealed for [A; N] {}
}

macro_rules! element {
    ($($t:ty),*) => {$(
        impl sealed::Sealed for $t {}
        impl View for $t {
            type Element = $t;
            fn dims() -> Vec<usize> {
                Vec::new()
            }
            fn slice_of(values: &[$t]) -> Option<&[$t]> {
                Some(values)
            }
            fn slice_of_mut(values: &mut [$t]) -> Option<&mut [$t]> {
                Some(values)
            }
        }
    )*};
}
element!(f32, f64, half::f16, half::bf16, bool);

impl<A: View, const N: usize> View for [A; N] {
    type Element = A::Element;
    fn dims() -> Vec<usize> {
        let mut dims = vec![N];
        dims.extend(A::dims());
        dims
    }
    fn slice_of(values: &[A::Element]) -> Option<&[Self]> {
        let (arrays, rest) = A::slice_of(values)?.as_chunks::<N>();
        rest.is_empty().then_some(arrays)
    }
    fn slice_of_mut(values: &mut [A::Element]) -> Option<&mut [Self]> {
        let (arrays, rest) = A::slice_of_mut(values)?.as_chunks_mut::<N>();
        rest.is_empty().then_some(arrays)
    }
}

/// The error for `actual` values where `A` holds another number.
fn wrong_length<A: View>(actual: usize) -> ShapeError {
    let shape = A::dims();
    let expected = shape.iter().fold(1usize, |n, &axis| n.saturating_mul(axis));
    ShapeError {
        shape,
        expected,
        actual,
    }
}

/// `values` viewed as the nested array `A`, in place: an error naming the shape and both
/// counts unless there are exactly as many values as `A` holds.
///
/// ```
/// use attn_runtime::{attention, view};
/// attention! { fn tiny<q: [1, 2, 3], k: [1, 4, 3], v: [1, 4, 3]>; }
/// let (q, kv) = (vec![0.5f32; 6], vec![1.0f32; 12]);
/// let out = tiny(view(&q)?, view(&kv)?, view(&kv)?);
/// assert_eq!(out, [[[1.0; 3]; 2]]);
/// let error = view::<[[[f32; 3]; 2]; 1]>(&kv).unwrap_err();
/// assert_eq!(error.to_string(), "a tensor of shape [1, 2, 3] holds 6 values, but 12 were given");
/// # Ok::<(), attn_runtime::ShapeError>(())
/// ```
pub fn view<A: View>(values: &[A::Element]) -> Result<&A, ShapeError> {
    match A::slice_of(values) {
        Some([array]) => Ok(array),
        _ => Err(wrong_length::<A>(values.len())),
    }
}

/// `values` viewed as the nested array `A`, in place and writable, as an output: an error
/// naming the shape and both counts unless there are exactly as many values as `A` holds.
///
/// ```
/// use attn_runtime::{attention, view, view_mut};
/// attention! { fn tiny<q: [1, 2, 3], k: [1, 4, 3], v: [1, 4, 3]>; }
/// let (q, kv) = (vec![0.5f32; 6], vec![1.0f32; 12]);
/// let mut out = vec![0.0f32; 6];
/// tiny_into(view(&q)?, view(&kv)?, view(&kv)?, view_mut(&mut out)?);
/// assert_eq!(out, [1.0; 6]);
/// # Ok::<(), attn_runtime::ShapeError>(())
/// ```
pub fn view_mut<A: View>(values: &mut [A::Element]) -> Result<&mut A, ShapeError> {
    let actual = values.len();
    match A::slice_of_mut(values) {
        Some([array]) => Ok(array),
        _ => Err(wrong_length::<A>(actual)),
    }
}
