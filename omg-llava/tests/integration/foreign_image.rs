//! An `ImageHandle` belongs to the pipeline that encoded it: a pipeline of other sizes
//! (here the official 1024² vision side with random weights and a small LLM of the
//! demo bundle's hidden size) refuses it with `ForeignImage` before it computes
//! anything, in every call that takes a handle.

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::backend::Flex;
use omg_llava::{
    GenerateOptions, LlmWeights, LoadOptions, OmgLlavaError, Pipeline, RandomWeights, Region, Task,
};

type B = Flex;

fn tiny() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../omg-demo/assets/tiny")
}

fn assert_foreign<T: std::fmt::Debug>(what: &str, r: Result<T, OmgLlavaError>) {
    match r {
        Err(OmgLlavaError::ForeignImage {
            found_side: 128,
            expected_side: 1024,
            found_channels: 64,
            expected_channels: 64,
        }) => {}
        other => panic!("{what}: {other:?}"),
    }
}

#[test]
fn a_handle_of_another_pipeline_is_refused() {
    let home = Pipeline::<B>::from_dir(tiny(), &LoadOptions::default(), Default::default(), |_| {})
        .unwrap();
    let handle = home.encode(&image::DynamicImage::new_rgb8(40, 30)).unwrap();
    let start = Instant::now();
    let other = Pipeline::<B>::with_random_weights(
        &RandomWeights::scaled(64, 1, LlmWeights::F32),
        tiny().join("internlm2"),
        Default::default(),
    )
    .unwrap();
    eprintln!("random-weight pipeline built in {:?}", start.elapsed());
    let options = GenerateOptions::default().with_max_new_tokens(2);
    assert_foreign("run", other.run(&handle, &Task::Caption, &options));
    assert_foreign(
        "stream",
        other.stream(&handle, &Task::Ground, &options).map(|_| ()),
    );
    assert_foreign(
        "run_batch",
        other.run_batch(&[(&handle, &Task::chat("What is it?"))], &options),
    );
    assert_foreign(
        "ask_regions",
        other.ask_regions(&handle, &[Region::point(3.0, 4.0)], "What is it?", &options),
    );
    assert_foreign("panoptic", other.panoptic(&handle));
    assert_foreign(
        "segment_region",
        other.segment_region(&handle, &Region::point(3.0, 4.0)),
    );
    // the handle still works where it was made
    assert!(home.run(&handle, &Task::Caption, &options).is_ok());
}
