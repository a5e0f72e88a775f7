//! Loading a [`BertModel`] from the weights of a Hugging Face BERT folder.
//!
//! Both naming schemes of the published files are read: `BertModel`'s own keys
//! (`embeddings.…`, `encoder.layer.{i}.…`, LayerNorm `weight`/`bias`, as
//! `save_pretrained` writes them) and the pre-training checkpoint's (`bert.` in front,
//! LayerNorm `gamma`/`beta`, as `bert-base-uncased`'s files store them). Keys of other
//! heads (`pooler.`, `cls.`) are ignored. Linear weights are stored `[out, in]` and
//! transposed into burn's `[in, out]`; f16, bf16 and f64 files are converted to the
//! backend's float type. Every weight's presence, shape and dtype is checked before any
//! is read.

use burn::tensor::backend::Backend;
use omg_checkpoint::TensorSource;
use omg_checkpoint::module_loader::{Layout, load_module};

use crate::{BertConfig, BertError, BertModel};

/// The official key of a LayerNorm parameter `base.{gamma|beta}`: `weight`/`bias` if
/// the file has them, else `gamma`/`beta` if it has those.
fn norm_key(source: &dyn TensorSource, base: &str, burn_name: &str) -> String {
    let (new, old) = if burn_name == "gamma" {
        ("weight", "gamma")
    } else {
        ("bias", "beta")
    };
    let modern = format!("{base}.{new}");
    let legacy = format!("{base}.{old}");
    if !source.contains(&modern) && source.contains(&legacy) {
        legacy
    } else {
        modern
    }
}

/// The official key and layout of the burn parameter `path`, keys prefixed by
/// `prefix` (`""` or `"bert."`).
fn official(source: &dyn TensorSource, prefix: &str, path: &str) -> (String, Layout) {
    let parts: Vec<&str> = path.split('.').collect();
    let linear = |module: String, param: &str| {
        let layout = if param == "weight" {
            Layout::Transposed
        } else {
            Layout::Same
        };
        (format!("{prefix}{module}.{param}"), layout)
    };
    match parts.as_slice() {
        ["embeddings", "layer_norm", p] => (
            norm_key(source, &format!("{prefix}embeddings.LayerNorm"), p),
            Layout::Same,
        ),
        ["embeddings", table, "weight"] => {
            (format!("{prefix}embeddings.{table}.weight"), Layout::Same)
        }
        ["layers", i, module, p] => {
            let layer = format!("encoder.layer.{i}");
            match *module {
                "query" | "key" | "value" => linear(format!("{layer}.attention.self.{module}"), p),
                "attention_output" => linear(format!("{layer}.attention.output.dense"), p),
                "intermediate" => linear(format!("{layer}.intermediate.dense"), p),
                "output" => linear(format!("{layer}.output.dense"), p),
                "attention_norm" => (
                    norm_key(
                        source,
                        &format!("{prefix}{layer}.attention.output.LayerNorm"),
                        p,
                    ),
                    Layout::Same,
                ),
                "output_norm" => (
                    norm_key(source, &format!("{prefix}{layer}.output.LayerNorm"), p),
                    Layout::Same,
                ),
                _ => (format!("{prefix}{path}"), Layout::Same),
            }
        }
        _ => (format!("{prefix}{path}"), Layout::Same),
    }
}

/// Loads every weight of a `config`-sized model from `source`.
pub fn load_bert<B: Backend>(
    config: &BertConfig,
    source: &dyn TensorSource,
    device: &B::Device,
) -> Result<BertModel<B>, BertError> {
    let prefix = if !source.contains("embeddings.word_embeddings.weight")
        && source.contains("bert.embeddings.word_embeddings.weight")
    {
        "bert."
    } else {
        ""
    };
    let model = BertModel::<B>::init(config, device);
    let (model, _consumed) = load_module(model, source, |path| official(source, prefix, path))?;
    Ok(model)
}
