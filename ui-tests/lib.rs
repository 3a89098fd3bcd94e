//! attn's compile-fail cases live in `tests/ui/fail/`, its compile-pass cases in
//! `tests/pass/`; `tests/ui.rs` runs both.
//!
//! Each case under `tests/ui/fail/` is one mistake, with the compiler's output committed
//! beside it as `.stderr`. After a deliberate change to a message, refresh the snapshots
//! with `TRYBUILD=overwrite cargo test -p attn-ui-tests` and read the diff as a user would.
