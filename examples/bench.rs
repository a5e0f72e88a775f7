//! The benchmark entry point: every stage of OMG-LLaVA timed on the compiled backend,
//! for a named size, with the process's peak memory. A benchmark: it prints figures
//! (and writes them as JSON with `--json`) and asserts nothing.
//!
//! Sizes:
//! - `tiny`: the demo bundle (`examples/assets/tiny`, 128² input);
//! - `small`: the full OMG-Seg encoder at 1024² and an InternLM2 of 0.52 B parameters
//!   (hidden 1024, 24 layers, 8/2 heads, FFN 3584, vocab 92544), random weights;
//! - `7b`: the full OMG-LLaVA shapes (InternLM2-7B), random weights (needs ~31 GB in f32).
//!
//! ```text
//! cargo run --release --example bench -- --size small
//! cargo run --release --example bench -- --size small --only llm --json out.json
//! ```
//!
//! `benches/compare.py` runs this and the PyTorch reference (`benches/reference/`) in
//! one call and prints the ratios; `docs/performance.md` holds the figures.

use std::collections::BTreeMap;
use std::time::Instant;

use burn::tensor::backend::Backend;
use burn::tensor::{Distribution, Tensor, TensorData};
use clap::{Parser, ValueEnum};
use omg_encoder::panoptic::PanopticFrame;
use omg_encoder::preprocess::preprocess;
use omg_encoder::{
    ClassEmbedding, ConvNext, MaskDecoder, OmgSeg, OmgSegConfig, PixelDecoder, PromptEmbedding,
};
use omg_examples::{
    copy_bandwidth, peak_rss_mib, random_llm, sample_image, time_generation, tiny_bundle,
};
use omg_llava::backend::{DefaultBackend as B, NAME, default_device};
use omg_llava::model::BundleReport;
use omg_llava::questions::segment_question;
use omg_llava::template::instruction;
use omg_llava::{
    CheckpointBundle, GenerateOptions, OmgLlava, OmgLlavaConfig, Pipeline, StreamEvent,
};
use omg_llm::tokenizer::{InternLm2Tokenizer, add_omg_llava_tokens};
use omg_llm::{InternLM2, InternLM2Config};
use omg_projector::{ProjectorMlp, VisualProjector, project_image};

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
    /// `Pipeline::answer_batch` of 1, 2 and 4 questions (one photo, greedy,
    /// `--new-tokens` each): generated tokens per second.
    AnswerBatch,
}

