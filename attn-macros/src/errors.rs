//! Collects every error of an invocation so that the user sees all of them at once.

use proc_macro2::Span;
use std::fmt::Display;

/// The errors found so far, in the order they were found.
#[derive(Default)]
pub struct Errors {
    errors: Vec<syn::Error>,
}

impl Errors {
    /// Records an error at `span`: `problem` in one sentence, `help` says how to fix it.
    pub fn at(&mut self, span: Span, problem: impl Display, help: impl Display) {
        self.errors.push(error(span, problem, help));
    }

    /// Records an error that already carries its span, such as a syntax error from syn.
    pub fn push(&mut self, error: syn::Error) {
        self.errors.push(error);
    }

    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    /// All errors as one `syn::Error`, which expands to one `compile_error!` per error.
    pub fn combine(self) -> Option<syn::Error> {
        let mut errors = self.errors.into_iter();
        let mut combined = errors.next()?;
        for error in errors {
            combined.combine(error);
        }
        Some(combined)
    }
}

/// An error at `span` in attn's format: the problem in one sentence, then a line that says
/// how to fix it.
pub fn error(span: Span, problem: impl Display, help: impl Display) -> syn::Error {
    syn::Error::new(span, format!("{problem}\nhelp: {help}"))
}

impl Extend<syn::Error> for Errors {
    fn extend<I: IntoIterator<Item = syn::Error>>(&mut self, iter: I) {
        self.errors.extend(iter);
    }
}

impl IntoIterator for Errors {
    type Item = syn::Error;
    type IntoIter = std::vec::IntoIter<syn::Error>;

    fn into_iter(self) -> Self::IntoIter {
        self.errors.into_iter()
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
