//! `omg eval` on the tiny datasets of `omg-eval/tiny` (the official layouts): every
//! benchmark runs on the demo bundle and prints its table, and the scoring of results
//! files gives the values that perfect, empty and missing answers must give.

use std::path::{Path, PathBuf};
use std::process::Command;

use omg_cli::batch::{Output, Timings};
use omg_cli::eval::{Benchmark, EvalSet, Samples};
use omg_cli::jobs::JobKind;
use omg_cli::records::OutputMask;
use omg_eval::{MetricTable, MetricValue};
use omg_masks::BinaryMask;

fn tiny(folder: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../omg-eval/tiny")
        .join(folder)
}

fn value(table: &MetricTable, metric: &str) -> f64 {
    match table.get(metric) {
        Some(MetricValue::Value { value }) => *value,
        other => panic!("{metric}: {other:?} in\n{table}"),
    }
}

/// A results line of `id` with `masks` and `text`.
fn output(id: &str, masks: &[BinaryMask], text: &str) -> Output {
    Output {
        id: id.to_owned(),
        task: JobKind::Segment,
        image: String::new(),
        width: None,
        height: None,
        text: Some(text.to_owned()),
        masks: masks
            .iter()
            .map(|m| OutputMask {
                rle: m.to_rle(),
                bbox: None,
                area: 0,
                score: 1.0,
                label: None,
                class_id: None,
                phrase: None,
            })
            .collect(),
        timings: Timings::default(),
        error: None,
    }
}

/// Runs `omg eval BENCHMARK --split SPLIT --data DATA --out OUT EXTRA...` on the demo
/// bundle (cached under `OUT/cache`).
fn omg_eval(
    benchmark: &str,
    split: &str,
    data: &Path,
    out: &Path,
    extra: &[&str],
) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_omg"))
        .args(["eval", benchmark, "--split", split])
        .args(extra)
        .arg("--data")
        .arg(data)
        .arg("--out")
        .arg(out)
        .env("OMG_DEMO_DIR", out.join("cache"))
        .output()
        .expect("omg starts")
}

#[test]
fn every_benchmark_runs_on_its_tiny_dataset_with_the_demo_bundle() {
    for (benchmark, folder, split) in [
        ("refcoco", "refcoco", "testA"),
        ("refcoco+", "refcoco+", "val"),
        ("refcocog", "refcocog", "val"),
        ("reasonseg", "reasonseg", "val"),
        ("gcg", "gcg", "test"),
        ("region-caption", "region_caption", "val"),
    ] {
        let out = tempfile::tempdir().unwrap();
        let data = tiny(folder);
        let run = omg_eval(
            benchmark,
            split,
            &data,
            out.path(),
            &["--max-new-tokens", "4"],
        );
        let (stdout, stderr) = (
            String::from_utf8_lossy(&run.stdout),
            String::from_utf8_lossy(&run.stderr),
        );
        assert!(run.status.success(), "{benchmark}: {stderr}");
        assert!(
            stdout.starts_with(&format!("{benchmark} {split}\n")),
            "{stdout}"
        );
        let first = if folder.starts_with("ref") || folder == "reasonseg" {
            "cIoU"
        } else {
            "METEOR"
        };
        assert!(stdout.contains(first), "{benchmark}: {stdout}");
        let metrics = out
            .path()
            .join(format!("eval-{benchmark}-{split}.metrics.json"));
        let table: MetricTable =
            serde_json::from_str(&std::fs::read_to_string(&metrics).unwrap()).unwrap();
        let benchmark_value = match benchmark {
            "refcoco" => Benchmark::RefCoco,
            "refcoco+" => Benchmark::RefCocoPlus,
            "refcocog" => Benchmark::RefCocoG,
            "reasonseg" => Benchmark::ReasonSeg,
            "gcg" => Benchmark::Gcg,
            _ => Benchmark::RegionCaption,
        };
        let set = EvalSet::load(benchmark_value, &data, None, split).unwrap();
        assert!(!set.is_empty());
        assert_eq!(value(&table, "samples scored"), set.len() as f64, "{table}");
        assert_eq!(value(&table, "samples without a result"), 0.0);
        assert_eq!(value(&table, "results with an error"), 0.0, "{table}");
    }
}

#[test]
fn a_finished_run_is_scored_again_without_loading_the_model() {
    let out = tempfile::tempdir().unwrap();
    let data = tiny("refcocog");
    let run = |extra: &[&str]| omg_eval("refcocog", "val", &data, out.path(), extra);
    let first = run(&["--max-new-tokens", "2"]);
    assert!(first.status.success());
    // the bundle flag points nowhere: a run that loaded the model would fail
    let second = run(&["--max-new-tokens", "2", "--bundle", "/nonexistent/bundle"]);
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(second.status.success(), "{stderr}");
    assert!(stderr.contains("already in"), "{stderr}");
    assert_eq!(first.stdout, second.stdout);
    // --score-only reads the named results
    let results = out.path().join("eval-refcocog-val.jsonl");
    let third = run(&["--score-only", results.to_str().unwrap()]);
    assert!(third.status.success());
    assert_eq!(first.stdout, third.stdout);
}

