//! Element types and the nested array types of shapes: `[[[f32; Dk]; Nq]; B]`, their zeros,
//! and the widening of 16-bit kernels, which store f16 or bf16 and compute in f32.

use super::private;
use crate::model::{Dim, Dtype, Kernel, Size};
use proc_macro2::{Ident, Literal, Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};

/// The Rust type q, k, v and the output are stored in, and its zero.
pub fn stored(dtype: Dtype) -> (TokenStream, TokenStream) {
    match dtype {
        Dtype::F32 => (quote!(f32), quote!(0.0f32)),
        Dtype::F64 => (quote!(f64), quote!(0.0f64)),
        Dtype::F16 => (
            quote!(::attn_runtime::half::f16),
            quote!(::attn_runtime::half::f16::ZERO),
        ),
        Dtype::Bf16 => (
            quote!(::attn_runtime::half::bf16),
            quote!(::attn_runtime::half::bf16::ZERO),
        ),
    }
}

/// The Rust type a kernel computes in, that of its bias, weights and log-sum-exp, and its
/// zero: f64 for f64 kernels, f32 for all others.
pub fn computed(dtype: Dtype) -> (TokenStream, TokenStream) {
    match dtype {
        Dtype::F64 => stored(Dtype::F64),
        Dtype::F32 | Dtype::F16 | Dtype::Bf16 => stored(Dtype::F32),
    }
}

/// A size as an expression: a `usize` literal or the const generic's name.
pub fn size(size: &Size, span: Span) -> TokenStream {
    match size {
        Size::Known(n) => {
            let mut lit = Literal::u64_unsuffixed(*n);
            lit.set_span(span);
            quote!(#lit)
        }
        Size::Generic(name) => quote_spanned!(span=> #name),
    }
}

/// `[[[f32; Dk]; Nq]; B]`: the row-major nested array of a shape.
/// A size as a const generic argument: a literal, or the const generic's name in braces, so
/// that a type or module of the same name (a kernel named `N` defines `mod N`) cannot be
/// taken for it.
pub fn size_argument(size: &Size, span: Span) -> TokenStream {
    match size {
        Size::Known(_) => self::size(size, span),
        Size::Generic(name) => quote_spanned!(span=> { #name }),
    }
}

pub fn array_type(dims: &[Dim]) -> TokenStream {
    array_of(dims, quote!(f32))
}

/// The row-major nested array of a shape, of `element`s.
pub fn array_of(dims: &[Dim], element: TokenStream) -> TokenStream {
    dims.iter().rev().fold(element, |inner, dim| {
        let n = size(&dim.size, dim.span);
        quote_spanned!(dim.span=> [#inner; #n])
    })
}

/// `[[[0.0f32; Dv]; Nq]; B]`: a zeroed array of a shape.
pub fn zeros(dims: &[Dim]) -> TokenStream {
    zeros_of(dims, quote!(0.0f32))
}

/// A zeroed array of a shape, of `zero`s.
pub fn zeros_of(dims: &[Dim], zero: TokenStream) -> TokenStream {
    dims.iter().rev().fold(zero, |inner, dim| {
        let n = size(&dim.size, dim.span);
        quote!([#inner; #n])
    })
}

/// The kernel's element type: its `dtype`, f32 by default.
pub fn dtype(kernel: &Kernel) -> Dtype {
    kernel.options.dtype.map_or(Dtype::F32, |(dtype, _)| dtype)
}

/// `.as_flattened()` enough times to make a nested array of `rank` axes one slice.
pub fn flat(rank: usize, mutable: bool) -> TokenStream {
    let step = if mutable {
        quote!(.as_flattened_mut())
    } else {
        quote!(.as_flattened())
    };
    (1..rank).map(|_| step.clone()).collect()
}

/// A 16-bit kernel's body around the f32 `body` (which writes `out` as f32): its output
/// computed in f32 on the heap and rounded to the stored type at the end; with
/// `widen_inputs`, q, k and v widened to f32 on the heap first (the unrolled plan's small
/// kernels; the tiled plan reads them as stored).
pub fn widened(kernel: &Kernel, body: TokenStream, widen_inputs: bool) -> TokenStream {
    let [q, k, v] = &kernel.roles;
    let inputs = if widen_inputs {
        vec![(q, &kernel.q[..]), (k, &kernel.k[..]), (v, &kernel.v[..])]
    } else {
        Vec::new()
    };
    let (out, out_dims) = (Ident::new("out", Span::call_site()), kernel.out());
    // Valid query counts come with the tiled plan, which reads q, k and v as stored (no input
    // to widen). Rows past the counts: none computed in f32 nor rounded, their zeros written
    // in the stored type, and only where a `ZeroPadded` output's record says a row may not
    // be 0. The f32 copy's padding is never read, so it is not zeroed either.
    if kernel.options.valid_queries.is_some() && inputs.is_empty() {
        let private = private();
        let rank = kernel.rank();
        let (rows, width) = (&out_dims[rank - 2], &out_dims[rank - 1]);
        let (rows, width) = (size(&rows.size, rows.span), size(&width.size, width.span));
        let (ty, flat, flat_mut) = (array_type(&out_dims), flat(rank, false), flat(rank, true));
        return quote! {
            let mut out_wide = #private::scratch_tensor::<#ty>();
            {
                let out = &mut *out_wide;
                #body
            }
            #private::narrow_rows(
                out_wide #flat, out #flat_mut, #rows, #width,
                &valid_queries[..], padding_written.as_deref(),
            );
        };
    }
    in_f32(kernel, &inputs, &[(&out, &out_dims)], body)
}

/// `body`, which computes in f32, around arguments stored in 16 bits: each of `inputs` (its
/// name and shape) widened into an f32 copy on the heap and its name bound to the copy,
/// each of `outputs` computed into an f32 copy and rounded to the stored type at the end.
pub fn in_f32(
    kernel: &Kernel,
    inputs: &[(&Ident, &[Dim])],
    outputs: &[(&Ident, &[Dim])],
    body: TokenStream,
) -> TokenStream {
    let private = private();
    let rank = kernel.rank();
    let (flat, flat_mut) = (flat(rank, false), flat(rank, true));
    let wide = |name: &Ident| format_ident!("{}_wide", name);
    let copy = |(name, dims): &(&Ident, &[Dim])| {
        let (wide, ty) = (wide(name), array_type(dims));
        quote!(let mut #wide = ::attn_runtime::Tensor::<#ty>::zeros();)
    };
    let (input_copies, output_copies): (Vec<_>, Vec<_>) = (
        inputs.iter().map(copy).collect(),
        outputs.iter().map(copy).collect(),
    );
    let (input_names, output_names): (Vec<_>, Vec<_>) = (
        inputs.iter().map(|(name, _)| *name).collect(),
        outputs.iter().map(|(name, _)| *name).collect(),
    );
    let (input_wides, output_wides): (Vec<_>, Vec<_>) = (
        input_names.iter().map(|name| wide(name)).collect(),
        output_names.iter().map(|name| wide(name)).collect(),
    );
    quote! {
        #(
            #input_copies
            #private::widen(#input_names #flat, #input_wides.as_flat_mut());
        )*
        #(#output_copies)*
        {
            #(let #input_names = &*#input_wides;)*
            #(let #output_names = &mut *#output_wides;)*
            #body
        }
        #(#private::narrow(#output_wides.as_flat(), #output_names #flat_mut);)*
    }
}
