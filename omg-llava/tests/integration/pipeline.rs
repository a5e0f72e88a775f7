//! The Pipeline end to end on the tiny demo bundle (the e2e fixture's weights in the
//! official file layouts, `omg-demo/assets/tiny`) and a real photo: every call runs,
//! outputs have the photo's own size, and masks and boxes live in its pixel frame.

use std::path::{Path, PathBuf};

use burn::backend::Flex;
use omg_llava::{
    Answer, BinaryMask, Conversation, FinishReason, GenerateOptions, LoadOptions, OmgLlavaError,
    Pipeline, Prompt, Region, StreamEvent, Task,
};

type B = Flex;

use crate::common;

fn assets() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../omg-demo/assets")
}

fn pipeline() -> Pipeline<B> {
    let mut steps = Vec::new();
    let p = Pipeline::<B>::from_dir(
        assets().join("tiny"),
        &LoadOptions::default(),
        Default::default(),
        |s| steps.push((s.index, s.total)),
    )
    .expect("the tiny bundle loads");
    assert_eq!(steps, (1..=5).map(|i| (i, 5)).collect::<Vec<_>>());
    p
}

fn photo() -> image::DynamicImage {
    // 451×300, not square: exercises the padding and the original frame.
    image::open(assets().join("chelsea.png")).expect("the sample photo decodes")
}

fn short() -> GenerateOptions {
    GenerateOptions::default().with_max_new_tokens(6)
}

#[test]
fn every_pipeline_call_runs_on_a_real_photo() {
    let p = pipeline();
    let img = photo();
    let (w, h) = (img.width(), img.height());
    let handle = p.encode(&img).unwrap();
    assert_eq!((handle.width(), handle.height()), (w, h));
    // 4 pixel tokens (the e2e fixture's `clip_feature_with_prior` is [1, 4, 640]), the
    // separator and one token per valid object query (at most the decoder's 16); the
    // tokens' width and the valid queries themselves are private
    let n = handle.visual_token_count();
    assert!((4 + 1..=4 + 1 + 16).contains(&n), "{n} visual tokens");

    // Image level: multi-turn chat and a caption.
    let mut conv = Conversation::new();
    let a1 = p
        .chat(&handle, &mut conv, "What is in the picture?", &short())
        .unwrap();
    assert!(!a1.token_ids.is_empty() && a1.token_ids.len() <= 6);
    let a2 = p
        .chat(&handle, &mut conv, "And what colour is it?", &short())
        .unwrap();
    assert_eq!(conv.turns().len(), 2);
    assert!(!a2.token_ids.is_empty());
    assert!(!p.caption(&handle, &short()).unwrap().token_ids.is_empty());

    // Object level: points, boxes and masks in original pixels.
    let mut region =
        BinaryMask::from_vec(h as usize, w as usize, vec![false; (w * h) as usize]).unwrap();
    {
        let mut arr = region.clone().into_array();
        for y in 100..200 {
            for x in 150..300 {
                arr[[y, x]] = true;
            }
        }
        region = BinaryMask::from_array(arr).unwrap();
    }
    let regions = vec![
        Region::point(200.0, 150.0),
        Region::rect(50.0, 40.0, 250.0, 220.0),
        Region::Mask(region.clone()),
    ];
    let a = p
        .ask_regions(&handle, &regions, "What are these?", &short())
        .unwrap();
    assert!(!a.token_ids.is_empty());
    for r in &regions {
        // The official region-caption prompt, written out by hand here.
        let placeholder = match r {
            Region::Point { .. } => "<mark>",
            _ => "<region>",
        };
        let official = format!(
            "<|im_start|>user\n<image>\nCan you provide me with a detailed description of the region in the picture marked by region1 {placeholder}?<|im_end|>\n<|im_start|>assistant\n"
        );
        let task = Task::describe_region(r.clone());
        assert_eq!(task.prompt().unwrap().text(), official);
        let described = p.run(&handle, &task, &short()).unwrap();
        let reference = p
            .stream_prompt(
                &handle,
                &Prompt::markup(official),
                std::slice::from_ref(r),
                &short(),
            )
            .unwrap()
            .finish()
            .unwrap();
        assert_eq!(described.token_ids, reference.token_ids);
        let m = p.segment_region(&handle, r).unwrap();
        assert_eq!(
            (m.mask().width(), m.mask().height()),
            (w as usize, h as usize)
        );
        if let Some(b) = m.bbox() {
            assert!(b.x + b.width <= w && b.y + b.height <= h);
        }
        assert!((0.0..=1.0).contains(&m.score()));
    }

    // Pixel level: see `segment_and_ground_with_forced_tokens` (random weights rarely
    // emit [SEG] or <p> by themselves).

    // Encoder alone: panoptic segmentation in the photo's frame.
    let pan = p.panoptic(&handle).unwrap();
    let mut covered = 0u64;
    for seg in &pan {
        assert_eq!(
            (seg.mask.mask().width(), seg.mask.mask().height()),
            (w as usize, h as usize)
        );
        assert!(p.class_names().contains(&seg.label));
        assert_eq!(p.class_names()[seg.class_id], seg.label);
        covered += seg.mask.area();
    }
    assert!(covered <= u64::from(w) * u64::from(h));
}

