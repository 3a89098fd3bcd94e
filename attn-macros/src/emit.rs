//! The generated code of one checked kernel (DESIGN section 4). Nothing here can fail: the
//! kernel was checked, and the plan was chosen, before emission starts.
//!
//! For a kernel `name` the macro emits three items:
//! - `fn name(q, k, v) -> out`: the by-value form, for outputs that fit on the stack;
//! - `fn name_into(q, k, v, &mut out)`: the out-parameter form, holding the computation;
//! - `mod name`: compile-time facts (shapes, FLOPs, bytes, the plan) as constants.
//!
//! Types in the signatures carry the spans of the user's dimension tokens, so that rustc's
//! notes on a wrongly shaped argument point back at the shape the user declared.

use crate::check::{Dim, Kernel, Layer, Size};
use crate::options::{Causal, Dtype};
use crate::plan::Plan;
use proc_macro2::{Ident, Literal, Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};

/// Names that the generated body declares in the scope of the user's dimension names.
pub const RESERVED_NAMES: &[&str] = &[
    "Attention",
    "Simd",
    "KEY_BLOCK",
    "QUERIES",
    "QUERY_BLOCK",
    "FLOPS_PER_ROW",
    "Row",
];

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
            let layer = layer_items(kernel, layer, &core);
            quote!(#attention #layer)
        }
    }
}

/// What the options add to a kernel's signatures, shared by attention and layers: extra
/// inputs (a mask, a bias, valid lengths), extra outputs (the weights, the log-sum-exp), and
/// a `Result` with valid lengths.
struct Extras {
    /// `mask: &.., bias: &.., valid_keys: &[usize; B],`, as the inputs after q, k and v.
    inputs: TokenStream,
    /// `mask, bias, valid_keys,`: the same, passed on.
    input_args: TokenStream,
    /// `weights: &mut .., lse: &mut ..,`, as the out-parameters after `out`.
    outputs: TokenStream,
    /// `weights, lse,`: the same, passed on.
    output_args: TokenStream,
    /// `let mut weights = ..; let mut lse = ..;` in the by-value form.
    output_inits: TokenStream,
    /// `&mut weights, &mut lse,`: the by-value form's locals, passed to the `_into` form.
    output_locals: TokenStream,
    /// The by-value form's return type, its last expression, and `?` after its call.
    main_ty: TokenStream,
    main_end: TokenStream,
    question: TokenStream,
    /// The `_into` form's return type (`-> Result<..>` with valid lengths) and its end.
    into_ty: TokenStream,
    into_end: TokenStream,
    /// A paragraph of docs for each option that changes the signature.
    docs: Vec<String>,
}