#[test]
fn referring_scores_of_perfect_empty_and_missing_answers() {
    let set = EvalSet::load(Benchmark::RefCoco, &tiny("refcoco"), None, "val").unwrap();
    let Samples::Referring(samples) = &set.samples else {
        panic!("a referring set")
    };
    assert!(samples.len() >= 2);
    let perfect: Vec<Output> = samples
        .iter()
        .map(|s| output(&s.id, &[s.official_mask().unwrap()], ""))
        .collect();
    let table = set.score(&perfect).unwrap();
    let union = value_union(samples);
    assert!((value(&table, "cIoU") - union / (union + 1e-10)).abs() < 1e-12);
    assert!((value(&table, "gIoU") - 1.0).abs() < 1e-4, "{table}");
    assert_eq!(value(&table, "answers without a mask"), 0.0);

    // no [SEG] in any answer: nothing predicted
    let silent: Vec<Output> = samples.iter().map(|s| output(&s.id, &[], "")).collect();
    let table = set.score(&silent).unwrap();
    assert_eq!(value(&table, "cIoU"), 0.0);
    assert_eq!(value(&table, "gIoU"), 0.0);
    assert_eq!(
        value(&table, "answers without a mask"),
        samples.len() as f64
    );

    // only the first sample has a result: the rest are counted, not scored
    let table = set.score(&perfect[..1]).unwrap();
    assert_eq!(value(&table, "samples scored"), 1.0);
    assert_eq!(
        value(&table, "samples without a result"),
        (samples.len() - 1) as f64
    );

    // a mask of another size than the photo is an error naming the sample
    let small = BinaryMask::from_vec(3, 3, vec![true; 9]).unwrap();
    let wrong = vec![output(&samples[0].id, &[small], "")];
    let e = set.score(&wrong).unwrap_err().to_string();
    assert!(e.contains(&samples[0].id), "{e}");
}

/// `ΣU` of perfect answers: the ground truths' areas.
fn value_union(samples: &[omg_eval::data::refcoco::RefCocoSample]) -> f64 {
    samples
        .iter()
        .map(|s| s.official_mask().unwrap().area() as f64)
        .sum()
}

#[test]
fn gcg_scores_of_the_ground_truth_as_answers() {
    let set = EvalSet::load(Benchmark::Gcg, &tiny("gcg"), None, "val").unwrap();
    let Samples::Gcg(images) = &set.samples else {
        panic!("a GCG set")
    };
    let answers: Vec<Output> = images
        .iter()
        .map(|g| output(&g.id, &g.decode_masks().unwrap(), &g.caption))
        .collect();
    let table = set.score(&answers).unwrap();
    assert_eq!(value(&table, "mIoU"), 1.0, "{table}");
    assert_eq!(value(&table, "AP50"), 1.0, "{table}");
    assert!(value(&table, "CIDEr") > 0.0, "{table}");
    assert!(matches!(
        table.get("recall"),
        Some(MetricValue::Unavailable { .. })
    ));
    // no masks at all: mIoU 0 and AP50 0
    let silent: Vec<Output> = images
        .iter()
        .map(|g| output(&g.id, &[], &g.caption))
        .collect();
    let table = set.score(&silent).unwrap();
    assert_eq!(value(&table, "mIoU"), 0.0);
    assert_eq!(value(&table, "AP50"), 0.0, "{table}");
}

#[test]
fn shards_keep_the_samples_of_a_photo_together_and_partition_the_split() {
    use omg_cli::batch::Shard;
    let set = EvalSet::load(Benchmark::RefCoco, &tiny("refcoco"), None, "testA").unwrap();
    let all = set.inputs().unwrap();
    let photos: std::collections::HashSet<_> = all.iter().map(|i| &i.image_path).collect();
    assert!(
        photos.len() > 1 && all.len() > photos.len(),
        "a photo with several samples"
    );
    let mut seen = Vec::new();
    for index in 0..2 {
        let shard = EvalSet::shard_inputs(all.clone(), Shard { index, count: 2 });
        // the samples of each photo follow each other
        let mut runs: Vec<&PathBuf> = Vec::new();
        for i in &shard {
            if runs.last() != Some(&&i.image_path) {
                assert!(!runs.contains(&&i.image_path), "photo split within a shard");
                runs.push(&i.image_path);
            }
        }
        seen.extend(shard);
    }
    // every sample once; each photo in one shard
    let mut ids: Vec<_> = seen.iter().map(|i| i.id.clone()).collect();
    ids.sort();
    let mut want: Vec<_> = all.iter().map(|i| i.id.clone()).collect();
    want.sort();
    assert_eq!(ids, want);
    for photo in &photos {
        let shards: std::collections::HashSet<usize> = (0..2)
            .filter(|&index| {
                EvalSet::shard_inputs(all.clone(), Shard { index, count: 2 })
                    .iter()
                    .any(|i| &i.image_path == *photo)
            })
            .collect();
        assert_eq!(shards.len(), 1, "{}", photo.display());
    }
    assert_eq!(
        EvalSet::shard_inputs(all.clone(), Shard::ALL).len(),
        all.len()
    );
}

