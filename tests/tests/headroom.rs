//! The online softmax moves a row's reference (its running max) only when a block's scores
//! exceed it by more than 4: scores that creep up block after block, by less and by more than
//! that, and fall back, must all give the reference's result, on every instruction set.

use attn_runtime::{Tensor, attention};
use attn_tests::{Problem, accurate_on_every_isa};

attention! {
    /// Tiled: ten blocks of 64 keys for each query.
    fn creeping<q: [1, 8, 4], k: [1, 640, 4], v: [1, 640, 3]>;
}

/// Scores that rise by `step` per key for the first 400 keys, then fall: each block of 64
/// keys exceeds the last by `64 · step` (times each query's factor).
fn check(step: f32) {
    let mut q = Tensor::<[[[f32; 4]; 8]; 1]>::zeros();
    let mut k = Tensor::<[[[f32; 4]; 640]; 1]>::zeros();
    let mut v = Tensor::<[[[f32; 3]; 640]; 1]>::zeros();
    for (i, row) in q[0].iter_mut().enumerate() {
        // Query 0 sees flat scores; query 7 scores rising 1.75 times as steeply as `step`.
        *row = [0.25 * i as f32, 1.0, 0.0, 0.0];
    }
    for (j, (key, value)) in k[0].iter_mut().zip(v[0].iter_mut()).enumerate() {
        let rise = if j < 400 { j as f32 } else { 800.0 - j as f32 };
        // Score = q · k / 2 (depth 4): key j scores `step · rise · i / 4`, plus a ripple.
        *key = [2.0 * step * rise, (j % 7) as f32 * 0.1, 0.0, 0.0];
        *value = [j as f32 / 640.0, (j % 5) as f32, -1.0];
    }
    let problem = Problem::with_default_scale(1, 8, 640, 4, 3);
    accurate_on_every_isa(
        &format!("scores rising by {step} per key"),
        &problem,
        [q.as_flat(), k.as_flat(), v.as_flat()],
        |out: &mut Tensor<[[[f32; 3]; 8]; 1]>| creeping_into(&q, &k, &v, out),
    );
}

#[test]
fn scores_creeping_up_by_less_than_the_headroom_per_block() {
    // 64 · 0.01 · 1.75 = 1.1 per block at most: the reference moves every few blocks.
    check(0.01);
}

#[test]
fn scores_jumping_by_more_than_the_headroom_per_block() {
    // Up to 64 · 0.2 · 1.75 = 22 per block, 140 in all: the reference moves at every block
    // (one that stayed put would overflow exp, whose range ends at 88).
    check(0.2);
}

#[test]
fn scores_just_under_and_over_the_headroom_per_block() {
    for step in [0.03, 0.035, 0.04, 0.05] {
        check(step);
    }
}
