//! The macro's core, as a plain function over token streams: parse, check, plan, emit.

use crate::errors::Errors;
use crate::{check, emit, parse, plan, stub};
use proc_macro2::TokenStream;
use std::collections::HashMap;

/// Expands one `attention!` invocation. Never panics: every kernel that passes its checks
/// becomes code; every other kernel becomes a stub beside a `compile_error!` for each of its
/// errors, so the user sees all of them at once.
pub fn attention(input: TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    let kernels = parse::invocation(input, &mut errors);
    let mut output = TokenStream::new();
    let mut names: HashMap<String, proc_macro2::Span> = HashMap::new();
    for parsed in kernels {
        let mut kernel_errors = Errors::default();
        let name = parsed.kernel.name.to_string();
        let into = format!("{name}_into");
        if names.contains_key(&name) {
            kernel_errors.at(
                parsed.kernel.name.span(),
                format!("a kernel named `{name}` is already declared in this invocation"),
                "give each kernel its own name",
            );
        } else if names.contains_key(&into)
            || name
                .strip_suffix("_into")
                .is_some_and(|base| names.contains_key(base))
        {
            kernel_errors.at(
                parsed.kernel.name.span(),
                format!("the kernel `{name}` clashes with another kernel's `_into` form"),
                "each kernel `x` also defines `x_into`: rename one of them",
            );
        }
        let checked = if parsed.complete {
            check::kernel(&parsed.kernel, &mut kernel_errors)
        } else {
            None
        };
        let is_new = !names.contains_key(&name);
        names.entry(name).or_insert(parsed.kernel.name.span());
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
