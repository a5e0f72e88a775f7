//! The task methods against independent sources: the official e2e fixture reached
//! through `chat` (its prompt is a plain first chat turn), grounded phrases and masks
//! from forced tokens, mask summaries against a hand decoding, and sampling and the
//! repetition penalty through the Pipeline.

use std::path::{Path, PathBuf};

use burn::backend::Flex;
use burn::tensor::{Tensor, TensorData};
use omg_checkpoint::TensorSource;
use omg_checkpoint::safetensors::SafetensorsFile;
use omg_llava::{
    BinaryMask, Conversation, FinishReason, GenerateOptions, ImageHandle, LoadOptions, Pipeline,
    Sampling, StreamEvent, Task,
};
use omg_llm::tokenizer::InternLm2Tokenizer;
use omg_masks::area_from_rle;

type B = Flex;

use crate::common;

fn assets() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../omg-demo/assets")
}

fn pipeline() -> Pipeline<B> {
    Pipeline::<B>::from_dir(
        assets().join("tiny"),
        &LoadOptions::default(),
        Default::default(),
        |_| {},
    )
    .unwrap()
}

/// The bundle's own tokenizer (the model's is not public), for the ids of plain words.
fn bundle_tokenizer() -> InternLm2Tokenizer {
    InternLm2Tokenizer::from_dir(assets().join("tiny/internlm2")).expect("the bundle's tokenizer")
}

/// The id of a word that is one token.
fn one_token_word(word: &str) -> u32 {
    let ids = bundle_tokenizer().encode(word, false).unwrap();
    assert_eq!(ids.len(), 1, "{word:?} is one token");
    ids[0]
}

/// The e2e fixture: its image encoded, its question, generated ids and final mask.
struct Fixture {
    handle: ImageHandle<B>,
    question: String,
    ids: Vec<u32>,
    mask: Vec<bool>,
    side: usize,
}

fn fixture(p: &Pipeline<B>) -> Fixture {
    let dir = common::parity_dir_with("e2e.safetensors");
    let fx = SafetensorsFile::open(dir.join("e2e.safetensors")).unwrap();
    let sidecar: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("e2e.json")).unwrap()).unwrap();
    let px = fx.read("in.pixel_values").unwrap();
    let shape = px.shape.to_vec();
    let side = shape[2];
    let handle = p
        .encode_pixels(
            Tensor::from_data(
                TensorData::new(px.convert::<f32>().into_vec::<f32>().unwrap(), shape),
                &Default::default(),
            ),
            (side as u32, side as u32),
        )
        .unwrap();
    let ints = |k: &str| {
        fx.read(k)
            .unwrap()
            .convert::<i64>()
            .into_vec::<i64>()
            .unwrap()
    };
    // The fixture's prompt is the official first chat turn around its question.
    let prompt = sidecar["prompt_text"].as_str().unwrap();
    let question = prompt
        .strip_prefix("<|im_start|>user\n<image>\n")
        .and_then(|q| q.strip_suffix("<|im_end|>\n<|im_start|>assistant\n"))
        .expect("a first chat turn")
        .to_owned();
    Fixture {
        handle,
        question,
        ids: ints("out.gen_ids").into_iter().map(|v| v as u32).collect(),
        mask: ints("out.final_mask_binary")
            .into_iter()
            .map(|v| v != 0)
            .collect(),
        side,
    }
}

#[test]
fn chat_reproduces_the_official_ids_and_mask_and_the_summary_agrees() {
    let p = pipeline();
    let f = fixture(&p);
    let seg = p.token_id("[SEG]").unwrap();
    let forced = f
        .ids
        .iter()
        .enumerate()
        .filter(|(_, t)| **t == seg)
        .map(|(i, _)| (i, seg))
        .collect();
    let options = GenerateOptions::default()
        .with_max_new_tokens(f.ids.len())
        .with_forced_tokens(forced);
    let answer = p
        .chat(&f.handle, &mut Conversation::new(), &f.question, &options)
        .unwrap();
    assert_eq!(answer.token_ids, f.ids);
    assert_eq!(answer.masks.len(), 1);
    let out = &answer.masks[0];
    assert_eq!(
        out.mask().array().iter().copied().collect::<Vec<_>>(),
        f.mask
    );

    // The summary against the fixture's mask, decoded here by hand.
    let area = f.mask.iter().filter(|&&b| b).count() as u64;
    let (mut x0, mut y0, mut x1, mut y1) = (usize::MAX, usize::MAX, 0, 0);
    for (i, _) in f.mask.iter().enumerate().filter(|(_, b)| **b) {
        let (y, x) = (i / f.side, i % f.side);
        (x0, y0, x1, y1) = (x0.min(x), y0.min(y), x1.max(x), y1.max(y));
    }
    assert!(area > 0);
    let summary = out.summary();
    assert_eq!(summary.area, area);
    assert_eq!(
        summary.bbox,
        Some([
            x0 as u32,
            y0 as u32,
            (x1 - x0 + 1) as u32,
            (y1 - y0 + 1) as u32
        ])
    );
    assert_eq!(summary.segmentation.size, [f.side as u32, f.side as u32]);
    assert_eq!(area_from_rle(&summary.segmentation).unwrap(), area);
    assert_eq!(BinaryMask::from_rle(&out.rle()).unwrap(), *out.mask());
    assert_eq!(out.area(), area);
    assert_eq!(summary.score, out.score());
    assert_eq!(
        summary.bbox,
        out.bbox().map(|b| [b.x, b.y, b.width, b.height])
    );
    assert!((0.0..=1.0).contains(&summary.score) && summary.score > 0.0);
}

