//! The layer form's two functions: x projected to the heads of q, k and v, the layer's
//! attention, and the heads merged (and projected to `out`).

use super::elements::{array_type, size, zeros};
use super::signature::{Body, Extras, Functions, extras, functions, generics};
use super::{private, shape_text};
use crate::model::{Dim, Kernel, Layer};
use proc_macro2::{Ident, Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};

/// The two functions of a layer `name`: `name(x, query, key, value, [output,] ..) -> out`
/// and `name_into(.., &mut out)`. They project x to the heads of q, k and v, run the
/// layer's attention (`core`), and merge the heads, through the output projection if the
/// layer declares `out`. The stub of a layer with errors has the same signature, with a body
/// that never runs.
pub fn functions_of(kernel: &Kernel, layer: &Layer, core: &Ident, stub: bool) -> TokenStream {
    let private = private();
    let name = &kernel.name;
    let vis = &kernel.vis;
    let core_into = format_ident!("{}_into", core);
    let generics = generics(kernel);
    let x_role = &layer.x_role;
    let x_ty = array_type(&layer.x);
    let heads_out = kernel.out();
    // Without an output projection, the heads side by side: `[B, N, H·Dv]`.
    let layer_out = match &layer.out {
        Some(out) => out.clone(),
        None => {
            let mut merged = layer.x[..2].to_vec();
            merged.push(Dim {
                size: layer.merged.clone(),
                span: kernel.v[kernel.rank() - 1].span,
            });
            merged
        }
    };
    let (out_ty, out_zeros) = (array_type(&layer_out), zeros(&layer_out));
    let width = size(&layer.x[2].size, layer.x[2].span);
    // The weights: `Linear<IN, OUT>` in PyTorch's `[out, in]` layout.
    let linear = |features: &Dim, span: Span| {
        let features = size(&features.size, features.span);
        quote_spanned!(span=> ::attn_runtime::Linear<#width, #features>)
    };
    let features = &layer.features;
    let query_ty = linear(&features[0], kernel.q[1].span);
    let key_ty = linear(&features[1], kernel.k[1].span);
    let value_ty = linear(&features[2], kernel.v[1].span);
    // With valid lengths, only the valid tokens are projected: queries up to their count,
    // keys and values up to theirs (the kernel reads no other row).
    let counts = |option: bool, counts: &str| match option {
        true => {
            let counts = Ident::new(counts, Span::call_site());
            quote!(::core::option::Option::Some(#counts))
        }
        false => quote!(::core::option::Option::None),
    };
    let valid_queries = kernel.options.valid_queries.is_some();
    let query_rows = counts(valid_queries, "valid_queries");
    // With valid query counts, the merge reads the heads' rows only up to them and writes the
    // output's padding itself (only where its `ZeroPadded` record, `padding_written`, says a
    // row may not be 0): the attention leaves the heads' padding rows as they are.
    let (written, heads_arg) = if valid_queries {
        let batch = size(&layer.x[0].size, layer.x[0].span);
        (
            quote!(padding_written.as_deref()),
            quote!(&mut #private::PaddingUnread { rows: &mut *heads, written: &mut [0; #batch] }),
        )
    } else {
        (quote!(::core::option::Option::None), quote!(&mut heads))
    };
    let key_rows = counts(kernel.options.valid_lengths.is_some(), "valid_keys");
    let (output_param, output_arg, merge) = match &layer.out {
        Some(out) => {
            let (merged, out_width) = (
                size(&layer.merged, kernel.v[kernel.rank() - 1].span),
                size(&out[2].size, out[2].span),
            );
            (
                quote!(output: &::attn_runtime::Linear<#merged, #out_width>,),
                quote!(output,),
                quote!(#private::merge_heads_project(&heads, output, out, #query_rows, #written);),
            )
        }
        None => (
            quote!(),
            quote!(),
            quote!(#private::merge_heads(&heads, out, #query_rows, #written);),
        ),
    };
    let (q_ty, k_ty, v_ty, heads_ty) = (
        array_type(&kernel.q),
        array_type(&kernel.k),
        array_type(&kernel.v),
        array_type(&heads_out),
    );
    let extras = extras(kernel, &out_ty);
    let Extras {
        input_args,
        output_args,
        question,
        ..
    } = &extras;
    let width_text = shape_text(&layer.x[2..]);
    let width_text = width_text.trim_matches(['[', ']']);
    let [query_features, key_features, value_features] = features.each_ref().map(|dim| {
        shape_text(std::slice::from_ref(dim))
            .trim_matches(['[', ']'])
            .to_owned()
    });
    let shapes = format!(
        " Shapes: x `{}` through `query` `Linear<{width_text}, {query_features}>`, `key` \
         `Linear<{width_text}, {key_features}>` and `value` `Linear<{width_text}, \
         {value_features}>` (PyTorch's `[out, in]` weights) to q `{}`, k `{}`, v `{}`; \
         attention ([`{core}()`]); the heads merged{}; returns `{}`. Generated by `attention!`.",
        shape_text(&layer.x),
        shape_text(&kernel.q),
        shape_text(&kernel.k),
        shape_text(&kernel.v),
        if layer.out.is_some() {
            " and projected by `output`"
        } else {
            ""
        },
        shape_text(&layer_out),
    );
    let mut docs = vec![String::new(), shapes];
    docs.extend(extras.docs.iter().cloned());
    let inputs = &extras.inputs;
    functions(Functions {
        name,
        vis,
        generics: &generics,
        attrs: &kernel.attrs,
        docs: &docs,
        inputs: quote! {
            #x_role: &#x_ty,
            query: &#query_ty,
            key: &#key_ty,
            value: &#value_ty,
            #output_param
            #inputs
        },
        call_args: quote!(#x_role, query, key, value, #output_arg #input_args),
        out_ty: &out_ty,
        out_zeros: &out_zeros,
        padded: valid_queries,
        extras: &extras,
        where_clause: &TokenStream::new(),
        body: if stub {
            Body::Stub
        } else {
            Body::Computed(quote! {
                // The heads of q, k and v, on the heap: their size grows with the tokens.
                // Not zeroed: the projections write every row that the attention reads (the
                // valid ones, or all), and the attention every row of its heads that the
                // merge reads.
                let mut q = #private::scratch_tensor::<#q_ty>();
                let mut k = #private::scratch_tensor::<#k_ty>();
                let mut v = #private::scratch_tensor::<#v_ty>();
                #private::project_heads(#x_role, query, &mut q, #query_rows);
                #private::project_heads(#x_role, key, &mut k, #key_rows);
                #private::project_heads(#x_role, value, &mut v, #key_rows);
                let mut heads = #private::scratch_tensor::<#heads_ty>();
                #core_into(&q, &k, &v, #input_args #heads_arg, #output_args)#question;
                #merge
            })
        },
    })
}
