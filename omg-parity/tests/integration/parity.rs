//! The golden fixtures (`fixtures/parity`, or the folder `fixtures/test_support.rs`
//! finds, e.g. `$OMG_PARITY_DIR`), checked through the same harness as the `omg-parity`
//! binary.

use std::path::{Path, PathBuf};

use burn::backend::Flex;
use omg_parity::{ParityError, run_path};

type B = Flex;

use crate::common;

fn parity_dir() -> PathBuf {
    common::parity_dir_with("README.md")
}

fn assert_all_pass(path: &Path, min_lines: usize) {
    let results = run_path::<B>(path, &Default::default())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let failed: Vec<String> = results
        .iter()
        .filter(|r| !r.pass)
        .map(|r| r.to_string())
        .collect();
    assert!(
        failed.is_empty(),
        "{}:\n{}",
        path.display(),
        failed.join("\n")
    );
    assert!(
        results.len() >= min_lines,
        "{}: only {} comparisons",
        path.display(),
        results.len()
    );
}

#[test]
fn llm_fixture_passes() {
    // logits, final norm, 2 layer inputs, embeds path ×2, 2 generations ×2, KV cache
    assert_all_pass(&parity_dir().join("llm.safetensors"), 11);
}

#[test]
fn checkpoint_format_fixture_passes() {
    assert_all_pass(&parity_dir().join("checkpoint_format.safetensors"), 4);
}

#[test]
fn tokenizer_fixture_passes() {
    assert_all_pass(&parity_dir().join("tokenizer_tiny"), 10);
}

/// A copy of the `llm` fixture whose sidecar is edited by `edit`.
fn edited_llm_fixture(dir: &Path, edit: impl FnOnce(&mut serde_json::Value)) -> PathBuf {
    let src = parity_dir();
    let dst = dir.join("llm.safetensors");
    std::fs::copy(src.join("llm.safetensors"), &dst).unwrap();
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(src.join("llm.json")).unwrap()).unwrap();
    edit(&mut json);
    std::fs::write(dir.join("llm.json"), json.to_string()).unwrap();
    dst
}

#[test]
fn the_model_is_built_from_the_sidecar_numbers() {
    // A wrong RoPE base in the sidecar must make the comparison fail.
    let tmp = tempfile::tempdir().unwrap();
    let path = edited_llm_fixture(tmp.path(), |j| j["config"]["rope_theta"] = 10000.into());
    let results = run_path::<B>(&path, &Default::default()).unwrap();
    let logits = results.iter().find(|r| r.key == "out.logits").unwrap();
    assert!(!logits.pass, "{logits}");
}

#[test]
fn malformed_fixtures_and_unknown_stages_are_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let path = edited_llm_fixture(tmp.path(), |j| j["stage"] = "telepathy".into());
    assert!(matches!(
        run_path::<B>(&path, &Default::default()),
        Err(ParityError::UnknownStage(s)) if s == "telepathy"
    ));
    let path = edited_llm_fixture(tmp.path(), |j| {
        j.as_object_mut().unwrap().remove("config");
    });
    let err = run_path::<B>(&path, &Default::default()).unwrap_err();
    assert!(matches!(err, ParityError::Malformed(_)), "{err}");
    std::fs::write(tmp.path().join("llm.json"), "{not json").unwrap();
    let err = run_path::<B>(&path, &Default::default()).unwrap_err();
    assert!(err.to_string().contains("is not JSON"), "{err}");
    std::fs::remove_file(tmp.path().join("llm.json")).unwrap();
    let err = run_path::<B>(&path, &Default::default()).unwrap_err();
    assert!(err.to_string().contains("sidecar"), "{err}");
    let err = run_path::<B>(&tmp.path().join("nope.safetensors"), &Default::default()).unwrap_err();
    assert!(matches!(err, ParityError::Malformed(_)), "{err}");
}

/// A fixture file that is not the one its sidecar describes (one byte changed, or cut
/// short) is refused before anything is compared, naming the file and both values.
#[test]
fn a_fixture_changed_since_it_was_made_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let path = edited_llm_fixture(tmp.path(), |_| {});
    // the untouched copy passes the check
    run_path::<B>(&path, &Default::default()).unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&path, &bytes).unwrap();
    let err = run_path::<B>(&path, &Default::default()).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, ParityError::Malformed(_)), "{msg}");
    assert!(
        msg.contains("SHA-256") && msg.contains("llm.safetensors"),
        "{msg}"
    );
    std::fs::write(&path, &bytes[..last]).unwrap();
    let msg = run_path::<B>(&path, &Default::default())
        .unwrap_err()
        .to_string();
    assert!(msg.contains("bytes where the sidecar records"), "{msg}");
}

#[test]
fn encoder_fixture_passes() {
    // backbone 4, pixel decoder 5, decoder stages 5×3 + queries 2, predict 3, prior 5
    assert_all_pass(&parity_dir().join("encoder.safetensors"), 34);
}

#[test]
fn projector_fixture_passes() {
    assert_all_pass(&parity_dir().join("projector.safetensors"), 6);
}

#[test]
fn visual_prompts_fixture_passes() {
    assert_all_pass(&parity_dir().join("visual_prompts.safetensors"), 45);
}

#[test]
fn seg_head_fixture_passes() {
    assert_all_pass(&parity_dir().join("seg_head.safetensors"), 14);
}

#[test]
fn e2e_fixture_passes() {
    assert_all_pass(&parity_dir().join("e2e.safetensors"), 19);
}
