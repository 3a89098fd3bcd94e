//! The `#[attn(..)]` options of a kernel (docs/DESIGN.md section 5), checked: each value of the kind
//! its option takes, no option twice, and unknown options named with a suggestion. Their
//! syntax is parsed by `parse.rs` into [`OptionDecl`]s.

use crate::ast::{NumberLiteral, OptionDecl, OptionValue, TensorDecl};
use crate::errors::{Errors, edit_distance};
use crate::model::{Causal, Dtype, Options};
use proc_macro2::Span;
use syn::Ident;

/// Options available in this version.
const AVAILABLE: &[&str] = &[
    "scale",
    "causal",
    "window",
    "softcap",
    "mask",
    "bias",
    "valid_lengths",
    "valid_queries",
    "return_weights",
    "return_lse",
    "backward",
    "split_heads",
    "dtype",
];

/// The options of a kernel, from its parsed `#[attn(..)]` lists, reporting every unknown,
/// malformed or repeated one.
pub fn options(decls: &[OptionDecl], errors: &mut Errors) -> Options {
    let mut options = Options::default();
    for decl in decls {
        apply(&mut options, decl.name.clone(), decl.value.clone(), errors);
    }
    // The backward pass reads the forward's log-sum-exp, so `backward` returns it (with
    // `return_lse` or without).
    if let Some(span) = options.backward {
        options.return_lse.get_or_insert(span);
    }
    options
}

/// The alignment inside `causal(..)`.
fn alignment(args: &proc_macro2::Group, errors: &mut Errors) -> Option<Causal> {
    let help = "write `causal(top_left)` (query i sees keys 0..=i, as PyTorch) or \
                `causal(bottom_right)` (the queries are the last positions, as FlashAttention)";
    match syn::parse2::<Ident>(args.stream()) {
        Ok(ident) if ident == "top_left" => Some(Causal::TopLeft),
        Ok(ident) if ident == "bottom_right" => Some(Causal::BottomRight),
        Ok(ident) => {
            errors.at(
                ident.span(),
                format!("unknown causal alignment `{ident}`"),
                help,
            );
            None
        }
        Err(_) => {
            errors.at(args.span(), "expected `top_left` or `bottom_right`", help);
            None
        }
    }
}

