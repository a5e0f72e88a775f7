//! Prints, as JSON, every tensor of a full-size OMG-LLaVA-7B bundle in the official
//! layouts: the official key and the shape as the official files store it (`[out, in]`
//! for linears), per file. `benches/write_full_bundle.py` writes random tensors of
//! these names and shapes; the names come from the loaders themselves, so what it
//! writes is exactly what `Pipeline::from_dir` reads.
//!
//! ```text
//! cargo run --release -p omg-bench --bin bundle_manifest > manifest.json
//! ```
//!
//! Output: `{"internlm2": {"config": …, "tensors": [[key, shape], …]},
//! "omg_llava": [[key, shape], …], "omg_seg": [[key, shape], …],
//! "class_embedding": shape}`.

use std::collections::BTreeMap;

use burn::module::Module;
use omg_checkpoint::module_loader::{Layout, parameter_shapes};
use omg_encoder::loader::{
    BackboneNaming, backbone_key, mask_decoder_key, pixel_decoder_key, prompt_embedding_key,
};
use omg_encoder::{ConvNext, MaskDecoder, PixelDecoder, PromptEmbedding};
use omg_llava::OmgLlavaConfig;
use omg_llm::InternLM2Config;
use omg_llm::loader::official_tensors;
use omg_projector::loader::{TEXT2VISION_PREFIX, VISUAL_PROJECTOR_PREFIX, visual_projector_key};
use omg_projector::mlp::official_suffix;
use omg_projector::{ProjectorMlp, VisualProjector};
use serde_json::{Value, json};

type B = omg_llava::backend::DefaultBackend;

/// The tokens OMG-LLaVA adds to InternLM2's vocabulary (`[SEG]`, `<p>`, `</p>`,
/// `<region>`), which resize the released embedding table and head.
const ADDED_TOKENS: usize = 4;
/// The official LoRA rank of the OMG-LLaVA finetune.
const LORA_RANK: usize = 512;
/// Where PEFT puts the wrapped language model inside the released `.pth`.
const PEFT_PREFIX: &str = "llm.base_model.model.";

/// `(official key, official shape)` of every float parameter of `module`, named by
/// `key` (burn path → official key and layout).
fn official<M: Module<B>>(
    module: &M,
    key: impl Fn(&str) -> (String, Layout),
) -> Vec<(String, Vec<usize>)> {
    parameter_shapes::<B, M>(module)
        .into_iter()
        .map(|(path, shape)| {
            let (name, layout) = key(&path);
            assert!(!name.starts_with('?'), "no official name for `{path}`");
            let shape = match layout {
                Layout::Same => shape,
                Layout::Transposed => shape.into_iter().rev().collect(),
            };
            (name, shape)
        })
        .collect()
}

/// The released `.pth`'s language-model tensors: the resized embedding table and head
/// and a LoRA pair for every linear (PEFT ≥ 0.7 names).
fn release_llm(config: &InternLM2Config) -> Vec<(String, Vec<usize>)> {
    let (h, vocab) = (config.hidden_size, config.vocab_size + ADDED_TOKENS);
    let mut out = vec![
        (
            format!("{PEFT_PREFIX}model.tok_embeddings.weight"),
            vec![vocab, h],
        ),
        (
            format!("{PEFT_PREFIX}output.base_layer.weight"),
            vec![vocab, h],
        ),
    ];
    for (name, shape) in official_tensors(config) {
        let is_linear = shape.len() == 2 && name.starts_with("model.layers.");
        let module = if is_linear {
            name.strip_suffix(".weight").map(str::to_owned)
        } else if name == "output.weight" {
            Some("output".to_owned())
        } else {
            None
        };
        let Some(module) = module else { continue };
        let (rows, cols) = if module == "output" {
            (vocab, h)
        } else {
            (shape[0], shape[1])
        };
        out.push((
            format!("{PEFT_PREFIX}{module}.lora_A.default.weight"),
            vec![LORA_RANK, cols],
        ));
        out.push((
            format!("{PEFT_PREFIX}{module}.lora_B.default.weight"),
            vec![rows, LORA_RANK],
        ));
    }
    out
}

fn pairs(list: Vec<(String, Vec<usize>)>) -> Value {
    Value::Array(list.into_iter().map(|(k, s)| json!([k, s])).collect())
}

fn main() {
    let device = omg_llava::backend::default_device();
    let config = OmgLlavaConfig::default();
    let llm = InternLM2Config::internlm2_chat_7b();

    let mut release = release_llm(&llm);
    let projector = VisualProjector::<B>::init(&config.projector, &device);
    release.extend(official(&projector, |p| {
        visual_projector_key(VISUAL_PROJECTOR_PREFIX, p)
    }));
    let t2v = &config.text2vision;
    let text2vision = ProjectorMlp::<B>::init(
        t2v.llm_hidden_size,
        t2v.query_dim,
        t2v.depth,
        t2v.bias,
        &device,
    );
    release.extend(official(&text2vision, |p| {
        let suffix = official_suffix(p).unwrap_or_else(|| format!("?{p}"));
        let layout = if p.ends_with("weight") {
            Layout::Transposed
        } else {
            Layout::Same
        };
        (format!("{TEXT2VISION_PREFIX}{suffix}"), layout)
    }));

    let enc = &config.encoder;
    let naming = BackboneNaming::OmgSeg("backbone.".to_owned());
    let head = "panoptic_head.";
    let mut seg = official(&ConvNext::<B>::init(&enc.backbone, &device), |p| {
        backbone_key(&naming, p)
    });
    seg.extend(official(
        &PixelDecoder::<B>::init(&enc.pixel_decoder, &device),
        |p| pixel_decoder_key(head, p),
    ));
    seg.extend(official(
        &MaskDecoder::<B>::init(&enc.mask_decoder, &device),
        |p| mask_decoder_key(head, p),
    ));
    seg.extend(official(
        &PromptEmbedding::<B>::init(&enc.mask_decoder, &device),
        |p| prompt_embedding_key(head, p),
    ));

    let classes = enc.panoptic.num_things + enc.panoptic.num_stuff;
    /// Synonyms per class in the official `CocoPanopticOVDataset` embedding file.
    const PROTOTYPES: usize = 17;
    let manifest = json!({
        "internlm2": {
            "config": serde_json::to_value(&llm).expect("the config serializes"),
            "tensors": pairs(official_tensors(&llm)),
        },
        "omg_llava": pairs(release),
        "omg_seg": pairs(seg),
        "class_embedding": [classes, PROTOTYPES, enc.mask_decoder.clip_dim],
    });
    let sizes: BTreeMap<&str, usize> = ["omg_llava", "omg_seg"]
        .into_iter()
        .map(|k| (k, manifest[k].as_array().map_or(0, Vec::len)))
        .collect();
    eprintln!("tensors per file: {sizes:?}");
    println!("{manifest}");
}
