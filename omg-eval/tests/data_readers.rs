//! The dataset readers on the tiny datasets of `tiny/` (official layouts, written by
//! `reference/make_tiny_datasets.py`), against the values the official tools computed
//! (`tests/data/tiny_expected.json`), and the rasterisers against pycocotools and cv2
//! (`tests/data/raster_cases.json`).

use std::path::{Path, PathBuf};

use ndarray::Array2;
use omg_eval::data::{self, Segmentation, gcg, raster, reasonseg, refcoco, region_caption};
use omg_eval::{EvalError, ReferringAccumulator, prompts};
use omg_masks::{BinaryMask, CocoRle};
use serde_json::{Value, json};

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn tiny(name: &str) -> PathBuf {
    crate_dir().join("tiny").join(name)
}

fn expected() -> Value {
    let s = std::fs::read_to_string(crate_dir().join("tests/data/tiny_expected.json")).unwrap();
    serde_json::from_str(&s).unwrap()
}

fn rle_mask(v: &Value) -> BinaryMask {
    let rle: CocoRle = serde_json::from_value(v.clone()).unwrap();
    BinaryMask::from_rle(&rle).unwrap()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let p = e.path();
        if p.is_dir() {
            copy_dir(&p, &to.join(e.file_name()));
        } else {
            std::fs::copy(&p, to.join(e.file_name())).unwrap();
        }
    }
}

/// The error's message, with a check that it names `path`.
fn names(err: EvalError, path: &Path) -> String {
    let msg = err.to_string();
    assert!(
        msg.contains(&path.display().to_string()),
        "{msg:?} does not name {}",
        path.display()
    );
    msg
}

// ------------------------------------------------------------------ rasterisers

#[test]
fn polygons_match_pycocotools() {
    let s = std::fs::read_to_string(crate_dir().join("tests/data/raster_cases.json")).unwrap();
    let v: Value = serde_json::from_str(&s).unwrap();
    let cases = v["pycocotools"].as_array().unwrap();
    assert!(cases.len() >= 200);
    for (i, c) in cases.iter().enumerate() {
        let (h, w) = (
            c["h"].as_u64().unwrap() as u32,
            c["w"].as_u64().unwrap() as u32,
        );
        let seg = Segmentation::from_json(&json!([c["poly"]])).unwrap();
        let got = seg.union_mask(h, w).unwrap();
        let want = rle_mask(&json!({"size": [h, w], "counts": c["counts"]}));
        assert_eq!(got, want, "case {i}: {h}x{w} {}", c["poly"]);
        assert_eq!(got.area(), c["area"].as_u64().unwrap(), "case {i}");
    }
}

#[test]
fn cv2_drawing_matches_opencv() {
    let s = std::fs::read_to_string(crate_dir().join("tests/data/raster_cases.json")).unwrap();
    let v: Value = serde_json::from_str(&s).unwrap();
    let cases = v["cv2"].as_array().unwrap();
    assert!(cases.len() >= 100);
    let mut outside = 0;
    for (i, c) in cases.iter().enumerate() {
        let (h, w) = (c["h"].as_u64().unwrap(), c["w"].as_u64().unwrap());
        let pts: Vec<(i64, i64)> = c["pts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (p[0].as_i64().unwrap(), p[1].as_i64().unwrap()))
            .collect();
        if pts
            .iter()
            .any(|p| p.0 < 0 || p.1 < 0 || p.0 >= w as i64 || p.1 >= h as i64)
        {
            outside += 1;
        }
        for (key, fill) in [("fill", true), ("lines", false)] {
            let mut img = Array2::<u8>::zeros((h as usize, w as usize));
            if fill {
                raster::fill_poly(&mut img, &pts, 1);
            } else {
                raster::polylines_closed(&mut img, &pts, 1);
            }
            let got = BinaryMask::from_array(img.mapv(|x| x == 1)).unwrap();
            let want = rle_mask(&json!({"size": [h, w], "counts": c[key]}));
            assert_eq!(got, want, "case {i} {key}: {h}x{w} {pts:?}");
        }
    }
    assert!(
        outside > 10,
        "cases with vertices outside the image: {outside}"
    );
}

// ------------------------------------------------------------------ pickles

#[test]
fn pickles_of_every_protocol() {
    let dir = crate_dir().join("tests/data/pickles");
    let want: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("refs.json")).unwrap()).unwrap();
    for proto in [0, 2, 4, 5] {
        let got = data::read_pickle(&dir.join(format!("refs_p{proto}.p"))).unwrap();
        assert_eq!(got, want, "protocol {proto}");
    }
}