#[test]
fn segment_and_ground_with_forced_tokens() {
    let p = pipeline();
    let f = fixture(&p);
    let (seg, p_start, p_end) = (
        p.token_id("[SEG]").unwrap(),
        p.token_id("<p>").unwrap(),
        p.token_id("</p>").unwrap(),
    );
    let word = [one_token_word("dog")];

    // segment: the [SEG] of the answer gives the mask; without one there is none.
    let forced = GenerateOptions::default()
        .with_max_new_tokens(3)
        .with_forced_tokens(vec![(1, seg)]);
    let s = p.segment(&f.handle, "the dog", &forced).unwrap();
    let mask = s.mask.expect("a mask for the forced [SEG]");
    assert_eq!(
        (mask.mask().width(), mask.mask().height()),
        (f.side, f.side)
    );
    assert_eq!(s.answer.token_ids[1], seg);
    let none = GenerateOptions::default()
        .with_max_new_tokens(2)
        .with_forced_tokens(vec![(0, word[0]), (1, word[0])]);
    assert!(
        p.segment(&f.handle, "the dog", &none)
            .unwrap()
            .mask
            .is_none()
    );

    // ground: `<p> dog </p> [SEG] <p> dog </p>` → two phrases, the first with the mask.
    let tokens = [p_start, word[0], p_end, seg, p_start, word[0], p_end];
    let options = GenerateOptions::default()
        .with_max_new_tokens(tokens.len())
        .with_forced_tokens(tokens.iter().copied().enumerate().collect());
    let g = p.ground(&f.handle, &options).unwrap();
    assert_eq!(g.answer.token_ids, tokens);
    let phrases: Vec<&str> = g.phrases.iter().map(|x| x.phrase.as_str()).collect();
    assert_eq!(phrases, ["dog", "dog"]);
    assert_eq!(g.phrases[0].mask.as_ref(), g.answer.masks.first());
    assert!(g.phrases[0].mask.is_some() && g.phrases[1].mask.is_none());
    assert!(
        !g.caption.contains("<p>") && g.caption.contains("dog"),
        "{}",
        g.caption
    );
}

#[test]
fn sampling_is_seeded_and_the_repetition_penalty_bites() {
    let p = pipeline();
    let f = fixture(&p);
    let n = 64;
    let ask = |options: &GenerateOptions| {
        p.chat(&f.handle, &mut Conversation::new(), "Describe it.", options)
            .unwrap()
            .token_ids
    };
    let sample = |seed| {
        GenerateOptions::default()
            .with_max_new_tokens(n)
            .with_sampling(Sampling::Sample {
                temperature: 2.0,
                top_k: 0,
                top_p: 1.0,
                seed,
            })
    };
    assert_eq!(ask(&sample(7)), ask(&sample(7)), "same seed, same answer");
    let greedy = ask(&GenerateOptions::default().with_max_new_tokens(n));
    let answers: Vec<Vec<u32>> = (0..4).map(|s| ask(&sample(s))).collect();
    assert!(
        answers.iter().any(|a| *a != greedy),
        "sampling never left the greedy path"
    );
    assert!(
        answers.windows(2).any(|w| w[0] != w[1]),
        "seeds gave one answer"
    );

    // Greedy answers of the random model repeat tokens; a strong penalty forbids that.
    let distinct = |ids: &[u32]| {
        let mut v = ids.to_vec();
        v.sort_unstable();
        v.dedup();
        v.len()
    };
    if greedy.len() == n {
        assert!(
            distinct(&greedy) < n,
            "precondition: the greedy answer repeats"
        );
    }
    let penalized = ask(&GenerateOptions::default()
        .with_max_new_tokens(n)
        .with_repetition_penalty(1e6));
    assert_eq!(distinct(&penalized), penalized.len(), "{penalized:?}");
}

#[test]
fn the_end_token_is_kept_in_the_raw_text_and_stripped_from_the_text() {
    let p = pipeline();
    let f = fixture(&p);
    let im_end = p.token_id("<|im_end|>").unwrap();
    let word = [one_token_word("dog")];
    let options = GenerateOptions::default()
        .with_max_new_tokens(8)
        .with_forced_tokens(vec![(0, word[0]), (1, im_end)]);
    let a = p
        .chat(&f.handle, &mut Conversation::new(), "What is it?", &options)
        .unwrap();
    // Generation stops at <|im_end|>, which stays in the ids and the raw text only.
    assert_eq!(a.token_ids, [word[0], im_end]);
    assert_eq!(
        a.raw_text,
        format!(
            "{}<|im_end|>",
            bundle_tokenizer().decode(&word, false).unwrap()
        )
    );
    assert_eq!(a.text, "dog");
}

