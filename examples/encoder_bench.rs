//! Time of the OMG-Seg encoder at full size (ConvNeXt-L, 256-d pixel decoder with 6
//! deformable layers, 9-layer mask decoder with 300 queries, 133 classes × 17 prompts)
//! on a 1024² input with random weights, split into backbone / pixel decoder / mask
//! decoder, plus the process's peak resident memory. A benchmark: it prints figures and
//! asserts nothing.
//!
//! ```text
//! cargo run --release --example encoder_bench [--features flex|wgpu|cuda] -- --size 1024
//! ```

use std::time::Instant;

use burn::tensor::backend::Backend;
use burn::tensor::{Distribution, Tensor, TensorData};
use clap::Parser;
use omg_encoder::{
    BackboneConfig, ClassEmbedding, ConvNext, MaskDecoder, MaskDecoderConfig, PixelDecoder,
    PixelDecoderConfig,
};
use omg_llava::backend::{DefaultBackend, NAME, default_device};

#[derive(Parser)]
#[command(about = "OMG-Seg encoder timing at full size")]
struct Args {
    /// Input side (a multiple of 64).
    #[arg(long, default_value_t = 1024)]
    size: usize,
    /// Untimed warm-up runs.
    #[arg(long, default_value_t = 1)]
    warmup: usize,
    /// Timed runs.
    #[arg(long, default_value_t = 2)]
    runs: usize,
}

/// Peak resident set size of this process in MiB (Linux), if known.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn sync(device: &burn::tensor::Device<DefaultBackend>) {
    let _ = DefaultBackend::sync(device);
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    if args.size == 0 || !args.size.is_multiple_of(64) {
        return Err(format!(
            "--size must be a positive multiple of 64, got {}",
            args.size
        )
        .into());
    }
    let device = default_device();
    let backbone = ConvNext::<DefaultBackend>::init(&BackboneConfig::default(), &device);
    let pixel_decoder =
        PixelDecoder::<DefaultBackend>::init(&PixelDecoderConfig::default(), &device);
    let dec_cfg = MaskDecoderConfig::default();
    let decoder = MaskDecoder::<DefaultBackend>::init(&dec_cfg, &device);
    // 133 COCO-panoptic classes × 17 prompts of unit-norm random CLIP embeddings.
    let (k, p, d) = (133, 17, dec_cfg.clip_dim);
    let raw =
        Tensor::<DefaultBackend, 3>::random([k, p, d], Distribution::Normal(0.0, 1.0), &device);
    let unit = raw.clone() / raw.square().sum_dim(2).sqrt();
    let classes = ClassEmbedding::from_ov_file(unit.into_data(), &device)?;
    let image = Tensor::<DefaultBackend, 4>::from_data(
        TensorData::new(
            vec![0.1f32; 3 * args.size * args.size],
            [1, 3, args.size, args.size],
        ),
        &device,
    );
    println!(
        "backend {NAME}; input 1×3×{s}×{s}; ConvNeXt-L + pixel decoder + mask decoder ({} queries, {} layers)",
        dec_cfg.num_queries,
        dec_cfg.num_layers,
        s = args.size
    );

    let mut times = Vec::new();
    for run in 0..args.warmup + args.runs {
        let t = Instant::now();
        let levels = backbone.forward(image.clone());
        sync(&device);
        let t_backbone = t.elapsed();
        let t = Instant::now();
        let pd = pixel_decoder.forward(&levels);
        sync(&device);
        let t_pixel = t.elapsed();
        let t = Instant::now();
        let memory = decoder.level_memory(&pd.multi_scale_memory);
        let out = decoder.forward(&pd.mask_features, &memory, &classes);
        let _ = out.stages[out.stages.len() - 1]
            .mask_logits
            .clone()
            .sum()
            .into_scalar();
        let t_decoder = t.elapsed();
        if run >= args.warmup {
            times.push([t_backbone, t_pixel, t_decoder].map(|d| d.as_secs_f64() * 1e3));
        }
    }
    let mean = |i: usize| times.iter().map(|t| t[i]).sum::<f64>() / times.len() as f64;
    let (b, p, m) = (mean(0), mean(1), mean(2));
    println!(
        "backbone {b:.1} ms   pixel decoder {p:.1} ms   mask decoder {m:.1} ms   total {:.1} ms   (mean of {} runs after {} warm-up)",
        b + p + m,
        args.runs,
        args.warmup
    );
    match peak_rss_mib() {
        Some(mib) => println!("peak resident memory of the process: {mib:.0} MiB"),
        None => println!("peak resident memory: not available on this platform"),
    }
    Ok(())
}