#[test]
fn a_forced_seg_streams_a_mask_in_the_photo_frame() {
    let p = pipeline();
    let img = photo();
    let handle = p.encode(&img).unwrap();
    let seg = p.token_id("[SEG]").unwrap();
    let options = GenerateOptions::default()
        .with_max_new_tokens(5)
        .with_forced_tokens(vec![(1, seg)]);
    let task = Task::chat("Please segment the cat in this image.");
    let mut masks = 0;
    let mut stream = p.stream(&handle, &task, &options).unwrap();
    for event in stream.by_ref() {
        if let StreamEvent::Mask { index, mask, .. } = event.unwrap() {
            assert_eq!(index, masks);
            assert_eq!(
                (mask.mask().width(), mask.mask().height()),
                (img.width() as usize, img.height() as usize)
            );
            assert_eq!(mask.area(), mask.mask().area());
            if let Some(b) = mask.bbox() {
                assert!(b.x + b.width <= img.width() && b.y + b.height <= img.height());
            }
            masks += 1;
        }
    }
    assert_eq!(masks, 1);
    let s = p.segment(&handle, "the cat", &options).unwrap();
    assert_eq!(s.answer.token_ids[1], seg);
    assert_eq!(s.answer.masks.len(), 1);
    assert_eq!(s.mask.as_ref(), s.answer.masks.first());
}

#[test]
fn streaming_yields_text_that_concatenates_to_the_answer() {
    let p = pipeline();
    let handle = p.encode(&photo()).unwrap();
    let task = Task::chat("Describe the image.");
    let mut text = String::new();
    let stream = p.stream(&handle, &task, &short()).unwrap();
    for event in stream {
        if let StreamEvent::Text(t) = event.unwrap() {
            text.push_str(&t);
        }
    }
    let full = p.run(&handle, &task, &short()).unwrap();
    assert_eq!(text, without_end_of_turn(&full));
}

