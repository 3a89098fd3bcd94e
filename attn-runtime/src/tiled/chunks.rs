//! Split keys ("flash-decoding"): a kernel whose problems have too few query rows to share
//! out among threads (decoding has one row per head) splits each problem's keys into chunks
//! of `attn_rules::KEY_CHUNK` keys. Each chunk runs the loop nest alone, on any thread, and
//! leaves a partial result per query row, not yet normalized; then each row's partials are
//! merged in chunk order:
//!
//! ```text
//! for each chunk c (any thread):   m_c, l_c, O_c = the loop nest over chunk c's keys
//! for each row:                    m = max_c m_c
//!                                  l = Σ_c l_c · exp(m_c - m)
//!                                  O = Σ_c O_c · exp(m_c - m) / l,   lse = m + ln l
//! ```
//!
//! The chunks are a rule of the shape alone (`attn_rules::key_chunks`), and the merge's
//! order is fixed, so a kernel's results are the same bits on any number of threads.

use super::driver::{Kernel, Rows};
use super::softmax::MAX_LANES;
use crate::simd::{Isa, Lane, Simd, WithSimd, dispatch, exp_of_nonpositive};
use attn_rules::KEY_CHUNK;
use std::ops::Range;

/// One query row's result over one chunk of keys: its output row before the division by the
/// sum, its reference max `m` and its sum `l` (a vector of partial sums).
#[derive(Clone, Copy, Debug)]
pub struct PartialRow<const DV: usize> {
    /// `Σ_j exp(s_j - max) · v_j` over the chunk's keys.
    pub out: [f32; DV],
    /// The reference the weights are taken from; -inf when the row sees no key of the chunk.
    pub max: f32,
    /// `Σ_j exp(s_j - max)`, in partial sums.
    pub sum: [f32; MAX_LANES],
}

impl<const DV: usize> PartialRow<DV> {
    /// The partial result over no keys.
    ///
    /// ```
    /// use attn_runtime::__private::PartialRow;
    /// assert_eq!(PartialRow::<4>::NO_KEYS.max, f32::NEG_INFINITY);
    /// ```
    pub const NO_KEYS: Self = PartialRow {
        out: [0.0; DV],
        max: f32::NEG_INFINITY,
        sum: [0.0; MAX_LANES],
    };
}

/// Merges one row's partial results, in the order given, into its output row (not yet
/// divided by the sum), its max and its sum: the statistics that `normalize` and
/// `log_sum_exp` finish. A NaN max (from a NaN score) makes the whole row NaN, as it would
/// in a single walk over the keys.
///
/// ```
/// use attn_runtime::__private::{MAX_LANES, PartialRow, merge_partials};
/// use attn_runtime::simd::Portable;
/// let mut a = PartialRow::<4>::NO_KEYS;
/// (a.out, a.max, a.sum[0]) = ([2.0; 4], 0.0, 2.0);
/// let mut b = PartialRow::<4>::NO_KEYS;
/// (b.out, b.max, b.sum[0]) = ([1.0; 4], 1.0f32.ln(), 1.0);
/// let (mut out, mut max, mut sum) = ([0.0; 4], 0.0, [0.0; MAX_LANES]);
/// merge_partials(Portable, [a, b, PartialRow::NO_KEYS].iter(), &mut out, &mut max, &mut sum);
/// assert_eq!((out, max, sum[0]), ([3.0; 4], 0.0, 3.0));
/// ```
#[inline(always)]
pub fn merge_partials<'a, S: Simd, const DV: usize>(
    simd: S,
    partials: impl Iterator<Item = &'a PartialRow<DV>> + Clone,
    out: &mut [f32; DV],
    max: &mut f32,
    sum: &mut [f32; MAX_LANES],
) {
    let reference = partials.clone().fold(f32::NEG_INFINITY, |m, partial| {
        if partial.max.is_nan() || partial.max > m {
            partial.max
        } else {
            m
        }
    });
    *max = reference;
    out.fill(0.0);
    sum.fill(0.0);
    for partial in partials {
        // A chunk whose keys the row does not see has a max of -inf and adds nothing (0 times
        // its zeros); one whose scores were all NaN also has a max of -inf, and its NaN sum
        // makes the row NaN, as in a single walk.
        let factor = if partial.max == f32::NEG_INFINITY {
            0.0
        } else {
            exp_of_nonpositive(Lane, partial.max - reference)
        };
        let factor_v = simd.splat(factor);
        let mut to = out.chunks_exact_mut(S::LANES);
        let mut from = partial.out.chunks_exact(S::LANES);
        for (to, from) in (&mut to).zip(&mut from) {
            simd.store(to, simd.mul_add(factor_v, simd.load(from), simd.load(to)));
        }
        for (to, from) in to.into_remainder().iter_mut().zip(from.remainder()) {
            *to += factor * from;
        }
        for (to, from) in sum.iter_mut().zip(&partial.sum) {
            *to += factor * from;
        }
    }
}

