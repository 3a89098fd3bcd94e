//! What starting a scoped thread costs, the way a kernel's threads start: `std::thread::scope`
//! and one spawn, joined, with and without touching 128 KiB of the new thread's stack (a
//! tiled kernel's scratch is about 70 KiB at depth 64): what a kernel's call would pay to
//! start its threads, if it started them. attn keeps a pool instead (`threads.rs`): the
//! last line times handing one job to such a pool, whose thread has gone to sleep since
//! the previous call (as between calls of a few milliseconds), and waiting for it.
//!
//! Run: `cargo run --release -p attn-bench --example spawn`

use std::time::Instant;

/// Touches 128 KiB of stack, a value per 4 KiB page.
#[inline(never)]
fn touch_stack(seed: usize) -> f32 {
    let mut scratch = [0.0f32; 32 * 1024];
    for at in (0..scratch.len()).step_by(1024) {
        scratch[at] = (seed + at) as f32;
    }
    std::hint::black_box(&mut scratch);
    scratch[seed % scratch.len()]
}

/// Microseconds per scoped spawn and join, the thread running `work`.
fn per_spawn(work: impl Fn(usize) -> f32 + Sync) -> f64 {
    const SPAWNS: usize = 200;
    let start = Instant::now();
    for i in 0..SPAWNS {
        std::thread::scope(|scope| {
            scope.spawn(|| std::hint::black_box(work(i)));
        });
    }
    start.elapsed().as_secs_f64() / SPAWNS as f64 * 1e6
}

/// Microseconds per job handed to an idle pool thread and waited for, as attn's kernels do
/// (`in_place_scope`), after 5 ms for the thread to fall asleep.
fn per_wake(pool: &rayon::ThreadPool) -> f64 {
    const WAKES: usize = 50;
    let mut total = 0.0;
    for i in 0..WAKES {
        std::thread::sleep(std::time::Duration::from_millis(5));
        let start = Instant::now();
        pool.in_place_scope(|scope| {
            scope.spawn(move |_| {
                std::hint::black_box(touch_stack(i));
            });
        });
        total += start.elapsed().as_secs_f64();
    }
    total / WAKES as f64 * 1e6
}

fn main() {
    for round in 1..=3 {
        let bare = per_spawn(|i| i as f32);
        let touching = per_spawn(touch_stack);
        println!(
            "round {round}: spawn and join {bare:.1} us; with 128 KiB of stack touched {touching:.1} us"
        );
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .expect("a pool of two threads");
    for round in 1..=3 {
        println!(
            "round {round}: a job to a sleeping pool thread and back {:.1} us",
            per_wake(&pool)
        );
    }
}