#[test]
fn refer_toolkit_pickle_is_python2_style() {
    let path = tiny("refcoco").join("refs(unc).p");
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(&bytes[..2], b"\x80\x02");
    let v = data::read_pickle(&path).unwrap();
    let refs = v.as_array().unwrap();
    assert_eq!(refs.len(), 6);
    assert_eq!(refs[2]["sentences"][1]["sent"], "the caf\u{e9} sign");
    assert_eq!(refs[0]["file_name"], "COCO_train2014_000000000009_1001.jpg");
}

// ------------------------------------------------------------------ RefCOCO family

#[test]
fn refcoco_family_tiny_splits() {
    let exp = expected();
    for (name, ds) in [
        ("refcoco", refcoco::RefDataset::RefCoco),
        ("refcoco+", refcoco::RefDataset::RefCocoPlus),
        ("refcocog", refcoco::RefDataset::RefCocoG),
    ] {
        let dir = tiny(name);
        let splits = exp[name].as_object().unwrap();
        assert_eq!(
            splits.keys().map(String::as_str).collect::<Vec<_>>().len(),
            ds.eval_splits().len()
        );
        for split in ds.eval_splits() {
            let want = exp[name][*split].as_array().unwrap();
            let got = refcoco::load(&dir, ds, split, &dir.join("train2014")).unwrap();
            assert_eq!(got.samples.len(), want.len(), "{name} {split}");
            assert!(got.missing_images().is_empty());
            for (s, w) in got.samples.iter().zip(want) {
                let what = format!("{name} {split} {}", s.id);
                assert_eq!(s.id, w["id"].as_str().unwrap(), "{what}");
                assert_eq!(s.sentence, w["sentence"].as_str().unwrap(), "{what}");
                assert_eq!(s.ann_id, w["ann_id"].as_i64().unwrap(), "{what}");
                assert_eq!(
                    s.image_path.file_name().unwrap().to_str().unwrap(),
                    w["image"].as_str().unwrap()
                );
                assert!(s.image_path.is_file(), "{what}");
                assert_eq!(
                    (s.width, s.height),
                    (
                        w["width"].as_u64().unwrap() as u32,
                        w["height"].as_u64().unwrap() as u32
                    )
                );
                let m = s.mask().unwrap();
                assert_eq!(
                    (m.height(), m.width()),
                    (s.height as usize, s.width as usize)
                );
                assert_eq!(m.area(), w["union_area"].as_u64().unwrap(), "{what}");
                assert_eq!(
                    s.official_mask().unwrap().area(),
                    w["official_area"].as_u64().unwrap(),
                    "{what}"
                );
                assert_eq!(
                    s.question(),
                    format!("Please segment {} in this image.", s.sentence)
                );
            }
        }
    }
}

