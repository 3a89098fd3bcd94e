//! The unrolled plan's body: straight-line code that reads like the textbook formula, and
//! its in-register fast path for problems that fit in a few vector registers.

use super::elements::{dtype, flat};
use super::{private, scale_value, softcap_literal};
use crate::model::{Causal, Dtype, Kernel};
use crate::plan::UnrolledSizes;
use proc_macro2::{Ident, Literal, Span, TokenStream};
use quote::{format_ident, quote};

/// Straight-line code: for each batch entry, head and query, every score, weight and
/// output value written out, so that a reader of `cargo expand` sees the formula itself.
pub fn body(kernel: &Kernel, sizes: UnrolledSizes) -> TokenStream {
    let private = private();
    let scale = scale(kernel);
    let softcap = softcap_literal(kernel);
    let UnrolledSizes {
        batch,
        heads,
        kv_heads,
        queries,
        keys,
        depth,
        value_depth,
    } = sizes;
    let mut blocks = Vec::new();
    for b in 0..batch {
        for h in 0..heads {
            for i in 0..queries {
                let label = match kernel.heads() {
                    Some(_) => format!("'batch_{b}_head_{h}_query_{i}"),
                    None => format!("'batch_{b}_query_{i}"),
                };
                let label = syn::Lifetime::new(&label, Span::call_site());
                let (bl, hl, il) = (
                    Literal::usize_unsuffixed(b),
                    Literal::usize_unsuffixed(h),
                    Literal::usize_unsuffixed(i),
                );
                let at = batch_head_index(kernel, &quote!(#bl), &quote!(#hl));
                // Grouped-query attention: query head h reads key/value head h / (Hq / Hkv).
                let kv_head = Literal::usize_unsuffixed(h / (heads / kv_heads));
                let kv_at = batch_head_index(kernel, &quote!(#bl), &quote!(#kv_head));
                // A causal mask is a bound: the row's scores stop at the last key it sees.
                let seen = match kernel.options.causal {
                    None => keys,
                    Some((causal, _)) => {
                        attn_rules::visible_keys(i, queries, keys, causal == Causal::BottomRight)
                    }
                };
                // A sliding window starts the row's keys `window` before its last.
                let from = kernel.options.window.map_or(0, |(w, _)| {
                    seen.saturating_sub(usize::try_from(w).unwrap_or(usize::MAX))
                });
                let score: Vec<Ident> =
                    (from..seen).map(|j| format_ident!("score_{}", j)).collect();
                let weight: Vec<Ident> = (from..seen)
                    .map(|j| format_ident!("weight_{}", j))
                    .collect();
                let dots = (from..seen).map(|j| {
                    let j = Literal::usize_unsuffixed(j);
                    let terms = (0..depth).map(|d| {
                        let d = Literal::usize_unsuffixed(d);
                        quote!(q[#d] * k[#j][#d])
                    });
                    match &softcap {
                        Some(cap) => quote!(#private::softcap((#(#terms)+*) * scale, #cap)),
                        None => quote!((#(#terms)+*) * scale),
                    }
                });
                let outputs = (0..value_depth).map(|e| {
                    let e = Literal::usize_unsuffixed(e);
                    let terms = (from..seen).map(|j| {
                        let w = &weight[j - from];
                        let j = Literal::usize_unsuffixed(j);
                        quote!(#w * v[#j][#e])
                    });
                    quote!(out[#e] = (#(#terms)+*) * inv_sum;)
                });
                let lse_at = kernel.options.return_lse.map(|_| quote!(lse #at[#il]));
                // The row's weights: 0 for the keys it does not see.
                let weights_at = kernel.options.return_weights.map(|_| {
                    let all_keys = Literal::usize_unsuffixed(keys);
                    quote!(weights #at[#il] = [0.0f32; #all_keys];)
                });
                if seen == from {
                    // The mask hides every key from this row: its output is 0.
                    let value_depth = Literal::usize_unsuffixed(value_depth);
                    let no_lse = lse_at.map(|lse| quote!(#lse = f32::NEG_INFINITY;));
                    blocks.push(quote! {
                        #label: {
                            out #at[#il] = [0.0f32; #value_depth];
                            #weights_at
                            #no_lse
                        }
                    });
                    continue;
                }
                let row_lse = lse_at.map(|lse| quote!(#lse = max + sum.ln();));
                let row_weights = weights_at.map(|zeros| {
                    let keys = (from..seen).map(Literal::usize_unsuffixed);
                    quote! {
                        #zeros
                        #(weights #at[#il][#keys] = #weight * inv_sum;)*
                    }
                });
                blocks.push(quote! {
                    #label: {
                        let (q, k, v) = (&q #at[#il], &k #kv_at, &v #kv_at);
                        let out = &mut out #at[#il];
                        #(let #score = #dots;)*
                        let max = #private::max_of([#(#score),*]);
                        let [#(#weight),*] = #private::exp_shifted([#(#score),*], max);
                        let sum = #private::sum_of([#(#weight),*]);
                        let inv_sum = 1.0 / sum;
                        #(#outputs)*
                        #row_weights
                        #row_lse
                    }
                });
            }
        }
    }
    let in_registers = in_registers(kernel, sizes);
    quote! {
        #scale
        #in_registers
        #(#blocks)*
    }
}

/// An unrolled kernel's fast path, where each problem (batch entry and head) fits in a few
/// registers: one runtime call that runs every problem with AVX-512VL and returns, when the
/// CPU has it; the straight-line code after it runs everywhere else. Only for f32 without
/// options (masks, caps and extra outputs stay in the straight-line code), and for the
/// sizes that `attn_rules::fits_in_registers` admits, the rule the runtime applies too.
fn in_registers(kernel: &Kernel, sizes: UnrolledSizes) -> Option<TokenStream> {
    let options = &kernel.options;
    let plain = dtype(kernel) == Dtype::F32
        && options.causal.is_none()
        && options.window.is_none()
        && options.softcap.is_none()
        && options.mask.is_none()
        && options.bias.is_none()
        && options.valid_lengths.is_none()
        && options.valid_queries.is_none()
        && options.return_weights.is_none()
        && options.return_lse.is_none()
        && options.split_heads.is_none();
    let UnrolledSizes {
        queries: nq,
        keys: nk,
        depth: d,
        value_depth: dv,
        ..
    } = sizes;
    if !plain || !attn_rules::fits_in_registers(nq, nk, d, dv) {
        return None;
    }
    let (group, problems) = (sizes.heads / sizes.kv_heads, sizes.batch * sizes.heads);
    let [queries, keys, depth, value_depth, group, problems] =
        [nq, nk, d, dv, group, problems].map(Literal::usize_unsuffixed);
    let private = private();
    let rank = kernel.rank();
    let (flat, flat_mut) = (flat(rank, false), flat(rank, true));
    Some(quote! {
        // Every operand of a problem fits in registers: on a CPU with AVX-512VL, one
        // vector routine runs them all; the straight-line code below is the same formula
        // for every other CPU.
        /// Query rows per problem.
        const QUERIES: usize = #queries;
        /// Keys per problem.
        const KEYS: usize = #keys;
        /// The depth of the queries and keys.
        const DEPTH: usize = #depth;
        /// The depth of the values.
        const VALUE_DEPTH: usize = #value_depth;
        /// Query heads per key/value head.
        const GROUP: usize = #group;
        /// Batch entries times query heads.
        const PROBLEMS: usize = #problems;
        // The sizes in braces: const generic arguments, never a type or module of that name.
        if #private::in_registers::<
            { QUERIES },
            { KEYS },
            { DEPTH },
            { VALUE_DEPTH },
            { GROUP },
            { PROBLEMS },
        >(
            q #flat, k #flat, v #flat, out #flat_mut, scale,
        ) {
            return;
        }
    })
}

/// `let scale: f32 = ..;`: the option's value, or 1 / sqrt(depth).
fn scale(kernel: &Kernel) -> TokenStream {
    match scale_value(kernel) {
        Ok(value) => {
            let lit = Literal::f32_suffixed(value as f32);
            quote!(let scale: f32 = #lit;)
        }
        Err(depth) => {
            let private = private();
            quote!(let scale: f32 = #private::default_scale(#depth);)
        }
    }
}

/// Indexes `b` and `h` into the batch and heads axes: `[b]` or `[b][h]`.
fn batch_head_index(kernel: &Kernel, b: &TokenStream, h: &TokenStream) -> TokenStream {
    if kernel.heads().is_some() {
        quote!([#b][#h])
    } else {
        quote!([#b])
    }
}
