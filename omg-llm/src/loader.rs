//! Loading InternLM2 weights by their official names.
//!
//! Two layouts are read, through any [`TensorSource`]:
//!
//! - **HF InternLM2** (`internlm/internlm2-chat-7b`): `model.tok_embeddings.weight`,
//!   `model.layers.{i}.attention.{wqkv,wo}.weight`,
//!   `model.layers.{i}.feed_forward.{w1,w2,w3}.weight`,
//!   `model.layers.{i}.{attention_norm,ffn_norm}.weight`, `model.norm.weight`,
//!   `output.weight`.
//! - **A PEFT LoRA release** on top of that base ([`PeftRelease`]): a checkpoint whose
//!   language-model keys sit under a prefix (a multimodal release keeps them beside
//!   other modules' weights; PEFT wraps them in `base_model.model.`). LoRA pairs
//!   `<module>.lora_A.<adapter>.weight` `(r, in)` / `<module>.lora_B.<adapter>.weight`
//!   `(out, r)` are merged as `W + (lora_alpha / r)·B·A` (for `wqkv`, `wo`, `w1`, `w2`,
//!   `w3` and the head `output`); base weights under `<module>.base_layer.weight`
//!   (PEFT ≥ 0.7) or `<module>.weight` (older PEFT) and resized `tok_embeddings` /
//!   `output` tables replace the base model's.
//!
//! Every parameter must be found (else [`CheckpointError::MissingKey`] naming the
//! official key); every key of the base checkpoint and every key of the release under
//! its prefix must be used or be on [`IGNORED_KEY_SUFFIXES`] (else
//! [`CheckpointError::UnexpectedKey`]). Keys of the release outside the prefix belong
//! to other components and are returned in [`LoadReport::foreign_keys`].
//! Shapes are checked against the configuration before anything is built, so a
//! failed load never yields a half-loaded model.
//!
//! The `_with` variants take an [`LlmWeights`]: under int8/int4 each linear weight is
//! read a block of rows at a time (about 32 MB of f32), LoRA-merged on the host and
//! quantized; a bf16/f16 linear is merged and rounded the same way. The peak memory of
//! a load is the final model plus a block and the tensor being assembled.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use burn::module::Module;
use burn::tensor::{
    DType, FloatDType, Tensor, TensorCreationOptions, TensorData, backend::Backend,
};

use crate::config::InternLM2Config;
use crate::model::InternLM2;
use crate::{LinearStorage, LlmError, LlmWeights};
use omg_checkpoint::apply::{Producer, QuantProducer, WeightApplier};
use omg_checkpoint::module_loader::{to_backend_float, transpose_2d};
use omg_checkpoint::placement::WeightBuffer;
use omg_checkpoint::{CheckpointError, TensorSource, safetensors::open_hf_dir};
use omg_kernels::{QuantBits, QuantLayout, QuantizedMatrix};
use rayon::prelude::*;

/// Checkpoint keys that are deliberately skipped: RoPE frequency buffers that old
/// InternLM2 checkpoints carry (the model recomputes them from `rope_theta`).
pub const IGNORED_KEY_SUFFIXES: &[&str] = &["rotary_emb.inv_freq"];

/// Options for merging the LoRA adapters of a PEFT release.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoraOptions {
    /// PEFT `lora_alpha`; the merge scale is `lora_alpha / r` with `r` read from the
    /// adapter shapes.
    pub lora_alpha: f64,
}

impl LoraOptions {
    /// Reads `lora_alpha` from a PEFT `adapter_config.json`.
    pub fn from_adapter_config(path: impl AsRef<Path>) -> Result<Self, LlmError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| LlmError::Io {
            path: path.to_owned(),
            source,
        })?;
        let json: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| LlmError::Config(format!("{}: invalid JSON: {e}", path.display())))?;
        let lora_alpha = json
            .get("lora_alpha")
            .and_then(|v| v.as_f64())
            .filter(|a| a.is_finite() && *a > 0.0)
            .ok_or_else(|| {
                LlmError::Config(format!(
                    "{}: `lora_alpha` must be a positive number",
                    path.display()
                ))
            })?;
        Ok(Self { lora_alpha })
    }
}

/// A PEFT LoRA release applied on top of a base checkpoint: the language model's keys
/// of `source` are those under `prefix` (e.g. `"llm."`); the others belong to other
/// components and are listed in [`LoadReport::foreign_keys`].
#[derive(Clone, Copy)]
pub struct PeftRelease<'a> {
    /// The release checkpoint.
    pub source: &'a dyn TensorSource,
    /// The prefix of the language model's keys in it.
    pub prefix: &'a str,
    /// How the LoRA pairs are merged.
    pub lora: LoraOptions,
}

