//! The values of `scale`, `softcap` and `window`: each one the kernel can use exactly as
//! written, and every other reported at its token.

use super::{errors, expand};

/// The first error of `options` on a small kernel, and the text of the token it points at.
fn first_error(options: &str) -> Option<(String, (usize, usize))> {
    let source = format!("#[attn({options})] fn f<q: [1, 4, 3], k: [1, 4, 3], v: [1, 4, 3]>;");
    let output = expand(&source);
    errors(&output)
        .into_iter()
        .next()
        .map(|e| (e.message, e.at))
}

/// Expects an error at the first occurrence of `token` in `options`, naming `fragment`.
fn rejects(options: &str, token: &str, fragment: &str) {
    let source = format!("#[attn({options})] fn f<q: [1, 4, 3], k: [1, 4, 3], v: [1, 4, 3]>;");
    let (message, at) = first_error(options).unwrap_or_else(|| panic!("{options} accepted"));
    assert!(message.contains(fragment), "{options}: {message}");
    assert!(message.contains("\nhelp: "), "{options}: {message}");
    assert_eq!(
        at,
        super::position(&source, token, 0),
        "{options}: {message}"
    );
}

#[test]
fn scales_and_caps_are_positive_normal_f32_with_a_finite_reciprocal() {
    for value in ["1e-50", "1e-40", "0.0"] {
        rejects(&format!("scale = {value}"), value, "scale");
        rejects(&format!("causal, softcap = {value}"), value, "soft cap");
    }
    rejects("scale = -0.125", "0.125", "scale");
    rejects("scale = 1e39", "1e39", "scale");
    for accepted in [
        "scale = 0.125",
        "scale = 2",
        "softcap = 30",
        "softcap = 1e-30",
    ] {
        assert!(
            first_error(accepted).is_none(),
            "{accepted}: {:?}",
            first_error(accepted)
        );
    }
}

#[test]
fn a_doubled_sign_is_not_a_number() {
    rejects("scale = --0.125", "-", "`scale` takes a number");
}

#[test]
fn numbers_take_no_integer_suffix() {
    rejects("scale = 3u8", "3u8", "suffix");
    rejects("causal, window = 4u8", "4u8", "suffix");
    assert!(first_error("scale = 0.5f32").is_none());
}

#[test]
fn a_window_is_a_plain_integer() {
    rejects("causal, window = 2.0", "2.0", "whole number");
    assert!(first_error("causal, window = 2").is_none());
}
