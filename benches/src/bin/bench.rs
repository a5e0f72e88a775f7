//! The benchmark entry point: every stage of OMG-LLaVA timed on the compiled backend,
//! for a named size, with the process's peak memory. A benchmark: it prints figures
//! (and writes them as JSON with `--json`) and asserts nothing.
//!
//! Sizes:
//! - `tiny`: the demo bundle's shapes (`omg-demo/assets/tiny`, 128² input): random
//!   weights of those shapes for the stage timings, the bundle itself for the pipeline
//!   figures;
//! - `small`: the full OMG-Seg encoder at 1024² and an InternLM2 of 0.52 B parameters
//!   (hidden 1024, 24 layers, 8/2 heads, FFN 3584, vocab 92544), random weights;
//! - `7b`: the full OMG-LLaVA shapes (InternLM2-7B), random weights (needs ~31 GB in f32).
//!
//! What each part times on:
//! - `encoder` and the `[SEG]` → mask figure of `pipeline`: the vision side alone
//!   (OMG-Seg, visual projector, `[SEG]` head) built from `omg-encoder`,
//!   `omg-projector` and `omg-decoder`, so each stage can be timed on its own;
//! - `llm`: an InternLM2 built from `omg-llm`, timed from token ids;
//! - the image → first mask figure of `pipeline`, `encode-batch` and `answer-batch`:
//!   the public [`omg_llava::Pipeline`] (`Pipeline::with_random_weights` for `small`
//!   and `7b`, `Pipeline::from_dir` of the demo bundle for `tiny`).
//!
//! Each model is built only when a part asked for needs it, and dropped before the
//! next is built, so the peak memory is that of the largest one (the whole pipeline
//! when a pipeline figure is asked for).
//!
//! ```text
//! cargo run --release -p omg-bench --bin bench -- --size small
//! cargo run --release -p omg-bench --bin bench -- --size small --only llm --json out.json
//! ```
//!
//! `benches/compare.py` runs this and the PyTorch reference (`benches/reference/`) in
//! one call and prints the ratios; `docs/performance.md` holds the figures.

use std::collections::BTreeMap;
use std::time::Instant;

use burn::tensor::backend::Backend;
use burn::tensor::{Distribution, Tensor, TensorData};
use clap::{Parser, ValueEnum};
use image::DynamicImage;
use omg_bench::{copy_bandwidth, peak_rss_mib, random_llm, time_generation};
use omg_decoder::SegHead;
use omg_decoder::postprocess::masks_in_original;
use omg_encoder::OmgSeg;
use omg_encoder::panoptic::PanopticFrame;
use omg_encoder::preprocess::preprocess;
use omg_llava::backend::{DefaultBackend as B, NAME, default_device};
use omg_llava::{
    CheckpointBundle, GenerateOptions, ImageHandle, LoadOptions, OmgLlavaConfig, Pipeline,
    RandomWeights, StreamEvent, Task,
};
use omg_llm::{InternLM2, InternLM2Config, LlmWeights};
use omg_projector::{VisualProjector, project_image};

type Error = Box<dyn std::error::Error>;
type Device = burn::tensor::Device<B>;

