//! `omg batch` on the tiny bundle: results equal the Pipeline's own answers, a failing
//! input gets an error line and the rest go on, a rerun skips what is written (and
//! repairs a cut line), shards partition the manifest, and the COCO export holds
//! every mask of the merged shards.

use omg_cli::B;
use omg_cli::batch::coco::{OBJECT_CATEGORY_ID, read_results, to_coco};
use omg_cli::batch::runner::{finished_ids, pending};
use omg_cli::batch::{BatchError, Output, Shard, read_manifest, run_batch};
use omg_cli::jobs::JobKind;
use omg_llava::{BinaryMask, GenerateOptions, LoadOptions, Pipeline, Region};

fn pipeline() -> Pipeline<B> {
    Pipeline::<B>::from_dir(
        omg_demo::source_bundle_dir(),
        &LoadOptions::default(),
        Default::default(),
        |_| {},
    )
    .unwrap()
}

fn options() -> GenerateOptions {
    GenerateOptions::default()
        .with_max_new_tokens(5)
        .with_forced_seg(1)
}

const MANIFEST: &str = r#"{"id": "seg", "image": "chelsea.png", "prompt": "the cat"}
{"id": "cap", "image": "chelsea.png", "task": "caption"}

{"id": "gone", "image": "missing.png", "task": "caption"}
{"id": "pan", "image": "chelsea.png", "task": "panoptic"}
{"id": "reg", "image": "chelsea.png", "task": "region", "regions": [{"point": [200, 150]}, {"box": [50, 40, 250, 220]}], "prompt": "Is <region> near <mark>?"}
{"id": "bad-region", "image": "chelsea.png", "task": "region", "regions": [{"box": [50, 40, 10, 220]}]}
"#;

fn workdir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("chelsea.png"), omg_demo::SAMPLE_PHOTO_PNG).unwrap();
    std::fs::write(dir.path().join("m.jsonl"), MANIFEST).unwrap();
    dir
}

/// `run_batch` of segmentation by default, four inputs per encoder pass.
fn run_in_fours(
    p: &Pipeline<B>,
    inputs: &[omg_cli::batch::Input],
    results: &std::path::Path,
    progress: impl omg_cli::batch::Progress,
) -> Result<omg_cli::batch::Summary, BatchError> {
    run_batch(
        p,
        inputs,
        results,
        JobKind::Segment,
        &options(),
        4,
        progress,
    )
}

fn by_id<'a>(results: &'a [Output], id: &str) -> &'a Output {
    results
        .iter()
        .find(|r| r.id == id)
        .unwrap_or_else(|| panic!("no result {id}"))
}

