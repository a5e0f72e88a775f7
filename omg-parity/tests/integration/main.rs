//! The integration tests of `omg-parity`, one module per subject, built as one test binary.

#[path = "../../../fixtures/test_support.rs"]
mod common;

mod coverage;
mod parity;
mod precision;