#[test]
fn the_finish_reason_and_the_prompt_length_are_reported() {
    let p = pipeline();
    let f = fixture(&p);
    let im_end = p.token_id("<|im_end|>").unwrap();
    let word = one_token_word("dog");
    let task = Task::chat("What is it?");
    let prompt_tokens = p.prompt_ids(&task.prompt().unwrap()).unwrap().len();
    // the model ends its turn: Stop
    let stop = GenerateOptions::default()
        .with_max_new_tokens(8)
        .with_forced_tokens(vec![(0, word), (1, im_end)]);
    let a = p.run(&f.handle, &task, &stop).unwrap();
    assert_eq!(a.token_ids, [word, im_end]);
    assert_eq!(a.finish_reason, FinishReason::Stop);
    assert_eq!(a.prompt_tokens, prompt_tokens);
    // every new token asked for is generated, none an end: Length
    let length = GenerateOptions::default()
        .with_max_new_tokens(3)
        .with_forced_tokens(vec![(0, word), (1, word), (2, word)]);
    let a = p.run(&f.handle, &task, &length).unwrap();
    assert_eq!(a.token_ids, [word; 3]);
    assert_eq!(a.finish_reason, FinishReason::Length);
    assert_eq!(a.prompt_tokens, prompt_tokens);
    // an end token as the last one asked for is still a Stop
    let last = GenerateOptions::default()
        .with_max_new_tokens(2)
        .with_forced_tokens(vec![(0, word), (1, im_end)]);
    assert_eq!(
        p.run(&f.handle, &task, &last).unwrap().finish_reason,
        FinishReason::Stop
    );
    // the prompt length of other tasks, the stream's count included
    for task in [
        Task::Caption,
        Task::Ground,
        Task::segment("the dog"),
        Task::chat_after(
            &{
                let mut c = Conversation::new();
                c.push_turn("What is it?", "A <p>dog</p> [SEG].");
                c
            },
            "And its colour?",
        ),
    ] {
        let expected = p.prompt_ids(&task.prompt().unwrap()).unwrap().len();
        let stream = p.stream(&f.handle, &task, &length).unwrap();
        assert_eq!(stream.prompt_tokens(), expected, "{task:?}");
        assert_eq!(stream.finish().unwrap().prompt_tokens, expected, "{task:?}");
    }
}

#[test]
fn a_streamed_mask_comes_with_its_phrase_and_the_text_pieces_make_the_answer() {
    let p = pipeline();
    let f = fixture(&p);
    let (seg, p_start, p_end, im_end) = (
        p.token_id("[SEG]").unwrap(),
        p.token_id("<p>").unwrap(),
        p.token_id("</p>").unwrap(),
        p.token_id("<|im_end|>").unwrap(),
    );
    let word = one_token_word("dog");
    // `<p> dog </p> [SEG] dog <|im_end|>`: the [SEG] gets its mask when it is fed back
    let tokens = [p_start, word, p_end, seg, word, im_end];
    let options = GenerateOptions::default()
        .with_max_new_tokens(tokens.len() + 2)
        .with_forced_tokens(tokens.iter().copied().enumerate().collect());
    let mut text = String::new();
    let mut masks = Vec::new();
    for event in p.stream(&f.handle, &Task::Ground, &options).unwrap() {
        match event.unwrap() {
            StreamEvent::Text(piece) => {
                assert!(!piece.is_empty());
                text.push_str(&piece);
            }
            StreamEvent::Mask {
                index,
                phrase,
                mask,
            } => {
                assert_eq!(index, masks.len());
                // the mask comes once its phrase has been streamed
                assert!(text.contains("</p>"), "{text:?}");
                masks.push((phrase, *mask));
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(masks.len(), 1);
    assert_eq!(masks[0].0.as_deref(), Some("dog"));
    let answer = p.run(&f.handle, &Task::Ground, &options).unwrap();
    assert_eq!(answer.token_ids, tokens);
    assert_eq!(answer.finish_reason, FinishReason::Stop);
    assert_eq!(answer.masks, [masks[0].1.clone()]);
    let raw = answer
        .raw_text
        .strip_suffix("<|im_end|>")
        .expect("the raw text ends with <|im_end|>");
    assert_eq!(text, raw);
    assert!(!text.contains("<|im_end|>"));

    // a [SEG] without a phrase before it: a mask without a phrase
    let options = GenerateOptions::default()
        .with_max_new_tokens(3)
        .with_forced_tokens(vec![(0, word), (1, seg), (2, word)]);
    let phrases: Vec<Option<String>> = p
        .stream(&f.handle, &Task::segment("the dog"), &options)
        .unwrap()
        .filter_map(|e| match e.unwrap() {
            StreamEvent::Mask { phrase, .. } => Some(phrase),
            _ => None,
        })
        .collect();
    assert_eq!(phrases, [None]);
}