/// What a load used, for the caller's bookkeeping.
#[derive(Debug, Clone, Default)]
pub struct LoadReport {
    /// Official names of the weights that received a merged LoRA delta.
    pub lora_merged: Vec<String>,
    /// Official names whose base tensor came from the release checkpoint.
    pub from_release: Vec<String>,
    /// Keys of the release checkpoint outside its prefix (projectors, visual encoder
    /// …), left for other components.
    pub foreign_keys: Vec<String>,
    /// Keys skipped because they are on [`IGNORED_KEY_SUFFIXES`].
    pub ignored_keys: Vec<String>,
}

/// How one official tensor maps onto the burn module.
#[derive(Debug, Clone)]
pub(crate) struct Slot {
    /// Dotted burn parameter path.
    pub(crate) path: String,
    /// Official HF name.
    pub(crate) official: String,
    /// Official shape (`[out, in]` for linears).
    pub(crate) shape: Vec<usize>,
    /// A `torch.nn.Linear` weight: stored `[out, in]`, burn wants `[in, out]`.
    pub(crate) linear: bool,
    /// How a linear weight is held: converted (half) or quantized as it is read.
    pub(crate) storage: LinearStorage,
}

impl Slot {
    /// The module path holding a quantized weight's `values` and `scales`.
    pub(crate) fn quantized_prefix(&self) -> String {
        let module = self.path.strip_suffix(".weight").unwrap_or(&self.path);
        format!("{module}.quantized")
    }
}

/// The storage of every tensor that is not a linear weight.
const F32: LinearStorage = LinearStorage::Float(FloatDType::F32);

/// Every parameter of an [`InternLM2`] of `c` whose linears are held as `weights`.
pub(crate) fn slots(c: &InternLM2Config, weights: LlmWeights) -> Vec<Slot> {
    let (h, v, i) = (c.hidden_size, c.vocab_size, c.intermediate_size);
    let attn_out = c.num_attention_heads * c.head_dim();
    let mut out = vec![Slot {
        path: "tok_embeddings.weight".into(),
        official: "model.tok_embeddings.weight".into(),
        shape: vec![v, h],
        linear: false,
        storage: F32,
    }];
    for l in 0..c.num_hidden_layers {
        let linears: [(&str, &str, usize, usize); 5] = [
            ("attention.wqkv", "attention.wqkv", c.qkv_dim(), h),
            ("attention.wo", "attention.wo", h, attn_out),
            ("feed_forward.w1", "feed_forward.w1", i, h),
            ("feed_forward.w2", "feed_forward.w2", h, i),
            ("feed_forward.w3", "feed_forward.w3", i, h),
        ];
        for (path, official, rows, cols) in linears {
            out.push(Slot {
                path: format!("layers.{l}.{path}.weight"),
                official: format!("model.layers.{l}.{official}.weight"),
                shape: vec![rows, cols],
                linear: true,
                storage: weights.layer_storage(),
            });
            if c.bias {
                out.push(Slot {
                    path: format!("layers.{l}.{path}.bias"),
                    official: format!("model.layers.{l}.{official}.bias"),
                    shape: vec![rows],
                    linear: false,
                    storage: F32,
                });
            }
        }
        for norm in ["attention_norm", "ffn_norm"] {
            out.push(Slot {
                path: format!("layers.{l}.{norm}.gamma"),
                official: format!("model.layers.{l}.{norm}.weight"),
                shape: vec![h],
                linear: false,
                storage: F32,
            });
        }
    }
    out.push(Slot {
        path: "norm.gamma".into(),
        official: "model.norm.weight".into(),
        shape: vec![h],
        linear: false,
        storage: F32,
    });
    out.push(Slot {
        path: "output.weight".into(),
        official: "output.weight".into(),
        shape: vec![v, h],
        linear: true,
        storage: weights.head_storage(),
    });
    out
}

/// Every tensor of the HF InternLM2 layout for `config`: official name and shape (as a
/// checkpoint stores it, e.g. to build an [`omg_checkpoint::SyntheticSource`]).
pub fn official_tensors(config: &InternLM2Config) -> Vec<(String, Vec<usize>)> {
    slots(config, LlmWeights::F32)
        .into_iter()
        .map(|s| (s.official, s.shape))
        .collect()
}

