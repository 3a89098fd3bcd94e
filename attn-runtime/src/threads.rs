//! How many threads a kernel uses, and how its work is run on them (the `threads` feature).
//!
//! A kernel's query rows are split, in equal shares that start at a tile boundary, over
//! attn's pool of threads when its work is large enough to pay for waking them. Each row is
//! computed the same way on any thread, so the results are bit-identical to a
//! single-threaded run.

use std::cell::Cell;
use std::sync::OnceLock;

/// Below this many FLOPs a kernel runs on the calling thread: handing work to the pool costs
/// about as much as 10 microseconds of work.
pub const MIN_FLOPS_PER_THREAD: u64 = 1 << 21;

thread_local! {
    static FORCED: Cell<Option<usize>> = const { Cell::new(None) };
}

/// The threads kernels may use: the number forced by [`with_threads`] on this thread, else
/// `ATTN_THREADS`, else the machine's available parallelism.
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
    max_threads().min(usize::try_from(useful).unwrap_or(usize::MAX))
}

/// Runs `run` on each of `shares`: the last on the calling thread, at once, and each other
/// on a thread of attn's pool (one thread per core, started at the first call and kept).
/// The kernels' blocks and the layer's projections are split this way. Should the pool's
/// threads fail to start, every share runs on the calling thread, with the same results.
pub(crate) fn run_shares<T: Send>(shares: Vec<T>, run: impl Fn(T) + Sync) {
    let Some(pool) = pool() else {
        shares.into_iter().for_each(run);
        return;
    };
    let run = &run;
    pool.in_place_scope(|scope| {
        let mut shares = shares.into_iter();
        let last = shares.next_back();
        for share in shares {
            scope.spawn(move |_| run(share));
        }
        if let Some(share) = last {
            run(share);
        }
    });
}

/// attn's own pool, apart from the global one (which a program may size for other work,
/// as the benchmark does for candle): as many threads as the machine runs at once. `None`
/// if the threads cannot be started.
fn pool() -> Option<&'static rayon::ThreadPool> {
    static POOL: OnceLock<Option<rayon::ThreadPool>> = OnceLock::new();
    POOL.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        rayon::ThreadPoolBuilder::new()
            .num_threads(cores)
            .thread_name(|i| format!("attn-{i}"))
            .build()
            .ok()
    })
    .as_ref()
}