#[test]
fn refcoco_overlapping_polygons_differ_from_the_official_sum() {
    let dir = tiny("refcoco");
    let split = refcoco::load(
        &dir,
        refcoco::RefDataset::RefCoco,
        "val",
        &dir.join("train2014"),
    )
    .unwrap();
    let s = &split.samples[0];
    assert_eq!(s.ann_id, 1002);
    let union = s.mask().unwrap();
    let official = s.official_mask().unwrap();
    assert!(official.area() < union.area());
    // A perfect prediction of the union scores below 1 against the official ground
    // truth, and exactly 1 against the union.
    let mut acc = ReferringAccumulator::new();
    acc.add(Some(&union), &union, "u").unwrap();
    assert!((acc.scores().unwrap().ciou - 1.0).abs() < 1e-9);
    let mut acc = ReferringAccumulator::new();
    acc.add(Some(&union), &official, "o").unwrap();
    assert!(acc.scores().unwrap().ciou < 0.9);
    assert_eq!(split.refs, 2);
    assert_eq!(split.images, 2);
}

#[test]
fn refcoco_split_errors() {
    let dir = tiny("refcocog");
    let images = dir.join("train2014");
    let e = refcoco::load(&dir, refcoco::RefDataset::RefCocoG, "dev", &images).unwrap_err();
    let msg = names(e, &dir.join("refs(umd).p"));
    assert!(msg.contains("testA") && msg.contains("\"dev\""), "{msg}");
    // testA is a refer-toolkit split name, but RefCOCOg (umd) has no such ref.
    let e = refcoco::load(&dir, refcoco::RefDataset::RefCocoG, "testA", &images).unwrap_err();
    assert!(matches!(e, EvalError::UnknownSplit { .. }));
    let msg = e.to_string();
    assert!(msg.contains("test, train, val"), "{msg}");
    // Wrong refs file for the dataset: refcocog has no refs(unc).p.
    let e = refcoco::load(&dir, refcoco::RefDataset::RefCoco, "val", &images).unwrap_err();
    assert!(matches!(e, EvalError::Io { .. }));
    names(e, &dir.join("refs(unc).p"));
}

#[test]
fn refcoco_bad_files_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("refcoco");
    copy_dir(&tiny("refcoco"), &dir);
    let refs = dir.join("refs(unc).p");
    let inst = dir.join("instances.json");
    let images = dir.join("train2014");
    let ds = refcoco::RefDataset::RefCoco;
    let load = || refcoco::load(&dir, ds, "val", &images);

    // Not a pickle.
    std::fs::write(&refs, b"{\"refs\": []}").unwrap();
    let msg = names(load().unwrap_err(), &refs);
    assert!(msg.contains("not a readable pickle"), "{msg}");
    // A pickle of refs without their keys: [{'ref_id': 1}] (protocol 2).
    std::fs::write(&refs, b"\x80\x02]q\x00}q\x01U\x06ref_idq\x02K\x01sa.").unwrap();
    let msg = names(load().unwrap_err(), &refs);
    assert!(msg.contains("ref 0") && msg.contains("ann_id"), "{msg}");
    copy_dir(&tiny("refcoco"), &dir);

    // An annotation the refs name is missing from instances.json.
    let mut v: Value = serde_json::from_str(&std::fs::read_to_string(&inst).unwrap()).unwrap();
    let anns = v["annotations"].as_array_mut().unwrap();
    anns.retain(|a| a["id"] != 1002);
    std::fs::write(&inst, v.to_string()).unwrap();
    let msg = names(load().unwrap_err(), &inst);
    assert!(msg.contains("annotation id 1002"), "{msg}");

    // A polygon with an odd number of coordinates.
    let mut v: Value = serde_json::from_str(
        &std::fs::read_to_string(tiny("refcoco").join("instances.json")).unwrap(),
    )
    .unwrap();
    for a in v["annotations"].as_array_mut().unwrap() {
        if a["id"] == 1005 {
            a["segmentation"] = json!([[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]]);
        }
    }
    std::fs::write(&inst, v.to_string()).unwrap();
    let msg = names(load().unwrap_err(), &inst);
    assert!(
        msg.contains("annotation 1005") && msg.contains("odd"),
        "{msg}"
    );

    // instances.json without "images".
    std::fs::write(&inst, "{\"annotations\": []}").unwrap();
    let msg = names(load().unwrap_err(), &inst);
    assert!(msg.contains("images"), "{msg}");
    std::fs::remove_file(&inst).unwrap();
    assert!(matches!(load().unwrap_err(), EvalError::Io { .. }));

    // A missing photo is reported by missing_images.
    copy_dir(&tiny("refcoco"), &dir);
    std::fs::remove_file(images.join("COCO_train2014_000000000009.jpg")).unwrap();
    let split = load().unwrap();
    assert_eq!(
        split.missing_images(),
        vec![images.join("COCO_train2014_000000000009.jpg")]
    );
}