fn extras(kernel: &Kernel, out_ty: &TokenStream) -> Extras {
    let valid = kernel.options.valid_lengths.is_some();
    let batch = size(kernel.batch(), kernel.q[0].span);
    let error = quote!(::attn_runtime::ValidLengthError);
    let attention_out = kernel.out();
    let lse_dims = &attention_out[..attention_out.len() - 1];
    let (element, zero) = dtype(kernel).computed();
    let (lse_ty, lse_zeros) = (
        array_of(lse_dims, element.clone()),
        zeros_of(lse_dims, zero.clone()),
    );
    let weights_dims = kernel.weights();
    let (weights_ty, weights_zeros) = (
        array_of(&weights_dims, element.clone()),
        zeros_of(&weights_dims, zero),
    );
    let lse = kernel.options.return_lse.is_some();
    let weights = kernel.options.return_weights.is_some();
    let mut inputs = quote!();
    let mut input_args = quote!();
    if let Some(dims) = &kernel.mask {
        let ty = array_of(dims, quote!(bool));
        inputs.extend(quote!(mask: &#ty,));
        input_args.extend(quote!(mask,));
    }
    if let Some(dims) = &kernel.bias {
        let ty = array_of(dims, element.clone());
        inputs.extend(quote!(bias: &#ty,));
        input_args.extend(quote!(bias,));
    }
    if valid {
        inputs.extend(quote!(valid_keys: &[usize; #batch],));
        input_args.extend(quote!(valid_keys,));
    }
    // `out`, then the weights and the log-sum-exp where asked for: a tuple if more than one.
    let mut returned = vec![(out_ty.clone(), quote!(out))];
    let (mut outputs, mut output_args, mut output_inits, mut output_locals) =
        (quote!(), quote!(), quote!(), quote!());
    if weights {
        outputs.extend(quote!(weights: &mut #weights_ty,));
        output_args.extend(quote!(weights,));
        output_inits.extend(quote!(let mut weights = #weights_zeros;));
        output_locals.extend(quote!(&mut weights,));
        returned.push((weights_ty, quote!(weights)));
    }
    if lse {
        outputs.extend(quote!(lse: &mut #lse_ty,));
        output_args.extend(quote!(lse,));
        output_inits.extend(quote!(let mut lse = #lse_zeros;));
        output_locals.extend(quote!(&mut lse,));
        returned.push((lse_ty, quote!(lse)));
    }
    let (value_ty, value) = if returned.len() == 1 {
        returned.remove(0)
    } else {
        let (types, values): (Vec<_>, Vec<_>) = returned.into_iter().unzip();
        (quote!((#(#types),*)), quote!((#(#values),*)))
    };
    let (main_ty, main_end, question, into_ty, into_end) = if valid {
        (
            quote!(::core::result::Result<#value_ty, #error>),
            quote!(::core::result::Result::Ok(#value)),
            quote!(?),
            quote!(-> ::core::result::Result<(), #error>),
            quote!(::core::result::Result::Ok(())),
        )
    } else {
        (value_ty, value, quote!(), quote!(), quote!())
    };
    let mut docs = Vec::new();
    let mut say = |text: &str| {
        docs.push(String::new());
        docs.push(format!(" {text}"));
    };
    if let Some(dims) = &kernel.mask {
        say(&format!(
            "`mask` `{}` says which keys each query attends to (true = attend, as PyTorch); \
             an axis of size 1 is broadcast. A row that attends to no key gives 0.",
            shape_text(dims)
        ));
    }
    if let Some(dims) = &kernel.bias {
        say(&format!(
            "`bias` `{}` is added to the scores before the softmax (after the scale and any \
             soft cap); an axis of size 1 is broadcast, and -inf masks a key.",
            shape_text(dims)
        ));
    }
    if valid {
        say(
            "`valid_keys[b]` is the number of valid keys of batch entry `b`: the keys after \
             them are padding, which no query sees. An error if one exceeds the number of keys.",
        );
    }
    if weights {
        say(&format!(
            "`weights` `{}` receives the attention weights, `softmax(scores)` of each query \
             row: 0 for the keys it does not see.",
            shape_text(&weights_dims)
        ));
    }
    if lse {
        say(
            "`lse` receives each query row's log-sum-exp, `max + ln(sum of exp(score - max))` \
             over the keys it sees, or -inf if it sees none.",
        );
    }
    Extras {
        inputs,
        input_args,
        outputs,
        output_args,
        output_inits,
        output_locals,
        main_ty,
        main_end,
        question,
        into_ty,
        into_end,
        docs,
    }
}

/// The lints that generated code may trip.
fn lints() -> TokenStream {
    quote! {
        #[allow(non_upper_case_globals, unused_labels, clippy::too_many_lines, clippy::needless_range_loop, clippy::modulo_one)]
    }
}

/// The attributes of the `_into` form: all but the docs (it has its own) and `must_use` (it
/// returns nothing).
fn into_attrs(attrs: &[syn::Attribute]) -> Vec<&syn::Attribute> {
    attrs
        .iter()
        .filter(|a| !a.path().is_ident("doc") && !a.path().is_ident("must_use"))
        .collect()
}

/// The three items of an attention kernel named `name`: `name`, `name_into` and the facts
/// module `name`.
fn attention(kernel: &Kernel, plan: Plan, name: &Ident, attrs: &[syn::Attribute]) -> TokenStream {
    let vis = &kernel.vis;
    let generics = generics(kernel);
    let (element, zero) = dtype(kernel).stored();
    let (q_ty, k_ty, v_ty) = (
        array_of(&kernel.q, element.clone()),
        array_of(&kernel.k, element.clone()),
        array_of(&kernel.v, element.clone()),
    );
    let out = kernel.out();
    let out_ty = array_of(&out, element);
    let out_zeros = zeros_of(&out, zero);
    let [q, k, v] = &kernel.roles;
    let cfgs = attrs.iter().filter(|a| a.path().is_ident("cfg"));
    let shapes = format!(
        " Shapes: q `{}`, k `{}`, v `{}`; returns `{}`. Generated by `attention!` ({}).",
        shape_text(&kernel.q),
        shape_text(&kernel.k),
        shape_text(&kernel.v),
        shape_text(&out),
        plan_text(plan),
    );
    let facts_doc = format!(
        " Compile-time facts about the [`{name}()`] kernel: its shape, FLOPs, bytes and plan."
    );
    let body = match plan {
        Plan::Unrolled => unrolled_body(kernel),
        Plan::Tiled {
            query_block,
            key_block,
        } => tiled_body(kernel, query_block, key_block),
        Plan::Scalar => scalar_body(kernel),
    };
    let body = match dtype(kernel) {
        Dtype::F16 | Dtype::Bf16 => widened(kernel, body),
        Dtype::F32 | Dtype::F64 => body,
    };
    let info = info(kernel, plan, name);
    let where_clause = heads_bound(kernel);
    let keys = size(kernel.keys(), kernel.k[kernel.rank() - 2].span);
    let into_check = kernel
        .options
        .valid_lengths
        .map(|_| quote!(::attn_runtime::__private::check_valid_lengths(valid_keys, #keys)?;));
    let extras = extras(kernel, &out_ty);
    let Extras {
        inputs, input_args, ..
    } = &extras;
    let mut docs = vec![String::new(), shapes];
    docs.extend(extras.docs.iter().cloned());
    let functions = functions(Functions {
        name,
        vis,
        generics: &generics,
        attrs,
        docs: &docs,
        inputs: quote!(#q: &#q_ty, #k: &#k_ty, #v: &#v_ty, #inputs),
        call_args: quote!(#q, #k, #v, #input_args),
        out_ty: &out_ty,
        out_zeros: &out_zeros,
        extras: &extras,
        where_clause: &where_clause,
        body: quote! {
            #into_check
            #body
        },
    });
    quote! {
        #functions

        #(#cfgs)*
        #[doc = #facts_doc]
        #vis mod #name {
            #info
        }
    }
}

/// The two functions of a layer `name`: `name(x, query, key, value, [output,] ..) -> out`
/// and `name_into(.., &mut out)`. They project x to the heads of q, k and v, run the
/// layer's attention (`core`), and merge the heads, through the output projection if the
/// layer declares `out`.
fn layer_items(kernel: &Kernel, layer: &Layer, core: &Ident) -> TokenStream {
    let private = private();
    let name = &kernel.name;
    let vis = &kernel.vis;
    let core_into = format_ident!("{}_into", core);
    let generics = generics(kernel);
    let x_role = &layer.x_role;
    let x_ty = array_type(&layer.x);
    let heads_out = kernel.out();
    // A layer's q, k and v have heads, and its model sizes are known (check.rs).
    let (heads, kv_heads) = (known(&kernel.q[1].size), known(&kernel.k[1].size));
    let (depth, value_depth) = (known(kernel.depth()), known(kernel.value_depth()));
    let merged_width = heads * value_depth;
    // Without an output projection, the heads side by side: `[B, N, H·Dv]`.
    let layer_out = match &layer.out {
        Some(out) => out.clone(),
        None => {
            let mut merged = layer.x[..2].to_vec();
            merged.push(Dim {
                size: Size::Known(merged_width),
                span: kernel.v[3].span,
            });
            merged
        }
    };
    let (out_ty, out_zeros) = (array_type(&layer_out), zeros(&layer_out));
    let width = size(&layer.x[2].size, layer.x[2].span);
    // The weights: `Linear<IN, OUT>` in PyTorch's `[out, in]` layout.
    let linear = |features: u64, span: Span| {
        let features = Literal::u64_unsuffixed(features);
        quote_spanned!(span=> ::attn_runtime::Linear<#width, #features>)
    };
    let features = [heads * depth, kv_heads * depth, kv_heads * value_depth];
    let query_ty = linear(features[0], kernel.q[1].span);
    let key_ty = linear(features[1], kernel.k[1].span);
    let value_ty = linear(features[2], kernel.v[1].span);
    let (output_param, output_arg, merge) = match &layer.out {
        Some(out) => {
            let (merged, out_width) = (
                Literal::u64_unsuffixed(merged_width),
                size(&out[2].size, out[2].span),
            );
            (
                quote!(output: &::attn_runtime::Linear<#merged, #out_width>,),
                quote!(output,),
                quote!(#private::merge_heads_project(&heads, output, out);),
            )
        }
        None => (
            quote!(),
            quote!(),
            quote!(#private::merge_heads(&heads, out);),
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
    let [query_features, key_features, value_features] = features;
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
        extras: &extras,
        where_clause: &TokenStream::new(),
        body: quote! {
            // The heads of q, k and v, on the heap: their size grows with the tokens.
            let mut q = ::attn_runtime::Tensor::<#q_ty>::zeros();
            let mut k = ::attn_runtime::Tensor::<#k_ty>::zeros();
            let mut v = ::attn_runtime::Tensor::<#v_ty>::zeros();
            #private::project_heads(#x_role, query, &mut q);
            #private::project_heads(#x_role, key, &mut k);
            #private::project_heads(#x_role, value, &mut v);
            let mut heads = ::attn_runtime::Tensor::<#heads_ty>::zeros();
            #core_into(&q, &k, &v, #input_args &mut heads, #output_args)#question;
            #merge
        },
    })
}

/// The two functions of a kernel or layer, as [`functions`] writes them.
struct Functions<'a> {
    name: &'a Ident,
    vis: &'a syn::Visibility,
    generics: &'a TokenStream,
    /// The user's attributes: all of them on the by-value form, all but the docs and
    /// `must_use` on the `_into` form.
    attrs: &'a [syn::Attribute],
    /// The docs of both forms, after the user's.
    docs: &'a [String],
    /// The parameters before `out`.
    inputs: TokenStream,
    /// The same parameters, passed from the by-value form to the `_into` form.
    call_args: TokenStream,
    out_ty: &'a TokenStream,
    out_zeros: &'a TokenStream,
    extras: &'a Extras,
    /// Bounds on the const generics, checked at each call.
    where_clause: &'a TokenStream,
    /// The `_into` form's computation, which writes `out` (and the other outputs).
    body: TokenStream,
}

/// `name(inputs) -> out`, which returns its result by value, and `name_into(inputs, &mut
/// out)`, which holds the computation.
fn functions(f: Functions) -> TokenStream {
    let Functions {
        name,
        vis,
        generics,
        attrs,
        docs,
        inputs,
        call_args,
        out_ty,
        out_zeros,
        extras,
        where_clause,
        body,
    } = f;
    let Extras {
        outputs,
        output_inits,
        output_locals,
        main_ty,
        main_end,
        question,
        into_ty,
        into_end,
        ..
    } = extras;
    let into = format_ident!("{}_into", name);
    let into_doc = format!(
        " Writes [`{name}()`]'s result into `out`: the form for outputs too large for the stack."
    );
    let others = into_attrs(attrs);
    let lints = lints();
    quote! {
        #(#attrs)*
        #(#[doc = #docs])*
        #lints
        #[inline]
        #vis fn #name #generics(#inputs) -> #main_ty #where_clause {
            let mut out = #out_zeros;
            #output_inits
            #into(#call_args &mut out, #output_locals)#question;
            #main_end
        }

        #[doc = #into_doc]
        #(#[doc = #docs])*
        #(#others)*
        #lints
        #vis fn #into #generics(
            #inputs
            out: &mut #out_ty,
            #outputs
        ) #into_ty #where_clause {
            #body
            #into_end
        }
    }
}

/// `<const Nq: usize, ..>` for the unbound names, or nothing.
fn generics(kernel: &Kernel) -> TokenStream {
    if kernel.generics.is_empty() {
        return TokenStream::new();
    }
    let names = &kernel.generics;
    quote!(<#(const #names: usize),*>)
}

/// A size as an expression: a `usize` literal or the const generic's name.
fn size(size: &Size, span: Span) -> TokenStream {
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
fn array_type(dims: &[Dim]) -> TokenStream {
    array_of(dims, quote!(f32))
}

/// The row-major nested array of a shape, of `element`s.
fn array_of(dims: &[Dim], element: TokenStream) -> TokenStream {
    dims.iter().rev().fold(element, |inner, dim| {
        let n = size(&dim.size, dim.span);
        quote_spanned!(dim.span=> [#inner; #n])
    })
}

/// `[[[0.0f32; Dv]; Nq]; B]`: a zeroed array of a shape.
fn zeros(dims: &[Dim]) -> TokenStream {
    zeros_of(dims, quote!(0.0f32))
}

/// A zeroed array of a shape, of `zero`s.
fn zeros_of(dims: &[Dim], zero: TokenStream) -> TokenStream {
    dims.iter().rev().fold(zero, |inner, dim| {
        let n = size(&dim.size, dim.span);
        quote!([#inner; #n])
    })
}

/// The kernel's element type: its `dtype`, f32 by default.
fn dtype(kernel: &Kernel) -> Dtype {
    kernel.options.dtype.map_or(Dtype::F32, |(dtype, _)| dtype)
}

/// `.as_flattened()` enough times to make a nested array of `rank` axes one slice.
fn flat(rank: usize, mutable: bool) -> TokenStream {
    let step = if mutable {
        quote!(.as_flattened_mut())
    } else {
        quote!(.as_flattened())
    };
    (1..rank).map(|_| step.clone()).collect()
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

fn plan_text(plan: Plan) -> String {
    match plan {
        Plan::Unrolled => "fully unrolled".to_owned(),
        Plan::Scalar => "row by row in f64".to_owned(),
        Plan::Tiled {
            query_block,
            key_block,
        } => format!("tiled: blocks of {query_block} queries x {key_block} keys, online softmax"),
    }
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

/// The factor applied to every score: the `scale` option, else `1 / sqrt(depth)`; the
/// depth's name when it is a const generic, whose scale the generated code computes.
fn scale_value(kernel: &Kernel) -> Result<f64, &Ident> {
    match (&kernel.options.scale, kernel.depth()) {
        (Some((scale, _)), _) => Ok(*scale),
        (None, Size::Known(depth)) => Ok(1.0 / (*depth as f64).sqrt()),
        (None, Size::Generic(depth)) => Err(depth),
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

/// How many keys query `row` sees: all of them without a causal mask; with one, the keys up
/// to its position, the queries aligned to the first keys (`top_left`) or the last ones
/// (`bottom_right`). The same rule as the runtime's `__private::visible_keys`, which tiled
/// kernels call at run time; unrolled kernels apply it here, at expansion.
fn visible_keys(causal: Option<Causal>, row: u64, queries: u64, keys: u64) -> u64 {
    match causal {
        None => keys,
        Some(Causal::Square | Causal::TopLeft) => (row + 1).min(keys),
        Some(Causal::BottomRight) => (row + 1 + keys).saturating_sub(queries).min(keys),
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

/// For a kernel whose head counts are const generics, a bound that q's heads are a multiple
/// of k's, checked at each call by the type checker (known counts were checked by the
/// macro): typenum computes `Hq % Hkv`, and the runtime's `QueryHeadsPerKeyHead` trait, held
/// only by a remainder of 0, turns a failure into "q's 6 heads are not a multiple of k's 4
/// heads" at the call.
fn heads_bound(kernel: &Kernel) -> TokenStream {
    match (kernel.heads(), kernel.kv_heads()) {
        (Some(heads @ Size::Generic(_)), Some(kv_heads))
        | (Some(heads), Some(kv_heads @ Size::Generic(_)))
            if !same_size(heads, kv_heads) =>
        {
            let private = private();
            let (hq, hkv) = (
                size(heads, kernel.q[1].span),
                size(kv_heads, kernel.k[1].span),
            );
            // Spanned at k's heads, so that the failed bound's note shows the declaration.
            quote_spanned! {kernel.k[1].span=>
                where
                    #private::Const<#hq>: #private::ToUInt,
                    #private::Const<#hkv>: #private::ToUInt,
                    #private::U<#hq>: ::core::ops::Rem<#private::U<#hkv>>,
                    #private::Mod<#private::U<#hq>, #private::U<#hkv>>:
                        #private::QueryHeadsPerKeyHead<#hq, #hkv>,
            }
        }
        _ => TokenStream::new(),
    }
}

fn known(size: &Size) -> u64 {
    match size {
        Size::Known(n) => *n,
        // The planner unrolls only kernels whose every size is known.
        Size::Generic(_) => 0,
    }
}

/// Straight-line code: for each batch entry, head and query, every score, weight and
/// output value written out, so that a reader of `cargo expand` sees the formula itself.
fn unrolled_body(kernel: &Kernel) -> TokenStream {
    let private = private();
    let scale = scale(kernel);
    let softcap = softcap_literal(kernel);
    let sizes = UnrolledSizes::of(kernel);
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
                    Literal::u64_unsuffixed(b),
                    Literal::u64_unsuffixed(h),
                    Literal::u64_unsuffixed(i),
                );
                let at = batch_head_index(kernel, &quote!(#bl), &quote!(#hl));
                // Grouped-query attention: query head h reads key/value head h / (Hq / Hkv).
                let kv_head = Literal::u64_unsuffixed(h / (heads / kv_heads));
                let kv_at = batch_head_index(kernel, &quote!(#bl), &quote!(#kv_head));
                // A causal mask is a bound: the row's scores stop at the last key it sees.
                let seen = visible_keys(kernel.options.causal.map(|(c, _)| c), i, queries, keys);
                // A sliding window starts the row's keys `window` before its last.
                let from = kernel
                    .options
                    .window
                    .map_or(0, |(w, _)| seen.saturating_sub(w));
                let score: Vec<Ident> =
                    (from..seen).map(|j| format_ident!("score_{}", j)).collect();
                let weight: Vec<Ident> = (from..seen)
                    .map(|j| format_ident!("weight_{}", j))
                    .collect();
                let dots = (from..seen).map(|j| {
                    let j = Literal::u64_unsuffixed(j);
                    let terms = (0..depth).map(|d| {
                        let d = Literal::u64_unsuffixed(d);
                        quote!(q[#d] * k[#j][#d])
                    });
                    match &softcap {
                        Some(cap) => quote!(#private::softcap((#(#terms)+*) * scale, #cap)),
                        None => quote!((#(#terms)+*) * scale),
                    }
                });
                let outputs = (0..value_depth).map(|e| {
                    let e = Literal::u64_unsuffixed(e);
                    let terms = (from..seen).map(|j| {
                        let w = &weight[(j - from) as usize];
                        let j = Literal::u64_unsuffixed(j);
                        quote!(#w * v[#j][#e])
                    });
                    quote!(out[#e] = (#(#terms)+*) * inv_sum;)
                });
                let lse_at = kernel.options.return_lse.map(|_| quote!(lse #at[#il]));
                // The row's weights: 0 for the keys it does not see.
                let weights_at = kernel.options.return_weights.map(|_| {
                    let all_keys = Literal::u64_unsuffixed(keys);
                    quote!(weights #at[#il] = [0.0f32; #all_keys];)
                });
                if seen == from {
                    // The mask hides every key from this row: its output is 0.
                    let value_depth = Literal::u64_unsuffixed(value_depth);
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
                    let keys = (from..seen).map(Literal::u64_unsuffixed);
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

/// An unrolled kernel's sizes, every one known (the planner unrolls only such kernels); one
/// batch entry, head or key/value head where the shape has no such axis.
#[derive(Clone, Copy)]
struct UnrolledSizes {
    batch: u64,
    heads: u64,
    kv_heads: u64,
    queries: u64,
    keys: u64,
    depth: u64,
    value_depth: u64,
}

impl UnrolledSizes {
    fn of(kernel: &Kernel) -> Self {
        UnrolledSizes {
            batch: known(kernel.batch()),
            heads: kernel.heads().map_or(1, known),
            kv_heads: kernel.kv_heads().map_or(1, known).max(1),
            queries: known(kernel.queries()),
            keys: known(kernel.keys()),
            depth: known(kernel.depth()),
            value_depth: known(kernel.value_depth()),
        }
    }
}

/// Lanes of the registers of the in-register path (AVX-512VL's 256-bit registers).
const REGISTER_LANES: u64 = 8;

/// An unrolled kernel's fast path, where each problem (batch entry and head) fits in a few
/// registers: one runtime call that runs every problem with AVX-512VL and returns, when the
/// CPU has it; the straight-line code after it runs everywhere else. Only for f32 without
/// options (masks, caps and extra outputs stay in the straight-line code). The sizes are
/// the runtime's rule (`simd::registers::fits`), restated because the macro decides at
/// compile time: the `Nq x Nk` scores and `Nq x (Dv + 1)` outputs and row sums fit one
/// register, q, k and v two each.
fn in_registers(kernel: &Kernel, sizes: UnrolledSizes) -> Option<TokenStream> {
    let options = &kernel.options;
    let plain = dtype(kernel) == Dtype::F32
        && options.causal.is_none()
        && options.window.is_none()
        && options.softcap.is_none()
        && options.mask.is_none()
        && options.bias.is_none()
        && options.valid_lengths.is_none()
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
    let lanes = REGISTER_LANES;
    let fits = nq * nk <= lanes
        && nq * (dv + 1) <= lanes
        && nq * d <= 2 * lanes
        && nk * d <= 2 * lanes
        && nk * dv <= 2 * lanes;
    if !plain || !fits {
        return None;
    }
    let (group, problems) = (sizes.heads / sizes.kv_heads, sizes.batch * sizes.heads);
    let [queries, keys, depth, value_depth, group, problems] =
        [nq, nk, d, dv, group, problems].map(Literal::u64_unsuffixed);
    let private = private();
    let rank = kernel.rank();
    let (flat, flat_mut) = (flat(rank, false), flat(rank, true));
    Some(quote! {
        // Every operand of a problem fits in registers: on a CPU with AVX-512VL, one
        // vector routine runs them all; the straight-line code below is the same formula
        // for every other CPU.
        if #private::in_registers::<#queries, #keys, #depth, #value_depth, #group, #problems>(
            q #flat, k #flat, v #flat, out #flat_mut, scale,
        ) {
            return;
        }
    })
}

/// The tiled kernel: a struct holding the call's q, k and v, whose `Kernel::block` computes
/// one block of query rows of one problem (batch entry and head) on any instruction set. The
/// runtime's `run` splits the output into blocks, picks the instruction set (and threads),
/// and calls `block`, which the compiler builds once per instruction set.
///
/// Within a block the keys are walked in blocks, with the softmax computed online: each query
/// row keeps a running max and sum, and its output row is the accumulator, rescaled whenever
/// the max grows. The scratch is one block of packed keys, one of values and one tile of
/// scores, each on a cache line boundary, whatever the sequence lengths.
fn tiled_body(kernel: &Kernel, query_block: u64, key_block: u64) -> TokenStream {
    let private = private();
    let scale = scale(kernel);
    let rank = kernel.rank();
    let [q, k, v] = &kernel.roles;
    let (q_ty, k_ty, v_ty) = (
        array_type(&kernel.q),
        array_type(&kernel.k),
        array_type(&kernel.v),
    );
    let queries = size(kernel.queries(), kernel.q[rank - 2].span);
    let valid = kernel.options.valid_lengths.is_some();
    let all_keys = size(kernel.keys(), kernel.k[rank - 2].span);
    // With valid lengths, a problem's keys end at its batch entry's count.
    let keys = if valid {
        quote!(keys_valid)
    } else {
        all_keys.clone()
    };
    let depth = size(kernel.depth(), kernel.q[rank - 1].span);
    let value_depth = size(kernel.value_depth(), kernel.v[rank - 1].span);
    let normalize_in_place = kernel.options.causal.is_none();
    // A kernel with fewer queries than a tile reads values where they are (`DIRECT`, the
    // runtime's `is_direct`), so its block of packed values is empty: no scratch to zero on
    // every call.
    let packed_value_rows = match kernel.queries() {
        Size::Known(n) if *n < crate::plan::TILE_ROWS => quote!(0),
        _ => quote!(KEY_BLOCK),
    };
    let (query_block, key_block) = (
        Literal::u64_unsuffixed(query_block),
        Literal::u64_unsuffixed(key_block),
    );
    let generics = &kernel.generics;
    // A causal mask becomes loop bounds: a block walks only the keys its last row sees, a
    // tile none of whose rows sees a key block skips it, and only the tiles the diagonal
    // crosses mask scores one by one.
    // A sliding window also starts a block's keys at the first one its first row sees, and
    // skips the tiles whose rows have all moved past a key block.
    let (keys_seen, tile_skip, tile_mask) = match kernel.options.causal {
        None => (
            quote!(let (keys_from, keys_seen): (usize, usize) = (0, #keys);),
            quote!(),
            quote!(),
        ),
        Some((causal, _)) => {
            let bottom_right = causal == Causal::BottomRight;
            let (keys_from, window_skip, window) = match kernel.options.window {
                None => (quote!(0), quote!(), quote!(usize::MAX)),
                Some((window, _)) => {
                    let window = Literal::u64_unsuffixed(window);
                    (
                        // Rounded down to a whole key block, so that keys fall into the
                        // same blocks whichever block of queries (and thread) walks them.
                        quote! {
                            #private::visible_keys(first_query, #queries, #keys, #bottom_right)
                                .saturating_sub(#window) / KEY_BLOCK * KEY_BLOCK
                        },
                        quote! {
                            if #private::visible_keys(first_query + first, #queries, #keys, #bottom_right)
                                .saturating_sub(#window) >= last_key
                            {
                                continue 'query_tiles;
                            }
                        },
                        quote!(#window),
                    )
                }
            };
            (
                quote! {
                    let keys_from = #keys_from;
                    let keys_seen = #private::visible_keys(
                        first_query + out.len() - 1, #queries, #keys, #bottom_right,
                    );
                },
                quote! {
                    if #private::visible_keys(first_query + last - 1, #queries, #keys, #bottom_right)
                        <= first_key
                    {
                        continue 'query_tiles;
                    }
                    #window_skip
                },
                quote! {
                    #private::mask_causal(
                        weights, first_query + first, first_key, #queries, #keys, #bottom_right, #window,
                    );
                },
            )
        }
    };
    // A soft cap bends the scores before any mask sets some to -inf.
    let tile_softcap = softcap_literal(kernel)
        .map(|cap| quote!(#private::softcap_scores(simd, weights, keys.len(), #cap);));
    // `b` names the batch entry: the heads' index split below, or the problem itself.
    let valid_here =
        |b: TokenStream| valid.then(|| quote!(let keys_valid: usize = self.valid_keys[#b];));
    let (valid_rank4, valid_rank3) = (valid_here(quote!(b)), valid_here(quote!(problem)));
    // A mask or bias: this problem's rows, `[queries or 1][keys or 1]`. An axis declared 1 is
    // broadcast: its index is 0.
    let index = |dim: &Dim, index: TokenStream| match dim.size {
        Size::Known(1) => quote!(0),
        _ => index,
    };
    let extra_rows = |name: &str, dims: &Option<Vec<Dim>>, rank4: bool| {
        let dims = dims.as_ref()?;
        let name = format_ident!("{}", name);
        let at = if rank4 {
            let (b, h) = (index(&dims[0], quote!(b)), index(&dims[1], quote!(h)));
            quote!([#b][#h])
        } else {
            let b = index(&dims[0], quote!(problem));
            quote!([#b])
        };
        Some(quote!(let #name = &self.#name #at;))
    };
    let extras_here = |rank4: bool| {
        let mask = extra_rows("mask", &kernel.mask, rank4);
        let bias = extra_rows("bias", &kernel.bias, rank4);
        quote!(#mask #bias)
    };
    let (extras_rank4, extras_rank3) = (extras_here(true), extras_here(false));
    // Per tile, the bias is added and the mask applied to each row, after the soft cap.
    let query_row = |dims: &Vec<Dim>| index(&dims[rank - 2], quote!(first_query + first + r));
    let tile_bias = kernel.bias.as_ref().map(|dims| {
        let row = query_row(dims);
        quote!(#private::add_bias(simd, row, &bias[#row], first_key, keys.len());)
    });
    let tile_keep = kernel.mask.as_ref().map(|dims| {
        let row = query_row(dims);
        quote!(#private::keep_only(row, &mask[#row], first_key, keys.len());)
    });
    // Rows are counted only where a mask or bias has a row per query.
    let per_query = [&kernel.mask, &kernel.bias]
        .into_iter()
        .flatten()
        .any(|dims| !matches!(dims[rank - 2].size, Size::Known(1)));
    let rows_of_tile = if per_query {
        quote!((r, row) in weights.iter_mut().enumerate())
    } else {
        quote!(row in weights.iter_mut())
    };
    let tile_extras = (tile_bias.is_some() || tile_keep.is_some()).then(|| {
        quote! {
            for #rows_of_tile {
                #tile_bias
                #tile_keep
            }
        }
    });
    // `operands(problem)`: a problem's queries, keys and values, for this problem and, to
    // fetch them early, the next; `problems`: how many there are.
    let (problem, problems) = match (kernel.heads(), kernel.kv_heads()) {
        (Some(heads), Some(kv_heads)) => {
            let (hq, hkv) = (
                size(heads, kernel.q[1].span),
                size(kv_heads, kernel.k[1].span),
            );
            // Grouped-query attention: query head h reads key/value head h / (Hq / Hkv).
            let kv_head = if same_size(heads, kv_heads) {
                quote!(h)
            } else {
                quote!(h / (#hq / #hkv))
            };
            // The batch entry and head, where a valid length, mask or bias is looked up.
            let batch_and_head = (valid || kernel.mask.is_some() || kernel.bias.is_some())
                .then(|| quote!(let (b, h) = (problem / #hq, problem % #hq);));
            (
                quote! {
                    let operands = |problem: usize| {
                        let (b, h) = (problem / #hq, problem % #hq);
                        let kv_head = #kv_head;
                        (&self.q[b][h], &self.k[b][kv_head], &self.v[b][kv_head])
                    };
                    let (q, k, v) = operands(problem);
                    #batch_and_head
                    #valid_rank4
                    #extras_rank4
                },
                quote!(self.q.len() * #hq),
            )
        }
        _ => (
            quote! {
                let operands = |problem: usize| (&self.q[problem], &self.k[problem], &self.v[problem]);
                let (q, k, v) = operands(problem);
                #valid_rank3
                #extras_rank3
            },
            quote!(self.q.len()),
        ),
    };
    // The output, and the weights and the log-sum-exp when returned, as one slice of rows
    // each (a row of each for each output row, in the same order): all axes but the last
    // of the output, flattened.
    let rows = flat(rank - 1, true);
    let (lse_rows, lse_rows_write) = match kernel.options.return_lse {
        None => (quote!(&mut []), quote!()),
        Some(_) => (
            quote!(lse #rows),
            quote!(#private::log_sum_exp(simd, &running_max, &running_sum, lse);),
        ),
    };
    let weights_binding = match kernel.options.return_weights {
        Some(_) => quote!(weights: weight_rows),
        None => quote!(weights: _),
    };
    let lse_binding = match kernel.options.return_lse {
        Some(_) => quote!(lse),
        None => quote!(lse: _),
    };
    let batch = size(kernel.batch(), kernel.q[0].span);
    let mut fields = Vec::new();
    let mut field_inits = Vec::new();
    if valid {
        fields.push(quote!(valid_keys: &'a [usize; #batch],));
        field_inits.push(quote!(valid_keys,));
    }
    if let Some(dims) = &kernel.mask {
        let ty = array_of(dims, quote!(bool));
        fields.push(quote!(mask: &'a #ty,));
        field_inits.push(quote!(mask,));
    }
    if let Some(dims) = &kernel.bias {
        let ty = array_type(dims);
        fields.push(quote!(bias: &'a #ty,));
        field_inits.push(quote!(bias,));
    }
    // One key block's scores for one tile of query rows, with every option applied: the
    // first pass turns them into the online softmax, the weights' pass into weights.
    let tile_scores = quote! {
        let last = ::core::cmp::min(first + #private::TILE_ROWS, out.len());
        #tile_skip
        let queries = &q[first_query + first..first_query + last];
        if Self::DIRECT {
            #private::scores_direct(simd, queries, keys, scale, scores);
        } else {
            #private::scores(simd, queries, packed_keys, keys.len(), scale, scores);
        }
        let weights = &mut scores[..last - first];
        #tile_softcap
        #tile_extras
        #tile_mask
    };
    // The weights, once each row's max and sum are final: the scores again, block by block
    // (the same arithmetic, so the same scores), each `exp(s - max) / sum`.
    let (weight_rows, weights_pass) = match kernel.options.return_weights {
        None => (quote!(&mut []), quote!()),
        Some(_) => (
            quote!(weights #rows),
            quote! {
                weight_rows.fill([0.0f32; #all_keys]);
                let mut inverse_sums = [0.0f32; #query_block];
                #private::inverse_sums(simd, &running_sum, &mut inverse_sums);
                'key_blocks: for first_key in (keys_from..keys_seen).step_by(KEY_BLOCK) {
                    let last_key = ::core::cmp::min(first_key + KEY_BLOCK, keys_seen);
                    let keys = &k[first_key..last_key];
                    if !Self::DIRECT {
                        #private::pack_keys(simd, keys, packed_keys);
                    }
                    'query_tiles: for first in (0..out.len()).step_by(#private::TILE_ROWS) {
                        #tile_scores
                        #private::write_weights(
                            simd,
                            weights,
                            &running_max[first..last],
                            &inverse_sums[first..last],
                            &mut weight_rows[first..last],
                            first_key,
                            keys.len(),
                        );
                    }
                }
            },
        ),
    };
    quote! {
        struct Attention<'a, #(const #generics: usize),*> {
            q: &'a #q_ty,
            k: &'a #k_ty,
            v: &'a #v_ty,
            #(#fields)*
        }
        impl<#(const #generics: usize),*> #private::Kernel for Attention<'_, #(#generics),*> {
            type Row = [f32; #value_depth];
            type WeightsRow = [f32; #all_keys];
            const QUERIES: usize = #queries;
            const QUERY_BLOCK: usize = #query_block;
            const FLOPS_PER_ROW: u64 = 2 * (#all_keys as u64) * ((#depth + #value_depth) as u64);

            #[inline(always)]
            fn block<Simd: #private::Simd>(
                &self,
                simd: Simd,
                problem: usize,
                first_query: usize,
                rows: #private::Rows<'_, Self>,
            ) {
                const KEY_BLOCK: usize = #key_block;
                let #private::Rows { out, #weights_binding, #lse_binding } = rows;
                #scale
                #problem
                let mut running_max = [f32::NEG_INFINITY; #query_block];
                let mut running_sum = [[0.0f32; #private::MAX_LANES]; #query_block];
                let mut packed_keys = #private::Aligned([[0.0f32; KEY_BLOCK]; #depth]);
                let packed_keys = &mut packed_keys.0;
                let mut packed_values =
                    #private::Aligned([[0.0f32; #value_depth]; #packed_value_rows]);
                let mut scores = #private::Aligned([[0.0f32; KEY_BLOCK]; #private::TILE_ROWS]);
                let scores = &mut scores.0;
                #keys_seen
                // While the last block of a problem runs, the next problem's operands are
                // fetched into the cache, a part per tile.
                let next: [&[f32]; 3] = match problem + 1 {
                    next if next < #problems && first_query + out.len() == #queries => {
                        let (q, k, v) = operands(next);
                        [q.as_flattened(), k.as_flattened(), v.as_flattened()]
                    }
                    _ => [&[]; 3],
                };
                let key_blocks = keys_seen.saturating_sub(keys_from).div_ceil(KEY_BLOCK);
                let ahead = #private::Ahead::new(next, key_blocks, out.len());
                'key_blocks: for first_key in (keys_from..keys_seen).step_by(KEY_BLOCK) {
                    let last_key = ::core::cmp::min(first_key + KEY_BLOCK, keys_seen);
                    let (keys, values) = (&k[first_key..last_key], &v[first_key..last_key]);
                    let values = if Self::DIRECT {
                        values
                    } else {
                        #private::pack_keys(simd, keys, packed_keys);
                        #private::values_on_lines(values, &mut packed_values.0)
                    };
                    'query_tiles: for first in (0..out.len()).step_by(#private::TILE_ROWS) {
                        #tile_scores
                        let state = #private::online_softmax(
                            simd,
                            weights,
                            &mut running_max[first..last],
                            &mut running_sum[first..last],
                            &mut out[first..last],
                        );
                        if Self::DIRECT {
                            #private::accumulate_values_by_row(
                                simd,
                                weights,
                                values,
                                &mut out[first..last],
                                state,
                            );
                        } else {
                            #private::accumulate_values(
                                simd,
                                weights,
                                values,
                                &mut out[first..last],
                                state,
                            );
                        }
                        // Without a causal mask every tile sees the last key block: its rows
                        // are final there, and normalized while they are in the cache.
                        if #normalize_in_place && last_key == keys_seen {
                            #private::normalize(
                                simd,
                                &mut out[first..last],
                                &running_sum[first..last],
                            );
                        }
                        ahead.fetch(
                            (first_key - keys_from) / KEY_BLOCK,
                            first / #private::TILE_ROWS,
                        );
                    }
                }
                // Rows that no key block normalized: all of them under a causal mask (a tile
                // may skip the last blocks), or when there were no keys at all.
                if !#normalize_in_place || key_blocks == 0 {
                    #private::normalize(simd, out, &running_sum);
                }
                #lse_rows_write
                #weights_pass
            }
        }
        #private::run(
            &Attention { #q, #k, #v, #(#field_inits)* },
            #private::Rows { out: out #rows, weights: #weight_rows, lse: #lse_rows },
        );
    }
}

/// The contents of the facts module: `info()` for every kernel, `INFO` where no size is
/// left to a const generic.
fn info(kernel: &Kernel, plan: Plan, name: &Ident) -> TokenStream {
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
        Plan::Unrolled => quote!(::attn_runtime::Plan::Unrolled),
        Plan::Scalar => quote!(::attn_runtime::Plan::Scalar),
        Plan::Tiled {
            query_block,
            key_block,
        } => {
            let (qb, kb) = (
                Literal::u64_unsuffixed(query_block),
                Literal::u64_unsuffixed(key_block),
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

/// A 16-bit kernel: q, k and v widened to f32 on the heap, the f32 `body` on them (it
/// writes `out` as f32), and the output rounded back to the stored type.
fn widened(kernel: &Kernel, body: TokenStream) -> TokenStream {
    let private = private();
    let rank = kernel.rank();
    let [q, k, v] = &kernel.roles;
    let (q_ty, k_ty, v_ty, out_ty) = (
        array_type(&kernel.q),
        array_type(&kernel.k),
        array_type(&kernel.v),
        array_type(&kernel.out()),
    );
    let (flat, flat_mut) = (flat(rank, false), flat(rank, true));
    quote! {
        // f16 and bf16 are stored; the kernel computes in f32.
        let mut q_wide = ::attn_runtime::Tensor::<#q_ty>::zeros();
        let mut k_wide = ::attn_runtime::Tensor::<#k_ty>::zeros();
        let mut v_wide = ::attn_runtime::Tensor::<#v_ty>::zeros();
        #private::widen(#q #flat, q_wide.as_flat_mut());
        #private::widen(#k #flat, k_wide.as_flat_mut());
        #private::widen(#v #flat, v_wide.as_flat_mut());
        let mut out_wide = ::attn_runtime::Tensor::<#out_ty>::zeros();
        {
            let (#q, #k, #v) = (&*q_wide, &*k_wide, &*v_wide);
            let out = &mut *out_wide;
            #body
        }
        #private::narrow(out_wide.as_flat(), out #flat_mut);
    }
}

/// A `dtype = f64` kernel: the runtime's row-by-row f64 path, given the shape and the
/// options.
fn scalar_body(kernel: &Kernel) -> TokenStream {
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
    let (flat, flat_mut) = (flat(rank, false), flat(rank, true));
    let weights = match kernel.options.return_weights {
        Some(_) => quote!(weights #flat_mut),
        None => quote!(&mut []),
    };
    let lse = match kernel.options.return_lse {
        Some(_) => {
            let lse_flat = self::flat(rank - 1, true);
            quote!(lse #lse_flat)
        }
        None => quote!(&mut []),
    };
    quote! {
        #private::scalar::run(
            &#private::scalar::Problem {
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
            },
            out #flat_mut,
            #weights,
            #lse,
        );
    }
}
