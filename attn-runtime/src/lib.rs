//! Scaled dot-product attention whose shapes are checked at compile time and whose kernels
//! are specialized to them.
//!
//! `out = softmax(q · kᵀ · scale) · v`, with q `[B, Nq, Dk]`, k `[B, Nk, Dk]`, v `[B, Nk, Dv]`
//! and out `[B, Nq, Dv]` (rank 3), or with a heads axis after the batch (rank 4).
//!
//! ```
//! use attn_runtime::attention;
//!
//! attention! {
//!     /// The textbook example: two queries over four tokens, depth three.
//!     pub fn seed_example<q: [B, Nq, Dk], k: [B, Nk, Dk], v: [B, Nk, Dv]>
//!     where B = 1, Nq = 2, Nk = 4, Dk = 3, Dv = 3;
//! }
//!
//! let q = [[[1.0, 0.0, 1.0], [0.0, 2.0, 0.0]]];
//! let k = [[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 1.0, 1.0]]];
//! let v = [[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 1.0, 1.0]]];
//! let out: [[[f32; 3]; 2]; 1] = seed_example(&q, &k, &v);
//! // Query 1 = [0, 2, 0] matches keys 1 and 3 best, so values 1 and 3 dominate its output.
//! assert!(out[0][1][1] > out[0][1][0]);
//! ```
//!
//! # The DSL
//!
//! ```text
//! kernel  := attr* vis 'fn' IDENT '<' ('x' ':' shape ',')? tensor ',' tensor ',' tensor
//!            (',' 'out' ':' shape)? '>' ('where' bind (',' bind)*)? ';'
//! tensor  := ('q' | 'k' | 'v') ':' shape
//! shape   := '[' dim (',' dim)* ']'
//! dim     := IDENT | INTEGER
//! bind    := IDENT '=' INTEGER
//! attr    := doc comments and ordinary attributes (passed through) | '#[attn(' option, .. ')]'
//! ```
//!
//! - A dimension is a positive integer or a name. A name bound in `where` has that size. A
//!   name tied by a rule to an axis of known size takes that size. Any other name becomes a
//!   const generic parameter, inferred at each call: one definition serves every length.
//! - Names are written like constants (`Nq`, `Dk`): they start with an uppercase letter.
//! - Each kernel `name` defines `name(q, k, v) -> out`, `name_into(q, k, v, &mut out)` for
//!   outputs too large for the stack, and a module `name` of compile-time facts
//!   (`name::info()`, and `name::INFO` when every size is known): see [`KernelInfo`].
//! - Options: `#[attn(scale = 0.125)]` replaces the default scale `1 / sqrt(Dk)`.
//!
//! ```
//! use attn_runtime::{attention, Tensor};
//!
//! attention! {
//!     /// Any number of keys: `N` is inferred from the arguments at each call.
//!     #[attn(scale = 0.125)]
//!     fn encoder<q: [1, 2, N, 64], k: [1, 2, N, 64], v: [1, 2, N, 64]>;
//! }
//!
//! let q = Tensor::<[[[[f32; 64]; 300]; 2]; 1]>::from_vec(vec![0.01; 2 * 300 * 64])?;
//! let mut out = Tensor::<[[[[f32; 64]; 300]; 2]; 1]>::zeros();
//! encoder_into(&q, &q, &q, &mut out);
//! assert!((out[0][1][299][63] - 0.01).abs() < 1e-6);
//! assert_eq!(encoder::info::<300>().shape.keys, 300);
//! # Ok::<(), attn_runtime::ShapeError>(())
//! ```
//!
//! # Layers
//!
//! A kernel that declares the embeddings `x` first is a self-attention layer: x is projected
//! to q, k and v by [`Linear`] maps in PyTorch's `[out, in]` layout, split into the declared
//! heads, attended, merged, and projected to `out` when it is declared. The attention inside
//! is the kernel `name_attention`.
//!
//! ```
//! use attn_runtime::{Embedding, Linear, Tensor, attention};
//!
//! attention! {
//!     /// nn.MultiheadAttention(8, 2) over any number of tokens.
//!     #[attn(split_heads)]
//!     fn layer<x: [1, N, 8], q: [1, 2, N, 4], k: [1, 2, N, 4], v: [1, 2, N, 4], out: [1, N, 8]>;
//! }
//!
//! let table = Embedding::<10, 8>::from_slice("wte", &[0.5; 80])?;
//! let x = table.embed(&[[1, 2, 3]]).expect("ids below 10");
//! let identity: Vec<f32> = (0..64).map(|i| if i % 9 == 0 { 1.0 } else { 0.0 }).collect();
//! let proj = Linear::<8, 8>::from_slices("proj", &identity, None)?;
//! let out = layer(&x, &proj, &proj, &proj, &proj);
//! assert_eq!(out[0][2], [0.5; 8]);
//! # Ok::<(), attn_runtime::WeightError>(())
//! ```
//!
//! # What is checked at compile time
//!
//! q, k and v are all rank 3 or all rank 4; batch sizes and head counts agree; q and k have
//! the same depth; k and v have the same number of keys; two different unbound names are
//! never put on axes that must agree; each name is bound once and every binding is used;
//! every size is a positive integer and every tensor fits in memory; q, k and v each appear
//! once, in that order; options are known. Every violation is reported, each at its token:
//!
//! ```compile_fail
//! use attn_runtime::attention;
//! attention! {
//!     fn mismatched<q: [1, 2, 3], k: [1, 4, 5], v: [1, 4, 3]>;
//! }
//! ```
//!
//! A call with an argument of the wrong shape is a type error at that argument, naming both
//! array types:
//!
//! ```compile_fail
//! use attn_runtime::attention;
//! attention! { fn small<q: [1, 2, 3], k: [1, 4, 3], v: [1, 4, 3]>; }
//! let wrong = [[[0.0f32; 3]; 5]; 1];
//! let q = [[[0.0f32; 3]; 2]; 1];
//! small(&q, &wrong, &wrong);
//! ```
//!
//! # Numerics
//!
//! Scores, the softmax and the products are computed in f32; the running max of each row is
//! subtracted before `exp`, so large finite scores never overflow. A NaN input gives NaN in
//! every output row it reaches; a score of +inf gives NaN in its row. The result does not
//! depend on the plan beyond rounding, and is deterministic.

