//! Names: two kernels of one invocation never define the same item, a kernel's name never
//! hides a type its signatures use, and a misspelt dimension or size is told its true fault.

use super::{errors, expand, position};

/// Expects one error, containing `fragment`, at occurrence `nth` of `token` in `source`.
fn rejects(source: &str, fragment: &str, token: &str, nth: usize) {
    let output = expand(source);
    let found = errors(&output);
    assert_eq!(found.len(), 1, "{source}: {found:#?}");
    assert!(found[0].message.contains(fragment), "{source}: {found:#?}");
    assert!(
        found[0].message.contains("\nhelp: "),
        "{source}: {found:#?}"
    );
    assert_eq!(
        found[0].at,
        position(source, token, nth),
        "{source}: {found:#?}"
    );
}

const SHAPES: &str = "<q: [1, 4, 3], k: [1, 4, 3], v: [1, 4, 3]>";
const LAYER: &str =
    "<x: [1, 4, 8], q: [1, 2, 4, 4], k: [1, 2, 4, 4], v: [1, 2, 4, 4], out: [1, 4, 8]>";

#[test]
fn a_layer_and_a_kernel_named_after_its_attention_clash() {
    let source = format!("fn f{LAYER}; fn f_attention{SHAPES};");
    rejects(&source, "`f_attention`", "f_attention", 0);
    let source = format!("fn f_attention_into{SHAPES}; fn f{LAYER};");
    rejects(&source, "`f_attention_into`", "f<x", 0);
}

#[test]
fn a_raw_name_is_the_same_name() {
    let source = format!("fn f{SHAPES}; fn r#f{SHAPES};");
    rejects(&source, "already declared", "r#f", 0);
    let source = format!("fn r#f{SHAPES}; fn f_into{SHAPES};");
    rejects(&source, "`_into`", "f_into", 0);
}

#[test]
fn a_kernel_is_not_named_after_a_primitive_type() {
    for name in ["f32", "bool", "usize", "f64"] {
        let source = format!("fn {name}{SHAPES};");
        rejects(&source, "primitive type", name, 0);
    }
}

#[test]
fn a_raw_dimension_name_is_told_so() {
    let source = "fn f<q: [1, r#N, 3], k: [1, 4, 3], v: [1, 4, 3]>;";
    rejects(source, "raw identifier", "r#N", 0);
}

#[test]
fn a_hexadecimal_size_too_large_is_told_so() {
    let source = "fn f<q: [1, 0xFFFFFFFFFFFFFFFFFF, 3], k: [1, 4, 3], v: [1, 4, 3]>;";
    rejects(source, "too large", "0xFFFFFFFFFFFFFFFFFF", 0);
}

/// The number of token trees in `stream`, groups counted with their contents.
fn size_of(stream: proc_macro2::TokenStream) -> usize {
    stream
        .into_iter()
        .map(|tree| match tree {
            proc_macro2::TokenTree::Group(group) => 1 + size_of(group.stream()),
            _ => 1,
        })
        .sum()
}

#[test]
fn the_stub_of_a_kernel_with_a_rank_error_is_small() {
    let axes = vec!["1"; 10_000].join(", ");
    for source in [
        format!("fn f<q: [{axes}], k: [1, 4, 3], v: [1, 4, 3]>;"),
        format!("#[attn(mask = [{axes}])] fn f<q: [1, 4, 3], k: [1, 4, 3], v: [1, 4, 3]>;"),
    ] {
        let output = expand(&source);
        assert!(!errors(&output).is_empty());
        // The errors quote nothing of the shape; the stub's signature is that of a rank-3
        // kernel: a few hundred tokens, not tens of thousands.
        assert!(size_of(output.clone()) < 2_000, "{}", size_of(output));
    }
}
