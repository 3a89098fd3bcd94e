//! The generated code of one checked kernel (docs/DESIGN.md section 4). Nothing here can fail: the
//! kernel was checked, and the plan was chosen, before emission starts.
//!
//! For a kernel `name` the macro emits three items:
//! - `fn name(q, k, v) -> out`: the by-value form, for outputs that fit on the stack;
//! - `fn name_into(q, k, v, &mut out)`: the out-parameter form, holding the computation;
//! - `mod name`: compile-time facts (shapes, FLOPs, bytes, the plan) as constants;
//!
//! and with `backward`, `name_backward` and `name_backward_into`, the gradients.
//!
//! Types in the signatures carry the spans of the user's dimension tokens, so that rustc's
//! notes on a wrongly shaped argument point back at the shape the user declared.
//!
//! By file: `signature.rs` the functions' signatures (shared with the error stub),
//! `unrolled.rs`, `tiled.rs` and `scalar.rs` the bodies of the three plans, `backward.rs`
//! the backward pass's, `layer.rs` the
//! layer form's functions, `facts.rs` the facts module, `elements.rs` the element types and
//! the nested array types.

mod backward;
mod elements;
mod facts;
mod layer;
mod scalar;
pub mod signature;
mod tiled;
mod unrolled;

pub use layer::functions_of as layer_functions;

use crate::model::{Dim, Dtype, Kernel, Size};
use crate::plan::{Blocks, Plan};
use elements::dtype;
use proc_macro2::{Ident, Literal, TokenStream};
use quote::{format_ident, quote};
use signature::Body;

/// The path of the runtime's internals, as generated code reaches them.
fn private() -> TokenStream {
    quote!(::attn_runtime::__private)
}

/// All the items of one kernel: for attention, its three; for a layer, the three of its
/// attention (named `name_attention`) and the layer's two functions.
pub fn kernel(kernel: &Kernel, plan: Plan) -> TokenStream {
    match &kernel.layer {
        None => attention(kernel, plan, &kernel.name, &kernel.attrs),
        Some(layer) => {
            let core = format_ident!("{}_attention", kernel.name);
            // The attention inside the layer has its own docs, and the user's other
            // attributes (`cfg` above all).
            let doc = format!(
                " The attention of the [`{}()`] layer, on its projected q, k and v.",
                kernel.name
            );
            let mut attrs: Vec<syn::Attribute> = kernel
                .attrs
                .iter()
                .filter(|a| !a.path().is_ident("doc"))
                .cloned()
                .collect();
            attrs.insert(0, syn::parse_quote!(#[doc = #doc]));
            let attention = attention(kernel, plan, &core, &attrs);
            let layer = layer::functions_of(kernel, layer, &core, false);
            quote!(#attention #layer)
        }
    }
}

/// The three items of an attention kernel named `name`: `name`, `name_into` and the facts
/// module `name`.
fn attention(kernel: &Kernel, plan: Plan, name: &Ident, attrs: &[syn::Attribute]) -> TokenStream {
    let body = match plan {
        Plan::Unrolled(sizes) => unrolled::body(kernel, sizes),
        Plan::Tiled(blocks) => tiled::body(kernel, blocks),
        Plan::Scalar => scalar::body(kernel),
    };
    let body = match dtype(kernel) {
        // The tiled plan's micro-kernels read 16-bit q, k and v as stored.
        Dtype::F16 | Dtype::Bf16 => {
            elements::widened(kernel, body, !matches!(plan, Plan::Tiled(_)))
        }
        Dtype::F32 | Dtype::F64 => body,
    };
    let functions =
        signature::attention(kernel, name, attrs, &plan_text(plan), Body::Computed(body));
    let backward = kernel
        .options
        .backward
        .map(|_| signature::backward(kernel, name, attrs, Body::Computed(backward::body(kernel))));
    let vis = &kernel.vis;
    let cfgs = attrs.iter().filter(|a| a.path().is_ident("cfg"));
    let facts_doc = format!(
        " Compile-time facts about the [`{name}()`] kernel: its shape, FLOPs, bytes and plan."
    );
    let info = facts::info(kernel, plan, name);
    quote! {
        #functions
        #backward

        #(#cfgs)*
        #[doc = #facts_doc]
        #vis mod #name {
            #info
        }
    }
}

/// `[1, Nq, 3]`, as a shape reads in the generated docs.
fn shape_text(dims: &[Dim]) -> String {
    let dims: Vec<String> = dims
        .iter()
        .map(|dim| match &dim.size {
            Size::Known(n) => n.to_string(),
            Size::Generic(name) => name.to_string(),
        })
        .collect();
    format!("[{}]", dims.join(", "))
}

/// The plan, as the generated docs name it.
fn plan_text(plan: Plan) -> String {
    match plan {
        Plan::Unrolled(_) => "fully unrolled".to_owned(),
        Plan::Scalar => "row by row in f64".to_owned(),
        Plan::Tiled(Blocks {
            query_block,
            key_block,
            ..
        }) => format!("tiled: blocks of {query_block} queries x {key_block} keys, online softmax"),
    }
}

/// The factor applied to every score: the `scale` option, else `1 / sqrt(depth)`; the
/// depth's name when it is a const generic, whose scale the generated code computes.
fn scale_value(kernel: &Kernel) -> Result<f64, &Ident> {
    match (&kernel.options.scale, kernel.depth()) {
        (Some((scale, _)), _) => Ok(*scale),
        (None, Size::Known(depth)) => Ok(1.0 / (*depth as f64).sqrt()),
        (None, Size::Generic(depth)) => Err(depth),
    }
}

/// The `softcap = c` option as an f32 literal.
fn softcap_literal(kernel: &Kernel) -> Option<Literal> {
    kernel
        .options
        .softcap
        .map(|(cap, _)| Literal::f32_suffixed(cap as f32))
}

/// Whether two sizes are the same: equal numbers, or the same const generic.
fn same_size(a: &Size, b: &Size) -> bool {
    match (a, b) {
        (Size::Known(x), Size::Known(y)) => x == y,
        (Size::Generic(x), Size::Generic(y)) => x == y,
        _ => false,
    }
}
