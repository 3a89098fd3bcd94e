//! The names a tiled body declares beside the user's const generics are exactly the
//! reserved names, which `check` refuses as dimension names: a new item in the generated
//! code cannot clash with a user's name unnoticed, and the list holds nothing stale.

use super::{errors, expand};
use crate::model::RESERVED_NAMES;
use std::collections::BTreeSet;

/// The names of the items declared inside the generated functions of `source`.
fn declared_in_bodies(source: &str) -> BTreeSet<String> {
    let output = expand(source);
    assert!(errors(&output).is_empty(), "{:?}", errors(&output));
    let file: syn::File = syn::parse2(output).expect("the expansion is valid Rust");
    let mut names = BTreeSet::new();
    for item in &file.items {
        let syn::Item::Fn(function) = item else {
            continue;
        };
        for statement in &function.block.stmts {
            let name = match statement {
                syn::Stmt::Item(syn::Item::Const(item)) => &item.ident,
                syn::Stmt::Item(syn::Item::Struct(item)) => &item.ident,
                syn::Stmt::Item(syn::Item::Enum(item)) => &item.ident,
                syn::Stmt::Item(syn::Item::Fn(item)) => &item.sig.ident,
                syn::Stmt::Item(syn::Item::Static(item)) => &item.ident,
                syn::Stmt::Item(syn::Item::Type(item)) => &item.ident,
                _ => continue,
            };
            names.insert(name.to_string());
        }
    }
    names
}

#[test]
fn tiled_bodies_declare_exactly_the_reserved_names() {
    let mut declared = BTreeSet::new();
    for source in [
        "fn f<q: [1, N, 64], k: [1, N, 64], v: [1, N, 64]>;",
        "#[attn(causal, window = 8, softcap = 30.0, return_weights, return_lse, valid_lengths)] \
         fn f<q: [B, 4, N, 16], k: [B, 2, N, 16], v: [B, 2, N, 8]>;",
        "#[attn(mask = [B, 1, 1, N], bias = [1, H, N, N])] \
         fn f<q: [B, H, N, D], k: [B, H, N, D], v: [B, H, N, E]>;",
        "fn f<q: [1, 1, 64], k: [1, N, 64], v: [1, N, 64]>;",
        "fn f<q: [1, N, 64], k: [1, 128, 64], v: [1, 128, 64]>;",
    ] {
        declared.extend(declared_in_bodies(source));
    }
    let reserved: BTreeSet<String> = RESERVED_NAMES.iter().map(|n| n.to_string()).collect();
    assert_eq!(declared, reserved);
}

#[test]
fn a_reserved_name_is_refused_as_a_dimension() {
    for name in RESERVED_NAMES {
        let output = expand(&format!(
            "fn f<q: [1, {name}, 8], k: [1, {name}, 8], v: [1, {name}, 8]>;"
        ));
        let errors = errors(&output);
        assert!(
            errors.iter().any(|e| e.message.contains(name)),
            "{name}: {errors:?}"
        );
    }
}
