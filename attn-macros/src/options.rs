//! The `#[attn(..)]` options of a kernel (DESIGN section 5).
//!
//! ```text
//! attr    := '#[attn(' option (',' option)* ','? ')]'
//! option  := 'scale' '=' '-'? (FLOAT | INTEGER)
//! ```
//!
//! This version implements `scale`. The other options of DESIGN section 5 are recognised by
//! name and rejected with an error that says they are not available yet, so a user who writes
//! `causal` learns that it is planned rather than that it is misspelt.

use crate::errors::{Errors, error};
use proc_macro2::Span;
use syn::parse::ParseStream;
use syn::{Attribute, Ident, Lit, Token};

/// The options of one kernel, each with the span of the token that set it.
#[derive(Default)]
pub struct Options {
    /// The factor applied to every score; `None` means `1 / sqrt(depth)`.
    pub scale: Option<(f64, Span)>,
}

/// Options that DESIGN section 5 names and a later version of attn will implement.
const PLANNED: &[&str] = &[
    "causal",
    "window",
    "softcap",
    "dtype",
    "mask",
    "bias",
    "valid_lengths",
    "return_weights",
    "return_lse",
];

/// Options available in this version.
const AVAILABLE: &[&str] = &["scale"];

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

/// One option as written: its name and, for `name = value`, the value.
fn option(input: ParseStream) -> syn::Result<(Ident, Option<(f64, Span)>)> {
    let name: Ident = input.call(syn::ext::IdentExt::parse_any)?;
    if !input.peek(Token![=]) {
        // A planned option may take arguments, as `causal(top_left)` will; skip them here so
        // that the error is about the option, not its syntax.
        if input.peek(syn::token::Paren) {
            let _args: proc_macro2::Group = input.parse()?;
        }
        return Ok((name, None));
    }
    input.parse::<Token![=]>()?;
    let negative = input.parse::<Option<Token![-]>>()?.is_some();
    let lit: Lit = input.parse().map_err(|e| {
        error(
            e.span(),
            format!("expected a number after `{name} =`"),
            format!("write `{name} = 0.125`"),
        )
    })?;
    let value = match &lit {
        Lit::Float(f) => f.base10_parse::<f64>(),
        Lit::Int(i) => i.base10_parse::<f64>(),
        _ => Err(error(
            lit.span(),
            format!("`{name}` takes a number"),
            format!("write `{name} = 0.125`"),
        )),
    }?;
    let value = if negative { -value } else { value };
    Ok((name, Some((value, lit.span()))))
}

fn apply(options: &mut Options, name: Ident, value: Option<(f64, Span)>, errors: &mut Errors) {
    let text = name.to_string();
    match text.as_str() {
        "scale" => match value {
            Some((scale, span)) if !scale.is_finite() || !(scale as f32).is_finite() => {
                errors.at(
                    span,
                    format!("the scale {scale} does not fit in f32"),
                    "give a finite scale such as `scale = 0.125`",
                );
            }
            Some(scale) => {
                if options.scale.is_some() {
                    errors.at(
                        name.span(),
                        "`scale` is given twice",
                        "keep one `scale = ..`",
                    );
                } else {
                    options.scale = Some(scale);
                }
            }
            None => errors.at(
                name.span(),
                "`scale` needs a value",
                "write `scale = 0.125`; without the option the scale is 1 / sqrt(depth)",
            ),
        },
        _ if PLANNED.contains(&text.as_str()) => errors.at(
            name.span(),
            format!("the option `{text}` is not available in this version of attn"),
            format!("the options available now are: {}", AVAILABLE.join(", ")),
        ),
        _ => {
            let suggestion = PLANNED
                .iter()
                .chain(AVAILABLE)
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