fn apply(options: &mut Options, name: Ident, value: OptionValue, errors: &mut Errors) {
    let text = name.to_string();
    match text.as_str() {
        "scale" => {
            let scale = number(&name, value, errors, SCALE_HELP, |n| {
                positive_normal(n, "the scale")
            });
            set_once(&mut options.scale, scale, &name, errors);
        }
        "softcap" => {
            let cap = number(&name, value, errors, SOFTCAP_HELP, |n| {
                positive_normal(n, "a soft cap")
            });
            set_once(&mut options.softcap, cap, &name, errors);
        }
        "window" => {
            let window = number(&name, value, errors, WINDOW_HELP, |n| {
                (n.integer && (1.0..=u32::MAX as f64).contains(&n.value))
                    .then_some(())
                    .ok_or_else(|| {
                        format!(
                            "a window of {} keys is not a positive whole number (at most 2^32 - 1)",
                            n.text
                        )
                    })
            });
            let window = window.map(|(w, _)| (w as u64, name.span()));
            set_once(&mut options.window, window, &name, errors);
        }
        "valid_lengths" => {
            let flag = flag(&name, value, errors, VALID_LENGTHS_HELP);
            set_once(&mut options.valid_lengths, flag, &name, errors);
        }
        "valid_queries" => {
            let flag = flag(&name, value, errors, VALID_QUERIES_HELP);
            set_once(&mut options.valid_queries, flag, &name, errors);
        }
        "return_lse" => {
            let flag = flag(&name, value, errors, RETURN_LSE_HELP);
            set_once(&mut options.return_lse, flag, &name, errors);
        }
        "backward" => {
            let flag = flag(&name, value, errors, BACKWARD_HELP);
            set_once(&mut options.backward, flag, &name, errors);
        }
        "split_heads" => {
            let flag = flag(&name, value, errors, SPLIT_HEADS_HELP);
            set_once(&mut options.split_heads, flag, &name, errors);
        }
        "return_weights" => {
            let flag = flag(&name, value, errors, RETURN_WEIGHTS_HELP);
            set_once(&mut options.return_weights, flag, &name, errors);
        }
        "mask" => {
            let mask = shape(&name, value, errors, MASK_HELP);
            set_once(&mut options.mask, mask, &name, errors);
        }
        "bias" => {
            let bias = shape(&name, value, errors, BIAS_HELP);
            set_once(&mut options.bias, bias, &name, errors);
        }
        "causal" => {
            let causal = match value {
                OptionValue::None => Some(Causal::Square),
                OptionValue::Args(args) => alignment(&args, errors),
                OptionValue::Number(..)
                | OptionValue::Shape(_)
                | OptionValue::Word(_)
                | OptionValue::Other(_) => {
                    errors.at(
                        value_span(&value),
                        "`causal` takes no value",
                        "write `causal`, `causal(top_left)` or `causal(bottom_right)`",
                    );
                    None
                }
            };
            let causal = causal.map(|causal| (causal, name.span()));
            set_once(&mut options.causal, causal, &name, errors);
        }
        "dtype" => {
            let dtype = match value {
                OptionValue::Word(word) => match Dtype::named(&word.to_string()) {
                    Some(dtype) => Some((dtype, word.span())),
                    None => {
                        errors.at(
                            word.span(),
                            format!("unknown element type `{word}`"),
                            DTYPE_HELP,
                        );
                        None
                    }
                },
                other => {
                    let span = match other {
                        OptionValue::None => name.span(),
                        other => value_span(&other),
                    };
                    errors.at(span, "`dtype` takes an element type", DTYPE_HELP);
                    None
                }
            };
            set_once(&mut options.dtype, dtype, &name, errors);
        }
        _ => {
            let suggestion = AVAILABLE
                .iter()
                .filter(|known| edit_distance(known, &text) <= 2)
                .min_by_key(|known| edit_distance(known, &text));
            let help = match suggestion {
                Some(known) => format!("did you mean `{known}`?"),
                None => format!("the options available now are: {}", AVAILABLE.join(", ")),
            };
            errors.at(name.span(), format!("unknown option `{text}`"), help);
        }
    }
}

const SCALE_HELP: &str = "write a positive scale such as `scale = 0.125`; without the option the scale is 1 / sqrt(depth)";
const SOFTCAP_HELP: &str = "write the largest score magnitude, such as `softcap = 30.0`: each score s becomes 30 · tanh(s / 30)";
const WINDOW_HELP: &str = "write the number of keys each query sees, such as `window = 256`: with `causal`, each query sees its 256 most recent keys";

const VALID_LENGTHS_HELP: &str =
    "write `valid_lengths`: the kernel then takes each batch entry's number of valid keys";
const VALID_QUERIES_HELP: &str =
    "write `valid_queries`: the kernel then takes each batch entry's number of valid query rows";
const DTYPE_HELP: &str = "write `dtype = f64` (all in f64), `dtype = f16` or `dtype = bf16` (stored \
                          16-bit, computed in f32); without the option the element type is f32";
const SPLIT_HEADS_HELP: &str =
    "write `split_heads`: a layer's model width is then checked to be its heads times their depth";
const RETURN_WEIGHTS_HELP: &str =
    "write `return_weights`: the kernel then also returns the attention weights, `[.., Nq, Nk]`";
const MASK_HELP: &str = "write the mask's shape, such as `mask = [B, 1, Nq, Nk]`: each axis is the \
                         kernel's (batch, heads, queries, keys) or 1 to broadcast over it; true = attend";
const BIAS_HELP: &str = "write the bias's shape, such as `bias = [1, H, Nq, Nk]`: each axis is the \
                         kernel's (batch, heads, queries, keys) or 1 to broadcast over it";
const BACKWARD_HELP: &str = "write `backward`: the kernel then also returns each query row's \
                             log-sum-exp, and `name_backward` computes the gradients of q, k and v";