/// Runs a kernel whose problems' keys are split ([`Kernel::KEY_CHUNKS`] > 1) over all of
/// `rows`: every chunk of every problem, on up to `threads` threads, then the merge of each
/// problem's rows.
pub(super) fn run<K: Kernel>(
    kernel: &K,
    rows: Rows<'_, K>,
    isa: Isa,
    threads: usize,
    walked: &[Range<usize>],
) {
    let (queries, chunks) = (K::QUERIES, K::KEY_CHUNKS);
    let problems = rows.out.len() / queries;
    let threads = threads.min(problems * chunks).max(1);
    let mut partials: Vec<K::PartialRow> = (0..problems * chunks * queries)
        .map(|_| K::NO_KEYS)
        .collect();
    // The chunks of all problems, in order, are cut into runs of about equal work (the keys
    // each walks), one a thread: as the problems were in memory, so that each thread streams
    // through its own part, and chunks past a problem's valid keys count for nothing.
    let work: Vec<usize> = walked
        .iter()
        .flat_map(|walked| {
            (0..chunks).map(move |chunk| {
                let (from, to) = (chunk * KEY_CHUNK, (chunk + 1) * KEY_CHUNK);
                walked.end.min(to).saturating_sub(walked.start.max(from))
            })
        })
        .collect();
    let total: usize = work.iter().sum();
    let mut shares: Vec<Chunks<'_, K>> = (0..threads)
        .map(|_| Chunks {
            kernel,
            chunks: Vec::new(),
        })
        .collect();
    // The last share, the calling thread's, starts a little earlier than an equal part:
    // it runs at once, while a pool thread asleep since the last call is first woken.
    let values_per_key = usize::try_from(K::FLOPS_PER_KEY / 2).unwrap_or(usize::MAX);
    let head_start = HEAD_START_KEY_VALUES / values_per_key.max(1);
    let share_start = |t: usize| {
        let equal = total * t / threads;
        if t + 1 == threads && t > 0 {
            equal
                .saturating_sub(head_start)
                .max(total * (t - 1) / threads)
        } else {
            equal
        }
    };
    let starts: Vec<usize> = (0..threads).map(share_start).collect();
    let mut done = 0;
    for (i, (partial, work)) in partials.chunks_mut(queries).zip(work).enumerate() {
        // The share whose part of the total work this chunk's middle falls in.
        let middle = done + work / 2;
        let share = starts.partition_point(|&start| start <= middle).max(1) - 1;
        shares[share].chunks.push((i / chunks, i % chunks, partial));
        done += work;
    }
    shares.retain(|share| !share.chunks.is_empty());
    on_threads(shares, |share| dispatch(isa, share));
    // Each thread merges a run of problems, when the merge walks the keys again; otherwise
    // the calling thread merges them all, sooner than a pool thread would wake.
    let threads = if K::MERGE_WALKS_KEYS { threads } else { 1 };
    let per_share = problems.div_ceil(threads);
    let mut merges = Vec::with_capacity(threads);
    let mut rest = rows;
    for (t, partials) in partials.chunks(per_share * chunks * queries).enumerate() {
        let len = (per_share * queries).min(rest.out.len());
        let (mine, tail) = rest.split_at(len);
        merges.push(Merges {
            kernel,
            first_problem: t * per_share,
            partials,
            rows: mine,
        });
        rest = tail;
    }
    on_threads(merges, |merge| dispatch(isa, merge));
}

