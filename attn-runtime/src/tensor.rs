//! Heap-owned tensors, for shapes too large for the stack.
//!
//! A [`Tensor<A>`] owns one `A`, a row-major nested array such as `[[[f32; 64]; 4096]; 1]`,
//! on the heap, and derefs to it: a kernel declared with `attention!` takes `&tensor` where
//! it takes `&[[[f32; 64]; 4096]; 1]`. Building one from a slice or a `Vec` checks the length.
//! Its values start on a cache line (64 bytes), so rows whose length is a whole number of
//! lines (64 f32, say) each start on one: the tiled kernels then read values in place
//! instead of copying each block to an aligned buffer (W4 measured 4% faster). On Linux a
//! tensor of 2 MiB or more lives in its own anonymous memory map, on a 2 MiB boundary and
//! marked for transparent huge pages (`MADV_HUGEPAGE`, which most distributions honour
//! only when asked): a kernel that streams many megabytes then misses the TLB far less
//! (W4, whose q, k, v and output take 6 MiB each, ran 3% faster in paired runs). Where the
//! map fails, the tensor lives on the heap as a smaller one does; where the advice is
//! ignored, in the map on ordinary pages. A thread keeps the maps of the large tensors it
//! drops, up to 64 MiB, and the next tensor of the same size takes one and zeroes it: a
//! layer that allocates its heads at each call (25 MiB for 32 sentences of 128 tokens) then
//! writes zeros in place instead of faulting in fresh pages, which the kernel zeroes at a
//! fraction of the speed (all-MiniLM-L6-v2 over 32 sentences spent a quarter of its time
//! there). Heap tensors of 64 KiB or more are kept likewise (up to 16 MiB), but only for a
//! next tensor that need not be zeroed, which takes them as they were left: a 16-bit
//! kernel's f32 copy of its output, a layer's heads of a short sentence.
//! The elements are those of the kernels' `dtype`s: f32, f64, f16 and bf16.

use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};

/// A row-major nested array of one element type: the element itself (`f32`, `f64`,
/// `half::f16` or `half::bf16`), or `[A; N]` for an array `A`. All-zero bytes are zeros.
///
/// ```
/// use attn_runtime::Array;
/// assert_eq!(<[[f32; 3]; 2] as Array>::LEN, 6);
/// assert_eq!(<[[f32; 3]; 2] as Array>::dims(), vec![2, 3]);
/// assert_eq!(<[attn_runtime::half::f16; 4] as Array>::LEN, 4);
/// ```
///
/// The trait is sealed: a tensor's storage is aligned for these element types only, so no
/// other type can be one (a type aligned to 128 bytes would not fit the 64-byte storage).
///
/// ```compile_fail
/// #[derive(Clone, Copy, bytemuck::Zeroable, bytemuck::Pod)]
/// #[repr(C, align(128))]
/// struct Wide([f32; 32]);
/// impl attn_runtime::Array for Wide {
///     type Element = f32;
///     const LEN: usize = 32;
///     fn dims() -> Vec<usize> { vec![32] }
/// }
/// ```
pub trait Array: bytemuck::Pod + sealed::Sealed {
    /// The element type: `f32`, `f64`, `f16` or `bf16`.
    type Element: bytemuck::Pod;
    /// The number of elements.
    const LEN: usize;
    /// The sizes of the axes, outermost first.
    fn dims() -> Vec<usize>;
}

/// Keeps [`Array`] to the element types below and arrays of them.
mod sealed {
    pub trait Sealed {}
    impl<A: Sealed, const N: usize> Sealed for [A; N] {}
}

macro_rules! element {
    ($($t:ty),*) => {$(
        impl sealed::Sealed for $t {}
        impl Array for $t {
            type Element = $t;
            const LEN: usize = 1;
            fn dims() -> Vec<usize> {
                Vec::new()
            }
        }
    )*};
}
element!(f32, f64, half::f16, half::bf16);

impl<A: Array, const N: usize> Array for [A; N] {
    type Element = A::Element;
    const LEN: usize = N * A::LEN;
    fn dims() -> Vec<usize> {
        let mut dims = vec![N];
        dims.extend(A::dims());
        dims
    }
}

