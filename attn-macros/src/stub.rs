//! The fallback for a kernel with errors: its signature, rendered by the same builder as a
//! checked kernel's (`emit/signature.rs`), with a body that never runs.
//!
//! The stub lets the user's calls type-check while the errors are fixed, so that each
//! mistake shows as one error at its token, not as a cascade of "cannot find function" at
//! every call. Its model is the checked model built leniently: every size the checker could
//! not establish (an invalid literal, a name whose binding is broken, a missing tensor, an
//! axis of a tensor whose rank is wrong) becomes a const generic parameter, inferred from the
//! arguments, and the options are those that were well formed.

use crate::ast::{DimToken, KernelDecl, SizeToken, TensorDecl};
use crate::emit::{layer_functions, signature};
use crate::errors::Errors;
use crate::model::{Dim, Kernel, Layer, Size};
use proc_macro2::{Span, TokenStream};
use quote::format_ident;
use std::collections::HashMap;
use syn::Ident;

/// `fn name(..) -> ..` and `fn name_into(..)`, both with bodies that never run.
pub fn kernel(decl: &KernelDecl) -> TokenStream {
    let kernel = Lenient::new(decl).kernel(decl);
    match &kernel.layer {
        Some(layer) => layer_functions(&kernel, layer, &decl.name, true),
        None => {
            let forward = signature::attention(
                &kernel,
                &decl.name,
                &kernel.attrs,
                "",
                signature::Body::Stub,
            );
            let backward = kernel.options.backward.map(|_| {
                signature::backward(&kernel, &decl.name, &kernel.attrs, signature::Body::Stub)
            });
            quote::quote!(#forward #backward)
        }
    }
}

/// The sizes of the stub's signature.
struct Lenient {
    /// Names validly bound in the `where` clause.
    bound: HashMap<String, u64>,
    /// Every other name, and the generic parameter that stands for it.
    names: HashMap<String, Ident>,
    params: Vec<Ident>,
}

impl Lenient {
    fn new(decl: &KernelDecl) -> Self {
        let mut bound: HashMap<String, u64> = HashMap::new();
        for binding in &decl.bindings {
            if let SizeToken::Int(lit) = &binding.value
                && let Ok(n @ 1..=0xFFFF_FFFF) = lit.base10_digits().parse::<u64>()
            {
                bound.entry(binding.name.to_string()).or_insert(n);
            }
        }
        Lenient {
            bound,
            names: HashMap::new(),
            params: Vec::new(),
        }
    }

    /// A new const generic parameter, with a name no user can have written.
    fn fresh(&mut self) -> Size {
        let param = format_ident!("__ATTN_STUB_{}", self.params.len());
        self.params.push(param.clone());
        Size::Generic(param)
    }

    fn dim(&mut self, dim: &DimToken) -> Dim {
        let (size, span) = match dim {
            DimToken::Name(name) => {
                let key = name.to_string();
                let size = match (self.bound.get(&key), self.names.get(&key)) {
                    (Some(n), _) => Size::Known(*n),
                    (None, Some(param)) => Size::Generic(param.clone()),
                    (None, None) => {
                        let size = self.fresh();
                        if let Size::Generic(param) = &size {
                            self.names.insert(key, param.clone());
                        }
                        size
                    }
                };
                (size, name.span())
            }
            DimToken::Size(SizeToken::Int(lit)) => match lit.base10_digits().parse::<u64>() {
                Ok(n @ 1..=0xFFFF_FFFF) => (Size::Known(n), lit.span()),
                _ => (self.fresh(), lit.span()),
            },
            DimToken::Size(SizeToken::Invalid { span, .. }) => (self.fresh(), *span),
        };
        Dim { size, span }
    }

    /// The dimensions of `tensor` if it has `rank` axes; otherwise (or without the tensor)
    /// `rank` fresh ones, so that a wrong rank costs the stub nothing.
    fn dims(&mut self, tensor: Option<&TensorDecl>, rank: usize) -> Vec<Dim> {
        match tensor {
            Some(tensor) if tensor.dims.len() == rank => {
                tensor.dims.iter().map(|d| self.dim(d)).collect()
            }
            _ => (0..rank)
                .map(|_| Dim {
                    size: self.fresh(),
                    span: Span::call_site(),
                })
                .collect(),
        }
    }

    fn kernel(mut self, decl: &KernelDecl) -> Kernel {
        const ROLES: [&str; 5] = ["q", "k", "v", "x", "out"];
        let role = |name: &str| {
            decl.tensors.iter().find(|t| t.role == name).or_else(|| {
                (ROLES[..3].contains(&name))
                    .then(|| {
                        decl.tensors
                            .iter()
                            .find(|t| !ROLES.iter().any(|r| t.role == r))
                    })
                    .flatten()
            })
        };
        // The rank of the first of q, k and v declared, if it is one a kernel can have.
        let rank = (decl.tensors.iter())
            .find(|t| t.role != "x" && t.role != "out")
            .map(|t| t.dims.len())
            .filter(|rank| (3..=4).contains(rank))
            .unwrap_or(3);
        let (q, k, v) = (
            self.dims(role("q"), rank),
            self.dims(role("k"), rank),
            self.dims(role("v"), rank),
        );
        let roles = ["q", "k", "v"].map(|name| {
            let span = role(name).map_or(Span::call_site(), |t| t.role.span());
            Ident::new(name, span)
        });
        let options = crate::check::options(&decl.options, &mut Errors::default());
        // A mask or bias: every size a fresh parameter, inferred from the caller's argument.
        let mut extra =
            |tensor: &Option<TensorDecl>| tensor.as_ref().map(|_| self.dims(None, rank));
        let (mask, bias) = (extra(&options.mask), extra(&options.bias));
        let layer = role("x").map(|x| {
            let x = self.dims(Some(x), 3);
            let out = role("out").map(|out| {
                let mut dims = x[..2].to_vec();
                dims.push(match out.dims.last() {
                    Some(width) => self.dim(width),
                    None => x[2].clone(),
                });
                dims
            });
            let features = [(); 3].map(|_| Dim {
                size: self.fresh(),
                span: Span::call_site(),
            });
            Layer {
                x,
                out,
                x_role: Ident::new("x", Span::call_site()),
                features,
                merged: self.fresh(),
            }
        });
        Kernel {
            attrs: vec![syn::parse_quote!(
                #[allow(unused_variables, non_upper_case_globals, clippy::all)]
            )],
            vis: decl.vis.clone(),
            name: decl.name.clone(),
            options,
            q,
            k,
            v,
            generics: self.params,
            mask,
            bias,
            layer,
            roles,
        }
    }
}
