//! `Pipeline::prepare_llm`: the prepared LLM file is what later loads read, it answers
//! exactly as the checkpoints do, and it is refused once the checkpoints change.

use std::path::{Path, PathBuf};

use burn::backend::Flex;
use omg_llava::{
    CheckpointBundle, GenerateOptions, LlmWeights, LoadOptions, OmgLlavaError, Pipeline, Task,
};

type B = Flex;

/// A copy of the demo bundle in a temporary directory.
fn demo_copy() -> (tempfile::TempDir, PathBuf) {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../omg-demo/assets/tiny");
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("bundle");
    for entry in walk(&source) {
        let to = dir.join(entry.strip_prefix(&source).unwrap());
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(&entry, &to).unwrap();
    }
    (root, dir)
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// Loads `dir` with `options`, returning the pipeline and the load steps' names.
fn load(dir: &Path, options: &LoadOptions) -> Result<(Pipeline<B>, Vec<String>), OmgLlavaError> {
    let mut steps = Vec::new();
    let p = Pipeline::<B>::from_dir(dir, options, Default::default(), |s| {
        steps.push(s.what.to_owned())
    })?;
    Ok((p, steps))
}

fn answer(p: &Pipeline<B>) -> omg_llava::Answer {
    let img = p.encode(&image::DynamicImage::new_rgb8(40, 24)).unwrap();
    let options = GenerateOptions::default()
        .with_max_new_tokens(6)
        .with_forced_seg(2);
    p.run(&img, &Task::segment("the cat"), &options).unwrap()
}

#[test]
fn a_prepared_llm_is_read_instead_and_answers_the_same() {
    let (_root, dir) = demo_copy();
    for weights in [LlmWeights::Int8, LlmWeights::Bf16] {
        let options = LoadOptions::default().with_llm_weights(weights);
        let (from_checkpoints, steps) = load(&dir, &options).unwrap();
        assert!(steps.contains(&"language model".to_owned()), "{steps:?}");
        let want = answer(&from_checkpoints);

        let bundle = CheckpointBundle::from_dir(&dir).unwrap();
        let path = Pipeline::<B>::prepare_llm(&bundle, &options, Default::default()).unwrap();
        assert_eq!(path, bundle.prepared_llm(weights));
        assert!(path.is_file());
        // the bundle is still found as it was (the prepared file is no release)
        assert_eq!(bundle.omg_llava, dir.join("omg_llava_tiny.pth"));

        let (prepared, steps) = load(&dir, &options).unwrap();
        assert!(
            steps.contains(&"language model (prepared file)".to_owned()),
            "{steps:?}"
        );
        let got = answer(&prepared);
        assert_eq!(got.token_ids, want.token_ids, "{weights}");
        assert_eq!(got.masks.len(), 1);
        assert_eq!(got.masks[0], want.masks[0], "{weights}");
    }
    // another precision does not take the int8 file
    let (_, steps) = load(
        &dir,
        &LoadOptions::default().with_llm_weights(LlmWeights::Int4),
    )
    .unwrap();
    assert!(steps.contains(&"language model".to_owned()), "{steps:?}");

    // once the release changes (here its modification time), the prepared file is
    // refused, naming it
    let release = dir.join("omg_llava_tiny.pth");
    let later = std::time::SystemTime::now() + std::time::Duration::from_secs(5);
    std::fs::File::options()
        .write(true)
        .open(&release)
        .unwrap()
        .set_modified(later)
        .unwrap();
    let options = LoadOptions::default().with_llm_weights(LlmWeights::Int8);
    match load(&dir, &options) {
        Err(e) => {
            let m = e.to_string();
            assert!(
                m.contains("omg_llava_llm_int8.safetensors") && m.contains("other files"),
                "{m}"
            );
        }
        Ok(_) => panic!("a prepared file made from other files was used"),
    }
    // preparing again makes it usable
    let bundle = CheckpointBundle::from_dir(&dir).unwrap();
    Pipeline::<B>::prepare_llm(&bundle, &options, Default::default()).unwrap();
    load(&dir, &options).unwrap();
}