/// Hidden size and layers of the `small` LLM.
const SMALL_LLM: (usize, usize) = (1024, 24);
/// Vocabulary of InternLM2 (that of the `small` LLM too).
const INTERNLM2_VOCAB: usize = 92544;
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Size {
    /// The demo bundle.
    Tiny,
    /// Full OMG-Seg at 1024² + a 0.52 B InternLM2.
    Small,
    /// Full OMG-LLaVA-7B shapes.
    #[value(name = "7b")]
    SevenB,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
enum Part {
    /// Preprocessing, encoder stages, panoptic post-processing, prior + projector.
    Encoder,
    /// LLM prefill and decode from token ids.
    Llm,
    /// `[SEG]` → mask and image → first mask of a `segment` query.
    Pipeline,
    /// `Pipeline::encode_batch` of 1, 2 and 4 photos: milliseconds per image.
    EncodeBatch,
    /// `Pipeline::run_batch` of 1, 2 and 4 questions (one photo, greedy,
    /// `--new-tokens` each): generated tokens per second.
    #[value(alias = "run-batch")]
    AnswerBatch,
}

#[derive(Parser)]
#[command(about = "OMG-LLaVA stage timings on the compiled backend")]
struct Args {
    /// Model size.
    #[arg(long, value_enum, default_value = "small")]
    size: Size,
    /// Parts to time (default: encoder, llm, pipeline).
    #[arg(long, value_enum, value_delimiter = ',')]
    only: Vec<Part>,
    /// Untimed warm-up runs of each stage.
    #[arg(long, default_value_t = 1)]
    warmup: usize,
    /// Timed runs of each stage.
    #[arg(long, default_value_t = 2)]
    runs: usize,
    /// Leave glibc's allocator defaults (no `omg_llava::reuse_freed_memory`).
    #[arg(long)]
    default_allocator: bool,
    /// LLM prompt length (token ids) for the prefill figure.
    #[arg(long, default_value_t = 128)]
    prompt_len: usize,
    /// LLM decoded tokens for the decode figure (forwards of one new token each).
    #[arg(long, default_value_t = 32, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    new_tokens: usize,
    /// Precision of the LLM's linear weights (f32, bf16, f16, int8, int4); reduced
    /// precisions are made by the real loaders one tensor at a time (from synthetic
    /// weights for small and 7b, from the demo bundle's for tiny).
    #[arg(long, default_value = "f32")]
    llm_weights: LlmWeights,
    /// Also write the figures to this JSON file.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
}

/// Timings of the stages, in milliseconds per run.
#[derive(Default)]
struct Report {
    stages: Vec<(String, Vec<f64>, String)>,
    extra: BTreeMap<String, f64>,
}

impl Report {
    fn add(&mut self, stage: &str, ms: Vec<f64>, note: String) {
        let (min, med, max) = summary(&ms);
        println!("{stage:24} {med:10.1} ms  (min {min:.1}, max {max:.1}; {note})");
        self.stages.push((stage.to_owned(), ms, note));
    }

    fn json(&self, args: &Args) -> String {
        let mut stages = serde_json::Map::new();
        for (name, ms, note) in &self.stages {
            let (min, med, max) = summary(ms);
            stages.insert(
                name.clone(),
                serde_json::json!({ "median_ms": med, "min_ms": min, "max_ms": max, "runs": ms, "note": note }),
            );
        }
        serde_json::json!({
            "implementation": "omg-llava-rs",
            "backend": NAME,
            "size": format!("{:?}", args.size).to_lowercase(),
            "prompt_len": args.prompt_len,
            "new_tokens": args.new_tokens,
            "stages": stages,
            "extra": self.extra,
        })
        .to_string()
    }
}

fn summary(ms: &[f64]) -> (f64, f64, f64) {
    let mut v = ms.to_vec();
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    (v[0], v[v.len() / 2], v[v.len() - 1])
}

/// Runs `f` `warmup + runs` times and returns the timed runs in milliseconds; `f`
/// must wait for the device itself (read a value back or sync).
fn time<T>(args: &Args, mut f: impl FnMut() -> Result<T, Error>) -> Result<(Vec<f64>, T), Error> {
    let mut out = None;
    let mut ms = Vec::new();
    for run in 0..args.warmup + args.runs.max(1) {
        let t = Instant::now();
        let v = f()?;
        if run >= args.warmup {
            ms.push(t.elapsed().as_secs_f64() * 1e3);
        }
        out = Some(v);
    }
    Ok((ms, out.expect("at least one run")))
}

fn sync(device: &Device) {
    let _ = B::sync(device);
}

/// The sample photo (Chelsea the cat, 451×300), decoded from the bytes `omg-demo`
/// builds in.
fn sample_photo() -> Result<DynamicImage, Error> {
    image::load_from_memory(omg_demo::SAMPLE_PHOTO_PNG)
        .map_err(|e| format!("cannot decode {}: {e}", omg_demo::SAMPLE_PHOTO_NAME).into())
}

/// The architecture of the vision side at `size`: the demo bundle's
/// (`omg_llava_config.json`) for `tiny`, else the official one with projectors sized for
/// an LLM of hidden size `llm_hidden`.
fn vision_config(
    size: Size,
    bundle: &CheckpointBundle,
    llm_hidden: usize,
) -> Result<OmgLlavaConfig, Error> {
    match (size, &bundle.config) {
        (Size::Tiny, Some(path)) => Ok(OmgLlavaConfig::from_json_file(path)?),
        (Size::Tiny, None) => Err("the demo bundle has no omg_llava_config.json".into()),
        _ => {
            let mut config = OmgLlavaConfig::default();
            config.projector.llm_hidden_size = llm_hidden;
            config.text2vision.llm_hidden_size = llm_hidden;
            Ok(config)
        }
    }
}

/// OMG-LLaVA's vision side: OMG-Seg, the visual projector and the `[SEG]` head.
struct Vision {
    encoder: OmgSeg<B>,
    projector: VisualProjector<B>,
    seg_head: SegHead<B>,
    prior_smooth_ratio: f32,
    /// Hidden size of the LLM whose `[SEG]` states the head takes.
    llm_hidden_size: usize,
}

impl Vision {
    /// The vision side of `config` with random weights, as
    /// `Pipeline::with_random_weights` builds it.
    fn random(config: &OmgLlavaConfig, device: &Device) -> Result<Self, Error> {
        Ok(Self {
            encoder: OmgSeg::init_random(&config.encoder, device)?,
            projector: VisualProjector::init(&config.projector, device),
            seg_head: SegHead::init(&config.text2vision, device),
            prior_smooth_ratio: config.prior_smooth_ratio,
            llm_hidden_size: config.text2vision.llm_hidden_size,
        })
    }
}

/// The language model's configuration at `size` (for `tiny`, the demo bundle's base
/// model, before the release's vocabulary resize).
fn llm_config(size: Size, bundle: &CheckpointBundle) -> Result<InternLM2Config, Error> {
    Ok(match size {
        Size::Tiny => InternLM2Config::from_json_file(bundle.llm_dir.join("config.json"))?,
        Size::Small => InternLM2Config::scaled(SMALL_LLM.0, SMALL_LLM.1, INTERNLM2_VOCAB),
        Size::SevenB => InternLM2Config::internlm2_chat_7b(),
    })
}

/// The language model alone, random weights of `config` (for `tiny`, the demo bundle's
/// base model's shapes).
fn build_llm(
    args: &Args,
    config: &InternLM2Config,
    device: &Device,
) -> Result<InternLM2<B>, Error> {
    Ok(match args.llm_weights {
        LlmWeights::F32 => InternLM2::init(config, device)?,
        weights => random_llm(config, weights, device)?,
    })
}

/// The whole pipeline through the public API: the demo bundle for `tiny`, random
/// weights of the official vision side and the LLM's size otherwise (with the demo
/// bundle's tokenizer, whose ids exist in any larger vocabulary).
fn build_pipeline(
    args: &Args,
    bundle: &CheckpointBundle,
    device: Device,
) -> Result<Pipeline<B>, Error> {
    let sizes = match args.size {
        Size::Tiny => {
            let options = LoadOptions::default().with_llm_weights(args.llm_weights);
            return Ok(Pipeline::from_dir(
                omg_demo::source_bundle_dir(),
                &options,
                device,
                |_| {},
            )?);
        }
        Size::Small => RandomWeights::scaled(SMALL_LLM.0, SMALL_LLM.1, args.llm_weights),
        Size::SevenB => RandomWeights::official_7b(args.llm_weights),
    };
    Ok(Pipeline::with_random_weights(
        &sizes,
        &bundle.llm_dir,
        device,
    )?)
}

/// Preprocessing, the encoder's stages one by one, panoptic post-processing, and
/// prior + projector.
fn time_encoder(
    args: &Args,
    vision: &Vision,
    photo: &DynamicImage,
    device: &Device,
    report: &mut Report,
) -> Result<(), Error> {
    let enc = &vision.encoder;
    let size = enc.config.image_size;
    let (ms, pre) = time(args, || Ok(preprocess(photo, size as u32)?))?;
    report.add(
        "preprocess",
        ms,
        format!("{}×{} photo", photo.width(), photo.height()),
    );
    let pixels = Tensor::<B, 4>::from_data(
        TensorData::new(pre.pixel_values.clone(), [1, 3, size, size]),
        device,
    );
    let (ms, levels) = time(args, || {
        let l = enc.backbone.forward(pixels.clone());
        sync(device);
        Ok(l)
    })?;
    report.add("backbone", ms, "ConvNeXt".into());
    let (ms, pd) = time(args, || {
        let pd = enc.pixel_decoder.forward(&levels);
        sync(device);
        Ok(pd)
    })?;
    report.add("pixel_decoder", ms, "MSDeformAttn".into());
    let (ms, (memory, out)) = time(args, || {
        let memory = enc.mask_decoder.level_memory(&pd.multi_scale_memory);
        let out = enc
            .mask_decoder
            .forward(&pd.mask_features, &memory, &enc.classes);
        sync(device);
        Ok((memory, out))
    })?;
    report.add(
        "mask_decoder",
        ms,
        format!(
            "{} queries, {} layers, class head",
            enc.config.mask_decoder.num_queries, enc.config.mask_decoder.num_layers
        ),
    );
    let encoded = omg_encoder::EncodedImage {
        input_size: (size, size),
        backbone_levels: levels,
        mask_features: pd.mask_features.clone(),
        multi_scale_memory: pd.multi_scale_memory.clone(),
        levels: memory,
        queries: out,
    };
    let (ms, segments) = time(args, || {
        Ok(enc
            .panoptic(&encoded, 0, PanopticFrame::Original(pre.transform))?
            .segments
            .len())
    })?;
    report.add(
        "panoptic_post",
        ms,
        format!("{segments} segments, original frame"),
    );
    let (ms, tokens) = time(args, || {
        let p = project_image(&vision.projector, &encoded, vision.prior_smooth_ratio)?;
        let n = p.projected.visual_tokens[0].dims()[0];
        sync(device);
        Ok(n)
    })?;
    report.add("prior_projector", ms, format!("{tokens} visual tokens"));
    Ok(())
}

/// `[SEG]` → mask: one random `[SEG]` hidden state through the `[SEG]` head and the
/// mask decoder on the photo's cached features, to a mask in the photo's pixels
/// (with the logits read back, as the Pipeline does for the mask's score).
fn time_seg_to_mask(
    args: &Args,
    vision: &Vision,
    photo: &DynamicImage,
    device: &Device,
    report: &mut Report,
) -> Result<(), Error> {
    let enc = &vision.encoder;
    let size = enc.config.image_size;
    let pre = preprocess(photo, size as u32)?;
    let pixels = Tensor::<B, 4>::from_data(
        TensorData::new(pre.pixel_values.clone(), [1, 3, size, size]),
        device,
    );
    let encoded = enc.encode(pixels)?;
    let hidden = Tensor::<B, 2>::random(
        [1, vision.llm_hidden_size],
        Distribution::Normal(0.0, 1.0),
        device,
    );
    let (ms, area) = time(args, || {
        let out = vision.seg_head.decode(
            &enc.mask_decoder,
            hidden.clone(),
            &[0],
            encoded.query_memory(),
        )?;
        let logits = out.decoding.final_mask_logits();
        let _scores: Vec<f32> = logits
            .clone()
            .into_data()
            .convert::<f32>()
            .into_vec()
            .map_err(|e| format!("mask logits: {e:?}"))?;
        let masks = masks_in_original(logits, pre.transform)?;
        Ok(masks.first().map_or(0, |m| m.area()))
    })?;
    report.add(
        "seg_to_mask",
        ms,
        format!("one [SEG], mask of {area} px in the original frame"),
    );
    Ok(())
}

/// The LLM from token ids (prefill, decode), the memory bandwidth of the backend and
/// decode's fraction of the roofline it sets.
fn time_llm(
    args: &Args,
    llm: &InternLM2<B>,
    device: &Device,
    report: &mut Report,
) -> Result<(), Error> {
    let llm_config = llm.config();
    let mut prefill = Vec::new();
    let mut decode = Vec::new();
    for run in 0..args.warmup + args.runs.max(1) {
        let (p, d) = time_generation(llm, args.prompt_len, args.new_tokens)?;
        if run >= args.warmup {
            prefill.push(p * 1e3);
            decode.push(d * 1e3);
        }
    }
    let (_, p, _) = summary(&prefill);
    let (_, d, _) = summary(&decode);
    report.add(
        "llm_prefill",
        prefill,
        format!(
            "{} tokens: {:.1} tokens/s",
            args.prompt_len,
            args.prompt_len as f64 / p * 1e3
        ),
    );
    report.add(
        "llm_decode_per_token",
        decode,
        format!("{} tokens: {:.2} tokens/s", args.new_tokens, 1e3 / d),
    );
    report
        .extra
        .insert("llm_params".into(), llm_config.num_params() as f64);

    // Memory bandwidth of this backend (`copy_bandwidth`), and decode as a fraction
    // of the roofline it sets (every weight but the embedding table is read once per
    // token).
    let (ms, gbps) = copy_bandwidth::<B>(device, args.runs);
    report.add("memory_copy", ms, format!("{gbps:.1} GB/s read + written"));
    let weight_bytes =
        (llm.parameter_bytes() - 4 * llm_config.vocab_size * llm_config.hidden_size) as f64;
    let roofline_ms = weight_bytes / (gbps * 1e9) * 1e3;
    println!(
        "decode roofline: {:.0} MB of weights per token at {gbps:.1} GB/s = {roofline_ms:.1} ms; \
         decode reaches {:.0} % of it",
        weight_bytes / 1e6,
        100.0 * roofline_ms / d
    );
    report.extra.insert("copy_gbps".into(), gbps);
    report
        .extra
        .insert("decode_roofline_fraction".into(), roofline_ms / d);
    Ok(())
}

/// Image → first mask of a `segment` query with `[SEG]` forced as the first new
/// token (its mask exists once it is fed back, after the second step): encode,
/// prompt, `[SEG]`, mask, through `Pipeline::stream`.
fn time_image_to_first_mask(
    args: &Args,
    pipeline: &Pipeline<B>,
    photo: &DynamicImage,
    report: &mut Report,
) -> Result<(), Error> {
    let options = GenerateOptions::default()
        .with_max_new_tokens(2)
        .with_forced_seg(0);
    let task = Task::segment("the cat");
    // the prompt's text tokens, its image placeholder among them
    let text_tokens = pipeline.prompt_ids(&task.prompt()?)?.len();
    let mut prompt_tokens = 0;
    // per run: encode, then prompt → [SEG] → mask
    let mut parts: Vec<[f64; 2]> = Vec::new();
    let (ms, area) = time(args, || {
        let t = Instant::now();
        let img = pipeline.encode(photo)?;
        sync(pipeline.device());
        let encoded = t.elapsed().as_secs_f64() * 1e3;
        prompt_tokens = text_tokens - 1 + img.visual_token_count();
        for event in pipeline.stream(&img, &task, &options)? {
            if let StreamEvent::Mask { mask, .. } = event? {
                parts.push([encoded, t.elapsed().as_secs_f64() * 1e3 - encoded]);
                return Ok(mask.area());
            }
        }
        Err("the segment query produced no mask".into())
    })?;
    let timed = &parts[parts.len() - ms.len()..];
    report.add(
        "image_to_first_mask",
        ms,
        format!("photo → encode → prompt → [SEG] → mask ({area} px)"),
    );
    let part = |i: usize| timed.iter().map(|p| p[i]).collect::<Vec<f64>>();
    report.add(
        "first_mask.encode",
        part(0),
        "photo → the encoder's outputs".into(),
    );
    report.add(
        "first_mask.llm",
        part(1),
        format!(
            "projector, {prompt_tokens}-token prompt prefilled, [SEG] forced and fed back, \
             its mask (seg_to_mask above)"
        ),
    );
    Ok(())
}

/// `Pipeline::encode_batch` of 1, 2 and 4 copies of the photo, per image.
fn time_encode_batch(
    args: &Args,
    pipeline: &Pipeline<B>,
    photo: &DynamicImage,
    report: &mut Report,
) -> Result<(), Error> {
    let mut per_image_1 = None;
    for k in [1usize, 2, 4] {
        let photos = vec![photo.clone(); k];
        let (ms, _) = time(args, || {
            let handles = pipeline.encode_batch(&photos)?;
            sync(pipeline.device());
            Ok(handles.len())
        })?;
        let per_image: Vec<f64> = ms.iter().map(|t| t / k as f64).collect();
        let (_, med, _) = summary(&per_image);
        let base = *per_image_1.get_or_insert(med);
        report.add(
            &format!("encode_batch_{k}"),
            per_image,
            format!(
                "per image, {k} photos per pass; {:.3} images/s, {:.2}× batch 1",
                1e3 / med,
                base / med
            ),
        );
    }
    Ok(())
}

/// `Pipeline::run_batch` of 1, 2 and 4 chat questions about one photo, greedy,
/// `--new-tokens` each, reported as the stages `answer_batch_K`.
fn time_answer_batch(
    args: &Args,
    pipeline: &Pipeline<B>,
    photo: &DynamicImage,
    report: &mut Report,
) -> Result<(), Error> {
    let img = pipeline.encode(photo)?;
    let tasks = [
        "What is in the picture?",
        "Please describe the photo in detail.",
        "What colour is the animal?",
        "Where could this photo have been taken, and when?",
    ]
    .map(Task::chat);
    // random weights rarely end their turn: every row generates --new-tokens tokens
    let options = GenerateOptions::default().with_max_new_tokens(args.new_tokens);
    let mut per_second_1 = None;
    for k in [1usize, 2, 4] {
        let batch: Vec<(&ImageHandle<B>, &Task)> = tasks[..k].iter().map(|t| (&img, t)).collect();
        let (ms, tokens) = time(args, || {
            let answers = pipeline.run_batch(&batch, &options)?;
            sync(pipeline.device());
            Ok(answers.iter().map(|a| a.token_ids.len()).sum::<usize>())
        })?;
        let (_, med, _) = summary(&ms);
        let per_second = tokens as f64 / (med / 1e3);
        let base = *per_second_1.get_or_insert(per_second);
        report.add(
            &format!("answer_batch_{k}"),
            ms,
            format!(
                "{k} questions, {tokens} tokens in all (prefill included); {per_second:.2} tokens/s, {:.2}× batch 1",
                per_second / base
            ),
        );
    }
    Ok(())
}

fn main() -> Result<(), Error> {
    let args = Args::parse();
    if !args.default_allocator {
        // reuse freed large blocks instead of page-faulting fresh ones on every layer
        omg_llava::reuse_freed_memory();
    }
    let parts = if args.only.is_empty() {
        vec![Part::Encoder, Part::Llm, Part::Pipeline]
    } else {
        args.only.clone()
    };
    let wants = |p: Part| parts.contains(&p);
    let device = default_device();
    // The demo bundle's files: the tiny model, and the tokenizer of the random ones.
    let bundle = CheckpointBundle::from_dir(omg_demo::source_bundle_dir())?;
    let llm_config = llm_config(args.size, &bundle)?;
    let vision_config = vision_config(args.size, &bundle, llm_config.hidden_size)?;
    println!(
        "omg-llava-rs bench: size {:?}, backend {NAME}, input {}², LLM {:.3} B parameters \
         (hidden {}, {} layers), {} warm-up + {} timed runs per stage",
        args.size,
        vision_config.encoder.image_size,
        llm_config.num_params() as f64 / 1e9,
        llm_config.hidden_size,
        llm_config.num_hidden_layers,
        args.warmup,
        args.runs,
    );
    let mut report = Report::default();
    let photo = sample_photo()?;

    // One model at a time, each dropped at the end of its block.
    if wants(Part::Encoder) || wants(Part::Pipeline) {
        let t = Instant::now();
        let vision = Vision::random(&vision_config, &device)?;
        println!(
            "vision side (OMG-Seg, projector, [SEG] head) built in {:.2?}",
            t.elapsed()
        );
        if wants(Part::Encoder) {
            time_encoder(&args, &vision, &photo, &device, &mut report)?;
        }
        if wants(Part::Pipeline) {
            time_seg_to_mask(&args, &vision, &photo, &device, &mut report)?;
        }
    }

    if wants(Part::Llm) {
        let t = Instant::now();
        let llm = build_llm(&args, &llm_config, &device)?;
        println!("LLM built in {:.2?}", t.elapsed());
        time_llm(&args, &llm, &device, &mut report)?;
    }

    if wants(Part::Pipeline) || wants(Part::EncodeBatch) || wants(Part::AnswerBatch) {
        let t = Instant::now();
        let pipeline = build_pipeline(&args, &bundle, default_device())?;
        println!("pipeline built in {:.2?}", t.elapsed());
        if wants(Part::Pipeline) {
            time_image_to_first_mask(&args, &pipeline, &photo, &mut report)?;
        }
        if wants(Part::EncodeBatch) {
            time_encode_batch(&args, &pipeline, &photo, &mut report)?;
        }
        if wants(Part::AnswerBatch) {
            time_answer_batch(&args, &pipeline, &photo, &mut report)?;
        }
    }

    let rss = peak_rss_mib();
    match rss {
        Some(mib) => println!("peak resident memory of the process: {mib:.0} MiB"),
        None => println!("peak resident memory: not available on this platform"),
    }
    if let Some(mib) = rss {
        report.extra.insert("peak_rss_mib".into(), mib);
    }
    if let Some(path) = &args.json {
        std::fs::write(path, report.json(&args))
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(())
}
