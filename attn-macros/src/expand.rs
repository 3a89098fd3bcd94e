//! The macro's core, as a plain function over token streams: parse, check, plan, emit.

use crate::ast::KernelDecl;
use crate::errors::Errors;
use crate::{check, emit, parse, plan, stub};
use proc_macro2::TokenStream;
use std::collections::HashMap;
use syn::ext::IdentExt;

/// Expands one `attention!` invocation. Never panics: every kernel that passes its checks
/// becomes code; every other kernel becomes a stub beside a `compile_error!` for each of its
/// errors, so the user sees all of them at once.
pub fn attention(input: TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    let kernels = parse::invocation(input, &mut errors);
    let mut output = TokenStream::new();
    // Every item name a kernel defines, unraw (`r#f` is `f`), and the kernel that defined
    // it, with what it is ("kernel" or "layer").
    let mut defined: HashMap<String, (String, &str)> = HashMap::new();
    for parsed in kernels {
        let mut kernel_errors = Errors::default();
        let name = parsed.kernel.name.unraw().to_string();
        let items = item_names(&parsed.kernel);
        let what = if is_layer(&parsed.kernel) {
            "layer"
        } else {
            "kernel"
        };
        let clash = items
            .iter()
            .find_map(|item| Some((item, defined.get(item)?)));
        let is_new = clash.is_none();
        match clash {
            Some((item, (owner, _))) if *item == name && *owner == name => {
                kernel_errors.at(
                    parsed.kernel.name.span(),
                    format!("a kernel named `{name}` is already declared in this invocation"),
                    "give each kernel its own name",
                );
            }
            Some((item, (owner, _))) if item.ends_with("_into") && !owner.ends_with("_into") => {
                kernel_errors.at(
                    parsed.kernel.name.span(),
                    format!(
                        "the kernel `{name}` clashes with another kernel's `_into` form: \
                         both define `{item}`"
                    ),
                    "each kernel `x` also defines `x_into` (and a layer `x` defines \
                     `x_attention` and `x_attention_into`): rename one of them",
                );
            }
            Some((item, (owner, owner_is))) => {
                kernel_errors.at(
                    parsed.kernel.name.span(),
                    format!(
                        "the {what} `{name}` and the {owner_is} `{owner}` both define `{item}`"
                    ),
                    "each kernel `x` also defines `x_into` (and a layer `x` defines \
                     `x_attention` and `x_attention_into`): rename one of them",
                );
            }
            None => {
                for item in items {
                    defined.insert(item, (name.clone(), what));
                }
            }
        }
        let checked = if parsed.complete {
            check::kernel(&parsed.kernel, &mut kernel_errors)
        } else {
            None
        };
        match checked {
            Some(kernel) if kernel_errors.is_empty() => {
                output.extend(emit::kernel(&kernel, plan::plan(&kernel)));
            }
            _ => {
                if is_new {
                    output.extend(stub::kernel(&parsed.kernel));
                }
                errors.extend(kernel_errors);
            }
        }
    }
    if let Some(error) = errors.combine() {
        output.extend(error.to_compile_error());
    }
    output
}

/// The functions a kernel defines, by name: `x` and `x_into`, for a layer also its
/// attention's `x_attention` and `x_attention_into`, and with `backward` also
/// `x_backward` and `x_backward_into`. (The facts module `x` is in the type
/// namespace, beside the function `x`.)
fn item_names(kernel: &KernelDecl) -> Vec<String> {
    let name = kernel.name.unraw().to_string();
    let mut bases = vec![name.clone()];
    if is_layer(kernel) {
        bases.push(format!("{name}_attention"));
    }
    if kernel
        .options
        .iter()
        .any(|option| option.name == "backward")
    {
        bases.push(format!("{name}_backward"));
    }
    bases
        .into_iter()
        .flat_map(|base| [format!("{base}_into"), base].into_iter().rev())
        .collect()
}

/// Whether the kernel declares embeddings `x`: a layer.
fn is_layer(kernel: &KernelDecl) -> bool {
    kernel.tensors.iter().any(|t| t.role == "x")
}
