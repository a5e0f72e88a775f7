//! One loaded model serves many threads: `Pipeline` and `ImageHandle` are `Send + Sync`
//! (checked at compile time), and queries run from 4 threads at once give exactly the
//! results of a sequential run.

use std::path::{Path, PathBuf};

use burn::backend::Flex;
use omg_llava::{
    Answer, Conversation, GenerateOptions, ImageHandle, LoadOptions, MaskOutput, PanopticSegment,
    Pipeline, Region, Segmentation, Task,
};

type B = Flex;

/// Compile-time: a loaded pipeline and an encoded image can be shared across threads.
const _: fn() = || {
    fn shareable<T: Send + Sync>() {}
    shareable::<Pipeline<B>>();
    shareable::<ImageHandle<B>>();
    fn sendable<T: Send>() {}
    sendable::<omg_llava::ResponseStream<'static, B>>();
};

fn assets() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../omg-demo/assets")
}

/// What one query returns.
#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    Chat(Answer),
    Segment(Segmentation),
    Region(Answer),
    Panoptic(Vec<PanopticSegment>),
    Interactive(MaskOutput),
}

fn query(p: &Pipeline<B>, images: &[ImageHandle<B>], which: usize) -> Outcome {
    let img = &images[which % 2];
    let options = GenerateOptions::default()
        .with_max_new_tokens(4)
        .with_forced_seg(1);
    match which / 2 {
        0 => Outcome::Chat(
            p.chat(
                img,
                &mut Conversation::new(),
                "What is in the picture?",
                &options,
            )
            .unwrap(),
        ),
        1 => Outcome::Segment(p.segment(img, "the cat", &options).unwrap()),
        2 => Outcome::Region(
            p.ask_regions(
                img,
                &[Region::rect(10.0, 20.0, 200.0, 150.0)],
                "What is in <region>?",
                &options,
            )
            .unwrap(),
        ),
        3 => Outcome::Panoptic(p.panoptic(img).unwrap()),
        _ => Outcome::Interactive(p.segment_region(img, &Region::point(100.0, 80.0)).unwrap()),
    }
}

#[test]
fn four_threads_get_the_results_of_a_sequential_run() {
    let p = Pipeline::<B>::from_dir(
        assets().join("tiny"),
        &LoadOptions::default(),
        Default::default(),
        |_| {},
    )
    .unwrap();
    let photo = image::open(assets().join("chelsea.png")).unwrap();
    let images = vec![p.encode(&photo).unwrap(), p.encode(&photo.fliph()).unwrap()];
    // five kinds of query on two images
    let queries: Vec<usize> = (0..10).collect();
    let sequential: Vec<Outcome> = queries.iter().map(|&q| query(&p, &images, q)).collect();
    let mut parallel: Vec<Option<Outcome>> = vec![None; queries.len()];
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let (p, images) = (&p, &images);
                s.spawn(move || {
                    // thread t takes queries t, t + 4, t + 8 (in reverse, to interleave
                    // the kinds differently from the sequential run)
                    let mine: Vec<usize> = (t..10).step_by(4).rev().collect();
                    mine.into_iter()
                        .map(|q| (q, query(p, images, q)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for h in handles {
            for (q, outcome) in h.join().unwrap() {
                parallel[q] = Some(outcome);
            }
        }
    });
    // a stream started here is consumed on another (scoped) thread
    let streamed = std::thread::scope(|s| {
        let stream = p
            .stream(
                &images[0],
                &Task::chat("What is in the picture?"),
                &GenerateOptions::default().with_max_new_tokens(4),
            )
            .unwrap();
        s.spawn(move || stream.finish().unwrap()).join().unwrap()
    });
    assert!(!streamed.token_ids.is_empty());
    for (q, (seq, par)) in sequential.iter().zip(&parallel).enumerate() {
        assert_eq!(Some(seq), par.as_ref(), "query {q}");
    }
    // the two images differ, so the comparison is not of one result with itself
    assert_ne!(sequential[6], sequential[7]);
}
