//! The checked model of a kernel: what `check` makes of the user's declaration once every
//! rule holds, and what `plan`, `emit` and `stub` read. Nothing here refers back to the
//! stages that read it.
//!
//! A [`Kernel`] is valid by construction: its tensors have one rank, their shared axes agree,
//! its options are well formed. Each dimension keeps the span of the user's token, so that
//! rustc's own notes on a generated signature point at the declaration.

use crate::ast::TensorDecl;
use proc_macro2::Span;

/// Names the generated code of a tiled kernel declares in the scope of the user's const
/// generic parameters, which a dimension therefore cannot be named (see `emit/tiled.rs`).
/// The other plans declare names only in kernels with no const generics, where nothing can
/// clash.
pub const RESERVED_NAMES: &[&str] = &[
    "Attention",
    "DEPTH",
    "VALUE_DEPTH",
    "KEYS",
    "QUERY_BLOCK",
    "KEY_BLOCK",
    "PACKED_VALUE_ROWS",
];
use syn::{Attribute, Ident, Visibility};

/// A checked kernel: three tensors of one rank whose shared axes agree.
pub struct Kernel {
    /// Doc comments and ordinary attributes, passed through to the generated functions.
    pub attrs: Vec<Attribute>,
    pub vis: Visibility,
    pub name: Ident,
    pub options: Options,
    /// q's dimensions, `[batch, (heads,) queries, depth]`, each with the user's span.
    pub q: Vec<Dim>,
    /// k's dimensions, `[batch, (heads,) keys, depth]`.
    pub k: Vec<Dim>,
    /// v's dimensions, `[batch, (heads,) keys, value depth]`.
    pub v: Vec<Dim>,
    /// The names left unbound, in order of first appearance: the const generic parameters.
    pub generics: Vec<Ident>,
    /// The `mask = [..]` option's shape `[batch, (heads,) queries, keys]`: each axis the
    /// kernel's size or 1 (broadcast).
    pub mask: Option<Vec<Dim>>,
    /// The `bias = [..]` option's shape, as the mask's.
    pub bias: Option<Vec<Dim>>,
    /// The layer form's embeddings and output projection, when the kernel declares `x`.
    pub layer: Option<Layer>,
    /// The user's `q`, `k` and `v` tokens: the generated parameters carry their spans, so
    /// that rustc's note on a wrongly shaped argument shows the tensor's declaration.
    pub roles: [Ident; 3],
}

/// The layer form: `x` `[batch, tokens, model width]` is projected to q, k and v (split into
/// heads), and the merged heads go through an output projection to `out` when it is declared.
/// Every model size (the width, the heads, the depths) is known.
#[derive(Clone)]
pub struct Layer {
    /// x's dimensions, `[batch, tokens, model width]`.
    pub x: Vec<Dim>,
    /// out's dimensions, `[batch, tokens, output width]`, when there is an output projection.
    pub out: Option<Vec<Dim>>,
    /// The user's `x` token.
    pub x_role: Ident,
    /// The output features of the `query`, `key` and `value` projections: each heads times
    /// depth, `[Hq·Dk, Hkv·Dk, Hkv·Dv]`, with the span of the heads axis they come from.
    pub features: [Dim; 3],
    /// The width of the merged heads, `Hq·Dv`: the input of the output projection.
    pub merged: Size,
}

/// The size of one axis after checking.
#[derive(Clone)]
pub enum Size {
    Known(u64),
    /// An unbound name: a const generic parameter of the generated function.
    Generic(Ident),
}

/// One dimension of a checked tensor: its size and the span of the user's token.
#[derive(Clone)]
pub struct Dim {
    pub size: Size,
    pub span: Span,
}