fn is_ignored(key: &str) -> bool {
    IGNORED_KEY_SUFFIXES.iter().any(|s| key.ends_with(s))
}

/// The language-model tensors of a PEFT release, grouped by the official HF name they
/// modify.
#[derive(Debug, Default)]
struct ReleaseEntry {
    base: Option<String>,
    lora_a: Option<String>,
    lora_b: Option<String>,
}

fn set_once(
    slot: &mut Option<String>,
    key: &str,
    source: &dyn TensorSource,
) -> Result<(), CheckpointError> {
    if let Some(prev) = slot {
        return Err(CheckpointError::Format {
            path: source.describe().into(),
            message: format!(
                "`{prev}` and `{key}` both provide the same weight (two LoRA adapters or two base layers?)"
            ),
        });
    }
    *slot = Some(key.to_owned());
    Ok(())
}

fn parse_release(
    release: &dyn TensorSource,
    prefix: &str,
) -> Result<(BTreeMap<String, ReleaseEntry>, Vec<String>), CheckpointError> {
    let mut entries: BTreeMap<String, ReleaseEntry> = BTreeMap::new();
    let mut foreign = Vec::new();
    for key in release.names() {
        let Some(rest) = key.strip_prefix(prefix) else {
            foreign.push(key);
            continue;
        };
        let rest = rest.strip_prefix("base_model.model.").unwrap_or(rest);
        let lora = ["lora_A", "lora_B"].iter().find_map(|kind| {
            let marker = format!(".{kind}.");
            rest.find(&marker)
                .map(|at| (*kind, &rest[..at], &rest[at + marker.len()..]))
        });
        match lora {
            Some((kind, module, tail)) => {
                // `<adapter>.weight` (PEFT with adapter names) or `weight` (oldest PEFT)
                if !(tail == "weight" || tail.ends_with(".weight")) {
                    return Err(CheckpointError::UnexpectedKey {
                        key,
                        source_name: release.describe(),
                    });
                }
                let entry = entries.entry(format!("{module}.weight")).or_default();
                let slot = if kind == "lora_A" {
                    &mut entry.lora_a
                } else {
                    &mut entry.lora_b
                };
                set_once(slot, &key, release)?;
            }
            None => {
                let official = rest
                    .replace(".base_layer.weight", ".weight")
                    .replace(".base_layer.bias", ".bias");
                set_once(
                    &mut entries.entry(official).or_default().base,
                    &key,
                    release,
                )?;
            }
        }
    }
    Ok((entries, foreign))
}

/// Where the value of one slot comes from.
struct Plan {
    slot: Slot,
    base_key: String,
    base_from_release: bool,
    lora: Option<(String, String, f64)>,
}

fn check_float(key: &str, dtype: DType) -> Result<(), CheckpointError> {
    match dtype {
        DType::F32 | DType::F16 | DType::BF16 | DType::F64 => Ok(()),
        other => Err(CheckpointError::UnsupportedDType {
            key: key.to_owned(),
            dtype: format!("{other:?}"),
        }),
    }
}

fn check_shape(
    source: &dyn TensorSource,
    key: &str,
    expected: &[usize],
) -> Result<(), CheckpointError> {
    let info = source
        .info(key)
        .ok_or_else(|| CheckpointError::MissingKey {
            key: key.to_owned(),
            sources: source.describe(),
        })?;
    check_float(key, info.dtype)?;
    if info.shape != expected {
        return Err(CheckpointError::ShapeMismatch {
            key: key.to_owned(),
            expected: expected.to_vec(),
            found: info.shape,
        });
    }
    Ok(())
}

/// Reads `key` and converts it to the backend's float type.
fn read_float<B: Backend>(
    source: &dyn TensorSource,
    key: &str,
) -> Result<TensorData, CheckpointError> {
    to_backend_float::<B>(key, source.read(key)?)
}

