//! The f64 plan's body (`dtype = f64`): the runtime's row-by-row f64 path, given the shape
//! and the options.

use super::elements::{flat, size};
use super::{private, scale_value};
use crate::model::{Causal, Dim, Kernel, Size};
use proc_macro2::{Literal, Span, TokenStream};
use quote::{format_ident, quote};

/// A `dtype = f64` kernel: the runtime's row-by-row f64 path, given the shape and the
/// options.
pub fn body(kernel: &Kernel) -> TokenStream {
    let private = private();
    let rank = kernel.rank();
    let flat_mut = flat(rank, true);
    let weights = match kernel.options.return_weights {
        Some(_) => quote!(weights #flat_mut),
        None => quote!(&mut []),
    };
    let lse = match kernel.options.return_lse {
        Some(_) => {
            let lse_flat = flat(rank - 1, true);
            quote!(lse #lse_flat)
        }
        None => quote!(&mut []),
    };
    let problem = problem(kernel);
    quote! {
        #private::scalar::run(&#problem, out #flat_mut, #weights, #lse);
    }
}

/// The runtime's description of an f64 kernel's call, `scalar::Problem { .. }`: the shape,
/// the options and the inputs, flat.
pub fn problem(kernel: &Kernel) -> TokenStream {
    let private = private();
    let rank = kernel.rank();
    let [q, k, v] = &kernel.roles;
    let sized = |dim: &Dim| size(&dim.size, dim.span);
    let one = Dim {
        size: Size::Known(1),
        span: Span::call_site(),
    };
    let (batch, queries, keys) = (
        sized(&kernel.q[0]),
        sized(&kernel.q[rank - 2]),
        sized(&kernel.k[rank - 2]),
    );
    let (heads, kv_heads) = if rank == 4 {
        (sized(&kernel.q[1]), sized(&kernel.k[1]))
    } else {
        (sized(&one), sized(&one))
    };
    let (depth, value_depth) = (sized(&kernel.q[rank - 1]), sized(&kernel.v[rank - 1]));
    let scale = match scale_value(kernel) {
        Ok(value) => {
            let lit = Literal::f64_suffixed(value);
            quote!(#lit)
        }
        Err(depth) => quote!(1.0 / (#depth as f64).sqrt()),
    };
    let some_or_none = |value: Option<TokenStream>| match value {
        Some(value) => quote!(::core::option::Option::Some(#value)),
        None => quote!(::core::option::Option::None),
    };
    let causal = some_or_none(kernel.options.causal.map(|(causal, _)| {
        let bottom_right = causal == Causal::BottomRight;
        let window = match kernel.options.window {
            Some((w, _)) => {
                let w = Literal::u64_unsuffixed(w);
                quote!(#w)
            }
            None => quote!(usize::MAX),
        };
        quote!(#private::scalar::Causal { bottom_right: #bottom_right, window: #window })
    }));
    let softcap = some_or_none(kernel.options.softcap.map(|(cap, _)| {
        let cap = Literal::f64_suffixed(cap);
        quote!(#cap)
    }));
    // A mask or bias: flat, with its declared sizes `[batch, heads, queries, keys]`.
    let broadcast = |name: &str, dims: &Option<Vec<Dim>>| {
        some_or_none(dims.as_ref().map(|dims| {
            let sizes: Vec<TokenStream> = dims.iter().map(sized).collect();
            let sizes = if rank == 4 {
                quote!([#(#sizes),*])
            } else {
                let (b, i, j) = (&sizes[0], &sizes[1], &sizes[2]);
                quote!([#b, 1, #i, #j])
            };
            let name = format_ident!("{}", name);
            let flat = flat(rank, false);
            quote!(#private::scalar::Broadcast::new(#name #flat, #sizes))
        }))
    };
    let (mask, bias) = (
        broadcast("mask", &kernel.mask),
        broadcast("bias", &kernel.bias),
    );
    let valid_keys = some_or_none(
        kernel
            .options
            .valid_lengths
            .map(|_| quote!(&valid_keys[..])),
    );
    let valid_queries = some_or_none(
        kernel
            .options
            .valid_queries
            .map(|_| quote!(&valid_queries[..])),
    );
    let flat = flat(rank, false);
    quote! {
        #private::scalar::Problem {
            batch: #batch,
            heads: #heads,
            kv_heads: #kv_heads,
            queries: #queries,
            keys: #keys,
            depth: #depth,
            value_depth: #value_depth,
            scale: #scale,
            causal: #causal,
            softcap: #softcap,
            q: #q #flat,
            k: #k #flat,
            v: #v #flat,
            mask: #mask,
            bias: #bias,
            valid_keys: #valid_keys,
            valid_queries: #valid_queries,
        }
    }
}
