//! `omg-parity PATH...`: checks golden fixtures (a `.safetensors` file with its `.json`
//! sidecar, or a tokenizer fixture folder) against this implementation.
//!
//! Prints `key  max_abs_diff  tolerance  PASS|FAIL` per compared output and a final
//! `N passed, M failed`; exits non-zero on any failure, malformed fixture or unknown
//! stage.
//!
//! `omg-parity --llm-weights bf16|f16|int8|int4 PATH...` instead measures the error budget of that
//! LLM precision against f32 on `llm` and `e2e` fixtures (`omg_parity::precision`) and
//! fails when it misses the documented goal (`omg_parity::precision::goal`).

use std::path::PathBuf;
use std::process::ExitCode;

use omg_llava::backend::{DefaultBackend, NAME, default_device};
use omg_llm::LlmWeights;
use omg_parity::{Fixture, run_path};

fn main() -> ExitCode {
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    if let Some(at) = args.iter().position(|a| a == "--llm-weights") {
        let Some(name) = args.get(at + 1).and_then(|s| s.to_str()) else {
            eprintln!(
                "--llm-weights needs a value: {}",
                LlmWeights::NAMES.join(", ")
            );
            return ExitCode::from(2);
        };
        let weights = match name.parse::<LlmWeights>() {
            Ok(w) => w,
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::from(2);
            }
        };
        args.drain(at..at + 2);
        return budgets(args.into_iter().map(PathBuf::from).collect(), weights);
    }
    let paths: Vec<PathBuf> = args.into_iter().map(PathBuf::from).collect();
    if paths.is_empty() || paths.iter().any(|p| p == "-h" || p == "--help") {
        eprintln!(
            "usage: omg-parity [--llm-weights f32|bf16|f16|int8|int4] PATH...\n  PATH: a fixture .safetensors (with its .json sidecar) or a tokenizer fixture folder\n  stages: {}",
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

/// Prints the error budget of `weights` on each `llm`/`e2e` fixture.
fn budgets(paths: Vec<PathBuf>, weights: LlmWeights) -> ExitCode {
    let device = default_device();
    let mut errors = 0;
    for path in &paths {
        let result = Fixture::open(path)
            .and_then(|fx| omg_parity::precision::budget::<DefaultBackend>(&fx, weights, &device));
        match result {
            Ok(b) => {
                println!("{} (backend {NAME}): {b}", path.display());
                let misses = b.misses(omg_parity::precision::goal(weights));
                if misses.is_empty() {
                    println!("PASS within the {weights} budget");
                } else {
                    println!("FAIL {weights} budget: {}", misses.join("; "));
                    errors += 1;
                }
            }
            Err(e) => {
                println!("ERROR {}: {e}", path.display());
                errors += 1;
            }
        }
    }
    if errors > 0 || paths.is_empty() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