/// The producer of a float slot. A bf16/f16 linear is merged and rounded a block of
/// rows at a time on the host ([`half_merged`]); an f32 one is read whole, transposed
/// and LoRA-merged in the backend's float type; other tensors are read as they are.
fn producer<'a, B: Backend>(
    plan: Plan,
    dtype: FloatDType,
    base: &'a dyn TensorSource,
    release: Option<&'a dyn TensorSource>,
) -> Producer<'a, B> {
    Box::new(move |device: &B::Device| {
        let src = match (plan.base_from_release, release) {
            (true, Some(r)) => r,
            _ => base,
        };
        if plan.slot.linear && dtype != FloatDType::F32 {
            // a half linear: merged, rounded and transposed on the host a block of rows
            // at a time, so the largest transient is one block
            let lora = LoraPair::of(&plan, release);
            let shape = [plan.slot.shape[0], plan.slot.shape[1]];
            let half = half_merged::<B>(
                src,
                &plan.base_key,
                lora,
                shape,
                dtype,
                BLOCK_VALUES,
                device,
            )?;
            let options = TensorCreationOptions::new(device.clone()).with_dtype(dtype.into());
            return Ok(Tensor::<B, 2>::from_data(half, options));
        }
        let data = read_float::<B>(src, &plan.base_key)?;
        if !plan.slot.linear {
            return Ok(if data.shape.len() == 1 {
                let n = data.shape[0];
                Tensor::<B, 1>::from_data(data, device).reshape([1, n])
            } else {
                Tensor::<B, 2>::from_data(data, device)
            });
        }
        // burn's Linear stores [in, out].
        let weight_t = Tensor::<B, 2>::from_data(transpose_2d(data), device);
        let merged = match (&plan.lora, release) {
            (Some((a_key, b_key, scale)), Some(r)) => {
                let a = Tensor::<B, 2>::from_data(read_float::<B>(r, a_key)?, device);
                let b = Tensor::<B, 2>::from_data(read_float::<B>(r, b_key)?, device);
                // (W + s·B·A)ᵀ = Wᵀ + s·Aᵀ·Bᵀ
                weight_t + a.transpose().matmul(b.transpose()) * *scale
            }
            _ => weight_t,
        };
        Ok(omg_kernels::cast_float(merged, dtype))
    })
}

/// Values of a linear weight converted, LoRA-merged and quantized at a time (about
/// 32 MB of f32): the largest transient of a quantized load, whatever the layer's size.
const BLOCK_VALUES: usize = 1 << 23;

/// A LoRA pair to merge into a weight: `W + scale·B·A`, read from `source`.
struct LoraPair<'a> {
    source: &'a dyn TensorSource,
    /// `A`, `[rank, in]`.
    a: &'a str,
    /// `B`, `[out, rank]`.
    b: &'a str,
    scale: f32,
}

impl<'a> LoraPair<'a> {
    /// The pair `plan` merges, read from `release`, if it has one.
    fn of(plan: &'a Plan, release: Option<&'a dyn TensorSource>) -> Option<Self> {
        match (&plan.lora, release) {
            (Some((a, b, scale)), Some(source)) => Some(Self {
                source,
                a,
                b,
                scale: *scale as f32,
            }),
            _ => None,
        }
    }
}

/// Walks the `[out, in]` weight `key` of `source` with `lora` merged, a block of about
/// `block_values` values at a time: each block of rows is read as f32 straight from the
/// checkpoint, its LoRA delta `s·B·A` added on the host, and handed to `sink` with its
/// rows, so neither the f32 weight nor the delta ever exists whole. The disk reads the
/// next block while one is merged.
fn for_each_merged_block<B: Backend>(
    source: &dyn TensorSource,
    key: &str,
    lora: Option<LoraPair<'_>>,
    [out_dim, in_dim]: [usize; 2],
    block_values: usize,
    device: &B::Device,
    mut sink: impl FnMut(std::ops::Range<usize>, &[f32]),
) -> Result<(), CheckpointError> {
    // A whole ([rank, in], small); B a block of rows at a time
    let lora = match lora {
        Some(pair) => {
            let rank = pair.source.info(pair.a).map_or(0, |i| i.shape[0]);
            let mut a = vec![0.0f32; rank * in_dim];
            pair.source.read_rows_f32(pair.a, 0..rank, &mut a)?;
            Some((pair, rank, a))
        }
        None => None,
    };
    let rank = lora.as_ref().map_or(0, |l| l.1);
    let block = (block_values / in_dim.max(1)).clamp(1, out_dim.max(1));
    let mut weight = vec![0.0f32; block * in_dim];
    let mut delta_b = vec![0.0f32; block * rank];
    for start in (0..out_dim).step_by(block) {
        let rows = start..(start + block).min(out_dim);
        let n = rows.len();
        let next = rows.end..(rows.end + block).min(out_dim);
        if !next.is_empty() {
            source.prefetch_rows(key, next.clone());
            if let Some((pair, ..)) = &lora {
                pair.source.prefetch_rows(pair.b, next);
            }
        }
        let w = &mut weight[..n * in_dim];
        source.read_rows_f32(key, rows.clone(), w)?;
        if let Some((pair, rank, a)) = &lora {
            let b = &mut delta_b[..n * rank];
            pair.source.read_rows_f32(pair.b, rows.clone(), b)?;
            omg_kernels::add_scaled_product::<B>(w, b, a, [n, *rank, in_dim], pair.scale, device);
        }
        sink(rows, w);
    }
    Ok(())
}