// Generated code names this crate by its absolute path; this makes that path resolve inside
// the crate too, for its own tests.
extern crate self as attn_runtime;

mod cache;
mod info;
mod padded;
mod project;
mod scalar;
pub mod simd;
mod tensor;
#[cfg(feature = "threads")]
pub mod threads;
mod tiled;
mod valid;
mod view;
mod weights;

#[doc(hidden)]
pub mod __private;

/// Declares attention kernels by the shapes of q, k and v, checks the shapes at compile time
/// and generates a kernel specialized to them: see the [crate documentation](crate) for the
/// grammar, the checks and the generated items.
///
/// ```
/// use attn_runtime::attention;
///
/// attention! {
///     /// One query over any number of keys.
///     pub fn decode<q: [1, 1, 8], k: [1, N, 8], v: [1, N, 4]>;
/// }
///
/// let q = [[[0.0f32; 8]; 1]; 1];
/// let k = [[[1.0f32; 8]; 5]; 1];
/// let v = [[[2.0f32; 4]; 5]; 1];
/// // Equal scores: the output is the mean of the values.
/// assert_eq!(decode(&q, &k, &v), [[[2.0; 4]; 1]; 1]);
/// ```
pub use attn_macros::attention;
pub use cache::{CacheError, KvCache};
/// The `half` crate, whose `f16` and `bf16` are the element types of `dtype = f16` and
/// `dtype = bf16` kernels: re-exported so that users need no dependency of their own.
pub use half;
pub use info::{KernelInfo, KernelShape, Plan};
pub use padded::{PaddedOutput, ZeroPadded};
pub use tensor::{Array, ShapeError, Tensor};
pub use valid::{Counted, ValidLengthError};
pub use view::{View, view, view_mut};
#[cfg(feature = "safetensors")]
pub use weights::safetensors;
pub use weights::{Embedding, Linear, TokenError, WeightError};
