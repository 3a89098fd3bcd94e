//! How many threads a kernel uses (the `threads` feature).
//!
//! A kernel's query rows are split, in equal shares, over the threads of rayon's global pool
//! when its work is large enough to pay for handing it over. The pool's threads live for the
//! whole program, so a call does not wait 20-50 us for threads to start (against scoped
//! threads spawned per call, two series of A/B runs of `bench/examples/profile_w3.rs` on two
//! threads gave W3 4% and 7% faster, W4 1% and 8%), and kernels called from inside rayon's
//! own parallel iterators share its threads rather than oversubscribe the cores. Each row is
//! computed the same way on any thread, so the results are bit-identical to a
//! single-threaded run.

use std::cell::Cell;
use std::sync::OnceLock;

/// Below this many FLOPs a kernel runs on the calling thread: handing a share to another
/// thread, and waking it, costs several microseconds; this is about 10 microseconds of work.
pub const MIN_FLOPS_PER_THREAD: u64 = 1 << 21;

thread_local! {
    static FORCED: Cell<Option<usize>> = const { Cell::new(None) };
}

/// The threads kernels may use: the number forced by [`with_threads`] on this thread, else
/// `ATTN_THREADS`, else the machine's available parallelism. A kernel also uses no more than
/// the rayon pool it runs in has (`rayon::current_num_threads`: the global pool, sized by
/// `RAYON_NUM_THREADS` or the program's own configuration, or the pool of an `install`).
///
/// ```
/// assert!(attn_runtime::threads::max_threads() >= 1);
/// ```
pub fn max_threads() -> usize {
    FORCED.with(Cell::get).unwrap_or_else(|| {
        static DEFAULT: OnceLock<usize> = OnceLock::new();
        *DEFAULT.get_or_init(|| {
            std::env::var("ATTN_THREADS")
                .ok()
                .and_then(|n| n.parse().ok())
                .or_else(|| std::thread::available_parallelism().ok().map(usize::from))
                .unwrap_or(1)
                .max(1)
        })
    })
}

/// Runs `f` with kernels on this thread using at most `threads` threads (at least 1).
///
/// ```
/// use attn_runtime::threads::{max_threads, with_threads};
/// assert_eq!(with_threads(1, max_threads), 1);
/// ```
pub fn with_threads<R>(threads: usize, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<usize>);
    impl Drop for Restore {
        fn drop(&mut self) {
            FORCED.with(|forced| forced.set(self.0));
        }
    }
    let _restore = Restore(FORCED.with(|forced| forced.replace(Some(threads.max(1)))));
    f()
}

/// The threads to use for `flops` of work.
pub(crate) fn for_work(flops: u64) -> usize {
    let useful = (flops / MIN_FLOPS_PER_THREAD).max(1);
    // More shares than the pool has threads would run one after another on some of them.
    max_threads()
        .min(rayon::current_num_threads())
        .min(usize::try_from(useful).unwrap_or(usize::MAX))
}
