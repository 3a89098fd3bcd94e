//! Expansion snapshots: the generated code of representative kernels, formatted by
//! prettyplease and committed under `attn-macros/snapshots/`, reviewed like code.
//!
//! After a deliberate change to the generated code, refresh them with
//! `ATTN_BLESS=1 cargo test -p attn-macros snapshots` and read the diff.

use super::{errors, expand};
use std::path::Path;

/// Expands `source` (expecting errors or not, as `with_errors` says) and compares the
/// formatted expansion, headed by the source as a comment, with `snapshots/{name}.rs`.
fn snapshot(name: &str, source: &str, with_errors: bool) {
    let output = expand(source);
    assert_eq!(
        !errors(&output).is_empty(),
        with_errors,
        "{:?}",
        errors(&output)
    );
    let file: syn::File = syn::parse2(output).expect("the expansion is valid Rust");
    let quoted: Vec<String> = source
        .lines()
        .map(|line| format!("//     {}", line.trim()))
        .collect();
    let actual = format!(
        "// attention! {{\n{}\n// }}\n\n{}",
        quoted.join("\n"),
        prettyplease::unparse(&file)
    );
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("snapshots")
        .join(format!("{name}.rs"));
    if std::env::var_os("ATTN_BLESS").is_some() {
        std::fs::write(&path, &actual).expect("write the snapshot");
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        expected == actual,
        "the expansion of `{name}` changed; if that is intended, run \
         `ATTN_BLESS=1 cargo test -p attn-macros snapshots` and review the diff of {}\n\n{actual}",
        path.display()
    );
}

#[test]
fn textbook_unrolled() {
    snapshot(
        "textbook_unrolled",
        "/// The textbook example: two queries over four tokens, depth three.
         pub fn seed_example<q: [B, Nq, Dk], k: [B, Nk, Dk], v: [B, Nk, Dv]>
         where B = 1, Nq = 2, Nk = 4, Dk = 3, Dv = 3;",
        false,
    );
}

#[test]
fn encoder_tiled_with_unbound_length() {
    snapshot(
        "encoder_tiled",
        "/// Twelve heads of depth 32 over any number of tokens.
         pub fn encoder<q: [B, H, N, Dh], k: [B, H, N, Dh], v: [B, H, N, Dh]>
         where B = 1, H = 12, Dh = 32;",
        false,
    );
}

#[test]
fn decode_step_causal_bottom_right() {
    snapshot(
        "decode_causal",
        "/// One decode step over a cache: the queries are the last positions.
         #[attn(causal(bottom_right))]
         pub fn step<q: [1, 8, 2, 64], k: [1, 8, N, 64], v: [1, 8, N, 64]>;",
        false,
    );
}

/// A kernel with an error: the stub and the `compile_error!`, as the user's crate gets them.
#[test]
fn mismatch_stub() {
    snapshot(
        "mismatch_stub",
        "fn f<q: [1, 2, 3], k: [1, 4, 5], v: [1, 4, 3]>;",
        true,
    );
}

#[test]
fn padding_mask_with_weights() {
    snapshot(
        "padding_mask_weights",
        "/// A padding mask per batch entry, broadcast over heads and queries, with the weights.
         #[attn(mask = [B, 1, 1, N], return_weights)]
         pub fn padded<q: [B, 4, N, 16], k: [B, 4, N, 16], v: [B, 4, N, 16]>
         where B = 2;",
        false,
    );
}

#[test]
fn encoder_layer() {
    snapshot(
        "encoder_layer",
        "/// One self-attention layer as nn.MultiheadAttention(64, 4), over any number of tokens.
         #[attn(split_heads)]
         pub fn encoder<x: [B, N, Dm], q: [B, H, N, Dh], k: [B, H, N, Dh], v: [B, H, N, Dh], out: [B, N, Dm]>
         where B = 1, Dm = 64, H = 4, Dh = 16;",
        false,
    );
}

#[test]
fn bf16_decode_step() {
    snapshot(
        "bf16_decode",
        "/// A decode step stored in bf16, computed in f32.
         #[attn(dtype = bf16, causal(bottom_right))]
         pub fn step<q: [1, 8, 1, 64], k: [1, 8, N, 64], v: [1, 8, N, 64]>;",
        false,
    );
}

#[test]
fn f64_kernel() {
    snapshot(
        "f64_kernel",
        "/// The textbook shape in f64, with a key-padding mask.
         #[attn(dtype = f64, mask = [1, 1, 4])]
         pub fn precise<q: [1, 2, 3], k: [1, 4, 3], v: [1, 4, 3]>;",
        false,
    );
}

#[test]
fn backward_grouped_causal() {
    snapshot(
        "backward_grouped",
        "/// Training: eight query heads over two key/value heads, causal, any length.
         #[attn(backward, causal)]
         pub fn train<q: [B, 8, N, 64], k: [B, 2, N, 64], v: [B, 2, N, 64]>
         where B = 4;",
        false,
    );
}