#[derive(Parser)]
#[command(about = "OMG-LLaVA stage timings on the compiled backend")]
struct Args {
    /// Model size.
    #[arg(long, value_enum, default_value = "small")]
    size: Size,
    /// Parts to time (default: all).
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
    /// LLM decoded tokens for the decode figure.
    #[arg(long, default_value_t = 32)]
    new_tokens: usize,
    /// Precision of the LLM's linear weights (f32, bf16, f16, int8, int4); reduced precisions are
    /// made by the real loader from synthetic weights, one tensor at a time.
    #[arg(long, default_value = "f32")]
    llm_weights: omg_llm::LlmWeights,
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
fn time<T>(
    args: &Args,
    mut f: impl FnMut() -> Result<T, Box<dyn std::error::Error>>,
) -> Result<(Vec<f64>, T), Box<dyn std::error::Error>> {
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

fn sync(device: &burn::tensor::Device<B>) {
    let _ = B::sync(device);
}

/// A whole OMG-LLaVA with random weights at `llm`'s size and the official vision
/// side, with the demo bundle's tokenizer (its ids exist in any larger vocabulary).
fn random_model(
    llm: &InternLM2Config,
    weights: omg_llm::LlmWeights,
    device: &burn::tensor::Device<B>,
) -> Result<OmgLlava<B>, Box<dyn std::error::Error>> {
    let mut config = OmgLlavaConfig::default();
    config.projector.llm_hidden_size = llm.hidden_size;
    config.text2vision.llm_hidden_size = llm.hidden_size;
    let enc: OmgSegConfig = config.encoder.clone();
    let dec = &enc.mask_decoder;
    // Unit-norm random CLIP embeddings: 133 classes × 17 prompts.
    let (k, p, d) = (
        enc.panoptic.num_things + enc.panoptic.num_stuff,
        17,
        dec.clip_dim,
    );
    let raw = Tensor::<B, 3>::random([k, p, d], Distribution::Normal(0.0, 1.0), device);
    let unit = raw.clone() / raw.square().sum_dim(2).sqrt();
    let encoder = OmgSeg {
        backbone: ConvNext::init(&enc.backbone, device),
        pixel_decoder: PixelDecoder::init(&enc.pixel_decoder, device),
        mask_decoder: MaskDecoder::init(dec, device),
        prompt: PromptEmbedding::init(dec, device),
        classes: ClassEmbedding::from_ov_file(unit.into_data(), device)?,
        config: enc.clone(),
    };
    let t2v = &config.text2vision;
    let mut tokenizer = InternLm2Tokenizer::from_dir(tiny_bundle().join("internlm2"))?;
    let special = add_omg_llava_tokens(&mut tokenizer)?;
    Ok(OmgLlava {
        encoder,
        projector: VisualProjector::init(&config.projector, device),
        llm: match weights {
            omg_llm::LlmWeights::F32 => InternLM2::init(llm, device)?,
            _ => random_llm(llm, weights, device)?,
        },
        seg_head: omg_decoder::SegHead {
            text2vision: ProjectorMlp::init(
                t2v.llm_hidden_size,
                t2v.query_dim,
                t2v.depth,
                t2v.bias,
                device,
            ),
            llm_decoder: None,
        },
        tokenizer,
        special,
        class_names: (0..k).map(|i| format!("class_{i}")).collect(),
        config,
        report: BundleReport::default(),
    })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
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
    let device = default_device();
    let t0 = Instant::now();
    let model = match args.size {
        Size::Tiny => OmgLlava::load(&CheckpointBundle::from_dir(tiny_bundle())?, &device, |_| {})?,
        Size::Small => random_model(
            &InternLM2Config::scaled(1024, 24, 92544),
            args.llm_weights,
            &device,
        )?,
        Size::SevenB => random_model(
            &InternLM2Config::internlm2_chat_7b(),
            args.llm_weights,
            &device,
        )?,
    };
    let pipeline = Pipeline::new(model, default_device());
    let m = pipeline.model();
    let size = m.config.encoder.image_size;
    let llm_config = m.llm.config().clone();
    println!(
        "omg-llava-rs bench: size {:?}, backend {NAME}, input {size}², LLM {:.3} B parameters \
         (hidden {}, {} layers), {} warm-up + {} timed runs per stage; built in {:.2?}",
        args.size,
        llm_config.num_params() as f64 / 1e9,
        llm_config.hidden_size,
        llm_config.num_hidden_layers,
        args.warmup,
        args.runs,
        t0.elapsed()
    );
    let mut report = Report::default();
    let photo_path = sample_image();
    let photo = image::open(&photo_path)
        .map_err(|e| format!("cannot read {}: {e}", photo_path.display()))?;

    if parts.contains(&Part::Encoder) {
        let enc = &m.encoder;
        let (ms, pre) = time(&args, || Ok(preprocess(&photo, size as u32)?))?;
        report.add(
            "preprocess",
            ms,
            format!("{}×{} photo", photo.width(), photo.height()),
        );
        let pixels = Tensor::<B, 4>::from_data(
            TensorData::new(pre.pixel_values.clone(), [1, 3, size, size]),
            &device,
        );
        let (ms, levels) = time(&args, || {
            let l = enc.backbone.forward(pixels.clone());
            sync(&device);
            Ok(l)
        })?;
        report.add("backbone", ms, "ConvNeXt".into());
        let (ms, pd) = time(&args, || {
            let pd = enc.pixel_decoder.forward(&levels);
            sync(&device);
            Ok(pd)
        })?;
        report.add("pixel_decoder", ms, "MSDeformAttn".into());
        let (ms, (memory, out)) = time(&args, || {
            let memory = enc.mask_decoder.level_memory(&pd.multi_scale_memory);
            let out = enc
                .mask_decoder
                .forward(&pd.mask_features, &memory, &enc.classes);
            sync(&device);
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
        let (ms, segments) = time(&args, || {
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
        let (ms, tokens) = time(&args, || {
            let p = project_image(&m.projector, &encoded, m.config.prior_smooth_ratio)?;
            let n = p.projected.visual_tokens[0].dims()[0];
            sync(&device);
            Ok(n)
        })?;
        report.add("prior_projector", ms, format!("{tokens} visual tokens"));
    }

    if parts.contains(&Part::EncodeBatch) {
        let mut per_image_1 = None;
        for k in [1usize, 2, 4] {
            let photos = vec![photo.clone(); k];
            let (ms, _) = time(&args, || {
                let handles = pipeline.encode_batch(&photos)?;
                sync(&device);
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
    }

    if parts.contains(&Part::AnswerBatch) {
        let img = pipeline.encode(&photo)?;
        let questions = [
            "What is in the picture?",
            "Please describe the photo in detail.",
            "What colour is the animal?",
            "Where could this photo have been taken, and when?",
        ];
        // no end token: every row generates --new-tokens tokens
        let options = GenerateOptions::default().with_max_new_tokens(args.new_tokens);
        let mut per_second_1 = None;
        for k in [1usize, 2, 4] {
            let prompts: Vec<omg_llava::BatchPrompt<'_, B>> = questions[..k]
                .iter()
                .map(|q| {
                    omg_llava::BatchPrompt::new(&img, omg_llava::Conversation::new().prompt_for(q))
                })
                .collect();
            let (ms, tokens) = time(&args, || {
                let answers = pipeline.answer_batch(&prompts, &options)?;
                sync(&device);
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
    }

    if parts.contains(&Part::Llm) {
        let mut prefill = Vec::new();
        let mut decode = Vec::new();
        for run in 0..args.warmup + args.runs.max(1) {
            let (p, d, _) = time_generation(&m.llm, args.prompt_len, args.new_tokens)?;
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
        let (ms, gbps) = copy_bandwidth::<B>(&device, args.runs);
        report.add("memory_copy", ms, format!("{gbps:.1} GB/s read + written"));
        let weight_bytes =
            (m.llm.parameter_bytes() - 4 * llm_config.vocab_size * llm_config.hidden_size) as f64;
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
    }

    if parts.contains(&Part::Pipeline) {
        let seg = m.special.seg.ok_or("the tokenizer has no [SEG]")?;
        let img = pipeline.encode(&photo)?;
        let hidden = Tensor::<B, 2>::random(
            [1, llm_config.hidden_size],
            Distribution::Normal(0.0, 1.0),
            &device,
        );
        let (ms, area) = time(&args, || {
            Ok(m.decode_seg(&img, hidden.clone())?
                .first()
                .map_or(0, |o| o.area))
        })?;
        report.add(
            "seg_to_mask",
            ms,
            format!("one [SEG], mask of {area} px in the original frame"),
        );
        // A segment query with [SEG] forced as the first new token: its mask exists
        // once [SEG] is fed back, after the second step.
        let options = GenerateOptions::default()
            .with_max_new_tokens(2)
            .with_forced_tokens(vec![(0, seg)]);
        let prompt = instruction(&format!("<image>\n{}", segment_question("the cat")));
        let (ms, area) = time(&args, || {
            let img = pipeline.encode(&photo)?;
            for event in pipeline.stream_prompt(&img, &prompt, &[], &options)? {
                if let StreamEvent::Mask { mask, .. } = event? {
                    return Ok(mask.area);
                }
            }
            Err("the segment query produced no mask".into())
        })?;
        report.add(
            "image_to_first_mask",
            ms,
            format!("photo → encode → prompt → [SEG] → mask ({area} px)"),
        );
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