#[test]
fn a_batch_equals_the_pipeline_resumes_and_exports_coco() {
    let p = pipeline();
    let opts = options();
    let dir = workdir();
    let manifest = dir.path().join("m.jsonl");
    let results = dir.path().join("out/results.jsonl");

    let inputs = read_manifest(&manifest, Shard::ALL).unwrap();
    assert_eq!(inputs.len(), 6);
    let summary = run_batch(
        &p,
        &inputs,
        &results,
        JobKind::Segment,
        &opts,
        1,
        |_: &Output| {},
    )
    .unwrap();
    assert_eq!((summary.inputs, summary.written, summary.failed), (6, 6, 2));
    let out = read_results(&results).unwrap();
    assert_eq!(
        out.iter().map(|o| o.id.as_str()).collect::<Vec<_>>(),
        ["seg", "cap", "gone", "pan", "reg", "bad-region"]
    );

    // Consecutive inputs of one photo ran in one chunk, the photo encoded once for
    // them (each input's encode time is its share of that chunk's).
    assert_eq!(
        by_id(&out, "seg").timings.encode_ms,
        by_id(&out, "cap").timings.encode_ms
    );
    assert_ne!(
        by_id(&out, "cap").timings.encode_ms,
        by_id(&out, "pan").timings.encode_ms
    );

    // The same answers as the Pipeline called directly.
    let photo = image::load_from_memory(omg_demo::SAMPLE_PHOTO_PNG).unwrap();
    let img = p.encode(&photo).unwrap();
    let seg = p.segment(&img, "the cat", &opts).unwrap();
    let r = by_id(&out, "seg");
    assert_eq!(r.text.as_deref(), Some(seg.answer.text.as_str()));
    assert_eq!(r.masks.len(), seg.answer.masks.len());
    assert!(!r.masks.is_empty());
    assert_eq!(
        BinaryMask::from_rle(&r.masks[0].rle).unwrap(),
        *seg.answer.masks[0].mask()
    );
    assert_eq!((r.width, r.height), (Some(451), Some(300)));
    let cap = p.caption(&img, &opts).unwrap();
    assert_eq!(by_id(&out, "cap").text.as_deref(), Some(cap.text.as_str()));
    let pan = p.panoptic(&img).unwrap();
    let r = by_id(&out, "pan");
    assert_eq!(r.masks.len(), pan.len());
    for (m, s) in r.masks.iter().zip(&pan) {
        assert_eq!(
            (m.label.as_deref(), m.class_id, m.area),
            (Some(s.label.as_str()), Some(s.class_id), s.mask.area())
        );
    }
    let regions = [
        Region::point(200.0, 150.0),
        Region::rect(50.0, 40.0, 250.0, 220.0),
    ];
    let asked = p
        .ask_regions(&img, &regions, "Is <region> near <mark>?", &opts)
        .unwrap();
    assert_eq!(
        by_id(&out, "reg").text.as_deref(),
        Some(asked.text.as_str())
    );

    // Failures are lines with their error, not a stopped batch.
    let gone = by_id(&out, "gone");
    assert!(gone.error.as_deref().unwrap().contains("missing.png"));
    assert!(gone.width.is_none() && gone.masks.is_empty());
    let bad = by_id(&out, "bad-region");
    assert!(
        bad.error.as_deref().unwrap().contains("x1 < x2"),
        "{:?}",
        bad.error
    );

    // A rerun has nothing left; a line cut by a crash is dropped and that input rerun.
    let (left, skipped) = pending(read_manifest(&manifest, Shard::ALL).unwrap(), &results).unwrap();
    assert!(left.is_empty() && skipped == 6);
    let text = std::fs::read_to_string(&results).unwrap();
    let cut = text.trim_end().rfind('\n').unwrap() + 1 + 10;
    std::fs::write(&results, &text[..cut]).unwrap();
    let (left, skipped) = pending(read_manifest(&manifest, Shard::ALL).unwrap(), &results).unwrap();
    assert_eq!((left.len(), skipped), (1, 5));
    assert_eq!(left[0].id, "bad-region");
    assert_eq!(
        std::fs::read_to_string(&results).unwrap(),
        text[..text.trim_end().rfind('\n').unwrap() + 1]
    );
    run_batch(
        &p,
        &left,
        &results,
        JobKind::Segment,
        &opts,
        4,
        |_: &Output| {},
    )
    .unwrap();
    assert_eq!(read_results(&results).unwrap().len(), 6);
    assert_eq!(finished_ids(&results).unwrap().len(), 6);

    // Three images per encoder pass: the same results as one by one (masks up to the
    // order of floating-point sums in the batched kernels).
    let batched = dir.path().join("out/batched.jsonl");
    run_batch(
        &p,
        &inputs,
        &batched,
        JobKind::Segment,
        &opts,
        3,
        |_: &Output| {},
    )
    .unwrap();
    let together = read_results(&batched).unwrap();
    assert_eq!(together.len(), out.len());
    for (a, b) in together.iter().zip(&out) {
        assert_eq!(
            (&a.id, &a.text, a.error.is_some()),
            (&b.id, &b.text, b.error.is_some())
        );
        assert_eq!(a.masks.len(), b.masks.len(), "{}", a.id);
        for (x, y) in a.masks.iter().zip(&b.masks) {
            let (x, y) = (
                BinaryMask::from_rle(&x.rle).unwrap(),
                BinaryMask::from_rle(&y.rle).unwrap(),
            );
            // equal, or (after the batched kernels' rounding) of IoU ≥ 0.999; a size
            // mismatch fails
            assert!(x == y || x.iou(&y).unwrap() >= 0.999, "{}", a.id);
        }
    }

    // COCO: every mask of the successful results, with its image and category.
    let coco = to_coco(&read_results(&results).unwrap());
    assert_eq!(coco.images.len(), 4);
    let masks: usize = out
        .iter()
        .filter(|o| o.error.is_none())
        .map(|o| o.masks.len())
        .sum();
    assert_eq!(coco.annotations.len(), masks);
    let pan_image = coco.images.iter().find(|i| i.omg_id == "pan").unwrap();
    for (a, s) in coco
        .annotations
        .iter()
        .filter(|a| a.image_id == pan_image.id)
        .zip(&pan)
    {
        assert_eq!(a.category_id, s.class_id + 1);
        assert_eq!(a.area, omg_masks::area_from_rle(&a.segmentation).unwrap());
        let name = &coco
            .categories
            .iter()
            .find(|c| c.id == a.category_id)
            .unwrap()
            .name;
        assert_eq!(name, &s.label);
    }
    let seg_image = coco.images.iter().find(|i| i.omg_id == "seg").unwrap();
    assert!(
        coco.annotations
            .iter()
            .any(|a| a.image_id == seg_image.id && a.category_id == OBJECT_CATEGORY_ID)
    );
}