/// Phrases are alike when equal ignoring case.
struct SamePhrase;

impl omg_eval::gcg::PhraseSimilarity for SamePhrase {
    fn similarity(&self, a: &str, b: &str) -> Result<f64, omg_eval::EvalError> {
        Ok(if a.eq_ignore_ascii_case(b) { 1.0 } else { 0.0 })
    }
}

/// A grounded answer naming `phrases`, one `[SEG]` after each.
fn grounded(phrases: &[String]) -> String {
    let parts: Vec<String> = phrases
        .iter()
        .map(|p| format!("<p> {p} </p> [SEG]"))
        .collect();
    format!("{}.", parts.join(" and "))
}

#[test]
fn gcg_recall_counts_masks_whose_phrases_match() {
    let set = EvalSet::load(Benchmark::Gcg, &tiny("gcg"), None, "val").unwrap();
    let Samples::Gcg(images) = &set.samples else {
        panic!("a GCG set")
    };
    let total: usize = images.iter().map(|g| g.phrases.len()).sum();
    let with_phrases = images.iter().filter(|g| !g.phrases.is_empty()).count();
    assert!(total > with_phrases, "some image has two phrases");
    let answers = |rename: &dyn Fn(usize, &String) -> String| -> Vec<Output> {
        images
            .iter()
            .map(|g| {
                let phrases: Vec<String> = g
                    .phrases
                    .iter()
                    .enumerate()
                    .map(|(i, p)| rename(i, p))
                    .collect();
                output(&g.id, &g.decode_masks().unwrap(), &grounded(&phrases))
            })
            .collect()
    };
    let score = |answers: &[Output]| {
        let table = set.score_with(answers, Some(&SamePhrase)).unwrap();
        value(&table, "recall")
    };
    assert_eq!(score(&answers(&|_, p| p.clone())), 1.0);
    assert_eq!(score(&answers(&|_, _| "something else".to_owned())), 0.0);
    // the greedy matching takes the first mask of an image, then stops at the second,
    // whose phrase differs
    let first_only = score(&answers(&|i, p| {
        if i == 0 {
            p.clone()
        } else {
            format!("not {p}")
        }
    }));
    assert_eq!(first_only, with_phrases as f64 / total as f64);
}

#[test]
fn omg_eval_gcg_computes_the_recall_with_a_bert_folder() {
    let set = EvalSet::load(Benchmark::Gcg, &tiny("gcg"), None, "val").unwrap();
    let Samples::Gcg(images) = &set.samples else {
        panic!("a GCG set")
    };
    let out = tempfile::tempdir().unwrap();
    let results = out.path().join("answers.jsonl");
    let lines: Vec<String> = images
        .iter()
        .map(|g| {
            let o = output(&g.id, &g.decode_masks().unwrap(), &grounded(&g.phrases));
            serde_json::to_string(&o).unwrap()
        })
        .collect();
    std::fs::write(&results, lines.join("\n") + "\n").unwrap();
    let bert = Path::new(env!("CARGO_MANIFEST_DIR")).join("../omg-bert/tests/data/tiny-bert");
    let run = |bert: &Path| {
        omg_eval(
            "gcg",
            "val",
            &tiny("gcg"),
            out.path(),
            &[
                "--score-only",
                results.to_str().unwrap(),
                "--bert",
                bert.to_str().unwrap(),
            ],
        )
    };
    let ok = run(&bert);
    let stderr = String::from_utf8_lossy(&ok.stderr);
    assert!(ok.status.success(), "{stderr}");
    let metrics: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.path().join("eval-gcg-val.metrics.json")).unwrap(),
    )
    .unwrap();
    let text = metrics.to_string();
    assert!(text.contains("recall"), "{text}");
    // each answer repeats its ground truth: every phrase is recalled
    let rows = metrics["rows"].as_array().expect("rows");
    let recall = rows
        .iter()
        .find(|r| r["metric"] == "recall")
        .unwrap_or_else(|| panic!("{text}"));
    assert_eq!(recall["value"]["value"].as_f64(), Some(1.0), "{text}");
    // a folder that is not a BERT model fails before anything runs
    let bad = run(&tiny("gcg"));
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--bert"));
}
