//! Tokens to the model of `ast.rs`, following the grammar of docs/DESIGN.md section 2 line by line.
//!
//! Parsing is lenient where leniency gives a better error: a size such as `3.5` or `-4` is
//! kept as [`SizeToken::Invalid`] for the checker to reject at that token, rather than ending
//! the parse. Syntax the model cannot hold (a missing `fn`, an unclosed `<`) is an error here.

use crate::ast::{
    Binding, DimToken, KernelDecl, NumberLiteral, OptionDecl, OptionValue, SizeToken, TensorDecl,
};
use crate::errors::{Errors, error};
use proc_macro2::{Delimiter, Span, TokenStream, TokenTree};
use quote::ToTokens;
use syn::parse::{ParseStream, Parser};
use syn::{Attribute, Ident, Lit, Token, Visibility, bracketed};

/// The shape of one kernel declaration, quoted in syntax errors.
const KERNEL_FORM: &str = "a kernel is declared as `pub fn name<q: [B, Nq, Dk], k: [B, Nk, Dk], v: [B, Nk, Dv]> where B = 1, ..;`";

/// A kernel as far as it parsed.
pub struct Parsed {
    pub kernel: KernelDecl,
    /// False when the `where` clause had a syntax error: the bindings are then incomplete, so
    /// the kernel gets a stub but no shape checks (they would only report follow-on errors).
    pub complete: bool,
}

/// Parses an invocation: one or more kernels, each ending in `;`.
///
/// ```text
/// invocation := kernel+
/// ```
///
/// The input is first cut at its top-level `;` so that a syntax error in one kernel does not
/// hide the errors of the others.
pub fn invocation(tokens: TokenStream, errors: &mut Errors) -> Vec<Parsed> {
    let mut kernels = Vec::new();
    let mut chunk = Vec::new();
    let mut last_span = Span::call_site();
    for tree in tokens {
        last_span = tree.span();
        match &tree {
            TokenTree::Punct(p) if p.as_char() == ';' => {
                if chunk.is_empty() {
                    errors.at(
                        p.span(),
                        "unexpected `;` with no kernel before it",
                        "remove the extra `;`",
                    );
                } else {
                    kernels.extend(kernel(std::mem::take(&mut chunk), errors));
                }
            }
            _ => chunk.push(tree),
        }
    }
    if !chunk.is_empty() {
        errors.at(
            last_span,
            "the last kernel does not end with `;`",
            "end each kernel declaration with `;`, after its `where` clause",
        );
        kernels.extend(kernel(chunk, errors));
    }
    if kernels.is_empty() && errors.is_empty() {
        errors.at(
            Span::call_site(),
            "attention! declares no kernel",
            KERNEL_FORM,
        );
    }
    kernels
}

/// Parses one kernel (its `;` already cut off).
///
/// ```text
/// kernel  := attr* vis 'fn' IDENT '<' tensor (',' tensor)* ','? '>' ('where' bind (',' bind)* ','?)?
/// ```
///
/// Returns the kernel if at least its header (up to `>`) parsed.
fn kernel(tokens: Vec<TokenTree>, errors: &mut Errors) -> Option<Parsed> {
    let mut header = None;
    let mut where_error = None;
    let parser = |input: ParseStream| -> syn::Result<()> {
        // attr* vis 'fn' IDENT
        let (options, attrs) = options(input.call(Attribute::parse_outer)?, errors);
        let vis: Visibility = input.parse()?;
        if !input.peek(Token![fn]) {
            return Err(input.error(format!("expected `fn`\nhelp: {KERNEL_FORM}")));
        }
        input.parse::<Token![fn]>()?;
        let name: Ident = input.parse().map_err(|e| {
            error(
                e.span(),
                "expected the kernel's name after `fn`",
                KERNEL_FORM,
            )
        })?;
        // '<' tensor (',' tensor)* ','? '>'
        if !input.peek(Token![<]) {
            return Err(input.error(format!(
                "expected `<` after the kernel's name\nhelp: {KERNEL_FORM}"
            )));
        }
        input.parse::<Token![<]>()?;
        let mut tensors = Vec::new();
        while !input.peek(Token![>]) {
            tensors.push(tensor(input)?);
            if input.peek(Token![,]) {
                input.parse::<Token![,]>()?;
            } else if !input.peek(Token![>]) {
                return Err(input.error(
                    "expected `,` or `>` after a tensor\nhelp: separate the tensors with `,` and close the list with `>`",
                ));
            }
        }
        let close_angle = input.parse::<Token![>]>()?.span;
        let mut kernel = KernelDecl {
            attrs,
            options,
            vis,
            name,
            tensors,
            close_angle,
            bindings: Vec::new(),
        };
        // ('where' bind (',' bind)* ','?)?
        let bindings = where_clause(input);
        match bindings {
            Ok(bindings) => kernel.bindings = bindings,
            Err(e) => {
                // The error is kept for the user; the rest of the clause is skipped so that
                // the header still parses as a whole.
                where_error = Some(e);
                input.parse::<TokenStream>()?;
            }
        }
        header = Some(kernel);
        Ok(())
    };
    let stream: TokenStream = tokens.into_iter().collect();
    if let Err(e) = parser.parse2(stream) {
        errors.push(e);
    }
    let complete = where_error.is_none();
    if let Some(e) = where_error {
        errors.push(e);
    }
    header.map(|kernel| Parsed { kernel, complete })
}

