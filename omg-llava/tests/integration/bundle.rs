//! The bundle's file detection on a directory laid out like the official release
//! (empty files: only the names matter here): the finetune release is preferred over
//! the pretrain one, the open_clip trunk and the adapter configuration are found, and
//! each missing file is named.

use std::path::Path;

use omg_llava::{CheckpointBundle, OmgLlavaError};

fn touch(dir: &Path, name: &str) {
    std::fs::write(dir.join(name), b"").unwrap();
}

fn official_layout() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir(d.join("internlm2-chat-7b")).unwrap();
    std::fs::write(
        d.join("internlm2-chat-7b/config.json"),
        r#"{"model_type": "internlm2", "hidden_size": 4096}"#,
    )
    .unwrap();
    // A sub-directory that is not the LLM.
    std::fs::create_dir(d.join("clip")).unwrap();
    std::fs::write(d.join("clip/config.json"), r#"{"model_type": "clip"}"#).unwrap();
    for f in [
        "omg_llava_7b_pretrain_8gpus.pth",
        "omg_llava_7b_finetune_8gpus.pth",
        "omg_seg_convl.pth",
        "convnext_large_d_320_CocoPanopticOVDataset.pth",
        "convnext_large_d_320.laion2B-s29B-b131K-ft-soup.bin",
        "adapter_config.json",
        "README.md",
    ] {
        touch(d, f);
    }
    dir
}

#[test]
fn the_official_layout_is_recognised() {
    let dir = official_layout();
    let d = dir.path();
    let b = CheckpointBundle::from_dir(d).unwrap();
    assert_eq!(b.llm_dir, d.join("internlm2-chat-7b"));
    assert_eq!(b.omg_llava, d.join("omg_llava_7b_finetune_8gpus.pth"));
    assert_eq!(b.omg_seg, d.join("omg_seg_convl.pth"));
    assert_eq!(
        b.class_embedding,
        d.join("convnext_large_d_320_CocoPanopticOVDataset.pth")
    );
    assert_eq!(
        b.open_clip,
        Some(d.join("convnext_large_d_320.laion2B-s29B-b131K-ft-soup.bin"))
    );
    assert_eq!(b.adapter_config, Some(d.join("adapter_config.json")));
    assert_eq!(b.config, None);

    // Without the finetune file the pretrain one is taken; without open_clip there is none.
    std::fs::remove_file(d.join("omg_llava_7b_finetune_8gpus.pth")).unwrap();
    std::fs::remove_file(d.join("convnext_large_d_320.laion2B-s29B-b131K-ft-soup.bin")).unwrap();
    let b = CheckpointBundle::from_dir(d).unwrap();
    assert_eq!(b.omg_llava, d.join("omg_llava_7b_pretrain_8gpus.pth"));
    assert_eq!(b.open_clip, None);
}

#[test]
fn each_missing_file_is_named() {
    for (remove, named) in [
        ("omg_llava_7b_pretrain_8gpus.pth", "omg_llava*.pth"),
        ("omg_seg_convl.pth", "omg_seg*.pth"),
        (
            "convnext_large_d_320_CocoPanopticOVDataset.pth",
            "class-embedding",
        ),
        ("internlm2-chat-7b", "InternLM2 directory"),
    ] {
        let dir = official_layout();
        let d = dir.path();
        if remove == "omg_llava_7b_pretrain_8gpus.pth" {
            std::fs::remove_file(d.join("omg_llava_7b_finetune_8gpus.pth")).unwrap();
        }
        let path = d.join(remove);
        if path.is_dir() {
            std::fs::remove_dir_all(path).unwrap();
        } else {
            std::fs::remove_file(path).unwrap();
        }
        match CheckpointBundle::from_dir(d) {
            Err(OmgLlavaError::MissingBundleFile { what, dir: at }) => {
                assert!(what.contains(named), "{remove}: {what}");
                assert_eq!(at, d);
            }
            other => panic!("{remove}: {other:?}"),
        }
    }
    let file = tempfile::NamedTempFile::new().unwrap();
    assert!(matches!(
        CheckpointBundle::from_dir(file.path()),
        Err(OmgLlavaError::NotADirectory { .. })
    ));
}