// ------------------------------------------------------------------ ReasonSeg

#[test]
fn reasonseg_tiny_splits() {
    let exp = expected();
    for split in reasonseg::SPLITS {
        let want = exp["reasonseg"][split].as_array().unwrap();
        let got = reasonseg::load(&tiny("reasonseg"), split).unwrap();
        assert_eq!(got.len(), want.len());
        for (s, w) in got.iter().zip(want) {
            assert_eq!(s.id, w["id"].as_str().unwrap());
            assert_eq!(s.query(), w["query"].as_str().unwrap());
            assert_eq!(s.is_sentence, w["is_sentence"].as_bool().unwrap());
            assert_eq!(s.width as u64, w["width"].as_u64().unwrap());
            assert_eq!(s.height as u64, w["height"].as_u64().unwrap());
            let (target, ignore) = s.masks().unwrap();
            assert_eq!(target, rle_mask(&w["target_rle"]), "{}", s.id);
            assert_eq!(ignore, rle_mask(&w["ignore_rle"]), "{}", s.id);
            assert_eq!(target.area(), w["target_area"].as_u64().unwrap());
            assert_eq!(ignore.area(), w["ignore_area"].as_u64().unwrap());
            assert_eq!(
                s.question(),
                prompts::reasonseg_question(s.query(), s.is_sentence)
            );
        }
    }
}

#[test]
fn reasonseg_cp1252_file_and_ignore_handling() {
    let split = reasonseg::load(&tiny("reasonseg"), "test").unwrap();
    let s = &split[0];
    // The annotation is Windows-1252 (LISA's fallback encoding).
    assert_eq!(s.query(), "what keeps the caf\u{e9} \u{201c}warm\u{201d}?");
    assert_eq!(
        s.question(),
        "what keeps the caf\u{e9} \u{201c}warm\u{201d}? Please output segmentation mask."
    );
    let (target, ignore) = s.masks().unwrap();
    assert!(ignore.area() > 0);
    // Predicting everything: the ignored pixels do not count in the union.
    let all = BinaryMask::from_array(Array2::from_elem(
        (s.height as usize, s.width as usize),
        true,
    ))
    .unwrap();
    let pred = reasonseg::ReasonSegSample::without_ignored(&all, &ignore).unwrap();
    assert_eq!(pred.area(), all.area() - ignore.area());
    let mut acc = ReferringAccumulator::new();
    acc.add(Some(&pred), &target, "rs").unwrap();
    let sc = acc.scores().unwrap();
    assert_eq!(sc.intersection, target.area());
    assert_eq!(sc.union, all.area() - ignore.area());
    let v = reasonseg::load(&tiny("reasonseg"), "val").unwrap();
    assert_eq!(
        v[1].question(),
        "What is the round red thing in this image? Please output segmentation mask."
    );
}

