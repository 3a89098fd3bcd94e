//! The typed model of an `attention!` invocation, exactly as the user wrote it.
//!
//! Nothing here is validated yet: sizes may be negative or fractional, tensors may be missing
//! or repeated. Every node keeps the user's tokens, so that `check` can put each error on the
//! token that caused it and `emit` can give rustc's own errors the user's spans.

use proc_macro2::Group;
use proc_macro2::Span;
use syn::{Attribute, Ident, LitInt, Visibility, token};

/// One kernel declaration: `attrs vis fn name<q: [..], k: [..], v: [..]> where ..;`.
pub struct KernelDecl {
    /// Doc comments and ordinary attributes, in source order: passed through.
    pub attrs: Vec<Attribute>,
    /// The options of the `#[attn(..)]` attributes, in source order, as written.
    pub options: Vec<OptionDecl>,
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
#[derive(Clone)]
pub struct TensorDecl {
    /// `q`, `k` or `v` when well formed; anything else is reported by the checker.
    pub role: Ident,
    pub bracket: token::Bracket,
    pub dims: Vec<DimToken>,
}

/// One dimension of a tensor: a name or a size.
#[derive(Clone)]
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
#[derive(Clone)]
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

/// One option of an `#[attn(..)]` list: `name`, `name(args)` or `name = value`.
#[derive(Clone)]
pub struct OptionDecl {
    pub name: Ident,
    pub value: OptionValue,
}

/// What follows an option's name, as written; `check` decides whether the option takes it.
#[derive(Clone)]
pub enum OptionValue {
    /// Nothing: a flag such as `valid_lengths`.
    None,
    /// `= 0.125`, `= -3` or `= 4u8`: a numeric literal (its sign included).
    Number(NumberLiteral),
    /// `(top_left)`: arguments in parentheses.
    Args(Group),
    /// `= [B, 1, Nq, Nk]`: the declared shape of a tensor argument.
    Shape(TensorDecl),
    /// `= f16`: a word, such as an element type.
    Word(Ident),
    /// `= true`, `= "x"`, `= (..)`: a value no option takes, kept to be reported.
    Other(Span),
}

/// A number as written in an option: its value, its text (sign included, suffix not),
/// whether it was an integer literal, its suffix (`u8` in `4u8`, empty if none) and its span.
#[derive(Clone)]
pub struct NumberLiteral {
    pub value: f64,
    pub text: String,
    pub integer: bool,
    pub suffix: String,
    pub span: Span,
}
