//! The `omg` binary itself, run as a user runs it: from an empty directory, on the
//! built-in demo bundle and sample photo (no source tree needed), writing its files.

use std::path::Path;
use std::process::Command;

/// `omg ARGS` in `dir`, with the demo bundle's cache in `dir/cache`.
fn omg(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_omg"))
        .args(args)
        .current_dir(dir)
        .env("OMG_DEMO_DIR", dir.join("cache"))
        .output()
        .expect("omg starts")
}

#[test]
fn segment_runs_the_demo_from_an_empty_directory() {
    let dir = tempfile::tempdir().unwrap();
    let out = omg(
        dir.path(),
        &[
            "segment",
            "the cat",
            "--force-seg",
            "1",
            "--max-new-tokens",
            "4",
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("demo bundle"), "{stderr}");
    let json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("out/segment.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        (json["width"].as_u64(), json["height"].as_u64()),
        (Some(451), Some(300))
    );
    let masks = json["masks"].as_array().unwrap();
    assert_eq!(masks.len(), 1, "{json}");
    assert_eq!(
        masks[0]["segmentation"]["size"],
        serde_json::json!([300, 451])
    );
    let picture = image::open(dir.path().join("out/segment_0.png")).unwrap();
    assert_eq!((picture.width(), picture.height()), (451, 300));
    assert!(dir.path().join("out/segment_overlay.png").is_file());
    assert!(dir.path().join("cache").is_dir());
}

#[test]
fn bad_flags_are_refused_before_the_model_loads() {
    let dir = tempfile::tempdir().unwrap();
    // a [SEG] forced at the last new token would never get a mask
    let out = omg(
        dir.path(),
        &["segment", "x", "--force-seg", "3", "--max-new-tokens", "4"],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("forced_seg"), "{stderr}");
    assert!(!stderr.contains("loading"), "{stderr}");
    // a box outside the photo is named before loading too
    let out = omg(dir.path(), &["interactive", "--box", "500,10,600,20"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("does not overlap"), "{stderr}");
    assert!(!dir.path().join("cache").exists(), "nothing was loaded");
}

/// The sample photo written as `photo.<extension>` in `dir` (PNG or JPEG).
fn sample_photo(dir: &Path, extension: &str) -> std::path::PathBuf {
    let photo = image::load_from_memory(omg_demo::SAMPLE_PHOTO_PNG).unwrap();
    let path = dir.join(format!("photo.{extension}"));
    photo.to_rgb8().save(&path).unwrap();
    path
}

/// The JSON a subcommand wrote.
fn written(dir: &Path, file: &str) -> serde_json::Value {
    let path = dir.join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

#[test]
fn every_subcommand_reads_png_and_jpeg_photos() {
    let dir = tempfile::tempdir().unwrap();
    let commands: [(&str, &[&str], usize); 7] = [
        ("caption", &["caption", "--max-new-tokens", "3"], 0),
        (
            "chat",
            &["chat", "-q", "What is it?", "--max-new-tokens", "3"],
            0,
        ),
        (
            "segment",
            &[
                "segment",
                "the cat",
                "--force-seg",
                "1",
                "--max-new-tokens",
                "3",
            ],
            1,
        ),
        (
            "ground",
            &["ground", "--force-seg", "1", "--max-new-tokens", "4"],
            1,
        ),
        (
            "region",
            &[
                "region",
                "--point",
                "100,120",
                "-q",
                "What is <mark>?",
                "--max-new-tokens",
                "3",
            ],
            0,
        ),
        (
            "interactive",
            &[
                "interactive",
                "--box",
                "10,10,200,200",
                "--point",
                "300,150",
            ],
            2,
        ),
        ("panoptic", &["panoptic"], usize::MAX),
    ];
    for extension in ["png", "jpg"] {
        let photo = sample_photo(dir.path(), extension);
        let out = dir.path().join(format!("out-{extension}"));
        for (name, args, masks) in commands {
            let mut all = vec![
                "--image",
                photo.to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
            ];
            all.extend_from_slice(args);
            let run = omg(dir.path(), &all);
            let stderr = String::from_utf8_lossy(&run.stderr);
            assert!(run.status.success(), "{name} on {extension}: {stderr}");
            let json = written(&out, &format!("{name}.json"));
            assert_eq!(json["command"], name);
            assert!(
                json["image"]
                    .as_str()
                    .unwrap()
                    .ends_with(&format!("photo.{extension}"))
            );
            assert_eq!(
                (json["width"].as_u64(), json["height"].as_u64()),
                (Some(451), Some(300)),
                "{name}"
            );
            let found = json["masks"].as_array().unwrap();
            if masks == usize::MAX {
                assert!(!found.is_empty(), "{name} on {extension}");
            } else {
                assert_eq!(found.len(), masks, "{name} on {extension}: {json}");
            }
            for (i, m) in found.iter().enumerate() {
                assert_eq!(
                    m["segmentation"]["size"],
                    serde_json::json!([300, 451]),
                    "{name}"
                );
                let picture = image::open(out.join(format!("{name}_{i}.png"))).unwrap();
                assert_eq!((picture.width(), picture.height()), (451, 300), "{name}");
            }
        }
    }
}

#[test]
fn shards_merged_by_coco_equal_one_unsharded_run() {
    let dir = tempfile::tempdir().unwrap();
    sample_photo(dir.path(), "png");
    sample_photo(dir.path(), "jpg");
    let lines = [
        r#"{"id": "a", "image": "photo.png", "task": "segment", "prompt": "the cat"}"#,
        r#"{"id": "b", "image": "photo.jpg", "task": "panoptic"}"#,
        r#"{"id": "c", "image": "photo.jpg", "task": "interactive", "regions": [{"box": [50, 40, 250, 220]}]}"#,
        r#"{"id": "d", "image": "photo.png", "task": "ground"}"#,
        r#"{"id": "e", "image": "photo.png", "task": "caption"}"#,
    ];
    std::fs::write(dir.path().join("m.jsonl"), lines.join("\n")).unwrap();
    let batch = |out: &str, shard: Option<&str>| {
        let mut args = vec![
            "batch",
            "--manifest",
            "m.jsonl",
            "--out",
            out,
            "--force-seg",
            "1",
            "--max-new-tokens",
            "3",
        ];
        if let Some(s) = shard {
            args.extend(["--shard", s]);
        }
        let run = omg(dir.path(), &args);
        assert!(
            run.status.success(),
            "{}",
            String::from_utf8_lossy(&run.stderr)
        );
    };
    batch("all.jsonl", None);
    batch("s0.jsonl", Some("0/2"));
    batch("s1.jsonl", Some("1/2"));
    let coco = |results: &[&str], to: &str| {
        let mut args = vec!["coco", "--coco", to];
        for r in results {
            args.extend(["--results", r]);
        }
        let run = omg(dir.path(), &args);
        assert!(
            run.status.success(),
            "{}",
            String::from_utf8_lossy(&run.stderr)
        );
        written(dir.path(), to)
    };
    let one = coco(&["all.jsonl"], "one.json");
    let merged = coco(&["s1.jsonl", "s0.jsonl"], "merged.json");
    assert!(!one["annotations"].as_array().unwrap().is_empty());
    assert_eq!(one["images"].as_array().unwrap().len(), lines.len());
    // each annotation's area and bbox ([x, y, width, height]) are its RLE's
    for a in one["annotations"].as_array().unwrap() {
        let rle: omg_masks::CocoRle = serde_json::from_value(a["segmentation"].clone()).unwrap();
        let mask = omg_masks::BinaryMask::from_rle(&rle).unwrap();
        assert_eq!(a["area"].as_u64(), Some(mask.area()), "{}", a["id"]);
        let b = mask.bbox().unwrap();
        assert_eq!(
            a["bbox"],
            serde_json::json!([b.x, b.y, b.width, b.height]),
            "{}",
            a["id"]
        );
        assert_eq!(rle.size, [300, 451]);
    }
    // equal, ids included; compared as text so that a failure stays readable
    assert!(merged == one, "{}", similar_json(&merged, &one));
}

/// Where two JSON values first differ, for a failure message.
fn similar_json(a: &serde_json::Value, b: &serde_json::Value) -> String {
    let (a, b) = (a.to_string(), b.to_string());
    let at = a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count();
    let context = |s: &str| {
        s.get(at.saturating_sub(80)..(at + 80).min(s.len()))
            .unwrap_or("")
            .to_owned()
    };
    format!(
        "first difference at byte {at}:\n  {}\n  {}",
        context(&a),
        context(&b)
    )
}

#[test]
fn a_manifest_that_repeats_an_id_is_refused_naming_the_line() {
    let dir = tempfile::tempdir().unwrap();
    sample_photo(dir.path(), "png");
    let lines = [
        r#"{"id": "a", "image": "photo.png", "task": "caption"}"#,
        r#"{"id": "b", "image": "photo.png", "task": "caption"}"#,
        r#"{"id": "a", "image": "photo.png", "task": "panoptic"}"#,
    ];
    std::fs::write(dir.path().join("m.jsonl"), lines.join("\n")).unwrap();
    let run = omg(
        dir.path(),
        &["batch", "--manifest", "m.jsonl", "--out", "r.jsonl"],
    );
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success());
    assert!(
        stderr.contains(r#"m.jsonl:3: the id "a" is used twice"#),
        "{stderr}"
    );
    assert!(!dir.path().join("r.jsonl").exists(), "nothing ran");
}