/// The keys' and values' elements that the calling thread reads beyond its equal share of a
/// split: 2 MiB of f32, which one thread of a decode step reads in about the time a job
/// handed to a sleeping pool thread takes to start and come back (`cargo run --release -p
/// attn-bench --example spawn`: 81-94 us), so that the calling thread, finishing last, need
/// not be woken. In alternating runs of `--bench decode` on two threads, every cache's step
/// was 1-3% faster with it; with half of it, f32 about 1%.
const HEAD_START_KEY_VALUES: usize = 1 << 19;

/// The threads that the keys `walked` by each problem pay for, at `flops_per_key` each (a
/// call over a few hundred valid keys of a large cache is less work than waking a thread
/// costs), at most.
pub(super) fn threads_for(walked: &[Range<usize>], flops_per_key: u64) -> usize {
    #[cfg(feature = "threads")]
    {
        let keys: usize = walked.iter().map(|walked| walked.len()).sum();
        crate::threads::for_work((keys as u64).saturating_mul(flops_per_key))
    }
    #[cfg(not(feature = "threads"))]
    {
        let _ = (walked, flops_per_key);
        1
    }
}

/// Whether the keys each problem walks lie within one chunk.
pub(super) fn within_one_chunk(walked: &[Range<usize>]) -> bool {
    walked
        .iter()
        .all(|walked| walked.is_empty() || walked.start / KEY_CHUNK == (walked.end - 1) / KEY_CHUNK)
}

/// Runs each share, on attn's threads when there is more than one (see
/// [`crate::threads`]).
fn on_threads<T: Send>(shares: Vec<T>, run: impl Fn(T) + Sync) {
    #[cfg(feature = "threads")]
    if shares.len() > 1 {
        return crate::threads::run_shares(shares, run);
    }
    shares.into_iter().for_each(run);
}

/// One thread's chunks: (problem, chunk, the partial results of the problem's rows).
struct Chunks<'a, K: Kernel> {
    kernel: &'a K,
    chunks: Vec<(usize, usize, &'a mut [K::PartialRow])>,
}

impl<K: Kernel> WithSimd for Chunks<'_, K> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        self.kernel.chunks(simd, self.chunks.into_iter());
    }
}

/// One thread's merges: the problems from `first_problem` on, their partial results, and
/// their rows.
struct Merges<'a, K: Kernel> {
    kernel: &'a K,
    first_problem: usize,
    partials: &'a [K::PartialRow],
    rows: Rows<'a, K>,
}

impl<K: Kernel> WithSimd for Merges<'_, K> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        let mut rest = self.rows;
        let per_problem = K::KEY_CHUNKS * K::QUERIES;
        for (i, partials) in self.partials.chunks(per_problem).enumerate() {
            let len = K::QUERIES.min(rest.out.len());
            let (rows, tail) = rest.split_at(len);
            self.kernel
                .merge(simd, self.first_problem + i, partials, rows);
            rest = tail;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{PartialRow, merge_partials};
    use crate::simd::{Isa, Simd, WithSimd, dispatch};
    use crate::tiled::softmax::MAX_LANES;

    /// One partial result among empty ones merges into itself, bit for bit: a problem
    /// whose keys lie in one chunk may skip the split.
    #[test]
    fn one_partial_among_empty_ones_merges_into_itself() {
        struct Merge(PartialRow<20>);
        impl WithSimd for Merge {
            type Output = ([f32; 20], f32, [f32; MAX_LANES]);
            fn with_simd<S: Simd>(self, simd: S) -> Self::Output {
                let partials = [PartialRow::NO_KEYS, self.0, PartialRow::NO_KEYS];
                let (mut out, mut max, mut sum) = ([0.0; 20], 0.0, [0.0; MAX_LANES]);
                merge_partials(simd, partials.iter(), &mut out, &mut max, &mut sum);
                (out, max, sum)
            }
        }
        let mut partial = PartialRow::<20>::NO_KEYS;
        for (i, x) in partial.out.iter_mut().enumerate() {
            *x = (i as f32 * 0.37).sin() * 3.0;
        }
        partial.max = -1.7;
        for (i, x) in partial.sum.iter_mut().enumerate() {
            *x = 0.1 + i as f32 / 7.0;
        }
        for isa in Isa::supported() {
            let (out, max, sum) = dispatch(isa, Merge(partial));
            assert_eq!(
                out.map(f32::to_bits),
                partial.out.map(f32::to_bits),
                "{isa}"
            );
            assert_eq!((max, sum), (partial.max, partial.sum), "{isa}");
        }
    }
}
