//! The integration tests of `omg-llava`, one module per subject, built as one test binary.

#[path = "../../../fixtures/test_support.rs"]
mod common;

mod answer_batch;
mod bad_inputs;
mod bundle;
mod concurrency;
mod encode_batch;
mod foreign_image;
mod options;
mod pipeline;
mod precision;
mod prepared;
mod region_frame;
mod tasks;
mod tokens;
mod user_text;
