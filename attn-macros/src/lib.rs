//! The `attention!` macro of attn. Users depend on `attn-runtime`, which re-exports it.
//!
//! The macro is a pipeline of plain functions over `proc_macro2::TokenStream`, one file a
//! stage, so that a newcomer finds where parsing ends and checking begins by the file names:
//!
//! | stage | file | what it does | can it fail? |
//! |---|---|---|---|
//! | model | `ast.rs` | the user's declarations, every token and span kept | - |
//! | parse | `parse.rs` | tokens to the model, following the grammar line by line | syntax errors |
//! | check | `check.rs` | every rule of docs/DESIGN.md section 3; all violations collected | shape errors |
//! | plan | `plan.rs` | unrolled or tiled, and the tile sizes | no |
//! | emit | `emit.rs` | the specialized kernel, its `_into` form and its facts | no |
//! | fallback | `stub.rs` | on error: the error plus a signature-correct stub | no |
//!
//! `expand::attention` ties them together; the `#[proc_macro]` below only forwards to it.

mod ast;
mod check;
mod emit;
mod errors;
mod expand;
mod model;
mod parse;
mod plan;
mod stub;

#[cfg(test)]
mod tests;

/// Declares attention kernels by the shapes of q, k and v; checks the shapes at compile time
/// and generates a kernel specialized to them.
///
/// See the `attn-runtime` crate, which re-exports this macro, for the grammar, the checks and
/// examples.
#[proc_macro]
pub fn attention(input: proc_macro::TokenStream) -> proc_macro::TokenStream {
    expand::attention(input.into()).into()
}
