//! The facts module of a kernel: `info()` (and `INFO` when every size is known), its shape,
//! FLOPs, bytes and plan as constants.

use super::elements::dtype;
use super::signature::generics;
use crate::model::{Kernel, Size};
use crate::plan::{Blocks, Plan};
use proc_macro2::{Ident, Literal, TokenStream};
use quote::quote;

/// The contents of the facts module: `info()` for every kernel, `INFO` where no size is
/// left to a const generic.
pub fn info(kernel: &Kernel, plan: Plan, name: &Ident) -> TokenStream {
    let shape = |size_of: &Size| match size_of {
        Size::Known(n) => {
            let n = Literal::u64_unsuffixed(*n);
            quote!(#n)
        }
        Size::Generic(name) => quote!(#name as u64),
    };
    let batch = shape(kernel.batch());
    let heads = kernel.heads().map_or(quote!(1), shape);
    let kv_heads = kernel.kv_heads().map_or(quote!(1), shape);
    let rank = Literal::u64_unsuffixed(kernel.rank() as u64);
    let (queries, keys) = (shape(kernel.queries()), shape(kernel.keys()));
    let (depth, value_depth) = (shape(kernel.depth()), shape(kernel.value_depth()));
    let element_bytes = Literal::u64_unsuffixed(dtype(kernel).bytes());
    let plan = match plan {
        Plan::Unrolled(_) => quote!(::attn_runtime::Plan::Unrolled),
        Plan::Scalar => quote!(::attn_runtime::Plan::Scalar),
        Plan::Tiled(Blocks {
            query_block,
            key_block,
            ..
        }) => {
            let (qb, kb) = (
                Literal::usize_unsuffixed(query_block),
                Literal::usize_unsuffixed(key_block),
            );
            quote!(::attn_runtime::Plan::Tiled { query_block: #qb, key_block: #kb })
        }
    };
    let generics = generics(kernel);
    let name = name.to_string();
    let info_doc = format!(" The shape, cost and plan of `{name}`.");
    let constant = kernel.generics.is_empty().then(|| {
        let doc = format!(" The shape, cost and plan of `{name}`, as a constant.");
        quote! {
            #[doc = #doc]
            pub const INFO: ::attn_runtime::KernelInfo = info();
        }
    });
    quote! {
        #[doc = #info_doc]
        #[allow(non_upper_case_globals)]
        pub const fn info #generics() -> ::attn_runtime::KernelInfo {
            ::attn_runtime::KernelInfo::new(
                #name,
                ::attn_runtime::KernelShape {
                    rank: #rank,
                    batch: #batch,
                    heads: #heads,
                    kv_heads: #kv_heads,
                    queries: #queries,
                    keys: #keys,
                    depth: #depth,
                    value_depth: #value_depth,
                    element_bytes: #element_bytes,
                },
                #plan,
            )
        }
        #constant
    }
}
