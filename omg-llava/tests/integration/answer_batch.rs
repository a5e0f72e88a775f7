//! `Pipeline::run_batch`: tasks of different prompt lengths about different photos (one
//! with regions) answered in one left-padded generation give the answers each task
//! gets alone: the same tokens, text and `[SEG]` masks.

use std::path::Path;

use burn::backend::Flex;
use omg_llava::{GenerateOptions, ImageHandle, LoadOptions, OmgLlavaError, Pipeline, Region, Task};

type B = Flex;

/// The image placeholder's id in `Pipeline::prompt_ids`.
const IMAGE_TOKEN_INDEX: i64 = -200;

fn pipeline() -> Pipeline<B> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../omg-demo/assets/tiny");
    Pipeline::<B>::from_dir(dir, &LoadOptions::default(), Default::default(), |_| {}).unwrap()
}

/// The task's length in the LLM: its prompt's ids with the image expanded to its
/// visual tokens (each region placeholder takes one position).
fn llm_length(p: &Pipeline<B>, img: &ImageHandle<B>, task: &Task) -> usize {
    let ids = p.prompt_ids(&task.prompt().unwrap()).unwrap();
    let images = ids.iter().filter(|&&t| t == IMAGE_TOKEN_INDEX).count();
    assert_eq!(images, 1);
    ids.len() - images + images * img.visual_token_count()
}

#[test]
fn a_batch_answers_as_each_task_alone() {
    let p = pipeline();
    let chelsea =
        image::open(Path::new(env!("CARGO_MANIFEST_DIR")).join("../omg-demo/assets/chelsea.png"))
            .unwrap();
    // a tall crop: another size, so the rows' masks have different frames
    let tall = chelsea.crop_imm(200, 40, 90, 160);
    let a = p.encode(&chelsea).unwrap();
    let b = p.encode(&tall).unwrap();
    let regions = vec![
        Region::rect(10.0, 20.0, 80.0, 120.0),
        Region::point(45.0, 60.0),
    ];
    let tasks = [
        (&a, Task::chat("What is it?")),
        (
            &b,
            Task::ask_regions(
                regions.clone(),
                "What is the relation between these two regions of the picture?",
            ),
        ),
        (
            &a,
            Task::chat(
                "Please describe the animal, its fur, its eyes and the background in detail.",
            ),
        ),
    ];
    let rows: Vec<(&ImageHandle<B>, &Task)> = tasks.iter().map(|(i, t)| (*i, t)).collect();
    let seg = p.token_id("[SEG]").expect("the bundle adds [SEG]");
    let options = GenerateOptions::default()
        .with_max_new_tokens(8)
        .with_forced_tokens(vec![(2, seg)]);
    let batch = p.run_batch(&rows, &options).unwrap();
    assert_eq!(batch.len(), 3);
    let lengths: Vec<usize> = rows
        .iter()
        .map(|(img, task)| llm_length(&p, img, task))
        .collect();
    assert!(
        lengths[0] != lengths[1] && lengths[1] != lengths[2],
        "{lengths:?}"
    );
    for (k, ((img, task), got)) in rows.iter().zip(&batch).enumerate() {
        let alone = p.run(img, task, &options).unwrap();
        assert_eq!(got.token_ids, alone.token_ids, "row {k}");
        assert_eq!(got.text, alone.text, "row {k}");
        assert_eq!(got.prompt_tokens, alone.prompt_tokens, "row {k}");
        assert_eq!(got.finish_reason, alone.finish_reason, "row {k}");
        assert_eq!(got.masks.len(), alone.masks.len(), "row {k}");
        assert!(!alone.masks.is_empty());
        for (m, n) in got.masks.iter().zip(&alone.masks) {
            assert!(m.mask().iou(n.mask()).unwrap() >= 0.999, "row {k}");
            assert!((m.score() - n.score()).abs() < 1e-4, "row {k}");
            assert_eq!(
                (m.mask().width(), m.mask().height()),
                (n.mask().width(), n.mask().height())
            );
        }
    }
    // each row's masks are on its own photo
    assert_eq!(batch[1].masks[0].mask().width(), 90);
    assert_eq!(batch[0].masks[0].mask().width(), 451);
    assert!(p.run_batch(&[], &options).unwrap().is_empty());
    // a bad row fails the batch with its error
    let bad_task = Task::ask_regions(
        vec![Region::rect(100.0, 20.0, 180.0, 120.0), regions[1].clone()],
        "Where?",
    );
    let bad = [rows[0], (&b, &bad_task)];
    assert!(matches!(
        p.run_batch(&bad, &options),
        Err(OmgLlavaError::BoxOutside { .. })
    ));
}

