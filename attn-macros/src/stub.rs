//! The fallback for a kernel with errors: its signature, with a body that never runs.
//!
//! The stub lets the user's calls type-check while the errors are fixed, so that each
//! mistake shows as one error at its token, not as a cascade of "cannot find function" at
//! every call. Every size the checker could not establish (an invalid literal, a name whose
//! binding is broken, a missing tensor) becomes a const generic parameter, inferred from the
//! arguments, so the stub accepts whatever the caller passes.

use crate::ast::{DimToken, KernelDecl, SizeToken};
use crate::options::Dtype;
use proc_macro2::{Delimiter, Literal, TokenStream, TokenTree};
use quote::{format_ident, quote};
use std::collections::HashMap;
use syn::Ident;

/// `fn name(..) -> ..` and `fn name_into(..)`, both with `unreachable!` bodies.
pub fn kernel(decl: &KernelDecl) -> TokenStream {
    let mut bound: HashMap<String, u64> = HashMap::new();
    for binding in &decl.bindings {
        if let SizeToken::Int(lit) = &binding.value
            && let Ok(n @ 1..) = lit.base10_digits().parse::<u64>()
        {
            bound.entry(binding.name.to_string()).or_insert(n);
        }
    }
    let mut generics = Stub {
        bound,
        names: HashMap::new(),
        params: Vec::new(),
    };
    let role = |name: &str| {
        decl.tensors.iter().find(|t| t.role == name).or_else(|| {
            decl.tensors
                .iter()
                .find(|t| !["q", "k", "v", "x", "out"].iter().any(|r| t.role == r))
        })
    };
    let rank = decl
        .tensors
        .iter()
        .find(|t| t.role != "x")
        .map_or(3, |t| t.dims.len());
    let mut dims_of = |name: &str| -> Vec<TokenStream> {
        match role(name) {
            Some(tensor) => tensor.dims.iter().map(|d| generics.dim(d)).collect(),
            None => (0..rank).map(|_| generics.fresh()).collect(),
        }
    };
    let (q, k, v) = (dims_of("q"), dims_of("k"), dims_of("v"));
    let batch = q.first().cloned();
    let mut out: Vec<TokenStream> = q.iter().take(q.len().saturating_sub(1)).cloned().collect();
    out.extend(v.last().cloned().or_else(|| Some(generics.fresh())));
    let (stored, computed) = elements(decl);
    let lse = nest_of(&out[..out.len().saturating_sub(1)], computed.clone());
    let mut weights: Vec<TokenStream> = out
        .iter()
        .take(out.len().saturating_sub(1))
        .cloned()
        .collect();
    weights.extend(
        k.iter()
            .rev()
            .nth(1)
            .cloned()
            .or_else(|| Some(generics.fresh())),
    );
    let weights = nest_of(&weights, computed.clone());
    // A mask or bias: every size a fresh parameter, inferred from the caller's argument.
    let mut extra = |option: &str, element: TokenStream| {
        declared_rank(decl, option).map(|rank| {
            let dims: Vec<TokenStream> = (0..rank).map(|_| generics.fresh()).collect();
            let ty = nest_of(&dims, element);
            let name = format_ident!("{}", option);
            quote!(#name: &#ty,)
        })
    };
    let (mask, bias) = (extra("mask", quote!(bool)), extra("bias", computed));
    // A layer takes the embeddings and four linear maps, and returns `[B, N, width]`.
    let layer = decl.tensors.iter().find(|t| t.role == "x").map(|x| {
        let x_dims: Vec<TokenStream> = x.dims.iter().map(|d| generics.dim(d)).collect();
        let mut out: Vec<TokenStream> = x_dims.iter().take(2).cloned().collect();
        let out_decl = decl.tensors.iter().find(|t| t.role == "out");
        out.push(match out_decl.and_then(|t| t.dims.last()) {
            Some(width) => generics.dim(width),
            None => generics.fresh(),
        });
        let mut linear = |name: &str| {
            let (input, output) = (generics.fresh(), generics.fresh());
            let name = format_ident!("{}", name);
            quote!(#name: &::attn_runtime::Linear<#input, #output>,)
        };
        let mut inputs = quote!();
        for name in ["query", "key", "value"] {
            inputs.extend(linear(name));
        }
        if out_decl.is_some() {
            inputs.extend(linear("output"));
        }
        let x_ty = nest(&x_dims);
        (quote!(x: &#x_ty, #inputs), nest(&out))
    });
    let nest = |dims: &[TokenStream]| nest_of(dims, stored.clone());
    let (q, k, v, out) = (nest(&q), nest(&k), nest(&v), nest(&out));
    let (inputs, out) = match layer {
        Some((inputs, out)) => (inputs, out),
        None => (quote!(q: &#q, k: &#k, v: &#v,), out),
    };
    let params = &generics.params;
    let generics = if params.is_empty() {
        quote!()
    } else {
        quote!(<#(const #params: usize),*>)
    };
    let name = &decl.name;
    let into = format_ident!("{}_into", name);
    let vis = &decl.vis;
    // With `return_weights` and `return_lse`, the weights and the log-sum-exp are outputs
    // too; with `valid_lengths`, the signature takes the lengths and returns a `Result`.
    let mut returned = vec![out.clone()];
    let mut out_params = quote!();
    if asks_for(decl, "return_weights") {
        returned.push(weights.clone());
        out_params.extend(quote!(weights: &mut #weights,));
    }
    if asks_for(decl, "return_lse") {
        returned.push(lse.clone());
        out_params.extend(quote!(lse: &mut #lse,));
    }
    let value = if returned.len() == 1 {
        out.clone()
    } else {
        quote!((#(#returned),*))
    };
    let (valid, result, unit) = match (asks_for(decl, "valid_lengths"), batch) {
        (true, Some(batch)) => (
            quote!(valid_keys: &[usize; #batch],),
            quote!(::core::result::Result<#value, ::attn_runtime::ValidLengthError>),
            quote!(-> ::core::result::Result<(), ::attn_runtime::ValidLengthError>),
        ),
        _ => (quote!(), value, quote!()),
    };
    quote! {
        #[allow(unused_variables, non_upper_case_globals, clippy::all)]
        #vis fn #name #generics(#inputs #mask #bias #valid) -> #result {
            ::core::unreachable!("attention! reported an error for this kernel")
        }
        #[allow(unused_variables, non_upper_case_globals, clippy::all)]
        #vis fn #into #generics(#inputs #mask #bias #valid out: &mut #out, #out_params) #unit {
            ::core::unreachable!("attention! reported an error for this kernel")
        }
    }
}

/// The tokens of each `#[attn(..)]` list of the kernel, however they parse otherwise.
fn option_lists(decl: &KernelDecl) -> impl Iterator<Item = Vec<TokenTree>> + '_ {
    decl.attrs
        .iter()
        .filter(|attr| attr.path().is_ident("attn"))
        .filter_map(|attr| attr.meta.require_list().ok())
        .map(|list| list.tokens.clone().into_iter().collect())
}

/// Whether the kernel's options include `option`.
fn asks_for(decl: &KernelDecl, option: &str) -> bool {
    option_lists(decl).any(|tokens| tokens.iter().any(|t| t.to_string() == option))
}

/// The token after `option =` in the kernel's options.
fn option_value(decl: &KernelDecl, option: &str) -> Option<TokenTree> {
    option_lists(decl).find_map(|tokens| {
        tokens.windows(3).find_map(|window| match window {
            [TokenTree::Ident(name), TokenTree::Punct(eq), value]
                if name == option && eq.as_char() == '=' =>
            {
                Some(value.clone())
            }
            _ => None,
        })
    })
}

/// The rank of the shape of `option = [..]` in the kernel's options.
fn declared_rank(decl: &KernelDecl, option: &str) -> Option<usize> {
    match option_value(decl, option)? {
        TokenTree::Group(shape) if shape.delimiter() == Delimiter::Bracket => {
            // Dimensions are separated by commas; one may trail.
            let mut dims = 0;
            let mut open = false;
            for token in shape.stream() {
                match token {
                    TokenTree::Punct(p) if p.as_char() == ',' => open = false,
                    _ if !open => (dims, open) = (dims + 1, true),
                    _ => {}
                }
            }
            Some(dims)
        }
        _ => None,
    }
}

/// The element types the kernel's options ask for: the stored one (q, k, v, out) and the
/// computed one (bias, weights, log-sum-exp); f32 when `dtype` names no element type.
fn elements(decl: &KernelDecl) -> (TokenStream, TokenStream) {
    let dtype = match option_value(decl, "dtype") {
        Some(TokenTree::Ident(name)) => Dtype::named(&name.to_string()),
        _ => None,
    }
    .unwrap_or_default();
    (dtype.stored().0, dtype.computed().0)
}

/// The sizes of the stub's signature.
struct Stub {
    /// Names validly bound in the `where` clause.
    bound: HashMap<String, u64>,
    /// Every other name, and the generic parameter that stands for it.
    names: HashMap<String, Ident>,
    params: Vec<Ident>,
}

impl Stub {
    /// A new const generic parameter, with a name no user can have written.
    fn fresh(&mut self) -> TokenStream {
        let param = format_ident!("__ATTN_STUB_{}", self.params.len());
        self.params.push(param.clone());
        quote!(#param)
    }

    fn dim(&mut self, dim: &DimToken) -> TokenStream {
        match dim {
            DimToken::Name(name) => {
                let key = name.to_string();
                if let Some(n) = self.bound.get(&key) {
                    let n = Literal::u64_unsuffixed(*n);
                    return quote!(#n);
                }
                if let Some(param) = self.names.get(&key) {
                    return quote!(#param);
                }
                let param = self.fresh();
                let ident = self.params[self.params.len() - 1].clone();
                self.names.insert(key, ident);
                param
            }
            DimToken::Size(SizeToken::Int(lit)) => match lit.base10_digits().parse::<u64>() {
                Ok(n @ 1..=0xFFFF_FFFF) => {
                    let n = Literal::u64_unsuffixed(n);
                    quote!(#n)
                }
                _ => self.fresh(),
            },
            DimToken::Size(SizeToken::Invalid { .. }) => self.fresh(),
        }
    }
}

/// `[[[f32; d2]; d1]; d0]`.
fn nest(dims: &[TokenStream]) -> TokenStream {
    nest_of(dims, quote!(f32))
}

/// The nested array of `element`s of `dims`.
fn nest_of(dims: &[TokenStream], element: TokenStream) -> TokenStream {
    dims.iter()
        .rev()
        .fold(element, |inner, n| quote!([#inner; #n]))
}
