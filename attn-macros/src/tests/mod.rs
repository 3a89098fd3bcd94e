//! Unit tests of the macro's core, run without a compiler in the loop.

mod check;
mod limits;
mod names;
mod never_panic;
mod option_values;
mod plan;
mod reserved;
mod snapshots;

use proc_macro2::{TokenStream, TokenTree};

/// Expands `source`, which must lex.
fn expand(source: &str) -> TokenStream {
    crate::expand::attention(source.parse().expect("test input lexes"))
}

/// One reported error: its message and where it points, as (line, column) of the source.
#[derive(Debug)]
struct Reported {
    message: String,
    at: (usize, usize),
}

/// The `compile_error!`s of an expansion, in order.
fn errors(output: &TokenStream) -> Vec<Reported> {
    let trees: Vec<TokenTree> = output.clone().into_iter().collect();
    let mut found = Vec::new();
    for (i, tree) in trees.iter().enumerate() {
        let TokenTree::Ident(ident) = tree else {
            continue;
        };
        if ident != "compile_error" {
            continue;
        }
        let Some(TokenTree::Group(group)) = trees.get(i + 2) else {
            continue;
        };
        let Some(TokenTree::Literal(lit)) = group.stream().into_iter().next() else {
            continue;
        };
        let message: syn::LitStr = syn::parse_str(&lit.to_string()).expect("a string literal");
        let start = ident.span().start();
        found.push(Reported {
            message: message.value(),
            at: (start.line, start.column),
        });
    }
    found
}

/// The (line, column) where `needle` first appears in `source`, 1-based lines and 0-based
/// columns as proc-macro2 counts them.
fn position(source: &str, needle: &str, nth: usize) -> (usize, usize) {
    let mut from = 0;
    let mut offset = 0;
    for _ in 0..=nth {
        offset = from + source[from..].find(needle).expect("needle in source");
        from = offset + needle.len();
    }
    let before = &source[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |n| n + 1);
    (line, column)
}
