//! The integration tests of `omg-encoder`, one module per subject, built as one test binary.

#[path = "../../../fixtures/test_support.rs"]
mod common;

mod distance_transform;
mod omg_seg;
mod panoptic;
mod preprocess;
