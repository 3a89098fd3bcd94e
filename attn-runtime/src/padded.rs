//! Outputs of kernels declared with `#[attn(valid_queries)]`, whose rows past each batch
//! entry's count are padding: 0, and computed not at all.
//!
//! Such a kernel's `_into` form takes its output as any [`PaddedOutput`]. A plain nested array
//! (or a [`Tensor`] of one) may hold anything, so every call writes each padding row's zeros:
//! in a kernel of 4,096 query rows called with 64, those zeros are most of the call's time.
//! A [`ZeroPadded`] output remembers, per batch entry, how many leading rows a call may have
//! left non-zero, and cannot be written by anything but a kernel; the next call then writes
//! zeros only to the rows that were valid last time and are padding now. In a serving loop
//! that reuses one output, the padding costs nothing after the first call.

use crate::{Array, Tensor};
use std::fmt;
use std::ops::Deref;

/// An output of a kernel declared with `#[attn(valid_queries)]`, holding the nested array `A`:
/// the array itself, a [`Tensor`] of it (both written in full at every call, their padding
/// rows as zeros), or a [`ZeroPadded`] (whose padding rows are written only where a previous
/// call left them non-zero).
///
/// The trait is sealed: the kernels rely on what a [`ZeroPadded`] records.
pub trait PaddedOutput<A: Array>: sealed::Sealed<A> {
    /// The array to write, and, when it is known, each batch entry's number of leading query
    /// rows that may hold something other than 0 (the rows after them hold zeros).
    #[doc(hidden)]
    fn rows_and_written(&mut self) -> (&mut A, Option<&mut [usize]>);
}

mod sealed {
    pub trait Sealed<A> {}
    impl<A: crate::Array> Sealed<A> for A {}
    impl<A: crate::Array> Sealed<A> for crate::Tensor<A> {}
    impl<A: crate::Array> Sealed<A> for super::ZeroPadded<A> {}
    impl<A: crate::Array> Sealed<A> for super::PaddingUnread<'_, A> {}
}

impl<A: Array> PaddedOutput<A> for A {
    fn rows_and_written(&mut self) -> (&mut A, Option<&mut [usize]>) {
        (self, None)
    }
}

impl<A: Array> PaddedOutput<A> for Tensor<A> {
    fn rows_and_written(&mut self) -> (&mut A, Option<&mut [usize]>) {
        (self, None)
    }
}

impl<A: Array> PaddedOutput<A> for ZeroPadded<A> {
    fn rows_and_written(&mut self) -> (&mut A, Option<&mut [usize]>) {
        (&mut self.rows, Some(&mut self.written))
    }
}

/// An output on the heap that remembers which of its rows hold zeros, for kernels declared
/// with `#[attn(valid_queries)]`: each call writes its valid rows, and zeros only to the rows
/// that the previous call left non-zero past the new counts. It reads as the array `A`
/// (`Deref`); only a kernel writes it.
///
/// ```
/// use attn_runtime::{ZeroPadded, attention};
///
/// attention! {
///     /// Prompts of up to 512 tokens.
///     #[attn(valid_lengths, valid_queries, causal(bottom_right))]
///     fn prompt<q: [1, 512, 16], k: [1, 512, 16], v: [1, 512, 16]>;
/// }
///
/// let x = attn_runtime::Tensor::<[[[f32; 16]; 512]; 1]>::from_vec(vec![0.5; 512 * 16])?;
/// let mut out = ZeroPadded::<[[[f32; 16]; 512]; 1]>::zeros();
/// prompt_into(&x, &x, &x, &[37], &[37], &mut out)?; // writes 37 rows, no zeros
/// assert_eq!(out[0][36], [0.5; 16]);
/// assert_eq!(out.rows_written(), &[37]);
/// prompt_into(&x, &x, &x, &[5], &[5], &mut out)?; // 5 rows, and zeros in rows 5..37
/// assert_eq!(out[0][5], [0.0; 16]);
/// assert_eq!(out.rows_written(), &[5]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct ZeroPadded<A: Array> {
    rows: Tensor<A>,
    /// Per batch entry, the leading query rows (of each head) that may not be 0.
    written: Vec<usize>,
}

