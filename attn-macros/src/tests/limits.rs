//! What a kernel may hold: every array the generated code declares fits rustc's limit on a
//! 64-bit target, reported at the token that makes it too large, and a tiled kernel's scratch
//! fits a thread's stack.

use super::{errors, expand, position};

/// The errors of `source` as (message, the text at their position).
fn found(source: &str) -> Vec<(String, (usize, usize))> {
    errors(&expand(source))
        .into_iter()
        .map(|e| (e.message, e.at))
        .collect()
}

/// Expects an error naming `fragment` at occurrence `nth` of `token`, among the errors.
fn reports(source: &str, fragment: &str, token: &str, nth: usize) {
    let errors = found(source);
    let at = position(source, token, nth);
    assert!(
        errors
            .iter()
            .any(|(message, place)| message.contains(fragment) && *place == at),
        "{source}: expected {fragment:?} at {token:?} #{nth}, found {errors:#?}"
    );
}

#[test]
fn deep_kernels_keep_their_scratch_within_a_threads_stack() {
    let source = "fn deep<q: [1, N, 16384], k: [1, N, 16384], v: [1, N, 16384]>;";
    reports(source, "scratch", "16384", 0);
    let source = "fn deep_values<q: [1, N, 64], k: [1, N, 64], v: [1, N, 16384]>;";
    reports(source, "scratch", "16384", 0);
    for fine in [
        "fn deep<q: [1, N, 1024], k: [1, N, 1024], v: [1, N, 1024]>;",
        "fn step<q: [1, 1, 2048], k: [1, N, 2048], v: [1, N, 64]>;",
    ] {
        assert!(found(fine).is_empty(), "{fine}: {:#?}", found(fine));
    }
}

#[test]
fn arrays_fit_rustcs_limit_on_a_64_bit_target() {
    // 2^54 keys of depth 64 in f32 are 2^62 bytes: less than isize::MAX, more than rustc
    // allows an object (2^61 bytes).
    let source =
        "fn f<q: [1, 1, 64], k: [1, 18014398509481984, 64], v: [1, 18014398509481984, 1]>;";
    reports(source, "2^61", "[1, 18014398509481984, 64]", 0);
}

#[test]
fn the_weights_lse_mask_and_bias_are_checked_at_their_option() {
    let source = "#[attn(return_weights)] \
                  fn w<q: [1, 4294967296, 1], k: [1, 4294967296, 1], v: [1, 4294967296, 1]>;";
    reports(source, "weights", "return_weights", 0);
    let source = "#[attn(mask = [1, 2147483648, 2147483648])] \
                  fn m<q: [1, 2147483648, 1], k: [1, 2147483648, 1], v: [1, 2147483648, 1]>;";
    reports(source, "mask", "[1, 2147483648, 2147483648]", 0);
    let source = "#[attn(bias = [1, 2147483648, 2147483648])] \
                  fn b<q: [1, 2147483648, 1], k: [1, 2147483648, 1], v: [1, 2147483648, 1]>;";
    reports(source, "bias", "[1, 2147483648, 2147483648]", 0);
    // f16 rows of depth 1 are 2 bytes each, their log-sum-exp 4.
    let source = "#[attn(dtype = f16, return_lse)] \
                  fn l<q: [1, 576460752303423488, 1], k: [1, 4, 1], v: [1, 4, 1]>;";
    reports(source, "log-sum-exp", "return_lse", 0);
}
