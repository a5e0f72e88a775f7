//! The integration tests of `omg-llm`, one module per subject, built as one test binary.

#[path = "../../../fixtures/test_support.rs"]
mod common;

mod bad_inputs;
mod loader;
mod model;
mod plain_text;
mod stream;
mod tokenizer_fixture;