#[test]
fn shards_partition_the_manifest_and_bad_manifests_are_named() {
    let dir = workdir();
    let manifest = dir.path().join("m.jsonl");
    let all: Vec<String> = read_manifest(&manifest, Shard::ALL)
        .unwrap()
        .into_iter()
        .map(|i| i.id)
        .collect();
    let mut union = Vec::new();
    for index in 0..4 {
        let shard: Shard = format!("{index}/4").parse().unwrap();
        let ids: Vec<String> = read_manifest(&manifest, shard)
            .unwrap()
            .into_iter()
            .map(|i| i.id)
            .collect();
        for (k, id) in all.iter().enumerate() {
            assert_eq!(ids.contains(id), k % 4 == index);
        }
        union.extend(ids);
    }
    union.sort();
    let mut sorted = all.clone();
    sorted.sort();
    assert_eq!(union, sorted);
    for bad in ["4/4", "1/0", "x/2", "3"] {
        assert!(
            matches!(bad.parse::<Shard>(), Err(BatchError::Shard(_))),
            "{bad}"
        );
    }
    // A repeated id and an unknown field are named with their line.
    std::fs::write(
        &manifest,
        format!("{MANIFEST}{{\"id\": \"seg\", \"image\": \"x.png\"}}\n"),
    )
    .unwrap();
    match read_manifest(&manifest, Shard::ALL) {
        Err(BatchError::Manifest {
            line: 8, reason, ..
        }) => assert!(reason.contains("twice"), "{reason}"),
        other => panic!("{other:?}"),
    }
    std::fs::write(
        &manifest,
        "{\"id\": \"a\", \"image\": \"x.png\", \"promt\": \"typo\"}\n",
    )
    .unwrap();
    assert!(matches!(
        read_manifest(&manifest, Shard::ALL),
        Err(BatchError::Manifest { line: 1, .. })
    ));
}

#[test]
fn an_out_file_that_holds_no_results_is_refused_and_left_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    // a manifest without its final newline, as `--out` by mistake
    let manifest = dir.path().join("inputs.jsonl");
    let text = "{\"id\": \"a\", \"image\": \"a.png\"}\n{\"id\": \"b\", \"image\": \"b.png\"}";
    std::fs::write(&manifest, text).unwrap();
    let e = finished_ids(&manifest).unwrap_err();
    assert!(
        matches!(&e, BatchError::Results { line: 1, .. }) && e.to_string().contains("results file"),
        "{e}"
    );
    assert_eq!(std::fs::read_to_string(&manifest).unwrap(), text);
    // any other text with an extension
    let notes = dir.path().join("notes.txt");
    std::fs::write(&notes, "first line\nsecond, cut").unwrap();
    assert!(matches!(
        finished_ids(&notes),
        Err(BatchError::Results { line: 1, .. })
    ));
    assert_eq!(
        std::fs::read_to_string(&notes).unwrap(),
        "first line\nsecond, cut"
    );
    // whole lines of results, then a line that is not the start of one
    let results = dir.path().join("results.jsonl");
    std::fs::write(&results, "\nnot json").unwrap();
    assert!(matches!(
        finished_ids(&results),
        Err(BatchError::Results { line: 2, .. })
    ));
    assert_eq!(std::fs::read_to_string(&results).unwrap(), "\nnot json");
    // bytes that are not UTF-8 are named by their line
    std::fs::write(&results, b"\n\n{\"id\": \"\xff\"}\n").unwrap();
    let e = finished_ids(&results).unwrap_err();
    assert!(
        matches!(&e, BatchError::Results { line: 3, reason, .. } if reason.contains("not UTF-8")),
        "{e}"
    );
    // a cut record is still cut off, as a killed run leaves it
    std::fs::write(&results, "\n{\"id\": \"x\", \"ta").unwrap();
    assert!(finished_ids(&results).unwrap().is_empty());
    assert_eq!(std::fs::read_to_string(&results).unwrap(), "\n");
}

