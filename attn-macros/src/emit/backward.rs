//! The backward pass's body (`#[attn(backward)]`): the gradients of q, k and v, by the
//! runtime's tiled backward (f32, and f16 or bf16 widened to it) or its row-by-row f64
//! path, each given the kernel's shape, options and arguments as a `scalar::Problem`, as
//! f64 kernels' forward is. The backward is compiled once, in the runtime, whatever the
//! kernel: per kernel it added 0.9 s of release build and 60 KiB of code when it was
//! specialized like the forward (docs/DESIGN.md section 8). Whatever the forward's plan,
//! the backward is the tiled one: an unrolled backward would be five products written out,
//! code that grows with the shape for no gain a training step would notice.

use super::elements::{dtype, flat, in_f32};
use super::{private, scalar};
use crate::model::{Dtype, Kernel};
use proc_macro2::{Ident, Span, TokenStream};
use quote::quote;

/// The body of `name_backward_into`, which writes `dq`, `dk` and `dv`.
pub fn body(kernel: &Kernel) -> TokenStream {
    let private = private();
    let problem = scalar::problem(kernel);
    let rank = kernel.rank();
    let (flat, flat_mut) = (flat(rank, false), flat(rank, true));
    let lse_flat = self::flat(rank - 1, false);
    // The f32 backward is the runtime's, compiled once for every kernel; f64 kernels run
    // the same steps in f64.
    let run = match dtype(kernel) {
        Dtype::F64 => quote!(#private::scalar::backward),
        Dtype::F32 | Dtype::F16 | Dtype::Bf16 => quote!(#private::backward),
    };
    let body = quote! {
        #run(
            &#problem,
            out #flat,
            lse #lse_flat,
            d_out #flat,
            dq #flat_mut,
            dk #flat_mut,
            dv #flat_mut,
        );
    };
    match dtype(kernel) {
        Dtype::F16 | Dtype::Bf16 => widened(kernel, body),
        Dtype::F32 | Dtype::F64 => body,
    }
}

/// A 16-bit kernel's backward around the f32 `body`: q, k, v, `out` and `d_out` widened to
/// f32 on the heap, the gradients computed in f32 there and rounded to the stored type.
fn widened(kernel: &Kernel, body: TokenStream) -> TokenStream {
    let [q, k, v] = &kernel.roles;
    let named = |name: &str| Ident::new(name, Span::call_site());
    let (out, d_out, dq, dk, dv) = (
        named("out"),
        named("d_out"),
        named("dq"),
        named("dk"),
        named("dv"),
    );
    let out_dims = kernel.out();
    let inputs = [
        (q, &kernel.q[..]),
        (k, &kernel.k[..]),
        (v, &kernel.v[..]),
        (&out, &out_dims[..]),
        (&d_out, &out_dims[..]),
    ];
    let outputs = [
        (&dq, &kernel.q[..]),
        (&dk, &kernel.k[..]),
        (&dv, &kernel.v[..]),
    ];
    in_f32(kernel, &inputs, &outputs, body)
}
