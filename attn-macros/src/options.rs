//! The `#[attn(..)]` options of a kernel (DESIGN section 5).
//!
//! ```text
//! attr    := '#[attn(' option (',' option)* ','? ')]'
//! option  := 'scale' '=' '-'? (FLOAT | INTEGER)
//!          | 'causal' ('(' ('top_left' | 'bottom_right') ')')?
//!          | 'window' '=' INTEGER
//!          | 'softcap' '=' (FLOAT | INTEGER)
//!          | 'mask' '=' shape
//!          | 'bias' '=' shape
//!          | 'valid_lengths'
//!          | 'return_weights'
//!          | 'return_lse'
//!          | 'split_heads'                   (layers: model width = heads x depth)
//!          | 'dtype' '=' ('f32' | 'f64' | 'f16' | 'bf16')
//! shape   := '[' dim (',' dim)* ','? ']'      (as a tensor's, parse.rs)
//! ```

use crate::ast::TensorDecl;
use crate::errors::{Errors, error};
use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::parse::ParseStream;
use syn::{Attribute, Ident, Lit, Token};

/// The options of one kernel, each with the span of the token that set it.
#[derive(Default)]
pub struct Options {
    /// The factor applied to every score; `None` means `1 / sqrt(depth)`.
    pub scale: Option<(f64, Span)>,
    /// A causal mask, and the span of the `causal` token.
    pub causal: Option<(Causal, Span)>,
    /// A sliding window of this many keys (with `causal`), and the span of `window`.
    pub window: Option<(u64, Span)>,
    /// `c` of a soft cap: each score `s` becomes `c · tanh(s / c)`.
    pub softcap: Option<(f64, Span)>,
    /// A boolean keep-mask argument (true = attend), declared with its shape `[.., Nq, Nk]`.
    pub mask: Option<TensorDecl>,
    /// An additive bias argument, added to the scores, declared with its shape.
    pub bias: Option<TensorDecl>,
    /// Each batch entry's number of valid keys is an argument (padding), and its span.
    pub valid_lengths: Option<Span>,
    /// The attention weights are returned beside the output, and the option's span.
    pub return_weights: Option<Span>,
    /// The element type of q, k, v and the output, and the span of its token.
    pub dtype: Option<(Dtype, Span)>,
    /// A layer's model width is its heads times their depth (as `nn.MultiheadAttention`).
    pub split_heads: Option<Span>,
    /// The log-sum-exp of each query row is returned beside the output, and its span.
    pub return_lse: Option<Span>,
}

/// How a causal mask lines the queries up with the keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Causal {
    /// `causal`: as many queries as keys, query `i` sees keys `0..=i`.
    Square,
    /// `causal(top_left)`: query `i` sees keys `0..=i`, as PyTorch's `is_causal`.
    TopLeft,
    /// `causal(bottom_right)`: the queries are the last `Nq` positions, query `i` sees keys
    /// `0..=i + Nk - Nq`, as FlashAttention and a decode step over a cache.
    BottomRight,
}

/// The element type of a kernel's tensors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Dtype {
    /// f32, computed in f32: the default.
    #[default]
    F32,
    /// f64, computed in f64.
    F64,
    /// IEEE half precision, stored; computed in f32.
    F16,
    /// bfloat16, stored; computed in f32.
    Bf16,
}

impl Dtype {
    const ALL: [Dtype; 4] = [Dtype::F32, Dtype::F64, Dtype::F16, Dtype::Bf16];

    /// As the user writes it.
    pub fn name(self) -> &'static str {
        match self {
            Dtype::F32 => "f32",
            Dtype::F64 => "f64",
            Dtype::F16 => "f16",
            Dtype::Bf16 => "bf16",
        }
    }

    /// The element type named `name`, as the user writes it.
    pub fn named(name: &str) -> Option<Dtype> {
        Dtype::ALL.into_iter().find(|dtype| dtype.name() == name)
    }

    /// Bytes of one element.
    pub fn bytes(self) -> u64 {
        match self {
            Dtype::F32 => 4,
            Dtype::F64 => 8,
            Dtype::F16 | Dtype::Bf16 => 2,
        }
    }

    /// The Rust type q, k, v and the output are stored in, and its zero.
    pub fn stored(self) -> (TokenStream, TokenStream) {
        match self {
            Dtype::F32 => (quote!(f32), quote!(0.0f32)),
            Dtype::F64 => (quote!(f64), quote!(0.0f64)),
            Dtype::F16 => (
                quote!(::attn_runtime::half::f16),
                quote!(::attn_runtime::half::f16::ZERO),
            ),
            Dtype::Bf16 => (
                quote!(::attn_runtime::half::bf16),
                quote!(::attn_runtime::half::bf16::ZERO),
            ),
        }
    }

    /// The Rust type a kernel computes in, that of its bias, weights and log-sum-exp, and its
    /// zero: f64 for f64 kernels, f32 for all others.
    pub fn computed(self) -> (TokenStream, TokenStream) {
        match self {
            Dtype::F64 => Dtype::F64.stored(),
            Dtype::F32 | Dtype::F16 | Dtype::Bf16 => Dtype::F32.stored(),
        }
    }
}

