//! Sizes and names: each size token checked, the `where` clause's bindings, and every name
//! resolved to a known size, to another axis it is tied to, or to a const generic parameter.

use super::Role;
use crate::ast::{Binding, DimToken, SizeToken, TensorDecl};
use crate::errors::{Errors, edit_distance};
use crate::model::RESERVED_NAMES;
use proc_macro2::Span;
use std::collections::HashMap;
use std::fmt;
use syn::Ident;

/// A checked size, or the error at its token.
pub(super) fn size(token: &SizeToken, errors: &mut Errors) -> Option<u64> {
    let (span, text) = match token {
        SizeToken::Int(lit) => {
            if !matches!(lit.suffix(), "" | "usize") {
                errors.at(
                    lit.span(),
                    format!("`{lit}` has the suffix `{}`", lit.suffix()),
                    format!("write the size without a suffix: `{}`", lit.base10_digits()),
                );
                return None;
            }
            match lit.base10_digits().parse::<u64>() {
                Ok(0) => {
                    errors.at(
                        lit.span(),
                        "a size of 0 leaves nothing to attend over",
                        "sizes are positive integers, such as `1` or `64`",
                    );
                    return None;
                }
                Ok(n) => return Some(n),
                // An integer literal, in any base, negative or too large.
                Err(_) if !lit.base10_digits().starts_with('-') => {
                    errors.at(
                        lit.span(),
                        format!("`{lit}` is too large for a size"),
                        "a size is a positive integer that fits in usize, such as `64`",
                    );
                    return None;
                }
                Err(_) => (lit.span(), lit.to_string()),
            }
        }
        SizeToken::Invalid { span, text } => (*span, text.clone()),
    };
    let problem = if text.starts_with('-') {
        format!("`{text}` is negative")
    } else if text.chars().all(|c| c.is_ascii_digit() || c == '_') {
        format!("`{text}` is too large for a size")
    } else if text.starts_with(|c: char| c.is_ascii_digit()) {
        format!("`{text}` is not an integer")
    } else {
        format!("`{text}` is not a size")
    };
    errors.at(
        span,
        problem,
        "a size is a positive integer that fits in usize, such as `64`",
    );
    None
}

/// The `where` clause: each name bound once, to a valid size.
pub(super) fn bindings(bindings: &[Binding], errors: &mut Errors) -> HashMap<String, Bound> {
    let mut bound: HashMap<String, Bound> = HashMap::new();
    for binding in bindings {
        let key = binding.name.to_string();
        if let Some(first) = bound.get(&key) {
            errors.at(
                binding.name.span(),
                format!("`{key}` is bound twice"),
                format!(
                    "keep one binding of `{key}`; the first one is `{}`",
                    first.text
                ),
            );
            continue;
        }
        let value = size(&binding.value, errors);
        let text = match &binding.value {
            SizeToken::Int(lit) => format!("{key} = {lit}"),
            SizeToken::Invalid { text, .. } => format!("{key} = {text}"),
        };
        bound.insert(key, Bound { value, text });
    }
    bound
}

/// A name of the `where` clause.
pub(super) struct Bound {
    /// `None` when the size was invalid (already reported).
    pub(super) value: Option<u64>,
    /// `Dk = 3`, for messages.
    pub(super) text: String,
}

/// The value of a dimension while checking.
#[derive(Clone, PartialEq)]
pub(super) enum Value {
    Known(u64),
    Unbound(Ident),
    /// An invalid size, already reported: agrees with everything, so it causes no more errors.
    Poison,
}

/// A dimension while checking: its value, its token, and the name it was written with.
#[derive(Clone)]
pub(super) struct Resolved {
    pub(super) value: Value,
    pub(super) span: Span,
    pub(super) name: Option<Ident>,
}

impl fmt::Display for Resolved {
    /// `7`, `` `B` = 6 `` or `` `B` ``, as the dimension reads in a message.
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match (&self.name, &self.value) {
            (Some(name), Value::Known(n)) => write!(f, "`{name}` = {n}"),
            (Some(name), _) => write!(f, "`{name}`"),
            (None, Value::Known(n)) => write!(f, "{n}"),
            (None, _) => write!(f, "an invalid size"),
        }
    }
}

