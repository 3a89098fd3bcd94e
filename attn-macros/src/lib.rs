//! The `attention!` macro of attn. Users depend on `attn-runtime`, which re-exports it.
//!
//! The macro is a pipeline of plain functions over `proc_macro2::TokenStream`, one file a
//! stage, so that a newcomer finds where parsing ends and checking begins by the file names:
//!
//! | stage | file | what it does | can it fail? |
//! |---|---|---|---|
//! | input model | `ast.rs` | the user's declarations and options as written, every token and span kept | - |
//! | parse | `parse.rs` | tokens to the input model, following the grammar line by line | syntax errors |
//! | check | `check/` | every rule of docs/DESIGN.md section 3 and the options; all violations collected | shape errors |
//! | checked model | `model.rs` | `Kernel`: dims, sizes, options, layer; valid by construction | - |
//! | plan | `plan.rs` | unrolled (with its sizes), tiled (with its blocks) or f64 rows | no |
//! | emit | `emit/` | the specialized kernel, its `_into` form and its facts, one file a concern | no |
//! | fallback | `stub.rs` | on error: the errors plus a stub with the kernel's own signature | no |
//!
//! The stages share the two models, and `check` sizes a kernel's scratch by the plan's
//! `Blocks`; no module imports one that imports it back. The rules both crates apply (block
//! sizes, which keys a row sees) come from `attn-rules`.
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