/// The `[out, in]` weight `key` of `source` with `lora` merged, quantized block by block
/// ([`for_each_merged_block`]) into `values` (sized for `layout`); returns the scales.
fn quantize_merged_into<B: Backend>(
    source: &dyn TensorSource,
    key: &str,
    lora: Option<LoraPair<'_>>,
    layout: QuantLayout,
    block_values: usize,
    device: &B::Device,
    values: &mut [u8],
) -> Result<Vec<f32>, CheckpointError> {
    let (out_dim, in_dim) = (layout.out_features, layout.in_features);
    let (row_bytes, groups) = (layout.row_bytes(), layout.groups());
    let mut scales = vec![0.0f32; out_dim * groups];
    for_each_merged_block::<B>(
        source,
        key,
        lora,
        [out_dim, in_dim],
        block_values,
        device,
        |rows, w| {
            QuantizedMatrix::quantize_into(
                w,
                layout,
                &mut values[rows.start * row_bytes..rows.end * row_bytes],
                &mut scales[rows.start * groups..rows.end * groups],
            )
        },
    )?;
    Ok(scales)
}

/// The `[out, in]` weight `key` of `source` with `lora` merged, rounded to the half
/// type `dtype` (bf16 or f16) and transposed to burn's `[in, out]`, block by block
/// ([`for_each_merged_block`]): the only full-size buffer is the half result.
fn half_merged<B: Backend>(
    source: &dyn TensorSource,
    key: &str,
    lora: Option<LoraPair<'_>>,
    [out_dim, in_dim]: [usize; 2],
    dtype: FloatDType,
    block_values: usize,
    device: &B::Device,
) -> Result<TensorData, CheckpointError> {
    let round: fn(f32) -> [u8; 2] = match dtype {
        FloatDType::BF16 => |v| burn::tensor::bf16::from_f32(v).to_le_bytes(),
        FloatDType::F16 => |v| burn::tensor::f16::from_f32(v).to_le_bytes(),
        other => {
            return Err(CheckpointError::Apply(format!(
                "`{key}`: {other:?} is not a half type"
            )));
        }
    };
    let mut buffer = WeightBuffer::zeroed(2 * in_dim * out_dim);
    let bytes = buffer.as_mut_slice();
    for_each_merged_block::<B>(
        source,
        key,
        lora,
        [out_dim, in_dim],
        block_values,
        device,
        |rows, w| {
            // column c of the block lands in row c of the [in, out] result; the rows of
            // the result are disjoint, so all threads write them at once
            bytes
                .par_chunks_mut(2 * out_dim)
                .enumerate()
                .for_each(|(c, out_row)| {
                    let row = &mut out_row[2 * rows.start..2 * rows.end];
                    for (r, pair) in row.chunks_exact_mut(2).enumerate() {
                        pair.copy_from_slice(&round(w[r * in_dim + c]));
                    }
                });
        },
    )?;
    Ok(TensorData::from_bytes(
        buffer.into_bytes(),
        vec![in_dim, out_dim],
        DType::from(dtype),
    ))
}