#[test]
fn user_errors_are_reported_not_panics() {
    let p = pipeline();
    let img = photo();
    let handle = p.encode(&img).unwrap();
    // points outside the photo: the typed variant with the numbers
    let (w, h) = (img.width(), img.height());
    for (x, y) in [(-1.0, 3.0), (10_000.0, 3.0), (f32::NAN, 1.0)] {
        match p.segment_region(&handle, &Region::point(x, y)) {
            Err(OmgLlavaError::PointOutside {
                x: ex,
                y: ey,
                width,
                height,
            }) => {
                assert_eq!((ex.to_bits(), ey, width, height), (x.to_bits(), y, w, h));
            }
            other => panic!("({x}, {y}): {:?}", other.map(|m| m.area())),
        }
    }
    // Degenerate and outside boxes, masks of the wrong size and empty masks.
    let (w, h) = (img.width(), img.height());
    let check = |r: Region, ok: &dyn Fn(&OmgLlavaError) -> bool| {
        match p.segment_region(&handle, &r) {
            Err(e) => assert!(ok(&e), "{r:?}: {e}"),
            Ok(m) => panic!("{r:?} accepted (area {})", m.area()),
        }
        // a question about the region refuses it alike
        match p.ask_regions(&handle, std::slice::from_ref(&r), "What is it?", &short()) {
            Err(e) => assert!(ok(&e), "{r:?}: {e}"),
            Ok(a) => panic!("{r:?} accepted ({:?})", a.text),
        }
    };
    for b in [
        [10.0, 10.0, 5.0, 20.0],
        [f32::NAN, 0.0, 1.0, 1.0],
        [3.0, 3.0, 3.0, 9.0],
    ] {
        check(
            Region::rect(b[0], b[1], b[2], b[3]),
            &|e| matches!(e, OmgLlavaError::DegenerateBox { bbox } if bbox.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits())),
        );
    }
    for b in [[-20.0, 5.0, -1.0, 9.0], [10.0, 500.0, 20.0, 600.0]] {
        check(
            Region::rect(b[0], b[1], b[2], b[3]),
            &|e| matches!(e, OmgLlavaError::BoxOutside { bbox, width, height } if *bbox == b && (*width, *height) == (w, h)),
        );
    }
    check(
        Region::Mask(BinaryMask::from_vec(2, 3, vec![true; 6]).unwrap()),
        &|e| {
            matches!(
                e,
                OmgLlavaError::RegionMaskSize { width: 3, height: 2, image_width, image_height }
                    if (*image_width, *image_height) == (w, h)
            )
        },
    );
    check(
        Region::Mask(
            BinaryMask::from_vec(h as usize, w as usize, vec![false; (w * h) as usize]).unwrap(),
        ),
        &|e| matches!(e, OmgLlavaError::EmptyRegionMask),
    );
    assert!(matches!(
        p.ask_regions(&handle, &[], "What is it?", &short()),
        Err(OmgLlavaError::NoRegion)
    ));
    // Placeholder count mismatch.
    let e = p
        .ask_regions(
            &handle,
            &[Region::point(1.0, 1.0)],
            "Is <region> red?",
            &short(),
        )
        .unwrap_err();
    assert!(
        matches!(
            e,
            OmgLlavaError::PlaceholderMismatch {
                region_placeholders: 1,
                mark_placeholders: 0,
                regions_given: 0,
                points_given: 1
            }
        ),
        "{e}"
    );
    // A prompt longer than the model's positions.
    let long = GenerateOptions::default().with_max_new_tokens(1_000_000);
    match p.caption(&handle, &long) {
        Err(OmgLlavaError::PromptTooLong {
            prompt_tokens,
            max_new_tokens: 1_000_000,
            limit,
        }) => assert!(prompt_tokens > 0 && limit == p.max_positions()),
        other => panic!("{other:?}"),
    }
    // An empty image: the preprocessing error, typed.
    let empty = image::DynamicImage::new_rgb8(0, 0);
    assert!(matches!(
        p.encode(&empty),
        Err(OmgLlavaError::Image(
            omg_encoder::preprocess::PreprocessError::EmptyImage {
                width: 0,
                height: 0
            }
        ))
    ));
    // A photo past the limits fails before anything is allocated for its square: a
    // 20000 × 200 strip (the default side is 4096) and, with tighter limits, the demo
    // photo itself by its pixel count.
    let strip = image::DynamicImage::new_luma8(20_000, 200);
    match p.encode(&strip) {
        Err(OmgLlavaError::ImageTooLarge {
            width: 20_000,
            height: 200,
            limits,
        }) => assert_eq!(limits, omg_llava::ImageLimits::default()),
        other => panic!("{:?}", other.map(|h| h.width())),
    }
    let pixels = u64::from(img.width()) * u64::from(img.height());
    let tight = pipeline().with_image_limits(omg_llava::ImageLimits::new(10_000, pixels - 1));
    assert!(matches!(
        tight.encode(&img),
        Err(OmgLlavaError::ImageTooLarge { .. })
    ));
    let exact = pipeline().with_image_limits(omg_llava::ImageLimits::new(
        img.width().max(img.height()),
        pixels,
    ));
    assert!(exact.encode(&img).is_ok());
    // A missing bundle.
    assert!(matches!(
        Pipeline::<B>::from_dir(
            "/nonexistent",
            &LoadOptions::default(),
            Default::default(),
            |_| {}
        ),
        Err(OmgLlavaError::NotADirectory { reason: None, .. })
    ));
    // A bundle without its OMG-Seg checkpoint names the missing file.
    let dir = tempfile::tempdir().unwrap();
    for f in [
        "class_embed_tiny.pth",
        "omg_llava_config.json",
        "omg_llava_tiny.pth",
    ] {
        std::fs::copy(assets().join("tiny").join(f), dir.path().join(f)).unwrap();
    }
    std::fs::create_dir(dir.path().join("internlm2")).unwrap();
    for f in std::fs::read_dir(assets().join("tiny/internlm2")).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(
            &f,
            dir.path().join("internlm2").join(f.file_name().unwrap()),
        )
        .unwrap();
    }
    match Pipeline::<B>::from_dir(
        dir.path(),
        &LoadOptions::default(),
        Default::default(),
        |_| {},
    ) {
        Err(OmgLlavaError::MissingBundleFile { what, dir: at }) => {
            assert!(what.contains("omg_seg*.pth"), "{what}");
            assert_eq!(at, dir.path());
        }
        other => panic!("{:?}", other.err()),
    }
}

