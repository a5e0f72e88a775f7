//! A weight no loader consumes fails the fixture (`UnexpectedKey`), on every stage
//! that loads OMG-Seg weights, instead of passing unnoticed.

use std::path::{Path, PathBuf};

use burn::backend::Flex;
use omg_checkpoint::CheckpointError;
use omg_llm::LlmError;
use omg_parity::fixture::sha256_hex;
use omg_parity::{ParityError, run_path};

use crate::common;

/// A copy of fixture `stem` (with its sidecar) in `dir`, with one more f32 tensor
/// `name` of shape `[2]` appended to the safetensors file, and the sidecar's record of
/// the file (`size_bytes`, `sha256`) made anew, as for a fixture made with it.
fn with_extra_tensor(stem: &str, name: &str, dir: &Path) -> PathBuf {
    let src = common::parity_dir_with("README.md").join(format!("{stem}.safetensors"));
    let bytes = std::fs::read(&src).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let mut header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let data = &bytes[8 + n..];
    header.insert(
        name.to_owned(),
        serde_json::json!({"dtype": "F32", "shape": [2], "data_offsets": [data.len(), data.len() + 8]}),
    );
    let header = serde_json::to_vec(&header).unwrap();
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&header);
    out.extend_from_slice(data);
    out.extend_from_slice(&[0u8; 8]);
    let dst = dir.join(format!("{stem}.safetensors"));
    let mut sidecar: serde_json::Value =
        serde_json::from_slice(&std::fs::read(src.with_extension("json")).unwrap()).unwrap();
    sidecar["size_bytes"] = out.len().into();
    sidecar["sha256"] = sha256_hex(&out[..]).unwrap().into();
    std::fs::write(&dst, out).unwrap();
    std::fs::write(dst.with_extension("json"), sidecar.to_string()).unwrap();
    dst
}

fn unexpected_key(stem: &str, name: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = with_extra_tensor(stem, name, dir.path());
    match run_path::<Flex>(&path, &Default::default()) {
        Err(
            ParityError::Checkpoint(CheckpointError::UnexpectedKey { key, .. })
            | ParityError::Llm(LlmError::Checkpoint(CheckpointError::UnexpectedKey { key, .. })),
        ) => assert_eq!(key, name, "{stem}"),
        other => panic!("{stem} with `{name}`: {:?}", other.map(|r| r.len())),
    }
}

#[test]
fn an_unknown_tensor_fails_every_stage_with_omg_seg_weights() {
    let in_pixel_decoder = "visual_encoder.panoptic_head.pixel_decoder.encoder.layers.1.ffn.layers.1.unexpected_extra.weight";
    let in_mask_pooling =
        "visual_encoder.panoptic_head.mask_pooling_proj.1.unexpected_extra.weight";
    let in_backbone = "visual_encoder.backbone.stages.0.unexpected_extra";
    for stem in ["encoder", "e2e", "seg_head", "visual_prompts"] {
        unexpected_key(stem, in_pixel_decoder);
    }
    unexpected_key("e2e", in_mask_pooling);
    unexpected_key("encoder", in_backbone);
    unexpected_key("projector", "projector.model.unexpected_extra.weight");
    unexpected_key("llm", "model.layers.0.unexpected_extra.weight");
}

#[test]
fn the_documented_ignore_lists_still_pass() {
    // the CLIP classification head of the backbone is on the encoder's ignore list
    let dir = tempfile::tempdir().unwrap();
    let path = with_extra_tensor(
        "encoder",
        "visual_encoder.backbone.head.2.weight",
        dir.path(),
    );
    let results = run_path::<Flex>(&path, &Default::default()).unwrap();
    assert!(!results.is_empty() && results.iter().all(|r| r.pass));
}