/// A slice or `Vec` whose length does not match the tensor's shape.
///
/// ```
/// use attn_runtime::Tensor;
/// let error = Tensor::<[[f32; 3]; 2]>::from_slice(&[1.0; 5]).unwrap_err();
/// assert_eq!(error.to_string(), "a tensor of shape [2, 3] holds 6 values, but 5 were given");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShapeError {
    /// The shape of the tensor that was being built.
    pub shape: Vec<usize>,
    /// The number of values that shape holds.
    pub expected: usize,
    /// The number of values given.
    pub actual: usize,
}

impl fmt::Display for ShapeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "a tensor of shape {:?} holds {} values, but {} were given",
            self.shape, self.expected, self.actual
        )
    }
}

impl std::error::Error for ShapeError {}

/// A heap-owned row-major tensor that derefs to the nested array `A`, its first value on a
/// cache line (64-byte) boundary.
///
/// ```
/// use attn_runtime::Tensor;
/// let t = Tensor::<[[f32; 3]; 2]>::from_vec(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0])?;
/// assert_eq!(t[1][0], 4.0);
/// assert_eq!(t.as_flat()[5], 6.0);
/// assert_eq!(t.as_flat().as_ptr().addr() % 64, 0);
/// # Ok::<(), attn_runtime::ShapeError>(())
/// ```
pub struct Tensor<A: Array> {
    storage: Storage,
    array: PhantomData<A>,
}

/// Zeroed bytes on a cache line boundary, where a tensor's array lives. Not generic over the
/// array, so that its code is built once in this crate rather than once per tensor type in
/// every crate that uses one (a kernel's build measured 0.05 s and 2 KiB more when it was).
enum Storage {
    /// On the heap.
    Heap(HeapLines),
    /// In an anonymous map of its own, on a huge page boundary.
    #[cfg(target_os = "linux")]
    Pages(HugePages),
}

/// Takes from a thread's list of kept memory (newest last) the newest piece that `fits`.
fn take_kept<T>(list: &mut Vec<T>, fits: impl Fn(&T) -> bool) -> Option<T> {
    let found = list.iter().rposition(fits)?;
    Some(list.remove(found))
}

/// Keeps `piece` (if any) last in a thread's list of kept memory, then hands back the oldest
/// pieces while the list holds more than `most` bytes, `bytes` of each: the caller frees
/// them once the list is no longer borrowed.
fn keep<T>(
    list: &mut Vec<T>,
    piece: Option<T>,
    most: usize,
    bytes: impl Fn(&T) -> usize,
) -> Vec<T> {
    list.extend(piece);
    let mut total: usize = list.iter().map(&bytes).sum();
    let mut evicted = Vec::new();
    while total > most {
        let oldest = list.remove(0);
        total -= bytes(&oldest);
        evicted.push(oldest);
    }
    evicted
}

/// A tensor's cache lines on the heap. As it drops, one of [`SPARE_HEAP_FROM`] bytes or more
/// is kept for the next tensor of its size that need not be zeroed ([`Storage::as_left`]),
/// within [`SPARE_HEAP_BYTES`]: a 16-bit kernel's f32 copy of its output (1 MiB for 4,096
/// rows of 64) then skips zeroing it at each call, as a layer's heads of one sentence do.
struct HeapLines(Box<[CacheLine]>);

/// The smallest heap tensor kept as it drops: 64 KiB, whose zeroing takes about a
/// microsecond, against tens of nanoseconds for the list.
const SPARE_HEAP_FROM: usize = 64 << 10;

/// The most bytes of dropped heap tensors a thread keeps for reuse.
const SPARE_HEAP_BYTES: usize = 16 << 20;