/// The demo bundle holds the e2e fixture's weights in the official file layouts, so
/// the Pipeline loaded from those files must reproduce the fixture's chat flow:
/// generated ids (with the forced [SEG]) and the binarised mask.
#[test]
fn the_bundle_reproduces_the_e2e_fixture_through_the_pipeline() {
    use burn::tensor::{Tensor, TensorData};
    use omg_checkpoint::TensorSource;
    use omg_checkpoint::safetensors::SafetensorsFile;

    let dir = common::parity_dir_with("e2e.safetensors");
    let fx = SafetensorsFile::open(dir.join("e2e.safetensors")).unwrap();
    let sidecar: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("e2e.json")).unwrap()).unwrap();
    let f32s = |k: &str| {
        let d = fx.read(k).unwrap();
        (
            d.shape.to_vec(),
            d.convert::<f32>().into_vec::<f32>().unwrap(),
        )
    };
    let ints = |k: &str| {
        let d = fx.read(k).unwrap();
        d.convert::<i64>().into_vec::<i64>().unwrap()
    };
    let p = pipeline();
    let (shape, px) = f32s("in.pixel_values");
    let side = shape[2] as u32;
    let handle = p
        .encode_pixels(
            Tensor::from_data(TensorData::new(px, shape), &Default::default()),
            (side, side),
        )
        .unwrap();
    // the official number of visual tokens (pixel tokens, separator, valid queries)
    let official_tokens = fx.read("out.visual_tokens").unwrap().shape[0];
    assert_eq!(handle.visual_token_count(), official_tokens);
    assert_eq!((handle.width(), handle.height()), (side, side));
    let seg = p.token_id("[SEG]").unwrap();
    let expected_ids = ints("out.gen_ids");
    let forced: Vec<(usize, u32)> = expected_ids
        .iter()
        .enumerate()
        .filter(|&(_, &t)| t == i64::from(seg))
        .map(|(i, _)| (i, seg))
        .collect();
    assert!(!forced.is_empty());
    let options = GenerateOptions::default()
        .with_max_new_tokens(expected_ids.len())
        .with_forced_tokens(forced);
    let prompt = Prompt::markup(sidecar["prompt_text"].as_str().unwrap());
    let answer = p
        .stream_prompt(&handle, &prompt, &[], &options)
        .unwrap()
        .finish()
        .unwrap();
    let got: Vec<i64> = answer.token_ids.iter().map(|&t| i64::from(t)).collect();
    assert_eq!(got, expected_ids);
    // the fixture's prompt ids, the image as −200
    let expected_prompt = ints("in.input_ids");
    assert_eq!(p.prompt_ids(&prompt).unwrap(), expected_prompt);
    assert_eq!(answer.prompt_tokens, expected_prompt.len());
    let expected_mask = ints("out.final_mask_binary");
    assert_eq!(answer.masks.len(), 1);
    let mask: Vec<i64> = answer.masks[0]
        .mask()
        .array()
        .iter()
        .map(|&b| i64::from(b))
        .collect();
    assert_eq!(mask, expected_mask);
}

