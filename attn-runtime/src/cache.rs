//! A key/value cache for decoding: the keys and values of every position generated so far,
//! per batch entry, in the shape a generated decode kernel takes, read by it in place.

use crate::tensor::{Array, Tensor};
use std::fmt;

/// The keys and values of up to `N` positions for each of `B` batch entries, `H` key/value
/// heads of depth `D` (keys) and `DV` (values), stored as `T` (f32, f64, f16 or bf16): the
/// shapes `k: [B, H, N, D]` and `v: [B, H, N, DV]` of a kernel declared with
/// `#[attn(valid_lengths, causal(bottom_right))]`, whose `valid_keys` are [`lengths`]. Each
/// entry has its own length; [`append`] adds positions at its end.
///
/// The capacity is the type's: a kernel of the same shape reads the cache as it is stored,
/// and the positions past an entry's length are padding that no query sees. A rolling
/// (sliding-window) cache is not provided: a kernel's `window` option already limits what
/// each query sees, and a cache that wraps around would need keys stored out of order.
///
/// [`lengths`]: KvCache::lengths
/// [`append`]: KvCache::append
///
/// ```
/// use attn_runtime::{KvCache, attention};
/// attention! {
///     #[attn(valid_lengths, causal(bottom_right))]
///     fn step<q: [2, 1, 1, 4], k: [2, 1, 8, 4], v: [2, 1, 8, 4]>;
/// }
/// let mut cache = KvCache::<f32, 2, 1, 8, 4, 4>::new();
/// cache.append(0, &[[[1.0; 4]; 3]], &[[[2.0; 4]; 3]])?; // three positions for entry 0
/// cache.append(1, &[[[1.0; 4]; 1]], &[[[5.0; 4]; 1]])?; // one for entry 1
/// assert_eq!(cache.lengths(), &[3, 1]);
/// let q = [[[[0.5; 4]]]; 2];
/// let out = step(&q, cache.keys(), cache.values(), cache.lengths())?;
/// assert_eq!((out[0][0][0], out[1][0][0]), ([2.0; 4], [5.0; 4]));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct KvCache<
    T: Array,
    const B: usize,
    const H: usize,
    const N: usize,
    const D: usize,
    const DV: usize,
> {
    keys: Tensor<[[[[T; D]; N]; H]; B]>,
    values: Tensor<[[[[T; DV]; N]; H]; B]>,
    lengths: [usize; B],
}

/// Why positions could not be appended to a [`KvCache`]: nothing was written.
///
/// ```
/// use attn_runtime::{CacheError, KvCache};
/// let mut cache = KvCache::<f32, 1, 1, 2, 4, 4>::new();
/// let error = cache.append(0, &[[[0.0; 4]; 3]], &[[[0.0; 4]; 3]]).unwrap_err();
/// assert_eq!(
///     error.to_string(),
///     "batch entry 0 holds 0 of its 2 positions: 3 more do not fit"
/// );
/// assert_eq!(cache.lengths(), &[0]);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheError {
    /// The positions offered do not fit after the entry's length.
    Full {
        /// The batch entry.
        entry: usize,
        /// Its length before the append.
        length: usize,
        /// The positions each entry can hold.
        capacity: usize,
        /// The positions offered.
        offered: usize,
    },
    /// No position was offered.
    NoPositions,
    /// The batch entry does not exist.
    NoEntry {
        /// The entry asked for.
        entry: usize,
        /// The number of entries.
        entries: usize,
    },
}

impl fmt::Display for CacheError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            CacheError::Full {
                entry,
                length,
                capacity,
                offered,
            } => write!(
                f,
                "batch entry {entry} holds {length} of its {capacity} positions: {offered} more do not fit"
            ),
            CacheError::NoPositions => {
                write!(f, "no position to append: offer at least one key and value")
            }
            CacheError::NoEntry { entry, entries } => write!(
                f,
                "there is no batch entry {entry}: the cache has {entries} entries"
            ),
        }
    }
}

impl std::error::Error for CacheError {}

impl<T: Array, const B: usize, const H: usize, const N: usize, const D: usize, const DV: usize>
    KvCache<T, B, H, N, D, DV>
{
    /// An empty cache: every entry of length 0, its storage zeroed.
    pub fn new() -> Self {
        KvCache {
            keys: Tensor::zeros(),
            values: Tensor::zeros(),
            lengths: [0; B],
        }
    }

    /// Appends `P` positions to batch entry `entry`: their keys `[H, P, D]` and values
    /// `[H, P, DV]`, each head's after its own. An entry that does not exist, no position, or
    /// more positions than fit is an error, and nothing is written.
    pub fn append<const P: usize>(
        &mut self,
        entry: usize,
        keys: &[[[T; D]; P]; H],
        values: &[[[T; DV]; P]; H],
    ) -> Result<(), CacheError> {
        if entry >= B {
            return Err(CacheError::NoEntry { entry, entries: B });
        }
        if P == 0 {
            return Err(CacheError::NoPositions);
        }
        let length = self.lengths[entry];
        if P > N - length {
            return Err(CacheError::Full {
                entry,
                length,
                capacity: N,
                offered: P,
            });
        }
        for head in 0..H {
            self.keys[entry][head][length..length + P].copy_from_slice(&keys[head]);
            self.values[entry][head][length..length + P].copy_from_slice(&values[head]);
        }
        self.lengths[entry] = length + P;
        Ok(())
    }

    /// Empties batch entry `entry` (its length becomes 0), to start a new sequence there.
    pub fn clear(&mut self, entry: usize) -> Result<(), CacheError> {
        match self.lengths.get_mut(entry) {
            Some(length) => {
                *length = 0;
                Ok(())
            }
            None => Err(CacheError::NoEntry { entry, entries: B }),
        }
    }

    /// The keys, `[B, H, N, D]`: each entry's first [`lengths`](Self::lengths) positions hold
    /// its keys, the rest padding.
    pub fn keys(&self) -> &[[[[T; D]; N]; H]; B] {
        &self.keys
    }

    /// The values, `[B, H, N, DV]`, as the keys.
    pub fn values(&self) -> &[[[[T; DV]; N]; H]; B] {
        &self.values
    }

    /// Each entry's length: the `valid_keys` of a kernel declared with `valid_lengths`.
    pub fn lengths(&self) -> &[usize; B] {
        &self.lengths
    }
}

impl<T: Array, const B: usize, const H: usize, const N: usize, const D: usize, const DV: usize>
    Default for KvCache<T, B, H, N, D, DV>
{
    fn default() -> Self {
        Self::new()
    }
}