impl<A: Array> ZeroPadded<A> {
    /// An output of zeros, on the heap.
    ///
    /// ```
    /// let out = attn_runtime::ZeroPadded::<[[[f32; 4]; 8]; 2]>::zeros();
    /// assert_eq!(out[1][7], [0.0; 4]);
    /// assert_eq!(out.rows_written(), &[0, 0]);
    /// ```
    pub fn zeros() -> Self {
        let batch = A::dims().first().copied().unwrap_or(1);
        ZeroPadded {
            rows: Tensor::zeros(),
            written: vec![0; batch],
        }
    }

    /// Per batch entry, the number of leading query rows (in every head) that the last call
    /// may have left other than 0: its valid query counts. The rows after them are 0.
    ///
    /// ```
    /// let out = attn_runtime::ZeroPadded::<[[[f32; 4]; 8]; 3]>::zeros();
    /// assert_eq!(out.rows_written(), &[0, 0, 0]);
    /// ```
    pub fn rows_written(&self) -> &[usize] {
        &self.written
    }

    /// The output as a [`Tensor`], which can be written.
    ///
    /// ```
    /// let out = attn_runtime::ZeroPadded::<[[[f32; 4]; 8]; 1]>::zeros();
    /// let mut tensor = out.into_tensor();
    /// tensor[0][0][0] = 1.0;
    /// assert_eq!(tensor[0][0][0], 1.0);
    /// ```
    pub fn into_tensor(self) -> Tensor<A> {
        self.rows
    }
}

impl<A: Array> Deref for ZeroPadded<A> {
    type Target = A;
    fn deref(&self) -> &A {
        &self.rows
    }
}

/// A copy, with what the original records about its rows.
///
/// ```
/// let out = attn_runtime::ZeroPadded::<[[[f32; 4]; 8]; 1]>::zeros();
/// assert_eq!(out.clone().rows_written(), out.rows_written());
/// ```
impl<A: Array> Clone for ZeroPadded<A> {
    fn clone(&self) -> Self {
        ZeroPadded {
            rows: self.rows.clone(),
            written: self.written.clone(),
        }
    }
}

impl<A: Array> fmt::Debug for ZeroPadded<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ZeroPadded")
            .field("shape", &A::dims())
            .field("rows_written", &self.written)
            .finish_non_exhaustive()
    }
}

/// An output whose padding rows no one reads, so that a kernel leaves them as they are: a
/// layer's heads, which its merge reads only up to the valid counts. `written` holds a 0
/// per batch entry (no row to clear), which the call then sets to its counts.
///
/// ```
/// use attn_runtime::PaddedOutput;
/// let (mut heads, mut written) = ([[[7.0f32; 2]; 3]; 1], [0]);
/// let mut unread = attn_runtime::__private::PaddingUnread { rows: &mut heads, written: &mut written };
/// let (rows, zeros) = unread.rows_and_written();
/// assert_eq!((rows[0][2], zeros), ([7.0; 2], Some(&mut [0][..])));
/// ```
pub struct PaddingUnread<'a, A> {
    /// The output.
    pub rows: &'a mut A,
    /// A 0 per batch entry.
    pub written: &'a mut [usize],
}

impl<A: Array> PaddedOutput<A> for PaddingUnread<'_, A> {
    fn rows_and_written(&mut self) -> (&mut A, Option<&mut [usize]>) {
        (self.rows, Some(self.written))
    }
}

/// The padding rows of batch entry `entry` that a call with `valid` valid rows of `rows`
/// writes as zeros: from `valid` up to the rows that `written` (a `ZeroPadded` output's
/// record) says may not be 0, or to the last without a record.
pub(crate) fn rows_to_clear(
    valid: usize,
    rows: usize,
    written: Option<&[usize]>,
    entry: usize,
) -> std::ops::Range<usize> {
    valid..written.map_or(rows, |written| written[entry].clamp(valid, rows))
}

/// Records that a call with these valid query counts left every row past them 0: what the
/// generated `_into` form of a kernel with `valid_queries` calls once it has written `out`.
///
/// ```
/// let mut written = [40, 3];
/// attn_runtime::__private::padding_zeroed(Some(&mut written), &[5, 7]);
/// assert_eq!(written, [5, 7]);
/// attn_runtime::__private::padding_zeroed(None, &[5, 7]);
/// ```
pub fn padding_zeroed(written: Option<&mut [usize]>, valid_queries: &[usize]) {
    if let Some(written) = written {
        for (rows, &valid) in written.iter_mut().zip(valid_queries) {
            *rows = valid;
        }
    }
}