/// ```text
/// tensor  := IDENT ':' shape
/// ```
///
/// The role (`q`, `k`, `v`) is any identifier here; the checker rejects the others.
fn tensor(input: ParseStream) -> syn::Result<TensorDecl> {
    let role: Ident = input.parse().map_err(|e| {
        error(
            e.span(),
            "expected a tensor such as `q: [B, Nq, Dk]`",
            "declare the tensors q, k and v between `<` and `>`",
        )
    })?;
    if !input.peek(Token![:]) {
        return Err(input.error(format!(
            "expected `:` after `{role}`\nhelp: a tensor is declared as `{role}: [B, N, D]`"
        )));
    }
    input.parse::<Token![:]>()?;
    if !input.peek(syn::token::Bracket) {
        return Err(input.error(format!(
            "expected the shape of `{role}` in brackets\nhelp: write `{role}: [B, N, D]`"
        )));
    }
    let (bracket, dims) = shape(input)?;
    Ok(TensorDecl {
        role,
        bracket,
        dims,
    })
}

/// ```text
/// shape   := '[' dim (',' dim)* ','? ']'
/// ```
///
/// Shared by the tensors and by the options that declare a tensor (`mask = [..]`).
pub fn shape(input: ParseStream) -> syn::Result<(syn::token::Bracket, Vec<DimToken>)> {
    let content;
    let bracket = bracketed!(content in input);
    let mut dims = Vec::new();
    while !content.is_empty() {
        dims.push(dim(&content)?);
        if content.is_empty() {
            break;
        }
        if !content.peek(Token![,]) {
            return Err(content
                .error("expected `,` between dimensions\nhelp: write a shape as `[B, N, D]`"));
        }
        content.parse::<Token![,]>()?;
    }
    Ok((bracket, dims))
}

/// ```text
/// dim     := IDENT | INTEGER
/// ```
fn dim(input: ParseStream) -> syn::Result<DimToken> {
    if input.peek(Ident) {
        return Ok(DimToken::Name(input.parse()?));
    }
    size(input).map(DimToken::Size)
}

/// An integer literal; anything literal-like that is not one is kept to be reported.
fn size(input: ParseStream) -> syn::Result<SizeToken> {
    if input.peek(Lit) {
        return Ok(match input.parse::<Lit>()? {
            Lit::Int(lit) => SizeToken::Int(lit),
            other => SizeToken::Invalid {
                span: other.span(),
                text: other.to_token_stream().to_string(),
            },
        });
    }
    if input.peek(Token![-]) {
        let minus = input.parse::<Token![-]>()?;
        let rest: TokenTree = input.parse()?;
        let span = minus.span.join(rest.span()).unwrap_or(rest.span());
        return Ok(SizeToken::Invalid {
            span,
            text: format!("-{rest}"),
        });
    }
    if input.peek(Token![_]) {
        let underscore = input.parse::<Token![_]>()?;
        return Ok(SizeToken::Invalid {
            span: underscore.span,
            text: "_".to_owned(),
        });
    }
    if let Some((TokenTree::Group(group), _)) = input.cursor().token_tree()
        && group.delimiter() == Delimiter::Bracket
    {
        return Err(error(
            group.span(),
            "unexpected nested brackets in a shape",
            "a shape is one flat list of dimensions, such as `[B, N, D]`",
        ));
    }
    Err(input.error(
        "expected a dimension: a name such as `Nq` or a size such as `64`\nhelp: write a shape as `[B, Nq, Dk]` or `[1, 2, 3]`",
    ))
}