/// Each `<mark>` / `<region>` position of the LLM input holds its own region's
/// projected prompt embedding, so different regions give different inputs. The
/// spliced input is private: a forced `[SEG]`'s mask and score (a continuous function
/// of every input row through the LLM), compared exactly, stand for it.
#[test]
fn region_placeholders_carry_their_region_embeddings() {
    let p = pipeline();
    let handle = p.encode(&photo()).unwrap();
    let options = GenerateOptions::default()
        .with_max_new_tokens(2)
        .with_forced_seg(0);
    let ask = |question: &str, x: f32, b: [f32; 4]| {
        let task = Task::ask_regions(
            vec![
                Region::point(x, 150.0),
                Region::rect(b[0], b[1], b[2], b[3]),
            ],
            question,
        );
        let mut answer = p.run(&handle, &task, &options).unwrap();
        assert_eq!(answer.masks.len(), 1);
        answer.masks.remove(0)
    };
    let question = "What is <mark> next to <region>?";
    let first = ask(question, 100.0, [50.0, 40.0, 250.0, 220.0]);
    assert!(
        first.area() > 0 && first.score() > 0.0,
        "precondition: a mask"
    );
    assert_eq!(first, ask(question, 100.0, [50.0, 40.0, 250.0, 220.0]));
    assert_ne!(
        first,
        ask(question, 400.0, [50.0, 40.0, 250.0, 220.0]),
        "the <mark> row ignores the point"
    );
    assert_ne!(
        first,
        ask(question, 100.0, [300.0, 10.0, 440.0, 90.0]),
        "the <region> row ignores the box"
    );
    // the placeholders swapped: the same input unless the two rows differ
    assert_ne!(
        first,
        ask(
            "What is <region> next to <mark>?",
            100.0,
            [50.0, 40.0, 250.0, 220.0]
        ),
        "the <mark> and <region> rows are the same"
    );
}

#[test]
fn ignore_eos_generates_every_token_past_the_end_of_turn() {
    let p = pipeline();
    let img = p.encode(&photo()).unwrap();
    let n = 120;
    let options = GenerateOptions::default().with_max_new_tokens(n);
    // a question whose greedy answer on the demo weights ends before `n` tokens
    let (task, stopped) = [
        "Describe the image.",
        "Tell me everything.",
        "hello",
        "What is it?",
    ]
    .into_iter()
    .map(|q| {
        let task = Task::chat(q);
        let answer = p.run(&img, &task, &options).unwrap();
        (task, answer)
    })
    .find(|(_, a)| a.finish_reason == FinishReason::Stop)
    .expect("one of the questions ends early on the demo weights");
    let k = stopped.token_ids.len();
    assert!(k < n, "{k}");
    let all = p
        .run(&img, &task, &options.clone().with_ignore_eos(true))
        .unwrap();
    assert_eq!(all.token_ids.len(), n);
    assert_eq!(all.finish_reason, FinishReason::Length);
    // the same greedy tokens up to and with the end token, then more
    assert_eq!(all.token_ids[..k], stopped.token_ids[..]);
    // rows of a batch share the setting
    let ignoring = options.clone().with_ignore_eos(true);
    let row = |options| omg_llava::BatchRow {
        image: &img,
        task: &task,
        options,
    };
    let rows = [row(&options), row(&ignoring)];
    match p.stream_batch(&rows) {
        Err(OmgLlavaError::InvalidOption { option, .. }) => assert_eq!(option, "ignore_eos"),
        other => panic!("expected an InvalidOption error, got {:?}", other.err()),
    }
}

/// `answer.raw_text` less its final end-of-turn token: what the streamed text pieces
/// concatenate to.
fn without_end_of_turn(answer: &Answer) -> &str {
    match answer.finish_reason {
        FinishReason::Stop => answer
            .raw_text
            .strip_suffix("<|im_end|>")
            .or_else(|| answer.raw_text.strip_suffix("</s>"))
            .expect("an answer that stopped ends with its end token"),
        _ => &answer.raw_text,
    }
}