thread_local! {
    /// The heap lines of this thread's dropped tensors, newest last, at most
    /// [`SPARE_HEAP_BYTES`].
    static SPARE_HEAP: std::cell::RefCell<Vec<Box<[CacheLine]>>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

impl HeapLines {
    /// `lines` cache lines, zeroed; or, when `zero` is false and this thread kept the lines
    /// of a dropped tensor of that size, those, as it left them.
    fn new(lines: usize, zero: bool) -> HeapLines {
        let bytes = lines * size_of::<CacheLine>();
        if !zero && bytes >= SPARE_HEAP_FROM {
            let kept = SPARE_HEAP
                .try_with(|spare| take_kept(&mut spare.borrow_mut(), |kept| kept.len() == lines));
            if let Ok(Some(kept)) = kept {
                return HeapLines(kept);
            }
        }
        HeapLines(bytemuck::zeroed_slice_box(lines))
    }
}

impl Drop for HeapLines {
    /// Keeps lines of [`SPARE_HEAP_FROM`] bytes or more for the next tensor of their size,
    /// within [`SPARE_HEAP_BYTES`] (the oldest kept go first).
    fn drop(&mut self) {
        let bytes = self.0.len() * size_of::<CacheLine>();
        if !(SPARE_HEAP_FROM..=SPARE_HEAP_BYTES).contains(&bytes) {
            return;
        }
        let mut kept = Some(std::mem::take(&mut self.0));
        // Freed after the list is released; a thread that is exiting has no list any more,
        // and frees them too.
        let evicted = SPARE_HEAP.try_with(|spare| {
            let mut spare = spare.borrow_mut();
            keep(&mut spare, kept.take(), SPARE_HEAP_BYTES, |lines| {
                lines.len() * size_of::<CacheLine>()
            })
        });
        drop((evicted, kept));
    }
}

/// 64 bytes on a cache line boundary.
#[derive(Clone, Copy, bytemuck::Zeroable, bytemuck::Pod)]
#[repr(C, align(64))]
struct CacheLine([u8; 64]);

/// The size of a transparent huge page on x86-64 and most aarch64 kernels.
#[cfg(target_os = "linux")]
const HUGE_PAGE: usize = 2 << 20;

/// An anonymous map (zeros until written) one huge page larger than its array, which
/// starts at the first huge page boundary inside it: the pages before it and past its end
/// are never touched, so they take address space but no memory.
#[cfg(target_os = "linux")]
struct HugePages {
    /// Always `Some` but while the map is handed to [`SPARE_MAPS`] as it drops.
    map: Option<memmap2::MmapMut>,
    /// Where the array starts in `map`.
    start: usize,
}

/// The most bytes of dropped maps a thread keeps for reuse.
#[cfg(target_os = "linux")]
const SPARE_BYTES: usize = 64 << 20;

#[cfg(target_os = "linux")]
thread_local! {
    /// The maps of this thread's dropped tensors, newest last, at most [`SPARE_BYTES`].
    static SPARE_MAPS: std::cell::RefCell<Vec<HugePages>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

#[cfg(target_os = "linux")]
impl HugePages {
    fn bytes(&self) -> &[u8] {
        self.map.as_deref().unwrap_or_default()
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        self.map.as_deref_mut().unwrap_or_default()
    }

    /// A kept map of `len` bytes, if this thread has one: with its array of `bytes` zeroed
    /// when `zero`, else as its last tensor left it. Only the array is written: the pages
    /// around it stay untouched, as in a fresh map.
    fn spare(len: usize, bytes: usize, zero: bool) -> Option<HugePages> {
        let mut pages = SPARE_MAPS
            .with_borrow_mut(|spare| take_kept(spare, |pages| pages.bytes().len() == len))?;
        if zero {
            let start = pages.start;
            pages.bytes_mut()[start..][..bytes].fill(0);
        }
        Some(pages)
    }
}

#[cfg(target_os = "linux")]
impl Drop for HugePages {
    /// Keeps the map for the next tensor of its size, within [`SPARE_BYTES`] (the oldest
    /// kept go first); a map too large is unmapped.
    fn drop(&mut self) {
        let Some(map) = self.map.take() else { return };
        if map.len() > SPARE_BYTES {
            return;
        }
        let mut kept = Some(HugePages {
            map: Some(map),
            start: self.start,
        });
        let evicted = SPARE_MAPS.try_with(|spare| {
            let bytes = |pages: &HugePages| pages.bytes().len();
            keep(&mut spare.borrow_mut(), kept.take(), SPARE_BYTES, bytes)
        });
        // Unmapped here, with the list no longer borrowed: their maps taken first, so that
        // dropping them does not offer them back. A thread that is exiting has no list any
        // more: its map is unmapped too.
        for mut pages in evicted.unwrap_or_default().into_iter().chain(kept) {
            drop(pages.map.take());
        }
    }
}

impl Storage {
    /// At least `bytes` zeroed bytes: in a map of huge pages when there are 2 MiB or more
    /// (Linux; a map this thread kept, if it has one of the size) and the map succeeds, else
    /// on the heap.
    fn zeroed(bytes: usize) -> Storage {
        Storage::new(bytes, true)
    }

    /// At least `bytes` bytes of unspecified values: a kept map or heap lines of the size as
    /// their last tensor left them, or else zeros as [`Storage::zeroed`] gives them.
    fn as_left(bytes: usize) -> Storage {
        Storage::new(bytes, false)
    }

    /// At least `bytes` bytes, zeros but in kept memory reused without `zero_spare`.
    fn new(bytes: usize, zero_spare: bool) -> Storage {
        #[cfg(not(target_os = "linux"))]
        let _ = zero_spare;
        #[cfg(target_os = "linux")]
        if bytes >= HUGE_PAGE
            && let Some(len) = bytes.checked_add(HUGE_PAGE)
        {
            if let Some(pages) = HugePages::spare(len, bytes, zero_spare) {
                return Storage::Pages(pages);
            }
            if let Ok(map) = memmap2::MmapOptions::new().len(len).map_anon() {
                // Only a hint: without it, or where the kernel ignores it, the memory is
                // the same.
                let _ = map.advise(memmap2::Advice::HugePage);
                let address = map.as_ptr().addr();
                let start = address.next_multiple_of(HUGE_PAGE) - address;
                return Storage::Pages(HugePages {
                    map: Some(map),
                    start,
                });
            }
        }
        Storage::Heap(HeapLines::new(
            bytes.div_ceil(size_of::<CacheLine>()),
            zero_spare,
        ))
    }

    /// The first `len` bytes (at most what [`Storage::zeroed`] was asked for). Inline: every
    /// dereference of a tensor comes here, and a call each cost W1 (11 ns) 3 ns.
    #[inline]
    fn bytes(&self, len: usize) -> &[u8] {
        match self {
            Storage::Heap(HeapLines(lines)) => &bytemuck::cast_slice(lines)[..len],
            #[cfg(target_os = "linux")]
            Storage::Pages(pages) => &pages.bytes()[pages.start..][..len],
        }
    }

    /// The first `len` bytes, for writing.
    #[inline]
    fn bytes_mut(&mut self, len: usize) -> &mut [u8] {
        match self {
            Storage::Heap(HeapLines(lines)) => &mut bytemuck::cast_slice_mut(lines)[..len],
            #[cfg(target_os = "linux")]
            Storage::Pages(pages) => {
                let start = pages.start;
                &mut pages.bytes_mut()[start..][..len]
            }
        }
    }
}

impl<A: Array> Tensor<A> {
    /// A tensor of zeros, allocated directly on the heap (never on the stack), or in a map
    /// of huge pages when it is 2 MiB or larger (Linux).
    ///
    /// ```
    /// let t = attn_runtime::Tensor::<[[f32; 64]; 16384]>::zeros();
    /// assert!(t.as_flat().iter().all(|&x| x == 0.0));
    /// ```
    pub fn zeros() -> Self {
        Tensor {
            storage: Storage::zeroed(size_of::<A>()),
            array: PhantomData,
        }
    }

    /// A tensor of unspecified values, for a buffer whose every element that is read is
    /// first written: the memory of a tensor of the same size that this thread dropped, as
    /// it was left (any bit pattern is a value of `A`'s elements), or else zeros. A layer's
    /// q, k, v and heads skip zeroing megabytes of padding that nothing reads.
    ///
    /// ```
    /// use attn_runtime::Tensor;
    /// type Rows = [[f32; 1024]; 1024]; // 4 MiB: large tensors' maps are kept
    /// let mut used = Tensor::<Rows>::zeros();
    /// used[3][5] = 7.0;
    /// drop(used);
    /// let reused = attn_runtime::__private::scratch_tensor::<Rows>();
    /// if cfg!(target_os = "linux") {
    ///     assert_eq!(reused[3][5], 7.0); // as the dropped one left it
    /// }
    /// drop(reused);
    /// assert_eq!(Tensor::<Rows>::zeros()[3][5], 0.0);
    /// ```
    pub(crate) fn scratch() -> Self {
        Tensor {
            storage: Storage::as_left(size_of::<A>()),
            array: PhantomData,
        }
    }

    /// The array: the storage's bytes, which start on a cache line (or huge page) boundary
    /// and number at least `size_of::<A>()`, so the cast's size and alignment checks hold.
    fn array(&self) -> &A {
        match bytemuck::try_from_bytes(self.storage.bytes(size_of::<A>())) {
            Ok(array) => array,
            Err(_) => unreachable!("a tensor's storage fits its array"),
        }
    }

    /// The array, for writing.
    fn array_mut(&mut self) -> &mut A {
        match bytemuck::try_from_bytes_mut(self.storage.bytes_mut(size_of::<A>())) {
            Ok(array) => array,
            Err(_) => unreachable!("a tensor's storage fits its array"),
        }
    }

    /// The shape `A` stands for, outermost axis first.
    ///
    /// ```
    /// assert_eq!(attn_runtime::Tensor::<[[f32; 3]; 2]>::shape(), vec![2, 3]);
    /// ```
    pub fn shape() -> Vec<usize> {
        A::dims()
    }

    /// Copies row-major `values` into a new tensor; an error, naming both lengths, when
    /// `values` does not hold exactly one value per element.
    ///
    /// ```
    /// let t = attn_runtime::Tensor::<[f32; 2]>::from_slice(&[1.0, 2.0])?;
    /// assert_eq!(*t, [1.0, 2.0]);
    /// # Ok::<(), attn_runtime::ShapeError>(())
    /// ```
    pub fn from_slice(values: &[A::Element]) -> Result<Self, ShapeError> {
        check_len::<A>(values.len())?;
        let mut tensor = Self::zeros();
        tensor.as_flat_mut().copy_from_slice(values);
        Ok(tensor)
    }

    /// Takes row-major `values`; an error, naming both lengths, when `values` does not hold
    /// exactly one value per element. The values are copied into a new allocation that
    /// starts on a cache line, and the `Vec`'s is freed.
    ///
    /// ```
    /// let t = attn_runtime::Tensor::<[[f32; 2]; 1]>::from_vec(vec![1.0, 2.0])?;
    /// assert_eq!(*t, [[1.0, 2.0]]);
    /// # Ok::<(), attn_runtime::ShapeError>(())
    /// ```
    pub fn from_vec(values: Vec<A::Element>) -> Result<Self, ShapeError> {
        Self::from_slice(&values)
    }

    /// The values, row-major.
    ///
    /// ```
    /// let t = attn_runtime::Tensor::<[[f32; 2]; 2]>::from_slice(&[1.0, 2.0, 3.0, 4.0])?;
    /// assert_eq!(t.as_flat(), &[1.0, 2.0, 3.0, 4.0]);
    /// # Ok::<(), attn_runtime::ShapeError>(())
    /// ```
    pub fn as_flat(&self) -> &[A::Element] {
        bytemuck::cast_slice(std::slice::from_ref(self.array()))
    }

    /// The values, row-major, for writing.
    ///
    /// ```
    /// let mut t = attn_runtime::Tensor::<[[f32; 2]; 2]>::zeros();
    /// t.as_flat_mut()[3] = 5.0;
    /// assert_eq!(t[1][1], 5.0);
    /// ```
    pub fn as_flat_mut(&mut self) -> &mut [A::Element] {
        bytemuck::cast_slice_mut(std::slice::from_mut(self.array_mut()))
    }
}

fn check_len<A: Array>(actual: usize) -> Result<(), ShapeError> {
    if actual == A::LEN {
        Ok(())
    } else {
        Err(ShapeError {
            shape: A::dims(),
            expected: A::LEN,
            actual,
        })
    }
}

impl<A: Array> Deref for Tensor<A> {
    type Target = A;
    fn deref(&self) -> &A {
        self.array()
    }
}

impl<A: Array> DerefMut for Tensor<A> {
    fn deref_mut(&mut self) -> &mut A {
        self.array_mut()
    }
}

/// A copy, built on the heap (a tensor can be larger than the stack).
///
/// ```
/// let t = attn_runtime::Tensor::<[f32; 2]>::from_slice(&[1.0, 2.0])?;
/// assert_eq!(t.clone(), t);
/// # Ok::<(), attn_runtime::ShapeError>(())
/// ```
impl<A: Array> Clone for Tensor<A> {
    fn clone(&self) -> Self {
        let mut copy = Self::zeros();
        copy.as_flat_mut().copy_from_slice(self.as_flat());
        copy
    }
}

impl<A: Array + PartialEq> PartialEq for Tensor<A> {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl<A: Array> fmt::Debug for Tensor<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tensor")
            .field("shape", &A::dims())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_vec_keeps_row_major_order() {
        let t =
            Tensor::<[[[f32; 2]; 3]; 2]>::from_vec((0..12).map(|x| x as f32).collect()).unwrap();
        assert_eq!(t[1][2][1], 11.0);
        assert_eq!(t[0][1][0], 2.0);
    }

    #[test]
    fn wrong_lengths_are_errors_naming_both() {
        let short = Tensor::<[[f32; 4]; 3]>::from_vec(vec![0.0; 11]).unwrap_err();
        assert_eq!(
            (short.expected, short.actual, short.shape),
            (12, 11, vec![3, 4])
        );
        let long = Tensor::<[[f32; 4]; 3]>::from_slice(&[0.0; 13]).unwrap_err();
        assert_eq!((long.expected, long.actual), (12, 13));
    }

    #[test]
    fn every_element_type_makes_tensors() {
        use half::{bf16, f16};
        let t = Tensor::<[[f64; 2]; 2]>::from_vec(vec![1.0, 2.0, 3.0, 4.0]).unwrap();
        assert_eq!(t[1], [3.0, 4.0]);
        let h = Tensor::<[[f16; 3]; 1]>::from_slice(&[f16::ONE; 3]).unwrap();
        assert_eq!(h.as_flat(), &[f16::ONE; 3]);
        let b = Tensor::<[[bf16; 4096]; 512]>::zeros();
        assert!(b.as_flat().iter().all(|x| *x == bf16::ZERO));
        let short = Tensor::<[f64; 3]>::from_vec(vec![0.0; 2]).unwrap_err();
        assert_eq!((short.expected, short.actual), (3, 2));
    }

    #[test]
    fn every_way_to_build_one_starts_on_a_cache_line() {
        let on_line = |values: &[f32]| values.as_ptr().addr().is_multiple_of(64);
        let zeros = Tensor::<[[f32; 3]; 5]>::zeros();
        let from_vec = Tensor::<[[f32; 3]; 5]>::from_vec(vec![1.0; 15]).unwrap();
        let from_slice = Tensor::<[f32; 7]>::from_slice(&[2.0; 7]).unwrap();
        let large = Tensor::<[[f32; 64]; 4096]>::zeros();
        assert!(on_line(zeros.as_flat()) && on_line(from_vec.as_flat()));
        assert!(on_line(from_slice.as_flat()) && on_line(large.as_flat()));
        let copy = from_vec.clone();
        assert!(on_line(copy.as_flat()));
        assert_eq!(copy.as_flat(), &[1.0; 15]);
        assert_ne!(copy.as_flat().as_ptr(), from_vec.as_flat().as_ptr());
        let half = Tensor::<[half::f16; 3]>::zeros();
        assert_eq!(half.as_flat().as_ptr().addr() % 64, 0);
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn a_tensor_of_2_mib_or_more_starts_on_a_huge_page() {
        type Big = [[f32; 64]; 8192];
        let mut t = Tensor::<Big>::zeros();
        assert!(matches!(t.storage, Storage::Pages(_)));
        assert!(t.as_flat().as_ptr().addr().is_multiple_of(HUGE_PAGE));
        assert!(t.as_flat().iter().all(|&x| x == 0.0));
        t[8191][63] = 5.0;
        t.as_flat_mut()[0] = 1.0;
        assert_eq!((t.as_flat()[0], t.as_flat()[(1 << 19) - 1]), (1.0, 5.0));
        let copy = t.clone();
        assert!(matches!(copy.storage, Storage::Pages(_)));
        assert_ne!(copy.as_flat().as_ptr(), t.as_flat().as_ptr());
        assert_eq!((copy.as_flat()[0], copy[8191][63]), (1.0, 5.0));
        assert_eq!(copy.as_flat().iter().filter(|&&x| x != 0.0).count(), 2);
        let from_vec = Tensor::<Big>::from_vec((0..1 << 19).map(|x| x as f32).collect()).unwrap();
        assert_eq!(from_vec[1][2], 66.0);
        // One float short of 2 MiB: on the heap.
        let small = Tensor::<[f32; (1 << 19) - 1]>::zeros();
        assert!(matches!(small.storage, Storage::Heap(_)));
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn a_dropped_large_tensor_is_reused_zeroed_by_the_next_of_its_size() {
        type Big = [[f32; 64]; 8192];
        let mut first = Tensor::<Big>::zeros();
        first.as_flat_mut().fill(7.0);
        let address = first.as_flat().as_ptr();
        drop(first);
        let second = Tensor::<Big>::zeros();
        assert_eq!(
            second.as_flat().as_ptr(),
            address,
            "the same map, taken back"
        );
        assert!(second.as_flat().iter().all(|&x| x == 0.0), "and zeroed");
        // Another size does not take it; more than the limit is not kept.
        let other = Tensor::<[[f32; 64]; 16384]>::zeros();
        assert_ne!(other.as_flat().as_ptr(), address);
        drop((second, other));
        let kept: usize =
            SPARE_MAPS.with_borrow(|spare| spare.iter().map(|p| p.bytes().len()).sum());
        assert!(kept <= SPARE_BYTES);
        let huge = Tensor::<[[f32; 1024]; 32768]>::zeros(); // 128 MiB
        drop(huge);
        let kept: usize =
            SPARE_MAPS.with_borrow(|spare| spare.iter().map(|p| p.bytes().len()).sum());
        assert!(kept <= SPARE_BYTES, "{kept}");
    }

    #[test]
    fn a_dropped_heap_tensor_is_reused_as_left_by_a_scratch_of_its_size_only() {
        type Mid = [[f32; 64]; 1024]; // 256 KiB: on the heap
        let mut first = Tensor::<Mid>::zeros();
        assert!(matches!(first.storage, Storage::Heap(_)));
        first[3][5] = 7.0;
        let address = first.as_flat().as_ptr();
        drop(first);
        let scratch = Tensor::<Mid>::scratch();
        assert_eq!(
            scratch.as_flat().as_ptr(),
            address,
            "the same lines, taken back"
        );
        assert_eq!(scratch[3][5], 7.0, "as they were left");
        drop(scratch);
        // A zeroed tensor never takes them, nor does a scratch of another size.
        assert_ne!(Tensor::<Mid>::zeros().as_flat().as_ptr(), address);
        let other = Tensor::<[[f32; 64]; 512]>::scratch();
        assert_ne!(other.as_flat().as_ptr(), address);
        // Small tensors are not kept, and what is kept stays within the limit.
        drop(Tensor::<[f32; 64]>::zeros());
        let kept = || SPARE_HEAP.with_borrow(|spare| spare.iter().map(|l| l.len() * 64).sum());
        assert!(
            SPARE_HEAP.with_borrow(|spare| spare.iter().all(|l| l.len() * 64 >= SPARE_HEAP_FROM))
        );
        let many: Vec<_> = (0..100).map(|_| Tensor::<Mid>::zeros()).collect();
        drop(many);
        let kept: usize = kept();
        assert!(kept <= SPARE_HEAP_BYTES, "{kept}");
    }

    #[test]
    fn an_empty_tensor_has_no_values() {
        let empty = Tensor::<[[f32; 0]; 3]>::zeros();
        assert_eq!(empty.as_flat().len(), 0);
        assert_eq!(*empty, [[0.0f32; 0]; 3]);
        let none = Tensor::<[f64; 0]>::from_vec(Vec::new()).unwrap();
        assert!(none.as_flat().is_empty());
        assert_eq!(none.clone(), none);
    }

    #[test]
    fn zeros_of_a_large_shape_stays_off_the_stack() {
        // 64 MiB: far larger than a thread's stack, so building it there would crash.
        let t = Tensor::<[[f32; 1024]; 16384]>::zeros();
        assert_eq!(t.as_flat().len(), 1 << 24);
    }
}