#[test]
fn inputs_that_ended_the_process_run_again_alone_and_twice_is_a_failure() {
    use omg_cli::batch::runner::{MAX_ATTEMPTS, Running, running_path};
    let p = pipeline();
    let dir = workdir();
    let manifest = dir.path().join("m.jsonl");
    let results = dir.path().join("results.jsonl");
    let marker = running_path(&results);
    assert_eq!(marker, dir.path().join("results.jsonl.running"));
    let inputs = read_manifest(&manifest, Shard::ALL).unwrap();
    // an earlier process ended while "seg" and "cap" ran for the first time, and while
    // "pan" ran for the second: as the marker it left says
    let earlier = |ids: &[&str], attempt| Running {
        ids: ids.iter().map(|s| (*s).to_owned()).collect(),
        attempt,
    };
    std::fs::write(
        &marker,
        serde_json::to_vec(&earlier(&["seg", "cap"], 1)).unwrap(),
    )
    .unwrap();
    let mut order = Vec::new();
    let mut markers = Vec::new();
    let summary = run_in_fours(&p, &inputs, &results, |o: &Output| {
        order.push(o.id.clone());
        markers.push(Running::read(&marker).unwrap());
    })
    .unwrap();
    assert_eq!(summary.written, 6);
    // the two run first, then the rest; the marker is gone once the run ends
    assert_eq!(order[..2], ["seg", "cap"]);
    // while an input runs, the marker names it (alone on its second run) and the
    // attempt
    assert_eq!(markers[0], Some(earlier(&["seg"], 2)));
    assert_eq!(markers[1], Some(earlier(&["cap"], 2)));
    assert_eq!(
        markers[2],
        Some(earlier(&["gone", "pan", "reg", "bad-region"], 1))
    );
    assert!(
        by_id(&read_results(&results).unwrap(), "seg")
            .error
            .is_none()
    );
    assert!(!marker.exists());

    std::fs::remove_file(&results).unwrap();
    std::fs::write(
        &marker,
        serde_json::to_vec(&earlier(&["pan"], MAX_ATTEMPTS)).unwrap(),
    )
    .unwrap();
    let summary = run_in_fours(&p, &inputs, &results, |_: &Output| {}).unwrap();
    assert_eq!((summary.written, summary.failed), (6, 3));
    let out = read_results(&results).unwrap();
    let pan = by_id(&out, "pan");
    assert!(pan.masks.is_empty());
    assert!(
        pan.error.as_deref().unwrap().contains("not run again"),
        "{:?}",
        pan.error
    );
    assert_eq!(pan.task, JobKind::Panoptic);
    // a marker cut while it was written names nothing
    std::fs::write(&marker, b"{\"ids\": [\"se").unwrap();
    assert_eq!(Running::read(&marker).unwrap(), None);
    // no marker is none; one that cannot be read is an error naming it
    std::fs::remove_file(&marker).unwrap();
    assert_eq!(Running::read(&marker).unwrap(), None);
    std::fs::create_dir(&marker).unwrap();
    let e = Running::read(&marker).unwrap_err();
    assert!(e.to_string().contains("results.jsonl.running"), "{e}");
    std::fs::remove_dir(&marker).unwrap();
    // nothing to run: no marker is written, and none is left to remove
    let summary = run_in_fours(&p, &[], &results, |_: &Output| {}).unwrap();
    assert_eq!((summary.inputs, summary.written), (0, 0));
    assert!(!marker.exists());
    // a marker that cannot be removed at the end is an error naming it (here a folder
    // has taken its place while the last input ran)
    std::fs::remove_file(&results).unwrap();
    let e = run_in_fours(&p, &inputs, &results, |o: &Output| {
        if o.id == "bad-region" {
            std::fs::remove_file(&marker).unwrap();
            std::fs::create_dir(&marker).unwrap();
        }
    })
    .unwrap_err();
    assert!(e.to_string().contains("results.jsonl.running"), "{e}");
    assert_eq!(read_results(&results).unwrap().len(), 6);
}
