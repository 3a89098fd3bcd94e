//! Run-time valid lengths (padding), for kernels declared with `#[attn(valid_lengths)]` (each
//! batch entry's number of valid keys) or `#[attn(valid_queries)]` (of valid query rows).

use std::fmt;

/// What a valid length counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counted {
    /// Keys, given by `valid_keys` (`#[attn(valid_lengths)]`).
    Keys,
    /// Query rows, given by `valid_queries` (`#[attn(valid_queries)]`).
    Queries,
}

/// A batch entry whose number of valid keys, or of valid queries, exceeds the kernel's.
///
/// ```
/// use attn_runtime::{Counted, ValidLengthError};
/// let error = ValidLengthError { batch_entry: 1, counted: Counted::Keys, valid: 9, capacity: 8 };
/// assert_eq!(
///     error.to_string(),
///     "batch entry 1 has 9 valid keys, but the kernel has 8 keys",
/// );
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ValidLengthError {
    /// The batch entry.
    pub batch_entry: usize,
    /// Whether the length counts keys or queries.
    pub counted: Counted,
    /// Its number of valid keys or queries, as given.
    pub valid: usize,
    /// The kernel's number of keys or queries: the most any entry can have.
    pub capacity: usize,
}

impl fmt::Display for ValidLengthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.counted {
            Counted::Keys => "keys",
            Counted::Queries => "queries",
        };
        write!(
            f,
            "batch entry {} has {} valid {what}, but the kernel has {} {what}",
            self.batch_entry, self.valid, self.capacity
        )
    }
}

impl std::error::Error for ValidLengthError {}

/// Every entry of `valid` is at most `capacity`; else the first that is not.
///
/// ```
/// use attn_runtime::Counted;
/// use attn_runtime::__private::check_valid_lengths;
/// assert!(check_valid_lengths(&[3, 8], 8, Counted::Keys).is_ok());
/// assert_eq!(check_valid_lengths(&[3, 9], 8, Counted::Queries).unwrap_err().batch_entry, 1);
/// ```
pub fn check_valid_lengths(
    valid: &[usize],
    capacity: usize,
    counted: Counted,
) -> Result<(), ValidLengthError> {
    match valid.iter().position(|&length| length > capacity) {
        None => Ok(()),
        Some(batch_entry) => Err(ValidLengthError {
            batch_entry,
            counted,
            valid: valid[batch_entry],
            capacity,
        }),
    }
}