/// The official `[out, in]` weight of a linear slot (LoRA merged), quantized.
fn quant_producer<'a, B: Backend>(
    plan: Plan,
    bits: QuantBits,
    base: &'a dyn TensorSource,
    release: Option<&'a dyn TensorSource>,
) -> QuantProducer<'a, B> {
    Box::new(move |device: &B::Device| {
        let src = match (plan.base_from_release, release) {
            (true, Some(r)) => r,
            _ => base,
        };
        let layout = QuantLayout {
            bits,
            out_features: plan.slot.shape[0],
            in_features: plan.slot.shape[1],
        };
        let lora = LoraPair::of(&plan, release);
        // the values, then the scales (which every decoding step streams beside them) in
        // one buffer, in huge pages where it is large (see `placement`); the scales in
        // the dtype Flex holds them in (other backends convert them)
        let values_len = layout.out_features * layout.row_bytes();
        let dtype = layout.scale_dtype();
        let scales_at = values_len.next_multiple_of(64);
        let scales_len = layout.out_features * layout.groups() * dtype.size();
        let mut buffer = WeightBuffer::zeroed(scales_at + scales_len);
        let (values, scales) = buffer.as_mut_slice().split_at_mut(scales_at);
        let held = quantize_merged_into::<B>(
            src,
            &plan.base_key,
            lora,
            layout,
            BLOCK_VALUES,
            device,
            &mut values[..values_len],
        )?;
        match dtype {
            DType::F16 => {
                for (b, &s) in scales.chunks_exact_mut(2).zip(&held) {
                    b.copy_from_slice(&burn::tensor::f16::from_f32(s).to_ne_bytes());
                }
            }
            _ => {
                for (b, &s) in scales.chunks_exact_mut(4).zip(&held) {
                    b.copy_from_slice(&s.to_ne_bytes());
                }
            }
        }
        let [values, scales] =
            buffer.into_parts([0..values_len, scales_at..scales_at + scales_len]);
        let scales = TensorData::from_bytes(scales, [layout.out_features, layout.groups()], dtype);
        Ok(layout.tensors::<B>(values, scales, device))
    })
}

/// Builds an [`InternLM2`] from a checkpoint in the HF layout.
pub fn load_hf<B: Backend>(
    config: &InternLM2Config,
    source: &dyn TensorSource,
    device: &B::Device,
) -> Result<InternLM2<B>, LlmError> {
    load_hf_with(config, source, LlmWeights::F32, device)
}

/// [`load_hf`] with the linears converted to `weights` as they are read.
pub fn load_hf_with<B: Backend>(
    config: &InternLM2Config,
    source: &dyn TensorSource,
    weights: LlmWeights,
    device: &B::Device,
) -> Result<InternLM2<B>, LlmError> {
    load(config, source, None, weights, device).map(|(m, _)| m)
}

/// Builds an [`InternLM2`] from a HF model directory (`config.json` and
/// `model.safetensors` or a sharded set with `model.safetensors.index.json`).
pub fn load_hf_dir<B: Backend>(
    dir: impl AsRef<Path>,
    device: &B::Device,
) -> Result<InternLM2<B>, LlmError> {
    let dir = dir.as_ref();
    let config = InternLM2Config::from_json_file(dir.join("config.json"))?;
    let source = open_hf_dir(dir)?;
    load_hf(&config, source.as_ref(), device)
}

/// Builds a fine-tuned InternLM2: the HF base weights of `base` (built for
/// `base_config`) with a PEFT `release` applied on top: LoRA merged, replaced tensors
/// (resized embedding and head rows) taking the base ones' place. The vocabulary size
/// becomes the release embedding's row count when the release replaces it. The
/// linears are converted to `weights` as they are read (LoRA merged first, then
/// converted or quantized).
pub fn load_hf_peft<B: Backend>(
    base_config: &InternLM2Config,
    base: &dyn TensorSource,
    release: PeftRelease<'_>,
    weights: LlmWeights,
    device: &B::Device,
) -> Result<(InternLM2<B>, LoadReport), LlmError> {
    load(base_config, base, Some(release), weights, device)
}