const RETURN_LSE_HELP: &str =
    "write `return_lse`: the kernel then also returns each query row's log-sum-exp";

/// An option that is a bare word, such as `valid_lengths`: its span, or an error at the value.
fn flag(name: &Ident, value: OptionValue, errors: &mut Errors, help: &str) -> Option<Span> {
    if let OptionValue::None = value {
        return Some(name.span());
    }
    errors.at(value_span(&value), format!("`{name}` takes no value"), help);
    None
}

/// Where the value of an option is: its number, arguments or shape.
fn value_span(value: &OptionValue) -> Span {
    match value {
        OptionValue::None => Span::call_site(),
        OptionValue::Number(number) => number.span,
        OptionValue::Args(args) => args.span(),
        OptionValue::Shape(tensor) => tensor.bracket.span.join(),
        OptionValue::Word(word) => word.span(),
        OptionValue::Other(span) => *span,
    }
}

/// The declared shape of `mask = [..]` or `bias = [..]`, or an error at the option.
fn shape(name: &Ident, value: OptionValue, errors: &mut Errors, help: &str) -> Option<TensorDecl> {
    match value {
        OptionValue::Shape(tensor) => Some(tensor),
        OptionValue::None => {
            errors.at(name.span(), format!("`{name}` needs a shape"), help);
            None
        }
        other => {
            errors.at(
                value_span(&other),
                format!("`{name}` takes a shape in brackets"),
                help,
            );
            None
        }
    }
}

/// The number of `name = x`, or an error at the value (or at the name, if there is none):
/// `valid` says why a number is refused, `help` how to write the option. A literal with an
/// integer suffix (`4u8`) is refused, as in sizes; `f32` and `f64` suffixes are kept.
fn number(
    name: &Ident,
    value: OptionValue,
    errors: &mut Errors,
    help: &str,
    valid: impl Fn(&NumberLiteral) -> Result<(), String>,
) -> Option<(f64, Span)> {
    match value {
        OptionValue::Number(number) if !matches!(number.suffix.as_str(), "" | "f32" | "f64") => {
            errors.at(
                number.span,
                format!("`{name}` has the suffix `{}`", number.suffix),
                format!(
                    "write `{name} = {}`: a number in an option takes no integer suffix",
                    number.text
                ),
            );
            None
        }
        OptionValue::Number(number) => match valid(&number) {
            Ok(()) => Some((number.value, number.span)),
            Err(problem) => {
                errors.at(number.span, problem, help);
                None
            }
        },
        OptionValue::None | OptionValue::Args(_) => {
            errors.at(name.span(), format!("`{name}` needs a value"), help);
            None
        }
        OptionValue::Shape(_) | OptionValue::Word(_) | OptionValue::Other(_) => {
            let what = match value {
                OptionValue::Word(_) => "a word",
                OptionValue::Shape(_) => "a shape",
                _ => "this value",
            };
            errors.at(
                value_span(&value),
                format!("`{name}` takes a number, not {what}"),
                help,
            );
            None
        }
    }
}

/// A scale or a soft cap is used in f32, and a soft cap divided by: it must be a positive
/// normal f32 (not 0, not subnormal, not past f32's range) whose reciprocal is finite too.
fn positive_normal(number: &NumberLiteral, what: &str) -> Result<(), String> {
    let value = number.value as f32;
    if number.value > 0.0 && value.is_normal() && value.recip().is_finite() {
        Ok(())
    } else {
        Err(format!(
            "{what} of {} is not a positive number within f32's normal range (about 1.2e-38 to 3.4e38)",
            number.text
        ))
    }
}

/// Records an option, or reports that it was given before.
fn set_once<T>(slot: &mut Option<T>, value: Option<T>, name: &Ident, errors: &mut Errors) {
    if slot.is_some() {
        errors.at(
            name.span(),
            format!("`{name}` is given twice"),
            format!("keep one `{name}`"),
        );
    } else if value.is_some() {
        *slot = value;
    }
}
