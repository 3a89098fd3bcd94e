//! Run-time valid lengths (padding), for kernels declared with `#[attn(valid_lengths)]`.

use std::fmt;

/// A batch entry whose number of valid keys exceeds the kernel's number of keys.
///
/// ```
/// let error = attn_runtime::ValidLengthError { batch_entry: 1, valid_keys: 9, keys: 8 };
/// assert_eq!(
///     error.to_string(),
///     "batch entry 1 has 9 valid keys, but the kernel has 8 keys",
/// );
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ValidLengthError {
    /// The batch entry.
    pub batch_entry: usize,
    /// Its number of valid keys, as given.
    pub valid_keys: usize,
    /// The kernel's number of keys: the most any entry can have.
    pub keys: usize,
}

impl fmt::Display for ValidLengthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "batch entry {} has {} valid keys, but the kernel has {} keys",
            self.batch_entry, self.valid_keys, self.keys
        )
    }
}

impl std::error::Error for ValidLengthError {}

/// Every entry of `valid_keys` is at most `keys`; else the first that is not.
///
/// ```
/// use attn_runtime::__private::check_valid_lengths;
/// assert!(check_valid_lengths(&[3, 8], 8).is_ok());
/// assert_eq!(check_valid_lengths(&[3, 9], 8).unwrap_err().batch_entry, 1);
/// ```
pub fn check_valid_lengths(valid_keys: &[usize], keys: usize) -> Result<(), ValidLengthError> {
    match valid_keys.iter().position(|&valid| valid > keys) {
        None => Ok(()),
        Some(batch_entry) => Err(ValidLengthError {
            batch_entry,
            valid_keys: valid_keys[batch_entry],
            keys,
        }),
    }
}