fn load<B: Backend>(
    base_config: &InternLM2Config,
    base: &dyn TensorSource,
    peft: Option<PeftRelease<'_>>,
    weights: LlmWeights,
    device: &B::Device,
) -> Result<(InternLM2<B>, LoadReport), LlmError> {
    let mut report = LoadReport::default();
    let (mut entries, foreign) = match peft {
        Some(p) => parse_release(p.source, p.prefix)?,
        None => (BTreeMap::new(), Vec::new()),
    };
    let release = peft.map(|p| p.source);
    let lora = peft.map_or(LoraOptions { lora_alpha: 1.0 }, |p| p.lora);
    report.foreign_keys = foreign;

    // The release's embedding table decides the vocabulary (resized for added tokens).
    let mut config = base_config.clone();
    if let (Some(r), Some(key)) = (
        release,
        entries
            .get("model.tok_embeddings.weight")
            .and_then(|e| e.base.clone()),
    ) {
        let info = r.info(&key).ok_or_else(|| CheckpointError::MissingKey {
            key: key.clone(),
            sources: r.describe(),
        })?;
        if info.shape.len() != 2 || info.shape[1] != config.hidden_size {
            return Err(CheckpointError::ShapeMismatch {
                key,
                expected: vec![config.vocab_size, config.hidden_size],
                found: info.shape,
            }
            .into());
        }
        config.vocab_size = info.shape[0];
    }
    config.validate()?;

    let mut plans = Vec::new();
    let mut used_base = BTreeSet::new();
    for slot in slots(&config, weights) {
        let entry = entries.remove(&slot.official).unwrap_or_default();
        let (base_key, base_from_release) = match (entry.base, release) {
            (Some(k), Some(r)) => {
                check_shape(r, &k, &slot.shape)?;
                report.from_release.push(slot.official.clone());
                (k, true)
            }
            _ => {
                check_shape(base, &slot.official, &slot.shape)?;
                (slot.official.clone(), false)
            }
        };
        used_base.insert(slot.official.clone());
        let lora_pair = match (entry.lora_a, entry.lora_b, release) {
            (None, None, _) => None,
            (Some(a), Some(b), Some(r)) if slot.linear => {
                let a_shape = r.info(&a).map(|i| i.shape).unwrap_or_default();
                let rank = a_shape.first().copied().unwrap_or(0);
                if rank == 0 {
                    return Err(CheckpointError::Format {
                        path: r.describe().into(),
                        message: format!("LoRA A `{a}` has shape {a_shape:?}"),
                    }
                    .into());
                }
                let (out_dim, in_dim) = (slot.shape[0], slot.shape[1]);
                check_shape(r, &a, &[rank, in_dim])?;
                check_shape(r, &b, &[out_dim, rank])?;
                report.lora_merged.push(slot.official.clone());
                Some((a, b, lora.lora_alpha / rank as f64))
            }
            (a, b, _) => {
                let (have, lacking) = match (a, b) {
                    (Some(a), None) => (a, "lora_B"),
                    (None, Some(b)) => (b, "lora_A"),
                    (Some(a), Some(_)) => (a, "a linear layer to apply it to"),
                    (None, None) => unreachable!("handled above"),
                };
                return Err(CheckpointError::Format {
                    path: release.map(|r| r.describe()).unwrap_or_default().into(),
                    message: format!("LoRA tensor `{have}` has no matching {lacking}"),
                }
                .into());
            }
        };
        plans.push(Plan {
            slot,
            base_key,
            base_from_release,
            lora: lora_pair,
        });
    }

    // Every remaining key must be known.
    for (official, entry) in entries {
        for key in [entry.base, entry.lora_a, entry.lora_b]
            .into_iter()
            .flatten()
        {
            if is_ignored(&official) {
                report.ignored_keys.push(key);
            } else {
                return Err(CheckpointError::UnexpectedKey {
                    key,
                    source_name: release.map(|r| r.describe()).unwrap_or_default(),
                }
                .into());
            }
        }
    }
    for key in base.names() {
        if used_base.contains(&key) {
            continue;
        }
        if is_ignored(&key) {
            report.ignored_keys.push(key);
        } else {
            return Err(CheckpointError::UnexpectedKey {
                key,
                source_name: base.describe(),
            }
            .into());
        }
    }

    let mut producers = BTreeMap::new();
    let mut quantized = BTreeMap::new();
    for plan in plans {
        match plan.slot.storage {
            LinearStorage::Quantized(bits) => {
                quantized.insert(
                    plan.slot.quantized_prefix(),
                    quant_producer::<B>(plan, bits, base, release),
                );
            }
            LinearStorage::Float(dtype) => {
                let path = plan.slot.path.clone();
                producers.insert(path, producer::<B>(plan, dtype, base, release));
            }
        }
    }
    let mut applier = WeightApplier::new(producers).with_quantized(quantized);
    let model = InternLM2::<B>::init_with(&config, weights, device)?.map(&mut applier);
    applier.finish()?;
    Ok((model, report))
}

#[cfg(test)]
mod tests {
    use super::*;
    use omg_checkpoint::SyntheticSource;
    use omg_kernels::QUANT_GROUP;

    type B = burn::backend::Flex<f32, i32>;