/// What follows an option's name.
enum Value {
    None,
    Number(f64, Span),
    Args(proc_macro2::Group),
    /// `= [B, 1, Nq, Nk]`: the declared shape of a tensor argument.
    Shape(TensorDecl),
    /// `= f16`: a word, such as an element type.
    Word(Ident),
    /// `= true`, `= "x"`, `= (..)`: a value no option takes, kept to be reported.
    Other(Span),
}

/// Options available in this version.
const AVAILABLE: &[&str] = &[
    "scale",
    "causal",
    "window",
    "softcap",
    "mask",
    "bias",
    "valid_lengths",
    "return_weights",
    "return_lse",
    "split_heads",
    "dtype",
];

/// Splits `attrs` into attn's options and the attributes passed through to the generated
/// functions, reporting every malformed, unknown or repeated option.
pub fn parse(attrs: &[Attribute], errors: &mut Errors) -> (Options, Vec<Attribute>) {
    let mut options = Options::default();
    let mut passthrough = Vec::new();
    for attr in attrs {
        if !attr.path().is_ident("attn") {
            passthrough.push(attr.clone());
            continue;
        }
        let parsed = attr.parse_args_with(|input: ParseStream| {
            let mut found = Vec::new();
            while !input.is_empty() {
                found.push(option(input)?);
                if input.is_empty() {
                    break;
                }
                input.parse::<Token![,]>()?;
            }
            Ok(found)
        });
        match parsed {
            Ok(found) => {
                for (name, value) in found {
                    apply(&mut options, name, value, errors);
                }
            }
            Err(e) => errors.push(e),
        }
    }
    (options, passthrough)
}

