//! Unit tests of the macro core.