impl Kernel {
    /// 3 for `[batch, sequence, depth]`, 4 for `[batch, heads, sequence, depth]`.
    pub fn rank(&self) -> usize {
        self.q.len()
    }
    pub fn batch(&self) -> &Size {
        &self.q[0].size
    }
    /// The query heads of a rank-4 kernel.
    pub fn heads(&self) -> Option<&Size> {
        (self.rank() == 4).then(|| &self.q[1].size)
    }
    /// The key/value heads of a rank-4 kernel: a divisor of the query heads.
    pub fn kv_heads(&self) -> Option<&Size> {
        (self.rank() == 4).then(|| &self.k[1].size)
    }
    pub fn queries(&self) -> &Size {
        &self.q[self.rank() - 2].size
    }
    pub fn keys(&self) -> &Size {
        &self.k[self.rank() - 2].size
    }
    pub fn depth(&self) -> &Size {
        &self.q[self.rank() - 1].size
    }
    pub fn value_depth(&self) -> &Size {
        &self.v[self.rank() - 1].size
    }
    /// The attention weights' dimensions, `[batch, (heads,) queries, keys]`.
    pub fn weights(&self) -> Vec<Dim> {
        let mut weights = self.q[..self.rank() - 1].to_vec();
        weights.push(self.k[self.rank() - 2].clone());
        weights
    }
    /// The output's dimensions, `[batch, (heads,) queries, value depth]`, with the spans of
    /// the q and v tokens they come from.
    pub fn out(&self) -> Vec<Dim> {
        let mut out = self.q[..self.rank() - 1].to_vec();
        out.push(self.v[self.rank() - 1].clone());
        out
    }
}

/// The options of one kernel, each with the span of the token that set it.
#[derive(Default)]
pub struct Options {
    /// The factor applied to every score; `None` means `1 / sqrt(depth)`.
    pub scale: Option<(f64, Span)>,
    /// A causal mask, and the span of the `causal` token.
    pub causal: Option<(Causal, Span)>,
    /// A sliding window of this many keys (with `causal`), and the span of `window`.
    pub window: Option<(u64, Span)>,
    /// `c` of a soft cap: each score `s` becomes `c · tanh(s / c)`.
    pub softcap: Option<(f64, Span)>,
    /// A boolean keep-mask argument (true = attend), declared with its shape `[.., Nq, Nk]`.
    pub mask: Option<TensorDecl>,
    /// An additive bias argument, added to the scores, declared with its shape.
    pub bias: Option<TensorDecl>,
    /// Each batch entry's number of valid keys is an argument (padding), and its span.
    pub valid_lengths: Option<Span>,
    /// Each batch entry's number of valid query rows is an argument, and the option's span.
    pub valid_queries: Option<Span>,
    /// The attention weights are returned beside the output, and the option's span.
    pub return_weights: Option<Span>,
    /// The element type of q, k, v and the output, and the span of its token.
    pub dtype: Option<(Dtype, Span)>,
    /// A layer's model width is its heads times their depth (as `nn.MultiheadAttention`).
    pub split_heads: Option<Span>,
    /// The log-sum-exp of each query row is returned beside the output, and its span.
    pub return_lse: Option<Span>,
    /// The kernel has a backward pass (`name_backward`), and the option's span; its forward
    /// returns the log-sum-exp, as with `return_lse`.
    pub backward: Option<Span>,
}

/// How a causal mask lines the queries up with the keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Causal {
    /// `causal`: as many queries as keys, query `i` sees keys `0..=i`.
    Square,
    /// `causal(top_left)`: query `i` sees keys `0..=i`, as PyTorch's `is_causal`.
    TopLeft,
    /// `causal(bottom_right)`: the queries are the last `Nq` positions, query `i` sees keys
    /// `0..=i + Nk - Nq`, as FlashAttention and a decode step over a cache.
    BottomRight,
}

/// The element type of a kernel's tensors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Dtype {
    /// f32, computed in f32: the default.
    #[default]
    F32,
    /// f64, computed in f64.
    F64,
    /// IEEE half precision, stored; computed in f32.
    F16,
    /// bfloat16, stored; computed in f32.
    Bf16,
}

impl Dtype {
    const ALL: [Dtype; 4] = [Dtype::F32, Dtype::F64, Dtype::F16, Dtype::Bf16];

    /// As the user writes it.
    pub fn name(self) -> &'static str {
        match self {
            Dtype::F32 => "f32",
            Dtype::F64 => "f64",
            Dtype::F16 => "f16",
            Dtype::Bf16 => "bf16",
        }
    }

    /// The element type named `name`, as the user writes it.
    pub fn named(name: &str) -> Option<Dtype> {
        Dtype::ALL.into_iter().find(|dtype| dtype.name() == name)
    }

    /// Bytes of one element.
    pub fn bytes(self) -> u64 {
        match self {
            Dtype::F32 => 4,
            Dtype::F64 => 8,
            Dtype::F16 | Dtype::Bf16 => 2,
        }
    }
}