/// One option as written: its name and what follows it.
fn option(input: ParseStream) -> syn::Result<(Ident, Value)> {
    let name: Ident = input.call(syn::ext::IdentExt::parse_any)?;
    if !input.peek(Token![=]) {
        if input.peek(syn::token::Paren) {
            return Ok((name, Value::Args(input.parse()?)));
        }
        return Ok((name, Value::None));
    }
    input.parse::<Token![=]>()?;
    if input.peek(syn::token::Bracket) {
        let (bracket, dims) = crate::parse::shape(input)?;
        return Ok((
            name.clone(),
            Value::Shape(TensorDecl {
                role: name,
                bracket,
                dims,
            }),
        ));
    }
    if input.peek(Ident) {
        return Ok((name, Value::Word(input.parse()?)));
    }
    // A number; anything else is kept, so that the option can say what it takes instead.
    let negative = input.parse::<Option<Token![-]>>()?.is_some();
    if input.peek(Lit) {
        let lit: Lit = input.parse()?;
        let value = match &lit {
            Lit::Float(f) => f.base10_parse::<f64>().ok(),
            Lit::Int(i) => i.base10_parse::<f64>().ok(),
            _ => None,
        };
        return Ok(match value {
            Some(value) => (
                name,
                Value::Number(if negative { -value } else { value }, lit.span()),
            ),
            None => (name, Value::Other(lit.span())),
        });
    }
    let other: proc_macro2::TokenTree = input.parse().map_err(|e| {
        error(
            e.span(),
            format!("expected a value after `{name} =`"),
            format!("write `{name} = ..` with a value, or `{name}` alone if it is a flag"),
        )
    })?;
    Ok((name, Value::Other(other.span())))
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

fn apply(options: &mut Options, name: Ident, value: Value, errors: &mut Errors) {
    let text = name.to_string();
    match text.as_str() {
        "scale" => {
            let scale = number(&name, value, errors, SCALE_HELP, |scale| {
                ((scale as f32).is_finite())
                    .then_some(())
                    .ok_or_else(|| format!("the scale {scale} does not fit in f32"))
            });
            set_once(&mut options.scale, scale, &name, errors);
        }
        "softcap" => {
            let cap = number(&name, value, errors, SOFTCAP_HELP, |cap| {
                (cap > 0.0 && (cap as f32).is_finite())
                    .then_some(())
                    .ok_or_else(|| {
                        format!("a soft cap of {cap} is not a positive number that fits in f32")
                    })
            });
            set_once(&mut options.softcap, cap, &name, errors);
        }
        "window" => {
            let window = number(&name, value, errors, WINDOW_HELP, |w| {
                (w.fract() == 0.0 && (1.0..=u32::MAX as f64).contains(&w))
                    .then_some(())
                    .ok_or_else(|| format!("a window of {w} keys is not a positive whole number"))
            });
            let window = window.map(|(w, _)| (w as u64, name.span()));
            set_once(&mut options.window, window, &name, errors);
        }
        "valid_lengths" => {
            let flag = flag(&name, value, errors, VALID_LENGTHS_HELP);
            set_once(&mut options.valid_lengths, flag, &name, errors);
        }
        "return_lse" => {
            let flag = flag(&name, value, errors, RETURN_LSE_HELP);
            set_once(&mut options.return_lse, flag, &name, errors);
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
                Value::None => Some(Causal::Square),
                Value::Args(args) => alignment(&args, errors),
                Value::Number(..) | Value::Shape(_) | Value::Word(_) | Value::Other(_) => {
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
                Value::Word(word) => match Dtype::named(&word.to_string()) {
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
                        Value::None => name.span(),
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

const SCALE_HELP: &str =
    "write a finite scale such as `scale = 0.125`; without the option the scale is 1 / sqrt(depth)";
const SOFTCAP_HELP: &str = "write the largest score magnitude, such as `softcap = 30.0`: each score s becomes 30 · tanh(s / 30)";
const WINDOW_HELP: &str = "write the number of keys each query sees, such as `window = 256`: with `causal`, each query sees its 256 most recent keys";

const VALID_LENGTHS_HELP: &str =
    "write `valid_lengths`: the kernel then takes each batch entry's number of valid keys";
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
const RETURN_LSE_HELP: &str =
    "write `return_lse`: the kernel then also returns each query row's log-sum-exp";

/// An option that is a bare word, such as `valid_lengths`: its span, or an error at the value.
fn flag(name: &Ident, value: Value, errors: &mut Errors, help: &str) -> Option<Span> {
    if let Value::None = value {
        return Some(name.span());
    }
    errors.at(value_span(&value), format!("`{name}` takes no value"), help);
    None
}

/// Where the value of an option is: its number, arguments or shape.
fn value_span(value: &Value) -> Span {
    match value {
        Value::None => Span::call_site(),
        Value::Number(_, span) => *span,
        Value::Args(args) => args.span(),
        Value::Shape(tensor) => tensor.bracket.span.join(),
        Value::Word(word) => word.span(),
        Value::Other(span) => *span,
    }
}

/// The declared shape of `mask = [..]` or `bias = [..]`, or an error at the option.
fn shape(name: &Ident, value: Value, errors: &mut Errors, help: &str) -> Option<TensorDecl> {
    match value {
        Value::Shape(tensor) => Some(tensor),
        Value::None => {
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
/// `valid` says why a number is refused, `help` how to write the option.
fn number(
    name: &Ident,
    value: Value,
    errors: &mut Errors,
    help: &str,
    valid: impl Fn(f64) -> Result<(), String>,
) -> Option<(f64, Span)> {
    match value {
        Value::Number(x, span) => match valid(x) {
            Ok(()) => Some((x, span)),
            Err(problem) => {
                errors.at(span, problem, help);
                None
            }
        },
        Value::None | Value::Args(_) => {
            errors.at(name.span(), format!("`{name}` needs a value"), help);
            None
        }
        Value::Shape(_) | Value::Word(_) | Value::Other(_) => {
            let what = match value {
                Value::Word(_) => "a word",
                Value::Shape(_) => "a shape",
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

/// Levenshtein distance, for "did you mean" suggestions.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}
