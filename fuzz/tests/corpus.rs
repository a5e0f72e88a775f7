//! Every file under `fuzz/corpus/<target>/` (the seeds and every input that once made a
//! target fail) replayed through that target's body, on stable, in the workspace's tests.

use std::path::Path;

use omg_fuzz::{replay, targets};

/// A target's body.
type Target = fn(&[u8]);

/// The targets and their bodies, by the name of their corpus folder.
const TARGETS: [(&str, Target); 6] = [
    ("chat_template", targets::chat_template),
    ("png_mask", targets::png_mask),
    ("pth", targets::pth),
    ("rle", targets::rle),
    ("safetensors", targets::safetensors),
    ("tokenizer_model", targets::tokenizer_model),
];

fn corpus() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/corpus"))
}

#[test]
fn every_corpus_file_passes_its_target() {
    for (name, target) in TARGETS {
        let ran = replay(&corpus().join(name), target);
        assert!(ran > 0, "corpus/{name} holds no input");
    }
}

#[test]
fn every_corpus_folder_has_a_target() {
    let mut folders: Vec<String> = std::fs::read_dir(corpus())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    folders.sort();
    let names: Vec<&str> = TARGETS.iter().map(|(n, _)| *n).collect();
    assert_eq!(folders, names);
}

#[test]
fn a_failing_input_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad-input");
    std::fs::write(&file, b"x").unwrap();
    let failure = std::panic::catch_unwind(|| replay(dir.path(), |_| panic!("boom")));
    let message = failure
        .unwrap_err()
        .downcast::<String>()
        .map(|s| *s)
        .unwrap_or_default();
    assert!(
        message.contains("bad-input") && message.contains("boom"),
        "{message}"
    );
}