/// ```text
/// where   := 'where' bind (',' bind)* ','?
/// bind    := IDENT '=' INTEGER
/// ```
fn where_clause(input: ParseStream) -> syn::Result<Vec<Binding>> {
    let mut bindings = Vec::new();
    if input.is_empty() {
        return Ok(bindings);
    }
    if !input.peek(Token![where]) {
        return Err(input.error(
            "expected `where` or `;` after the tensors\nhelp: bind the dimensions as `where B = 1, N = 64;`, or end the kernel with `;`",
        ));
    }
    input.parse::<Token![where]>()?;
    loop {
        let name: Ident = input.parse().map_err(|e| {
            error(
                e.span(),
                "expected a binding such as `Nq = 64`",
                "the `where` clause binds dimension names to sizes: `where B = 1, Nq = 64;`",
            )
        })?;
        if !input.peek(Token![=]) {
            return Err(input.error(format!(
                "expected `=` after `{name}`\nhelp: bind a size as `{name} = 64`"
            )));
        }
        input.parse::<Token![=]>()?;
        let value = if input.peek(Ident) {
            let other: Ident = input.parse()?;
            SizeToken::Invalid {
                span: other.span(),
                text: other.to_string(),
            }
        } else {
            size(input)?
        };
        bindings.push(Binding { name, value });
        if input.is_empty() {
            return Ok(bindings);
        }
        if !input.peek(Token![,]) {
            let binding = &bindings[bindings.len() - 1];
            return Err(input.error(format!(
                "expected `,` or `;` after the binding of `{}`\nhelp: separate bindings with `,` and end each kernel with `;`",
                binding.name
            )));
        }
        input.parse::<Token![,]>()?;
        if input.is_empty() {
            return Ok(bindings);
        }
    }
}

/// Splits `attrs` into attn's options and the attributes passed through to the generated
/// functions, reporting the syntax errors of `#[attn(..)]` lists (`check` judges the values).
///
/// ```text
/// attr    := '#[attn(' option (',' option)* ','? ')]'
/// option  := IDENT                         (a flag: `valid_lengths`)
///          | IDENT '(' tokens ')'          (`causal(bottom_right)`)
///          | IDENT '=' (shape | IDENT | '-'? LITERAL | token)
/// ```
fn options(attrs: Vec<Attribute>, errors: &mut Errors) -> (Vec<OptionDecl>, Vec<Attribute>) {
    let mut options = Vec::new();
    let mut passthrough = Vec::new();
    for attr in attrs {
        if !attr.path().is_ident("attn") {
            passthrough.push(attr);
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
                options.extend(
                    found
                        .into_iter()
                        .map(|(name, value)| OptionDecl { name, value }),
                );
            }
            Err(e) => errors.push(e),
        }
    }
    (options, passthrough)
}

/// One option as written: its name and what follows it.
fn option(input: ParseStream) -> syn::Result<(Ident, OptionValue)> {
    let name: Ident = input.call(syn::ext::IdentExt::parse_any)?;
    if !input.peek(Token![=]) {
        if input.peek(syn::token::Paren) {
            return Ok((name, OptionValue::Args(input.parse()?)));
        }
        return Ok((name, OptionValue::None));
    }
    input.parse::<Token![=]>()?;
    if input.peek(syn::token::Bracket) {
        let (bracket, dims) = shape(input)?;
        return Ok((
            name.clone(),
            OptionValue::Shape(TensorDecl {
                role: name,
                bracket,
                dims,
            }),
        ));
    }
    if input.peek(Ident) {
        return Ok((name, OptionValue::Word(input.parse()?)));
    }
    // A number, with at most one sign; anything else, `--0.125` among it, is kept up to the
    // next option, so that the option can say what it takes instead.
    let negative = input.peek(Token![-]) && !input.peek2(Token![-]);
    if negative {
        input.parse::<Token![-]>()?;
    }
    if !input.peek(Token![-]) && input.peek(Lit) {
        let lit: Lit = input.parse()?;
        let sign = if negative { "-" } else { "" };
        let number = match &lit {
            Lit::Float(f) => f.base10_parse::<f64>().ok().map(|value| NumberLiteral {
                value: if negative { -value } else { value },
                text: format!("{sign}{}", f.base10_digits()),
                integer: false,
                suffix: f.suffix().to_owned(),
                span: f.span(),
            }),
            Lit::Int(i) => i.base10_parse::<f64>().ok().map(|value| NumberLiteral {
                value: if negative { -value } else { value },
                text: format!("{sign}{}", i.base10_digits()),
                integer: true,
                suffix: i.suffix().to_owned(),
                span: i.span(),
            }),
            _ => None,
        };
        return Ok(match number {
            Some(number) => (name, OptionValue::Number(number)),
            None => (name, OptionValue::Other(lit.span())),
        });
    }
    let other: proc_macro2::TokenTree = input.parse().map_err(|e| {
        error(
            e.span(),
            format!("expected a value after `{name} =`"),
            format!("write `{name} = ..` with a value, or `{name}` alone if it is a flag"),
        )
    })?;
    while !input.is_empty() && !input.peek(Token![,]) {
        input.parse::<proc_macro2::TokenTree>()?;
    }
    Ok((name, OptionValue::Other(other.span())))
}
