//! The typed model of an `attention!` invocation, exactly as the user wrote it.
//!
//! Nothing here is validated yet: sizes may be negative or fractional, tensors may be missing
//! or repeated. Every node keeps the user's tokens, so that `check.rs` can put each error on
//! the token that caused it and `emit.rs` can give rustc's own errors the user's spans.

use proc_macro2::Span;
use syn::{Attribute, Ident, LitInt, Visibility, token};

/// One kernel declaration: `attrs vis fn name<q: [..], k: [..], v: [..]> where ..;`.
pub struct KernelDecl {
    /// Doc comments, ordinary attributes and `#[attn(..)]` options, in source order.
    pub attrs: Vec<Attribute>,
    pub vis: Visibility,
    pub name: Ident,
    /// The tensors between `<` and `>`, in the order written (ideally q, k, v).
    pub tensors: Vec<TensorDecl>,
    /// The span of the closing `>`, where a missing tensor is reported.
    pub close_angle: Span,
    /// The bindings of the `where` clause; empty when there is none.
    pub bindings: Vec<Binding>,
}

/// `role: [dim, dim, ..]`, such as `q: [B, Nq, Dk]`.
pub struct TensorDecl {
    /// `q`, `k` or `v` when well formed; anything else is reported by the checker.
    pub role: Ident,
    pub bracket: token::Bracket,
    pub dims: Vec<DimToken>,
}

/// One dimension of a tensor: a name or a size.
pub enum DimToken {
    /// `Nq`: bound in the `where` clause, tied to another axis, or a const generic parameter.
    Name(Ident),
    /// `64`, or something that is not a valid size such as `-4` or `3.5`.
    Size(SizeToken),
}

/// `Name = size` in the `where` clause.
pub struct Binding {
    pub name: Ident,
    pub value: SizeToken,
}

/// A size as written: an integer literal, or a token the checker will reject with a reason.
pub enum SizeToken {
    /// `64` or `64usize`: still to be checked for zero, overflow and suffix.
    Int(LitInt),
    /// A literal that is no integer, a negative number, `_`: kept only to report it.
    Invalid { span: Span, text: String },
}

impl SizeToken {
    pub fn span(&self) -> Span {
        match self {
            SizeToken::Int(lit) => lit.span(),
            SizeToken::Invalid { span, .. } => *span,
        }
    }
}
