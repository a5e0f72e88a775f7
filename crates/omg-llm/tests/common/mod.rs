//! Helpers shared by the tests: where the golden parity fixtures are, and float
//! comparison.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// The parity fixture directory: `$OMG_PARITY_DIR` if set, else `../shared/parity`
/// beside the workspace, else the copy of the fixtures this repository's tests use
/// (`crates/omg-llava/tests/fixtures/parity`, identical files, for clones without
/// `../shared`). Panics (failing the test) if the chosen directory lacks `file`.
pub fn parity_dir_with(file: &str) -> PathBuf {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir = match std::env::var_os("OMG_PARITY_DIR") {
        Some(d) => PathBuf::from(d),
        None => {
            let shared = workspace.join("../shared/parity");
            if shared.join(file).exists() {
                shared
            } else {
                workspace.join("crates/omg-llava/tests/fixtures/parity")
            }
        }
    };
    assert!(
        dir.join(file).exists(),
        "parity fixture {file} not found in {} (set OMG_PARITY_DIR)",
        dir.display()
    );
    dir
}

/// The largest absolute difference of two equally long slices.
pub fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}
