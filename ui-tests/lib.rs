//! attn's compile-fail and compile-pass cases live in `tests/ui/`; `tests/ui.rs` runs them.
//!
//! Each case under `tests/ui/fail/` is one mistake, with the compiler's output committed
//! beside it as `.stderr`. After a deliberate change to a message, refresh the snapshots
//! with `TRYBUILD=overwrite cargo test -p attn-ui-tests` and read the diff as a user would.
