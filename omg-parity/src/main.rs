//! `omg-parity PATH...`: checks golden fixtures (a `.safetensors` file with its `.json`
//! sidecar, or a tokenizer fixture folder) against this implementation.
//!
//! Prints `key  max_abs_diff  tolerance  PASS|FAIL` per compared output and a final
//! `N passed, M failed`; exits non-zero on any failure, malformed fixture or unknown
//! stage.

use std::path::PathBuf;
use std::process::ExitCode;

use omg_llava::backend::{DefaultBackend, NAME, default_device};
use omg_parity::run_path;

fn main() -> ExitCode {
    let paths: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    if paths.is_empty() || paths.iter().any(|p| p == "-h" || p == "--help") {
        eprintln!(
            "usage: omg-parity PATH...\n  PATH: a fixture .safetensors (with its .json sidecar) or a tokenizer fixture folder\n  stages: {}",
            omg_parity::STAGES.join(", ")
        );
        return ExitCode::from(2);
    }
    let device = default_device();
    let (mut passed, mut failed, mut errors) = (0usize, 0usize, 0usize);
    for path in &paths {
        println!("== {} (backend {NAME})", path.display());
        match run_path::<DefaultBackend>(path, &device) {
            Ok(results) => {
                for r in results {
                    println!("{r}");
                    if r.pass {
                        passed += 1;
                    } else {
                        failed += 1;
                    }
                }
            }
            Err(e) => {
                println!("ERROR {}: {e}", path.display());
                errors += 1;
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    if errors > 0 {
        eprintln!("{errors} fixture(s) could not be checked");
    }
    if failed > 0 || errors > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
