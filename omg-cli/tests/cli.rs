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
