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
