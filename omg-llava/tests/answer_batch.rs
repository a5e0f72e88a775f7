//! `Pipeline::answer_batch`: prompts of different lengths about different photos (one
//! with regions) answered in one left-padded generation give the answers each prompt
//! gets alone: the same tokens, text and `[SEG]` masks.

use std::path::Path;

use burn::backend::Flex;
use omg_llava::questions::region_prompt;
use omg_llava::{BatchPrompt, Conversation, GenerateOptions, OmgLlavaError, Pipeline, Region};

type B = Flex;

fn pipeline() -> Pipeline<B> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/assets/tiny");
    Pipeline::<B>::from_dir(dir, Default::default(), |_| {}).unwrap()
}

#[test]
fn a_batch_answers_as_each_prompt_alone() {
    let p = pipeline();
    let chelsea =
        image::open(Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/assets/chelsea.png"))
            .unwrap();
    // a tall crop: another size, so the rows' masks have different frames
    let tall = chelsea.crop_imm(200, 40, 90, 160);
    let a = p.encode(&chelsea).unwrap();
    let b = p.encode(&tall).unwrap();
    let regions = vec![
        Region::Box([10.0, 20.0, 80.0, 120.0]),
        Region::Point { x: 45.0, y: 60.0 },
    ];
    let prompts = vec![
        BatchPrompt::new(&a, Conversation::new().prompt_for("What is it?")),
        BatchPrompt {
            image: &b,
            prompt: region_prompt(
                &regions,
                "What is the relation between these two regions of the picture?",
            ),
            regions: regions.clone(),
        },
        BatchPrompt::new(
            &a,
            Conversation::new().prompt_for(
                "Please describe the animal, its fur, its eyes and the background in detail.",
            ),
        ),
    ];
    let seg = p.model().special.seg.unwrap();
    let options = GenerateOptions::default()
        .with_max_new_tokens(8)
        .with_forced_tokens(vec![(2, seg)]);
    let batch = p.answer_batch(&prompts, &options).unwrap();
    assert_eq!(batch.len(), 3);
    let lengths: Vec<usize> = prompts
        .iter()
        .map(|q| {
            p.prepare_prompt(q.image, &q.prompt, &q.regions)
                .unwrap()
                .spliced
                .lengths[0]
        })
        .collect();
    assert!(
        lengths[0] != lengths[1] && lengths[1] != lengths[2],
        "{lengths:?}"
    );
    for (k, (q, got)) in prompts.iter().zip(&batch).enumerate() {
        let alone = p
            .answer_prompt(q.image, q.prompt.clone(), &q.regions, &options)
            .unwrap();
        assert_eq!(got.token_ids, alone.token_ids, "row {k}");
        assert_eq!(got.text, alone.text, "row {k}");
        assert_eq!(got.masks.len(), alone.masks.len(), "row {k}");
        assert!(!alone.masks.is_empty());
        for (m, n) in got.masks.iter().zip(&alone.masks) {
            assert!(m.mask.iou(&n.mask).unwrap() >= 0.999, "row {k}");
            assert!((m.score - n.score).abs() < 1e-4, "row {k}");
            assert_eq!(
                (m.mask.width(), m.mask.height()),
                (n.mask.width(), n.mask.height())
            );
        }
    }
    // each row's masks are on its own photo
    assert_eq!(batch[1].masks[0].mask.width(), 90);
    assert_eq!(batch[0].masks[0].mask.width(), 451);
    assert!(p.answer_batch(&[], &options).unwrap().is_empty());
    // a bad row fails the batch with its error
    let bad = vec![
        prompts[0].clone(),
        BatchPrompt {
            image: &b,
            prompt: region_prompt(&regions, "Where?"),
            regions: vec![Region::Box([100.0, 20.0, 180.0, 120.0]), regions[1].clone()],
        },
    ];
    assert!(matches!(
        p.answer_batch(&bad, &options),
        Err(OmgLlavaError::BoxOutside { .. })
    ));
}