/// What each name means: bound in `where`, taken from a known axis, or unbound.
pub(super) struct Names {
    pub(super) bound: HashMap<String, Bound>,
    /// Unbound names tied by a rule to an axis of known size.
    pub(super) inferred: HashMap<String, u64>,
    /// Names already reported for their spelling, so each is reported once.
    pub(super) misnamed: Vec<String>,
}

impl Names {
    pub(super) fn new(bound: HashMap<String, Bound>) -> Self {
        Names {
            bound,
            inferred: HashMap::new(),
            misnamed: Vec::new(),
        }
    }

    pub(super) fn value(&self, name: &Ident) -> Value {
        let key = name.to_string();
        match self.bound.get(&key) {
            Some(Bound { value: Some(n), .. }) => Value::Known(*n),
            Some(Bound { value: None, .. }) => Value::Poison,
            None => match self.inferred.get(&key) {
                Some(n) => Value::Known(*n),
                None => Value::Unbound(name.clone()),
            },
        }
    }

    pub(super) fn resolve_dims(
        &mut self,
        tensor: &TensorDecl,
        errors: &mut Errors,
    ) -> Vec<Resolved> {
        tensor
            .dims
            .iter()
            .map(|dim| match dim {
                DimToken::Name(name) => {
                    self.check_spelling(name, errors);
                    Resolved {
                        value: self.value(name),
                        span: name.span(),
                        name: Some(name.clone()),
                    }
                }
                DimToken::Size(token) => Resolved {
                    value: size(token, errors).map_or(Value::Poison, Value::Known),
                    span: token.span(),
                    name: None,
                },
            })
            .collect()
    }

    /// Names become const generic parameters and live beside the kernel's own variables, so
    /// they are written like constants: an uppercase first letter, and none of attn's names.
    pub(super) fn check_spelling(&mut self, name: &Ident, errors: &mut Errors) {
        let text = name.to_string();
        if self.misnamed.contains(&text) {
            return;
        }
        if let Some(plain) = text.strip_prefix("r#") {
            self.misnamed.push(text.clone());
            errors.at(
                name.span(),
                format!("the dimension name `{text}` is a raw identifier"),
                format!(
                    "write `{plain}`: a dimension name is a plain identifier, written like a \
                     constant"
                ),
            );
        } else if !text.starts_with(|c: char| c.is_ascii_uppercase()) {
            self.misnamed.push(text.clone());
            let mut fixed = text.trim_start_matches('_').to_owned();
            if let Some(first) = fixed.get_mut(0..1) {
                first.make_ascii_uppercase();
            }
            errors.at(
                name.span(),
                format!("the dimension name `{text}` does not start with an uppercase letter"),
                format!(
                    "write dimension names like constants, such as `{fixed}`: they become const generic parameters"
                ),
            );
        } else if RESERVED_NAMES.contains(&text.as_str()) {
            self.misnamed.push(text.clone());
            errors.at(
                name.span(),
                format!("`{text}` is a name the generated kernel uses"),
                "rename this dimension",
            );
        }
    }

    /// Every binding is used by some tensor.
    pub(super) fn report_unused(
        &self,
        bindings: &[Binding],
        tensors: &[(Role, &TensorDecl)],
        errors: &mut Errors,
    ) {
        let used: Vec<String> = tensors
            .iter()
            .flat_map(|(_, tensor)| &tensor.dims)
            .filter_map(|dim| match dim {
                DimToken::Name(name) => Some(name.to_string()),
                DimToken::Size(_) => None,
            })
            .collect();
        let mut reported = Vec::new();
        for binding in bindings {
            let key = binding.name.to_string();
            if used.contains(&key) || reported.contains(&key) {
                continue;
            }
            reported.push(key.clone());
            let unbound = used
                .iter()
                .filter(|name| !self.bound.contains_key(*name))
                .min_by_key(|name| edit_distance(name, &key))
                .filter(|name| edit_distance(name, &key) <= 2);
            let help = match unbound {
                Some(name) => format!("did you mean `{name}`? `{key}` appears in no shape"),
                None => format!("remove the binding, or use `{key}` in a shape"),
            };
            errors.at(
                binding.name.span(),
                format!("`{key}` is bound but no tensor uses it"),
                help,
            );
        }
    }
}