#[test]
fn streamed_rows_keep_their_own_limits_and_cancel_tokens() {
    use omg_llava::{BatchEvent, BatchRow, CancelToken, StreamEvent};
    let p = pipeline();
    let chelsea =
        image::open(Path::new(env!("CARGO_MANIFEST_DIR")).join("../omg-demo/assets/chelsea.png"))
            .unwrap();
    let a = p.encode(&chelsea).unwrap();
    let b = p.encode(&chelsea.crop_imm(100, 30, 200, 150)).unwrap();
    // "hi" runs to any limit on the demo weights; [SEG] forced at new token 1
    let (hi, what) = (Task::chat("hi"), Task::chat("What is it?"));
    let base = GenerateOptions::default().with_forced_seg(1);
    let long = base.clone().with_max_new_tokens(12);
    let short = base.clone().with_max_new_tokens(4);
    let cancel = CancelToken::new();
    let cancelled = base
        .clone()
        .with_max_new_tokens(12)
        .with_cancel(cancel.clone());
    let rows = [
        BatchRow {
            image: &a,
            task: &hi,
            options: &long,
        },
        BatchRow {
            image: &b,
            task: &what,
            options: &short,
        },
        BatchRow {
            image: &a,
            task: &hi,
            options: &cancelled,
        },
    ];
    let stream = p.stream_batch(&rows).unwrap();
    assert_eq!(stream.rows(), 3);
    let mut texts = vec![String::new(); 3];
    let mut masks = [0usize; 3];
    let mut answers: Vec<Option<Result<omg_llava::Answer, OmgLlavaError>>> = vec![None, None, None];
    for event in stream {
        match event.unwrap() {
            BatchEvent::Event { row, event } => {
                assert!(answers[row].is_none(), "row {row} has ended");
                match event {
                    StreamEvent::Text(t) => texts[row].push_str(&t),
                    StreamEvent::Mask { index, .. } => {
                        assert_eq!(index, masks[row]);
                        masks[row] += 1;
                    }
                    other => panic!("{other:?}"),
                }
                // the third row's caller goes away after its first event
                if row == 2 {
                    cancel.cancel();
                }
            }
            BatchEvent::Finished { row, answer } => {
                assert!(answers[row].is_none(), "row {row} finished twice");
                answers[row] = Some(answer);
            }
            other => panic!("{other:?}"),
        }
    }
    let mut answers = answers.into_iter().map(Option::unwrap);
    let (first, second, third) = (
        answers.next().unwrap().unwrap(),
        answers.next().unwrap().unwrap(),
        answers.next().unwrap(),
    );
    assert!(matches!(third, Err(OmgLlavaError::Cancelled)), "{third:?}");
    // each finished row is its task alone, with its own limit
    for (k, (got, img, task, options)) in [(first, &a, &hi, &long), (second, &b, &what, &short)]
        .into_iter()
        .enumerate()
    {
        let alone = p.run(img, task, options).unwrap();
        assert_eq!(got.token_ids, alone.token_ids, "row {k}");
        assert_eq!(got.finish_reason, alone.finish_reason, "row {k}");
        assert_eq!(got.masks.len(), alone.masks.len(), "row {k}");
        assert_eq!(masks[k], alone.masks.len(), "row {k}");
        for (x, y) in got.masks.iter().zip(&alone.masks) {
            assert!(x.mask().iou(y.mask()).unwrap() >= 0.999);
        }
        assert!(
            alone.raw_text.starts_with(&texts[k]),
            "row {k}: {:?}",
            texts[k]
        );
        assert!(!texts[k].is_empty());
    }
    assert_eq!(
        p.run(&b, &what, &short).unwrap().token_ids.len(),
        4,
        "the short row ran to its own limit"
    );
    // rows that do not share their sampling are refused, naming it
    let sampled = base
        .clone()
        .with_max_new_tokens(4)
        .with_sampling(omg_llava::Sampling::Sample {
            temperature: 1.0,
            top_k: 0,
            top_p: 1.0,
            seed: 3,
        });
    let mixed = [
        rows[0],
        BatchRow {
            image: &a,
            task: &hi,
            options: &sampled,
        },
    ];
    assert!(matches!(
        p.stream_batch(&mixed).err(),
        Some(OmgLlavaError::InvalidOption {
            option: "sampling",
            ..
        })
    ));
}
