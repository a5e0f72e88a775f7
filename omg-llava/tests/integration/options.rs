//! Bad generation settings are refused with `InvalidOption` naming them, by
//! `GenerateOptions::validate` and by the Pipeline itself before anything is generated
//! (`run`, `stream`, `run_batch`); the settings at the edges are accepted.

use std::path::Path;

use burn::backend::Flex;
use omg_llava::{
    GenerateOptions, ImageHandle, LoadOptions, OmgLlavaError, Pipeline, Prompt, Sampling, Task,
};

type B = Flex;

fn pipeline() -> Pipeline<B> {
    Pipeline::<B>::from_dir(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../omg-demo/assets/tiny"),
        &LoadOptions::default(),
        Default::default(),
        |_| {},
    )
    .unwrap()
}

fn sample(temperature: f32, top_p: f32) -> Sampling {
    Sampling::Sample {
        temperature,
        top_k: 0,
        top_p,
        seed: 1,
    }
}

/// The option an error names (panics on any other error or on success).
fn refused(what: &str, r: Result<(), OmgLlavaError>) -> &'static str {
    match r {
        Err(OmgLlavaError::InvalidOption { option, reason }) => {
            assert!(!reason.is_empty(), "{what}");
            option
        }
        other => panic!("{what}: {other:?}"),
    }
}

#[test]
fn bad_options_are_refused_naming_them() {
    let p = pipeline();
    let img = p.encode(&image::DynamicImage::new_rgb8(20, 10)).unwrap();
    let task = Task::chat("What is it?");
    let base = GenerateOptions::default().with_max_new_tokens(5);
    let cases: Vec<(&str, GenerateOptions, &str)> = vec![
        (
            "no new token",
            base.clone().with_max_new_tokens(0),
            "max_new_tokens",
        ),
        (
            "[SEG] as the last new token",
            base.clone().with_forced_seg(4),
            "forced_seg",
        ),
        (
            "[SEG] past the end",
            base.clone().with_forced_seg(5),
            "forced_seg",
        ),
        (
            "[SEG] at usize::MAX",
            base.clone().with_forced_seg(usize::MAX),
            "forced_seg",
        ),
        (
            "[SEG] with one new token",
            base.clone().with_max_new_tokens(1).with_forced_seg(0),
            "forced_seg",
        ),
        (
            "a forced token past the end",
            base.clone().with_forced_tokens(vec![(5, 1)]),
            "forced_tokens",
        ),
        (
            "top_p 0",
            base.clone().with_sampling(sample(1.0, 0.0)),
            "top_p",
        ),
        (
            "top_p above 1",
            base.clone().with_sampling(sample(1.0, 1.5)),
            "top_p",
        ),
        (
            "top_p NaN",
            base.clone().with_sampling(sample(1.0, f32::NAN)),
            "top_p",
        ),
        (
            "temperature 0",
            base.clone().with_sampling(sample(0.0, 1.0)),
            "temperature",
        ),
        (
            "negative temperature",
            base.clone().with_sampling(sample(-1.0, 1.0)),
            "temperature",
        ),
        (
            "temperature NaN",
            base.clone().with_sampling(sample(f32::NAN, 1.0)),
            "temperature",
        ),
        (
            "infinite temperature",
            base.clone().with_sampling(sample(f32::INFINITY, 1.0)),
            "temperature",
        ),
        (
            "repetition penalty 0",
            base.clone().with_repetition_penalty(0.0),
            "repetition_penalty",
        ),
        (
            "repetition penalty NaN",
            base.clone().with_repetition_penalty(f32::NAN),
            "repetition_penalty",
        ),
        (
            "negative repetition penalty",
            base.clone().with_repetition_penalty(-1.5),
            "repetition_penalty",
        ),
    ];
    for (what, options, option) in &cases {
        assert_eq!(refused(what, options.validate()), *option, "{what}");
        // the Pipeline checks them itself, whoever calls it
        assert_eq!(
            refused(what, p.run(&img, &task, options).map(|_| ())),
            *option,
            "{what}: run"
        );
        assert_eq!(
            refused(what, p.stream(&img, &task, options).map(|_| ())),
            *option,
            "{what}: stream"
        );
        let rows: [(&ImageHandle<B>, &Task); 1] = [(&img, &task)];
        assert_eq!(
            refused(what, p.run_batch(&rows, options).map(|_| ())),
            *option,
            "{what}: run_batch"
        );
    }
}

#[test]
fn the_settings_at_the_edges_are_accepted() {
    let p = pipeline();
    let img = p.encode(&image::DynamicImage::new_rgb8(20, 10)).unwrap();
    let task = Task::chat("What is it?");
    let base = GenerateOptions::default().with_max_new_tokens(5);
    // a one-token word, forced before the [SEG] so that no end token comes first
    let dog = p.prompt_ids(&Prompt::plain("dog")).unwrap();
    let word = u32::try_from(*dog.last().unwrap()).unwrap();
    assert_eq!(dog.len(), 2, "BOS and one token: {dog:?}");
    for options in [
        base.clone().with_max_new_tokens(1),
        // [SEG] at the last index whose state is fed back
        base.clone()
            .with_forced_tokens(vec![(0, word), (1, word), (2, word)])
            .with_forced_seg(3),
        base.clone().with_forced_tokens(vec![(4, 1)]),
        base.clone().with_sampling(sample(1e-3, 1.0)),
        base.clone().with_sampling(sample(5.0, 1e-6)),
        base.clone().with_repetition_penalty(1e-3),
        GenerateOptions::demo(5, 3),
    ] {
        options.validate().unwrap();
        let a = p.run(&img, &task, &options).unwrap();
        assert!(!a.token_ids.is_empty() && a.token_ids.len() <= options.max_new_tokens);
        if options.forced_seg.is_some() {
            assert_eq!(a.token_ids[3], p.token_id("[SEG]").unwrap());
            assert_eq!(a.masks.len(), 1);
        }
    }
}

#[test]
fn a_cancelled_token_stops_the_generation_at_its_next_token() {
    let p = pipeline();
    let img = p.encode(&image::DynamicImage::new_rgb8(20, 10)).unwrap();
    let task = Task::chat("What is it?");
    let token = omg_llava::CancelToken::new();
    let options = GenerateOptions::default()
        .with_max_new_tokens(50)
        .with_cancel(token.clone());
    // not cancelled: the same answer as without a token
    let plain = p
        .run(
            &img,
            &task,
            &options.clone().with_cancel(omg_llava::CancelToken::new()),
        )
        .unwrap();
    let mut stream = p.stream(&img, &task, &options).unwrap();
    let first = stream.next().unwrap().unwrap();
    assert!(
        matches!(first, omg_llava::StreamEvent::Text(_)),
        "{first:?}"
    );
    token.cancel();
    assert!(matches!(stream.next(), Some(Err(OmgLlavaError::Cancelled))));
    // a cancelled token refuses to start, before the prefill
    assert!(matches!(
        p.run(&img, &task, &options),
        Err(OmgLlavaError::Cancelled)
    ));
    assert!(plain.token_ids.len() > 2, "{plain:?}");
}
