//! The backward pass's body (`#[attn(backward)]`): the gradients of q, k and v, by the
//! runtime's tiled backward over the kernel's problems (f32, and f16 or bf16 widened to it)
//! or its row-by-row f64 path. Whatever the forward's plan, the backward is the tiled loop
//! nest: an unrolled backward would be five products written out, code that grows with the
//! shape for no gain a training step would notice.

use super::elements::{array_type, dtype, flat};
use super::tiled::{ProblemsItems, problems};
use super::{private, scalar};
use crate::model::{Dtype, Kernel, Size};
use crate::plan::Blocks;
use proc_macro2::{Literal, TokenStream};
use quote::quote;

/// The body of `name_backward_into`, which writes `dq`, `dk` and `dv`.
pub fn body(kernel: &Kernel) -> TokenStream {
    match dtype(kernel) {
        Dtype::F32 => tiled(kernel),
        Dtype::F16 | Dtype::Bf16 => widened(kernel, tiled(kernel)),
        Dtype::F64 => {
            let private = private();
            let problem = scalar::problem(kernel);
            let rank = kernel.rank();
            let (flat, flat_mut) = (flat(rank, false), flat(rank, true));
            let lse_flat = self::flat(rank - 1, false);
            quote! {
                #private::scalar::backward(
                    &#problem,
                    out #flat,
                    lse #lse_flat,
                    d_out #flat,
                    dq #flat_mut,
                    dk #flat_mut,
                    dv #flat_mut,
                );
            }
        }
    }
}

/// The tiled backward over the kernel's problems, q, k and v (and `out`, `d_out`) in f32.
fn tiled(kernel: &Kernel) -> TokenStream {
    let private = private();
    let ProblemsItems {
        items,
        constructor,
        depth,
        value_depth,
        keys,
    } = problems(kernel, quote!(f32));
    let known = |size: &Size| match size {
        Size::Known(n) => usize::try_from(*n).ok(),
        Size::Generic(_) => None,
    };
    let deepest = known(kernel.depth())
        .zip(known(kernel.value_depth()))
        .map(|(d, dv)| d.max(dv));
    let blocks = Blocks::of(known(kernel.queries()), known(kernel.keys()), deepest);
    let key_block = Literal::usize_unsuffixed(blocks.key_block);
    let rank = kernel.rank();
    let (rows, rows_mut) = (flat(rank - 1, false), flat(rank - 1, true));
    quote! {
        #items
        /// Keys per block.
        const KEY_BLOCK: usize = #key_block;
        #private::backward(
            &#private::Backward::<_, #depth, #value_depth, #keys, { KEY_BLOCK }>(#constructor),
            #private::Gradients {
                out: out #rows,
                lse: lse #rows,
                d_out: d_out #rows,
                dq: dq #rows_mut,
                dk: dk #rows_mut,
                dv: dv #rows_mut,
            },
        );
    }
}

/// A 16-bit kernel's backward around the f32 `body`: q, k, v, `out` and `d_out` widened to
/// f32 on the heap, the gradients computed in f32 there and rounded to the stored type.
fn widened(kernel: &Kernel, body: TokenStream) -> TokenStream {
    let private = private();
    let rank = kernel.rank();
    let [q, k, v] = &kernel.roles;
    let (flat, flat_mut) = (flat(rank, false), flat(rank, true));
    let (q_ty, k_ty, v_ty, out_ty) = (
        array_type(&kernel.q),
        array_type(&kernel.k),
        array_type(&kernel.v),
        array_type(&kernel.out()),
    );
    quote! {
        // f16 and bf16 are stored; the backward computes in f32.
        let mut q_wide = ::attn_runtime::Tensor::<#q_ty>::zeros();
        let mut k_wide = ::attn_runtime::Tensor::<#k_ty>::zeros();
        let mut v_wide = ::attn_runtime::Tensor::<#v_ty>::zeros();
        let mut out_wide = ::attn_runtime::Tensor::<#out_ty>::zeros();
        let mut d_out_wide = ::attn_runtime::Tensor::<#out_ty>::zeros();
        #private::widen(#q #flat, q_wide.as_flat_mut());
        #private::widen(#k #flat, k_wide.as_flat_mut());
        #private::widen(#v #flat, v_wide.as_flat_mut());
        #private::widen(out #flat, out_wide.as_flat_mut());
        #private::widen(d_out #flat, d_out_wide.as_flat_mut());
        let mut dq_wide = ::attn_runtime::Tensor::<#q_ty>::zeros();
        let mut dk_wide = ::attn_runtime::Tensor::<#k_ty>::zeros();
        let mut dv_wide = ::attn_runtime::Tensor::<#v_ty>::zeros();
        {
            let (#q, #k, #v) = (&*q_wide, &*k_wide, &*v_wide);
            let (out, d_out) = (&*out_wide, &*d_out_wide);
            let (dq, dk, dv) = (&mut *dq_wide, &mut *dk_wide, &mut *dv_wide);
            #body
        }
        #private::narrow(dq_wide.as_flat(), dq #flat_mut);
        #private::narrow(dk_wide.as_flat(), dk #flat_mut);
        #private::narrow(dv_wide.as_flat(), dv #flat_mut);
    }
}