#[test]
fn reasonseg_errors_are_named() {
    let e = reasonseg::load(&tiny("reasonseg"), "train").unwrap_err();
    let msg = names(e, &tiny("reasonseg"));
    assert!(msg.contains("val, test"), "{msg}");

    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("ReasonSeg");
    copy_dir(&tiny("reasonseg"), &root);
    let json = root.join("val/1000002.json");
    std::fs::remove_file(&json).unwrap();
    let e = reasonseg::load(&root, "val").unwrap_err();
    assert!(matches!(e, EvalError::Io { .. }));
    names(e, &json);

    std::fs::write(&json, r#"{"text": ["q"], "shapes": []}"#).unwrap();
    let msg = names(reasonseg::load(&root, "val").unwrap_err(), &json);
    assert!(msg.contains("is_sentence"), "{msg}");

    std::fs::write(
        &json,
        r#"{"text": ["q"], "is_sentence": false, "shapes": [{"label": "target", "points": []}]}"#,
    )
    .unwrap();
    let msg = names(reasonseg::load(&root, "val").unwrap_err(), &json);
    assert!(msg.contains("shape 0 has no points"), "{msg}");

    std::fs::write(&json, r#"{"text": [], "is_sentence": false, "shapes": []}"#).unwrap();
    let msg = names(reasonseg::load(&root, "val").unwrap_err(), &json);
    assert!(msg.contains("no query"), "{msg}");

    let jpg = root.join("val/1000002.jpg");
    std::fs::write(
        &json,
        r#"{"text": ["q"], "is_sentence": false, "shapes": []}"#,
    )
    .unwrap();
    std::fs::write(&jpg, b"not a jpeg").unwrap();
    let msg = names(reasonseg::load(&root, "val").unwrap_err(), &jpg);
    assert!(msg.contains("not a readable image"), "{msg}");

    std::fs::remove_dir_all(root.join("test")).unwrap();
    let e = reasonseg::load(&root, "test").unwrap_err();
    names(e, &root.join("test"));
}

// ------------------------------------------------------------------ GCG

#[test]
fn gcg_tiny_splits() {
    let exp = expected();
    let ann = tiny("gcg").join("gcg_val_test");
    let images = tiny("gcg").join("val_test");
    for split in gcg::SPLITS {
        let want = exp["gcg"][split].as_array().unwrap();
        let got = gcg::load(&ann, split, &images).unwrap();
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(want) {
            assert_eq!(g.id, w["id"].as_str().unwrap());
            assert_eq!(g.caption, w["caption"].as_str().unwrap());
            assert_eq!(g.captions, vec![g.caption.clone()]);
            let phrases: Vec<&str> = w["phrases"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p.as_str().unwrap())
                .collect();
            assert_eq!(g.phrases, phrases);
            assert!(g.image_path.is_file());
            let areas: Vec<u64> = g.decode_masks().unwrap().iter().map(|m| m.area()).collect();
            let want_areas: Vec<u64> = w["mask_areas"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a.as_u64().unwrap())
                .collect();
            assert_eq!(areas, want_areas, "{}", g.id);
            let gt = g.ground_truth().unwrap();
            let ids: Vec<u64> = gt.iter().map(|t| t.id).collect();
            let want_ids: Vec<u64> = w["ann_ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a.as_u64().unwrap())
                .collect();
            assert_eq!(ids, want_ids);
        }
    }
}

#[test]
fn gcg_errors_are_named() {
    let ann = tiny("gcg").join("gcg_val_test");
    let images = tiny("gcg").join("val_test");
    let e = gcg::load(&ann, "train", &images).unwrap_err();
    assert!(matches!(e, EvalError::UnknownSplit { .. }));
    names(e, &ann);

    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("gcg");
    copy_dir(&tiny("gcg"), &root);
    let ann = root.join("gcg_val_test");
    let images = root.join("val_test");
    let mask = ann.join("val_gcg_coco_mask_gt.json");

    let mut v: Value = serde_json::from_str(&std::fs::read_to_string(&mask).unwrap()).unwrap();
    v["annotations"][0]["image_id"] = json!("sa_999");
    std::fs::write(&mask, v.to_string()).unwrap();
    let msg = names(gcg::load(&ann, "val", &images).unwrap_err(), &mask);
    assert!(msg.contains("sa_999"), "{msg}");

    std::fs::remove_file(&mask).unwrap();
    let e = gcg::load(&ann, "val", &images).unwrap_err();
    assert!(matches!(e, EvalError::Io { .. }));
    names(e, &mask);

    let photo = images.join("sa_1000003.jpg");
    std::fs::remove_file(&photo).unwrap();
    names(gcg::load(&ann, "test", &images).unwrap_err(), &photo);

    let cap = ann.join("test_gcg_coco_caption_gt.json");
    let mut v: Value = serde_json::from_str(&std::fs::read_to_string(&cap).unwrap()).unwrap();
    v["annotations"].as_array_mut().unwrap().remove(0);
    std::fs::write(&cap, v.to_string()).unwrap();
    let msg = names(gcg::load(&ann, "test", &images).unwrap_err(), &cap);
    assert!(msg.contains("no caption"), "{msg}");
}

// ------------------------------------------------------------------ region captions

#[test]
fn region_caption_tiny_file() {
    let exp = expected();
    let want = exp["region_caption"].as_array().unwrap();
    let dir = tiny("region_caption");
    let regions = dir.join(region_caption::REGIONS_FILE);
    let captions = dir.join(region_caption::CAPTIONS_FILE);
    let images = dir.join("train2014");
    for caps in [None, Some(captions.as_path())] {
        let got = region_caption::load(&regions, caps, &images).unwrap();
        assert_eq!(got.len(), want.len());
        for (s, w) in got.iter().zip(want) {
            assert_eq!(s.id, w["id"].as_i64().unwrap());
            assert_eq!(
                s.references,
                vec![w["caption"].as_str().unwrap().to_string()]
            );
            assert_eq!(s.file_name, w["image"].as_str().unwrap());
            assert!(s.image_path.is_file());
            let bbox: Vec<f64> = w["bbox"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect();
            assert_eq!(s.bbox.unwrap().to_vec(), bbox);
            assert_eq!(s.mask().unwrap().area(), w["mask_area"].as_u64().unwrap());
            assert_eq!(s.question(), prompts::REGION_CAPTION_QUESTION);
        }
    }
    // The captions file has no segmentation: its regions have no mask.
    let only_caps = region_caption::load(&captions, None, &images).unwrap();
    let msg = names(only_caps[0].mask().unwrap_err(), &captions);
    assert!(msg.contains("no segmentation"), "{msg}");
}

#[test]
fn region_caption_errors_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("rc");
    copy_dir(&tiny("region_caption"), &dir);
    let regions = dir.join(region_caption::REGIONS_FILE);
    let images = dir.join("train2014");
    let mut v: Value = serde_json::from_str(&std::fs::read_to_string(&regions).unwrap()).unwrap();
    v["annotations"][1]["id"] = json!(77);
    std::fs::write(&regions, v.to_string()).unwrap();
    let msg = names(
        region_caption::load(&regions, None, &images).unwrap_err(),
        &regions,
    );
    assert!(msg.contains("image 1 has no annotation"), "{msg}");

    copy_dir(&tiny("region_caption"), &dir);
    let photo = images.join("COCO_train2014_000000000025.jpg");
    std::fs::remove_file(&photo).unwrap();
    names(
        region_caption::load(&regions, None, &images).unwrap_err(),
        &photo,
    );
    let missing = dir.join("nope.json");
    names(
        region_caption::load(&regions, Some(&missing), &images).unwrap_err(),
        &missing,
    );
}

// ------------------------------------------------------------------ the bundle

#[test]
fn tiny_datasets_stay_small() {
    fn size(p: &Path) -> u64 {
        std::fs::read_dir(p)
            .unwrap()
            .map(|e| {
                let p = e.unwrap().path();
                if p.is_dir() {
                    size(&p)
                } else {
                    p.metadata().unwrap().len()
                }
            })
            .sum()
    }
    let total = size(&crate_dir().join("tiny"));
    assert!(total > 10_000 && total < 300_000, "{total} bytes");
}
