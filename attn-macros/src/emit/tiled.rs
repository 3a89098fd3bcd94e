//! The tiled plan's body: what is specific to the kernel, as a specification the runtime's
//! one loop nest (`attn_runtime::__private::Tiled`) runs. The expansion names the sizes and
//! blocks as constants, describes where each problem's operands are and which options apply
//! (`Problems`), and calls the driver.

use super::elements::{array_of, dtype, flat, size, stored};
use super::{private, same_size, softcap_literal};
use crate::model::{Causal, Dim, Dtype, Kernel, Size};
use crate::plan::Blocks;
use proc_macro2::{Literal, TokenStream};
use quote::quote;

/// The body of a tiled kernel's `_into` function.
pub fn body(kernel: &Kernel, blocks: Blocks) -> TokenStream {
    let private = private();
    let rank = kernel.rank();
    let [q, k, v] = &kernel.roles;
    let generics = &kernel.generics;
    let options = &kernel.options;

    // The sizes the loop nest is built from: a known size as a named constant, a const
    // generic by its own name.
    let mut constants = Vec::new();
    let mut named = |name: &str, what: &str, dim: &Dim| match &dim.size {
        Size::Known(_) => {
            let ident = proc_macro2::Ident::new(name, proc_macro2::Span::call_site());
            let value = size(&dim.size, dim.span);
            let doc = format!(" {what}");
            constants.push(quote! {
                #[doc = #doc]
                const #ident: usize = #value;
            });
            // In braces, as every const generic argument here: never a type or module of
            // that name, such as a kernel's facts module.
            quote!({ #ident })
        }
        // In braces: a const generic argument, never a type or module of that name.
        Size::Generic(name) => quote!({ #name }),
    };
    let depth = named(
        "DEPTH",
        "The depth of the queries and keys.",
        &kernel.q[rank - 1],
    );
    let value_depth = named(
        "VALUE_DEPTH",
        "The depth of the values.",
        &kernel.v[rank - 1],
    );
    let keys = named("KEYS", "Keys per problem.", &kernel.k[rank - 2]);
    let Blocks {
        query_block,
        key_block,
        direct,
    } = blocks;
    let (query_block, key_block) = (
        Literal::usize_unsuffixed(query_block),
        Literal::usize_unsuffixed(key_block),
    );
    let packed_value_rows = if direct {
        quote! {
            /// Fewer query rows than a tile: the keys and values are read where they are.
            const PACKED_VALUE_ROWS: usize = 0;
        }
    } else {
        quote! {
            /// A copy of each block of values, on cache lines.
            const PACKED_VALUE_ROWS: usize = KEY_BLOCK;
        }
    };

    // Where a problem's operands are: query head `h` of batch entry `b` reads key/value head
    // `h / (Hq / Hkv)` (grouped-query attention).
    let queries = size(kernel.queries(), kernel.q[rank - 2].span);
    let (problems, batch_and_head, kv_head, batch_of, head_of) =
        match (kernel.heads(), kernel.kv_heads()) {
            (Some(heads), Some(kv_heads)) => {
                let (hq, hkv) = (
                    size(heads, kernel.q[1].span),
                    size(kv_heads, kernel.k[1].span),
                );
                let kv_head = if same_size(heads, kv_heads) {
                    quote!(h)
                } else {
                    quote!(h / (#hq / #hkv))
                };
                (
                    quote!(self.q.len() * #hq),
                    quote!(let (b, h) = (problem / #hq, problem % #hq);),
                    Some(kv_head),
                    quote!(problem / #hq),
                    quote!(problem % #hq),
                )
            }
            _ => (
                quote!(self.q.len()),
                quote!(let b = problem;),
                None,
                quote!(problem),
                quote!(0),
            ),
        };
    let operands = match &kv_head {
        Some(kv_head) => quote! {
            let kv_head = #kv_head;
            #private::Operands {
                queries: &self.q[b][h],
                keys: &self.k[b][kv_head],
                values: &self.v[b][kv_head],
            }
        },
        None => quote! {
            #private::Operands {
                queries: &self.q[b],
                keys: &self.k[b],
                values: &self.v[b],
            }
        },
    };

    // The options, each a constant of `Problems` only when it applies.
    let mut consts = Vec::new();
    if let Some((scale, _)) = options.scale {
        let scale = Literal::f32_suffixed(scale as f32);
        consts.push(quote!(const SCALE: Option<f32> = Some(#scale);));
    }
    if let Some((causal, _)) = options.causal {
        let alignment = match causal {
            Causal::Square | Causal::TopLeft => quote!(TopLeft),
            Causal::BottomRight => quote!(BottomRight),
        };
        consts.push(quote! {
            const CAUSAL: Option<#private::Alignment> = Some(#private::Alignment::#alignment);
        });
    }
    if let Some((window, _)) = options.window {
        let window = Literal::u64_unsuffixed(window);
        consts.push(quote!(const WINDOW: Option<usize> = Some(#window);));
    }
    if let Some(cap) = softcap_literal(kernel) {
        consts.push(quote!(const SOFTCAP: Option<f32> = Some(#cap);));
    }
    if options.return_weights.is_some() {
        consts.push(quote!(
            const RETURN_WEIGHTS: bool = true;
        ));
    }
    if options.return_lse.is_some() {
        consts.push(quote!(
            const RETURN_LSE: bool = true;
        ));
    }

    // The arguments known only at run time: valid lengths, a mask, a bias, each a field of
    // `Attention` and a method of `Problems`.
    let batch = size(kernel.batch(), kernel.q[0].span);
    let mut fields = Vec::new();
    let mut field_inits = Vec::new();
    let mut methods = Vec::new();
    // Each valid count: one per batch entry, named as the argument and the method.
    for (name, given) in [
        ("valid_keys", options.valid_lengths.is_some()),
        ("valid_queries", options.valid_queries.is_some()),
    ] {
        if !given {
            continue;
        }
        let name = proc_macro2::Ident::new(name, proc_macro2::Span::call_site());
        fields.push(quote!(#name: &'a [usize; #batch],));
        field_inits.push(quote!(#name,));
        methods.push(quote! {
            fn #name(&self, problem: usize) -> usize {
                self.#name[#batch_of]
            }
        });
    }
    // The rows from which each batch entry's output holds zeros already: what a `ZeroPadded`
    // output records. A 16-bit kernel computes into an f32 copy whose padding no one reads
    // (its stored output's zeros are written as it is rounded): none to write there.
    if options.valid_queries.is_some() {
        let zeros_from = match dtype(kernel) {
            Dtype::F32 => quote!(padding_written.as_deref()),
            _ => quote!(::core::option::Option::Some(&valid_queries[..])),
        };
        fields.push(quote!(zeros_from: ::core::option::Option<&'a [usize]>,));
        field_inits.push(quote!(zeros_from: #zeros_from,));
        methods.push(quote! {
            fn zeros_from(&self, problem: usize) -> usize {
                match self.zeros_from {
                    ::core::option::Option::Some(rows) => rows[#batch_of],
                    ::core::option::Option::None => #queries,
                }
            }
        });
    }
    // A mask's or bias's row for a query: an axis declared 1 is broadcast (its index is 0).
    let broadcast_row = |dims: &[Dim]| {
        let index = |dim: &Dim, index: &TokenStream| match dim.size {
            Size::Known(1) => quote!(0),
            _ => index.clone(),
        };
        let mut at = vec![index(&dims[0], &batch_of)];
        if rank == 4 {
            at.push(index(&dims[1], &head_of));
        }
        at.push(index(&dims[rank - 2], &quote!(query)));
        // The query's name only where a row per query is read.
        let query = match dims[rank - 2].size {
            Size::Known(1) => quote!(_query),
            _ => quote!(query),
        };
        (quote!(#([#at])*), query)
    };
    for (name, element, dims) in [
        ("mask", quote!(bool), &kernel.mask),
        ("bias", quote!(f32), &kernel.bias),
    ] {
        let Some(dims) = dims else { continue };
        let name = proc_macro2::Ident::new(name, proc_macro2::Span::call_site());
        let ty = array_of(dims, element.clone());
        let (row, query) = broadcast_row(dims);
        fields.push(quote!(#name: &'a #ty,));
        field_inits.push(quote!(#name,));
        methods.push(quote! {
            fn #name(&self, problem: usize, #query: usize) -> Option<&[#element]> {
                Some(&self.#name #row)
            }
        });
    }

    // The output, and the weights and the log-sum-exp when returned, as one slice of rows
    // each: all axes but the last, flattened.
    let rows = flat(rank - 1, true);
    let weights = match options.return_weights {
        Some(_) => quote!(weights #rows),
        None => quote!(&mut []),
    };
    let lse = match options.return_lse {
        Some(_) => quote!(lse #rows),
        None => quote!(&mut []),
    };
    // q, k and v are read as stored, 16-bit ones widened in registers.
    let (stored, _) = stored(dtype(kernel));
    let (q_ty, k_ty, v_ty) = (
        array_of(&kernel.q, stored.clone()),
        array_of(&kernel.k, stored.clone()),
        array_of(&kernel.v, stored.clone()),
    );
    quote! {
        #(#constants)*
        /// Query rows per block, sharing each packing of a key block.
        const QUERY_BLOCK: usize = #query_block;
        /// Keys per block.
        const KEY_BLOCK: usize = #key_block;
        #packed_value_rows
        struct Attention<'a, #(const #generics: usize),*> {
            q: &'a #q_ty,
            k: &'a #k_ty,
            v: &'a #v_ty,
            #(#fields)*
        }
        impl<#(const #generics: usize),*> #private::Problems<#depth, #value_depth, #keys>
            for Attention<'_, #({ #generics }),*>
        {
            type Stored = #stored;
            const QUERIES: usize = #queries;
            #(#consts)*
            fn problems(&self) -> usize {
                #problems
            }
            fn operands(
                &self,
                problem: usize,
            ) -> #private::Operands<'_, Self::Stored, #depth, #value_depth> {
                #batch_and_head
                #operands
            }
            #(#methods)*
        }
        #private::run(
            &#private::Tiled::<
                _,
                #depth,
                #value_depth,
                #keys,
                { QUERY_BLOCK },
                { KEY_BLOCK },
                { PACKED_VALUE_ROWS },
            >(
                Attention { #q, #k, #v, #(#field_inits)* },
            ),
            #private::Rows { out: out #rows, weights: #weights, lse: #lse },
        );
    }
}