    /// Every block size gives the weight merged exactly (in f64 here) and then rounded:
    /// half weights within a half step of it, at their transposed place; quantized
    /// values within half a step of it, each scale its group's absmax over the level.
    #[test]
    fn merged_blocks_quantize_and_round_the_whole_merged_weight() {
        let (out, rank, inp) = (37, 5, 130);
        let source = SyntheticSource::new(
            vec![
                ("w".to_owned(), vec![out, inp]),
                ("a".to_owned(), vec![rank, inp]),
                ("b".to_owned(), vec![out, rank]),
            ],
            7,
        );
        let read = |key: &str, rows: usize, cols: usize| {
            let mut v = vec![0.0f32; rows * cols];
            source.read_rows_f32(key, 0..rows, &mut v).unwrap();
            v
        };
        let (w, a, b) = (
            read("w", out, inp),
            read("a", rank, inp),
            read("b", out, rank),
        );
        let scale = 0.75f32;
        let merged: Vec<f64> = (0..out * inp)
            .map(|i| {
                let (r, c) = (i / inp, i % inp);
                let delta: f64 = (0..rank)
                    .map(|k| f64::from(b[r * rank + k]) * f64::from(a[k * inp + c]))
                    .sum();
                f64::from(w[i]) + f64::from(scale) * delta
            })
            .collect();
        for dtype in [FloatDType::BF16, FloatDType::F16] {
            for block_values in [1, 4 * inp + 3, usize::MAX / 2] {
                let lora = LoraPair {
                    source: &source,
                    a: "a",
                    b: "b",
                    scale,
                };
                let data = half_merged::<B>(
                    &source,
                    "w",
                    Some(lora),
                    [out, inp],
                    dtype,
                    block_values,
                    &Default::default(),
                )
                .unwrap();
                assert_eq!(data.shape.as_slice(), &[inp, out]);
                let held = data.convert_dtype(DType::F32).into_vec::<f32>().unwrap();
                // within one half step of the exact merge, at its transposed place
                let step = if dtype == FloatDType::BF16 {
                    1.0 / 128.0
                } else {
                    1.0 / 1024.0
                };
                for r in 0..out {
                    for c in 0..inp {
                        let (got, want) = (f64::from(held[c * out + r]), merged[r * inp + c]);
                        assert!(
                            (got - want).abs() <= step * want.abs().max(1e-3),
                            "{dtype:?} block {block_values}: [{r}, {c}] {got} vs {want}"
                        );
                    }
                }
            }
        }
        for bits in [QuantBits::Int8, QuantBits::Int4] {
            let layout = QuantLayout {
                bits,
                out_features: out,
                in_features: inp,
            };
            for block_values in [1, inp, 4 * inp + 3, 10 * inp, out * inp, usize::MAX / 2] {
                let lora = LoraPair {
                    source: &source,
                    a: "a",
                    b: "b",
                    scale,
                };
                let mut values = vec![0u8; out * layout.row_bytes()];
                let scales = quantize_merged_into::<B>(
                    &source,
                    "w",
                    Some(lora),
                    layout,
                    block_values,
                    &Default::default(),
                    &mut values,
                )
                .unwrap();
                let q = QuantizedMatrix {
                    layout,
                    values,
                    scales,
                };
                assert_eq!(q.layout, layout);
                assert_eq!(q.scales.len(), out * layout.groups());
                let dequantized = q.dequantize();
                for r in 0..out {
                    for g in 0..layout.groups() {
                        let cols = g * QUANT_GROUP..((g + 1) * QUANT_GROUP).min(inp);
                        let absmax = cols
                            .clone()
                            .map(|c| merged[r * inp + c].abs())
                            .fold(0.0, f64::max);
                        let s = f64::from(q.scales[r * layout.groups() + g]);
                        let want = absmax / f64::from(bits.max_level());
                        // int4 scales are rounded to f16 (half an ulp: 2⁻¹¹ relative, or
                        // 2⁻²⁵ below f16's normal range)
                        let tolerance = match bits {
                            QuantBits::Int8 => 1e-5 * want,
                            QuantBits::Int4 => (2f64.powi(-11) + 1e-5) * want + 2f64.powi(-25),
                        };
                        assert!(
                            (s - want).abs() <= tolerance,
                            "scale {r},{g}: {s} vs {want}"
                        );
                        // values rounded against the exact scale (half a step), held with
                        // the stored one (up to the largest level times the difference)
                        let bound = (0.5 * want + f64::from(bits.max_level()) * (s - want).abs())
                            * (1.0 + 1e-4);
                        for c in cols {
                            let d =
                                (f64::from(dequantized[r * inp + c]) - merged[r * inp + c]).abs();
                            assert!(
                                d <= bound,
                                "{bits:?} block {block_values}: [{r}, {c}] off by {d} (step {s})"
                            );
                        }
                    }
                }
            }
        }
    }
}
