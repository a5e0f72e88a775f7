//! `omg`: OMG-LLaVA on the command line. Chat about a photo, caption it, segment what a
//! sentence names, ground a description in masks, ask about points / boxes / masks, and
//! run the visual encoder's own panoptic and interactive segmentation.
//!
//! ```text
//! cargo run --release --example omg -- chat --question "What is this?" --question "Why?"
//! cargo run --release --example omg -- caption
//! cargo run --release --example omg -- segment "the cat"
//! cargo run --release --example omg -- ground
//! cargo run --release --example omg -- region --point 200,150 --box 50,40,250,220
//! cargo run --release --example omg -- region --mask cat.png --question "What is <region> doing?"
//! cargo run --release --example omg -- panoptic
//! cargo run --release --example omg -- interactive --point 200,150 --box 50,40,250,220
//! cargo run --release --example omg -- --bundle ~/omg-llava-7b --image dog.jpg segment "the dog"
//! ```
//!
//! Without `--bundle` it loads the tiny demo bundle of the repository
//! (`examples/assets/tiny`): random weights, so its text is gibberish and it almost
//! never emits `[SEG]`. Add `--force-seg K` (force `[SEG]` as the K-th new token,
//! counted from 0) to see the mask path anyway, e.g.
//! `cargo run --release --example omg -- segment "the cat" --force-seg 1`.
//! A real bundle is a directory with the official release files (`internlm2-chat-7b/`,
//! `omg_llava_7b_finetune_8gpus.pth`, `omg_seg_convl.pth`,
//! `convnext_large_d_320_CocoPanopticOVDataset.pth`); see `CheckpointBundle::from_dir`.
//!
//! Without `--image` it uses `examples/assets/chelsea.png`. Text answers stream to
//! stdout; load progress goes to stderr. Every command writes into `--out` (`out/`):
//! `<command>_<k>.png` (each mask, 255 inside), `<command>_overlay.png` (all masks
//! blended over the photo) and `<command>.json` (the text, and per mask its bbox
//! `[x, y, w, h]`, area, score and COCO RLE, with its label or phrase).
//!
//! Points and boxes are in the photo's pixels (`--point X,Y`, `--box X1,Y1,X2,Y2`);
//! `--mask PNG` is a picture of the photo's size whose non-zero pixels are the region.
//! In a `region` question, `<region>` stands for a box or mask and `<mark>` for a
//! point, in command-line order; without placeholders the regions are listed before the
//! question, and without `--question` each region is described in turn.
//!
//! The backend follows the cargo features (`ndarray` by default; `--features cuda`
//! with `--no-default-features` for a GPU).

use std::error::Error;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::{ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use image::DynamicImage;
use omg_decoder::mask::{overlay_many, palette};
use omg_examples::{LoadProgress, sample_image, tiny_bundle};
use omg_llava::backend::{DefaultBackend, NAME, default_device};
use omg_llava::output::{MaskSummary, caption, phrases};
use omg_llava::questions::{
    CAPTION_QUESTION, GCG_QUESTION, describe_question, region_prompt, segment_question,
};
use omg_llava::{
    Answer, BinaryMask, Conversation, GenerateOptions, ImageHandle, MaskOutput, Pipeline, Prompt,
    Region, StreamEvent,
};
use serde::Serialize;

type B = DefaultBackend;
type Res<T> = Result<T, Box<dyn Error>>;

/// Opacity of the masks in the overlay pictures.
const OVERLAY_ALPHA: f32 = 0.5;

#[derive(Parser)]
#[command(
    name = "omg",
    about = "OMG-LLaVA: chat, captions, region questions, segmentation and grounding on a photo",
    after_help = "Examples:\n  omg segment \"the cat\" --force-seg 1\n  omg region --point 200,150 --box 50,40,250,220\n  omg chat --question \"What is this?\" --question \"Why?\""
)]
struct Cli {
    /// Checkpoint bundle directory [default: the repository's tiny demo bundle].
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        value_name = "DIR"
    )]
    bundle: Option<PathBuf>,
    /// Download the official OMG-LLaVA-7B bundle from the Hugging Face hub (cached)
    /// instead of reading `--bundle` (needs `--features hub`).
    #[cfg(feature = "hub")]
    #[arg(long, global = true, help_heading = "Global options")]
    hub: bool,
    /// The photo [default: examples/assets/chelsea.png].
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        value_name = "PATH"
    )]
    image: Option<PathBuf>,
    /// Directory the masks, overlay and JSON are written to (`batch`: the results file,
    /// or a directory for it).
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        value_name = "DIR",
        default_value = "out"
    )]
    out: PathBuf,
    /// Maximum number of new tokens per answer.
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        value_name = "N",
        default_value_t = 100
    )]
    max_new_tokens: usize,
    /// Precision of the LLM's linear weights: f32, bf16/f16 (2 bytes per weight; for
    /// GPUs), int8 (≈ 1.06 bytes per weight) or int4 (≈ 0.56), converted while loading;
    /// the vision side stays f32. int8 runs the 7B model in ≈ 11 GB on a CPU, bf16 in
    /// ≈ 17 GB on a GPU (docs/precision.md).
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        default_value = "f32",
        value_name = "f32|bf16|f16|int8|int4"
    )]
    llm_weights: omg_llava::LlmWeights,
    /// Check while loading that every weight is finite (no NaN or infinity); a bad
    /// tensor is named in the error.
    #[arg(long, global = true, help_heading = "Global options")]
    check_finite: bool,
    /// Sample like the official demo (temperature 0.1, top-p 0.75, top-k 40) instead of
    /// greedy decoding.
    #[arg(long, global = true, help_heading = "Global options")]
    sample: bool,
    /// Seed of --sample.
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        value_name = "SEED",
        default_value_t = 0
    )]
    seed: u64,
    /// Force `[SEG]` as the K-th new token (from 0): shows the mask path on weights that
    /// never emit it, such as the random tiny bundle. K must be below N - 1, since a
    /// `[SEG]` gets its mask when it is fed back.
    #[arg(long, global = true, help_heading = "Global options", value_name = "K")]
    force_seg: Option<usize>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Multi-turn chat about the photo; each answer streams as it is generated.
    Chat {
        /// A question; repeat for more turns of the same conversation.
        #[arg(long = "question", short = 'q', value_name = "TEXT", required = true)]
        questions: Vec<String>,
    },
    /// A short caption of the photo.
    Caption,
    /// Referring segmentation: the mask of what EXPRESSION names.
    Segment {
        /// What to segment, e.g. "the cat" (asked as "Please segment … in this image.").
        expression: String,
    },
    /// Grounded conversation: a description whose <p>phrases</p> come with masks.
    Ground,
    /// A question about points, boxes or masks of the photo.
    Region {
        #[command(flatten)]
        regions: RegionArgs,
        /// The question; `<region>` (box, mask) and `<mark>` (point) placeholders are
        /// optional [default: a detailed description of each region].
        #[arg(long, short = 'q', value_name = "TEXT")]
        question: Option<String>,
    },
    /// OMG-Seg's panoptic segmentation of the photo (no language model).
    Panoptic,
    /// Interactive segmentation: the mask of each point, box or mask prompt.
    Interactive {
        #[command(flatten)]
        regions: RegionArgs,
    },
    /// Many images: a JSON-lines manifest in, one JSON line of results per input out,
    /// written as each finishes; resumable and shardable (docs/scaling.md). `--out` is
    /// the results file (`.jsonl`), or a directory for `results.jsonl`.
    Batch {
        /// The manifest: one `{"id", "image", "task"?, "prompt"?, "regions"?}` per line.
        #[arg(long, value_name = "JSONL")]
        manifest: PathBuf,
        /// The task of lines that do not name one.
        #[arg(long, value_enum, default_value = "segment")]
        task: omg_examples::batch::Task,
        /// Run only every N-th input, starting at the I-th (0-based): `--shard I/N`.
        #[arg(long, value_name = "I/N", default_value = "0/1")]
        shard: omg_examples::batch::Shard,
        /// Images encoded together in one forward pass of the encoder.
        #[arg(long, value_name = "K", default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
        batch_size: u64,
    },
    /// COCO annotation JSON from `omg batch` results (the shards of one run merge).
    Coco {
        /// A results file (repeatable).
        #[arg(long = "results", value_name = "JSONL", required = true)]
        results: Vec<PathBuf>,
        /// The COCO JSON to write.
        #[arg(long, value_name = "JSON")]
        coco: PathBuf,
    },
}

#[derive(Args)]
#[group(required = true, multiple = true)]
struct RegionArgs {
    /// A point in the photo's pixels (repeatable).
    #[arg(long = "point", value_name = "X,Y", value_parser = parse_point)]
    points: Vec<Region>,
    /// A box in the photo's pixels, corners x1 < x2, y1 < y2 (repeatable).
    #[arg(long = "box", value_name = "X1,Y1,X2,Y2", value_parser = parse_box)]
    boxes: Vec<Region>,
    /// A PNG of the photo's size whose non-zero pixels are the region (repeatable).
    #[arg(long = "mask", value_name = "PNG")]
    masks: Vec<PathBuf>,
}

fn parse_numbers<const N: usize>(s: &str, what: &str) -> Result<[f32; N], String> {
    let parts: Vec<&str> = s.split(',').map(str::trim).collect();
    if parts.len() != N {
        return Err(format!("expected {what}, got {s:?}"));
    }
    let mut out = [0f32; N];
    for (o, p) in out.iter_mut().zip(&parts) {
        *o = p
            .parse::<f32>()
            .ok()
            .filter(|v| v.is_finite())
            .ok_or_else(|| format!("{p:?} is not a number (expected {what})"))?;
    }
    Ok(out)
}

fn parse_point(s: &str) -> Result<Region, String> {
    let [x, y] = parse_numbers(s, "X,Y")?;
    Ok(Region::Point { x, y })
}

fn parse_box(s: &str) -> Result<Region, String> {
    let b = parse_numbers(s, "X1,Y1,X2,Y2")?;
    if b[0] >= b[2] || b[1] >= b[3] {
        return Err(format!("a box needs x1 < x2 and y1 < y2, got {s:?}"));
    }
    Ok(Region::Box(b))
}

/// A region of the command line, with a short description for labels.
struct NamedRegion {
    region: Region,
    name: String,
}

/// The regions in command-line order (which sets the `<region>` / `<mark>` order).
fn regions_in_order(
    args: &RegionArgs,
    matches: Option<&ArgMatches>,
    photo: &DynamicImage,
) -> Res<Vec<NamedRegion>> {
    enum Spec<'a> {
        Given(&'a Region),
        MaskFile(&'a PathBuf),
    }
    let position = |id: &str, k: usize| {
        matches
            .and_then(|m| m.indices_of(id))
            .and_then(|mut i| i.nth(k))
            .unwrap_or(usize::MAX)
    };
    let mut specs: Vec<(usize, Spec)> = Vec::new();
    for (k, r) in args.points.iter().enumerate() {
        specs.push((position("points", k), Spec::Given(r)));
    }
    for (k, r) in args.boxes.iter().enumerate() {
        specs.push((position("boxes", k), Spec::Given(r)));
    }
    for (k, p) in args.masks.iter().enumerate() {
        specs.push((position("masks", k), Spec::MaskFile(p)));
    }
    specs.sort_by_key(|(i, _)| *i);
    specs
        .into_iter()
        .map(|(_, spec)| match spec {
            Spec::Given(r) => Ok(NamedRegion {
                name: match r {
                    Region::Point { x, y } => format!("point ({x}, {y})"),
                    Region::Box(b) => format!("box [{}, {}, {}, {}]", b[0], b[1], b[2], b[3]),
                    Region::Mask(_) => "mask".into(),
                },
                region: r.clone(),
            }),
            Spec::MaskFile(p) => {
                let mask = read_mask(p, photo)?;
                Ok(NamedRegion {
                    name: format!("mask {} ({} pixels)", p.display(), mask.area()),
                    region: Region::Mask(mask),
                })
            }
        })
        .collect()
}

/// A region mask from a picture: non-zero (and not transparent) pixels are inside
/// ([`BinaryMask::from_image_bytes`]).
fn read_mask(path: &Path, photo: &DynamicImage) -> Res<BinaryMask> {
    let bytes =
        std::fs::read(path).map_err(|e| format!("cannot read mask {}: {e}", path.display()))?;
    let mask = BinaryMask::from_image_bytes(&bytes, omg_decoder::mask::DEFAULT_DECODE_PIXELS)
        .map_err(|e| format!("cannot read mask {}: {e}", path.display()))?;
    let (w, h) = (photo.width() as usize, photo.height() as usize);
    if (mask.width(), mask.height()) != (w, h) {
        return Err(format!(
            "mask {} is {}×{} but the photo is {w}×{h}",
            path.display(),
            mask.width(),
            mask.height()
        )
        .into());
    }
    Ok(mask)
}

/// Streams an answer to stdout as it is generated and returns it whole.
fn stream_answer(
    p: &Pipeline<B>,
    img: &ImageHandle<B>,
    prompt: &Prompt,
    regions: &[Region],
    options: &GenerateOptions,
) -> Res<Answer> {
    let mut stream = p.stream_prompt(img, prompt, regions, options)?;
    let mut out = io::stdout().lock();
    let mut masks = 0;
    for event in stream.by_ref() {
        match event? {
            StreamEvent::Text(t) => {
                let shown = ["<|im_end|>", "</s>"]
                    .iter()
                    .find_map(|end| t.strip_suffix(end))
                    .unwrap_or(&t);
                write!(out, "{shown}")?;
                out.flush()?;
            }
            StreamEvent::Mask { .. } => masks += 1,
        }
    }
    writeln!(out)?;
    let answer = stream.finish()?;
    debug_assert_eq!(masks, answer.masks.len());
    for (k, m) in answer.masks.iter().enumerate() {
        writeln!(out, "  [SEG] {k}: {}", describe(m))?;
    }
    Ok(answer)
}

/// `bbox [x, y, w, h], area A, score S`.
fn describe(m: &MaskOutput) -> String {
    let bbox = m.bbox.map_or("empty".to_owned(), |b| {
        format!("bbox [{}, {}, {}, {}]", b.x, b.y, b.width, b.height)
    });
    format!("{bbox}, area {}, score {:.3}", m.area, m.score)
}

/// Extra fields of a mask in the JSON.
#[derive(Serialize, Default)]
struct MaskMeta {
    #[serde(skip_serializing_if = "Option::is_none")]
    label: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    class_id: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    is_thing: Option<bool>,
}

#[derive(Serialize)]
struct MaskRecord<'a> {
    index: usize,
    file: String,
    #[serde(flatten)]
    meta: &'a MaskMeta,
    #[serde(flatten)]
    summary: MaskSummary,
}

#[derive(Serialize)]
struct Turn {
    question: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    regions: Vec<String>,
    answer: String,
    /// Indices into `masks`.
    masks: Vec<usize>,
}

#[derive(Serialize)]
struct PhraseRecord {
    phrase: String,
    /// Index into `masks`.
    mask: Option<usize>,
}

#[derive(Serialize)]
struct Report<'a> {
    command: &'a str,
    bundle: String,
    image: String,
    width: u32,
    height: u32,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    turns: Vec<Turn>,
    #[serde(skip_serializing_if = "Option::is_none")]
    caption: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    phrases: Vec<PhraseRecord>,
    masks: Vec<MaskRecord<'a>>,
}

/// What a command produced, written by [`Outputs::write`].
#[derive(Default)]
struct Outputs {
    turns: Vec<Turn>,
    caption: Option<String>,
    phrases: Vec<PhraseRecord>,
    masks: Vec<(MaskOutput, MaskMeta)>,
}

impl Outputs {
    fn add_mask(&mut self, mask: MaskOutput, meta: MaskMeta) -> usize {
        self.masks.push((mask, meta));
        self.masks.len() - 1
    }

    /// Records a turn; its masks are labelled by `labels` where given.
    fn add_turn(
        &mut self,
        question: &str,
        regions: Vec<String>,
        answer: &Answer,
        labels: &[String],
    ) -> Vec<usize> {
        let masks: Vec<usize> = answer
            .masks
            .iter()
            .enumerate()
            .map(|(k, m)| {
                let meta = MaskMeta {
                    label: labels.get(k).cloned(),
                    ..MaskMeta::default()
                };
                self.add_mask(m.clone(), meta)
            })
            .collect();
        self.turns.push(Turn {
            question: question.to_owned(),
            regions,
            answer: answer.text.clone(),
            masks: masks.clone(),
        });
        masks
    }

    /// Writes `<command>_<k>.png`, `<command>_overlay.png` and `<command>.json`.
    fn write(self, cli: &Cli, files: &Files, command: &str, photo: &DynamicImage) -> Res<()> {
        let dir = &cli.out;
        fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let mut written = Vec::new();
        let mut records = Vec::new();
        for (k, (mask, meta)) in self.masks.iter().enumerate() {
            let path = dir.join(format!("{command}_{k}.png"));
            mask.mask
                .save_png(&path)
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            records.push(MaskRecord {
                index: k,
                file: path.display().to_string(),
                meta,
                summary: mask.summary(),
            });
            written.push(path);
        }
        if !self.masks.is_empty() {
            let layers: Vec<(&BinaryMask, [u8; 3])> = self
                .masks
                .iter()
                .enumerate()
                .map(|(k, (m, _))| (&m.mask, palette(k)))
                .collect();
            let overlay = overlay_many(&photo.to_rgb8(), &layers, OVERLAY_ALPHA)?;
            let path = dir.join(format!("{command}_overlay.png"));
            overlay
                .save(&path)
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            written.push(path);
        }
        let report = Report {
            command,
            bundle: files.bundle.display().to_string(),
            image: files.image.display().to_string(),
            width: photo.width(),
            height: photo.height(),
            turns: self.turns,
            caption: self.caption,
            phrases: self.phrases,
            masks: records,
        };
        let path = dir.join(format!("{command}.json"));
        fs::write(&path, serde_json::to_string_pretty(&report)? + "\n")
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        written.push(path);
        if self.masks.is_empty() {
            println!("no mask");
        }
        for p in written {
            println!("wrote {}", p.display());
        }
        Ok(())
    }
}

/// The bundle and photo paths in use.
struct Files {
    bundle: PathBuf,
    image: PathBuf,
}

/// Generation options from the global flags.
fn generate_options(cli: &Cli, p: &Pipeline<B>) -> Res<GenerateOptions> {
    let n = cli.max_new_tokens;
    if n == 0 {
        return Err("--max-new-tokens must be at least 1".into());
    }
    let mut options = if cli.sample {
        GenerateOptions::demo(n, cli.seed)
    } else {
        GenerateOptions::default().with_max_new_tokens(n)
    };
    if let Some(k) = cli.force_seg {
        let seg = p
            .model()
            .special
            .seg
            .ok_or("this bundle's tokenizer has no [SEG] token")?;
        if k + 1 >= n {
            return Err(format!(
                "--force-seg {k} needs --max-new-tokens of at least {} (a [SEG] gets its mask when it is fed back, so it cannot be the last token)",
                k + 2
            )
            .into());
        }
        options.forced_tokens = vec![(k, seg)];
    }
    Ok(options)
}

/// Loads the bundle (the tiny one by default, or the hub's) as the global flags say.
fn load_pipeline(cli: &Cli, files: &Files) -> Res<Pipeline<B>> {
    let t0 = Instant::now();
    #[cfg(feature = "hub")]
    let bundle = if cli.hub {
        eprintln!("downloading the official bundle from the Hugging Face hub (cached)");
        omg_llava::hub::download_bundle(&omg_llava::hub::HubSources::default(), None)?
    } else {
        omg_llava::CheckpointBundle::from_dir(&files.bundle)?
    };
    #[cfg(not(feature = "hub"))]
    let bundle = omg_llava::CheckpointBundle::from_dir(&files.bundle)?;
    eprintln!("loading {} on {NAME}", bundle.llm_dir.display());
    let progress = LoadProgress::new();
    let device = default_device();
    let options = omg_llava::LoadOptions::default()
        .with_llm_weights(cli.llm_weights)
        .with_check_finite(cli.check_finite);
    let model =
        omg_llava::OmgLlava::<B>::load_with(&bundle, &options, &device, |s| progress.step(s))?;
    progress.finish();
    eprintln!("loaded in {:.2?}", t0.elapsed());
    Ok(Pipeline::new(model, device))
}

/// `omg batch`: the manifest is read (and checked whole) before the model loads, and
/// the model loads only if inputs are left to run.
fn run_batch_command(
    cli: &Cli,
    files: &Files,
    manifest: &Path,
    task: omg_examples::batch::Task,
    shard: omg_examples::batch::Shard,
    batch_size: usize,
) -> Res<()> {
    use omg_examples::batch::{read_manifest, run_batch, runner::pending};
    let results = if cli.out.extension().is_some() {
        cli.out.clone()
    } else if shard.count == 1 {
        cli.out.join("results.jsonl")
    } else {
        cli.out.join(format!(
            "results.shard-{}-of-{}.jsonl",
            shard.index, shard.count
        ))
    };
    let inputs = read_manifest(manifest, shard)?;
    let (left, skipped) = pending(inputs, &results)?;
    eprintln!(
        "shard {}/{}: {} inputs, {skipped} already in {}",
        shard.index,
        shard.count,
        left.len() + skipped,
        results.display()
    );
    if left.is_empty() {
        return Ok(());
    }
    let p = load_pipeline(cli, files)?;
    let options = generate_options(cli, &p)?;
    let bar = indicatif::ProgressBar::new(left.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} {elapsed} (eta {eta}) {msg}")
            .expect("a valid template"),
    );
    let summary = run_batch(
        &p,
        &left,
        &results,
        task,
        &options,
        batch_size,
        |out: &omg_examples::batch::Output| {
            bar.set_message(out.id.clone());
            bar.inc(1);
        },
    )?;
    bar.finish_and_clear();
    eprintln!(
        "wrote {} results ({} failed) to {}",
        summary.written,
        summary.failed,
        results.display()
    );
    Ok(())
}

/// `omg coco`: results files to one COCO annotation JSON.
fn run_coco_command(results: &[PathBuf], coco: &Path) -> Res<()> {
    use omg_examples::batch::coco::{read_results, to_coco};
    let mut all = Vec::new();
    for r in results {
        all.extend(read_results(r)?);
    }
    let json = to_coco(&all);
    let text = serde_json::to_string(&json)?;
    fs::write(coco, text).map_err(|e| format!("cannot write {}: {e}", coco.display()))?;
    eprintln!(
        "{} images, {} annotations, {} categories in {}",
        json.images.len(),
        json.annotations.len(),
        json.categories.len(),
        coco.display()
    );
    Ok(())
}

fn run(cli: &Cli, matches: &ArgMatches) -> Res<()> {
    let files = Files {
        bundle: cli.bundle.clone().unwrap_or_else(tiny_bundle),
        image: cli.image.clone().unwrap_or_else(sample_image),
    };
    match &cli.command {
        Command::Batch {
            manifest,
            task,
            shard,
            batch_size,
        } => return run_batch_command(cli, &files, manifest, *task, *shard, *batch_size as usize),
        Command::Coco { results, coco } => return run_coco_command(results, coco),
        _ => {}
    }
    let photo = image::open(&files.image)
        .map_err(|e| format!("cannot read image {}: {e}", files.image.display()))?;
    // Region flags are read (and mask files checked) before the model loads.
    let sub = matches.subcommand().map(|(_, m)| m);
    let regions = match &cli.command {
        Command::Region { regions, .. } | Command::Interactive { regions } => {
            regions_in_order(regions, sub, &photo)?
        }
        _ => Vec::new(),
    };
    for r in &regions {
        r.region
            .validate(photo.width(), photo.height())
            .map_err(|e| match r.region {
                Region::Mask(_) => format!("{}: {e}", r.name),
                _ => e.to_string(),
            })?;
    }

    let p = load_pipeline(cli, &files)?;
    let t1 = Instant::now();
    let img = p.encode(&photo)?;
    eprintln!(
        "encoded {} ({}×{}) in {:.2?}",
        files.image.display(),
        img.width(),
        img.height(),
        t1.elapsed()
    );

    let mut out = Outputs::default();
    let name = match &cli.command {
        Command::Chat { questions } => {
            let options = generate_options(cli, &p)?;
            let mut conversation = Conversation::new();
            for q in questions {
                println!("> {q}");
                let prompt = conversation.prompt_for(q);
                let answer = stream_answer(&p, &img, &prompt, &[], &options)?;
                conversation.push(prompt, q, &answer.raw_text);
                out.add_turn(q, Vec::new(), &answer, &[]);
            }
            "chat"
        }
        Command::Caption => {
            let options = generate_options(cli, &p)?;
            let prompt = Conversation::new().prompt_for(CAPTION_QUESTION);
            let answer = stream_answer(&p, &img, &prompt, &[], &options)?;
            out.add_turn(CAPTION_QUESTION, Vec::new(), &answer, &[]);
            "caption"
        }
        Command::Segment { expression } => {
            let options = generate_options(cli, &p)?;
            let question = segment_question(expression);
            println!("> {question}");
            let prompt = Conversation::new().prompt_for(&question);
            let answer = stream_answer(&p, &img, &prompt, &[], &options)?;
            match answer.masks.first() {
                Some(m) => println!("mask of {expression:?}: {}", describe(m)),
                None => println!(
                    "the answer has no [SEG], so no mask (random weights such as the tiny bundle's: try --force-seg 1)"
                ),
            }
            out.add_turn(
                &question,
                Vec::new(),
                &answer,
                std::slice::from_ref(expression),
            );
            "segment"
        }
        Command::Ground => {
            let options = generate_options(cli, &p)?;
            let prompt = Conversation::new().prompt_for(GCG_QUESTION);
            let answer = stream_answer(&p, &img, &prompt, &[], &options)?;
            let found = phrases(&answer.text);
            let caption = caption(&answer.text);
            println!("caption: {caption}");
            let masks = out.add_turn(GCG_QUESTION, Vec::new(), &answer, &found);
            for (k, phrase) in found.into_iter().enumerate() {
                let mask = masks.get(k).copied();
                match mask {
                    Some(i) => println!("phrase {k}: {phrase:?} → mask {i}"),
                    None => println!("phrase {k}: {phrase:?} (no mask)"),
                }
                out.phrases.push(PhraseRecord { phrase, mask });
            }
            if out.phrases.is_empty() {
                println!("no <p>phrase</p> in the answer");
            }
            out.caption = Some(caption);
            "ground"
        }
        Command::Region { question, .. } => {
            let options = generate_options(cli, &p)?;
            let mut ask = |question: &str, named: &[&NamedRegion]| -> Res<()> {
                let rs: Vec<Region> = named.iter().map(|n| n.region.clone()).collect();
                let names: Vec<String> = named.iter().map(|n| n.name.clone()).collect();
                println!("> [{}] {question}", names.join("; "));
                let prompt = region_prompt(&rs, question);
                let answer = stream_answer(&p, &img, &prompt, &rs, &options)?;
                out.add_turn(question, names, &answer, &[]);
                Ok(())
            };
            match question {
                Some(q) => ask(q, &regions.iter().collect::<Vec<_>>())?,
                None => {
                    for r in &regions {
                        ask(&describe_question(&r.region), &[r])?;
                    }
                }
            }
            "region"
        }
        Command::Panoptic => {
            let t = Instant::now();
            let pan = p.panoptic(&img)?;
            eprintln!("panoptic segmentation in {:.2?}", t.elapsed());
            if pan.segments.is_empty() {
                println!("no segment");
            }
            for (k, s) in pan.segments.into_iter().enumerate() {
                let kind = if s.is_thing { "thing" } else { "stuff" };
                println!(
                    "segment {k}: {} ({kind}, class {}): {}",
                    s.label,
                    s.class_id,
                    describe(&s.mask)
                );
                out.add_mask(
                    s.mask,
                    MaskMeta {
                        label: Some(s.label),
                        class_id: Some(s.class_id),
                        is_thing: Some(s.is_thing),
                    },
                );
            }
            "panoptic"
        }
        Command::Interactive { .. } => {
            for (k, r) in regions.iter().enumerate() {
                let m = p.interactive(&img, &r.region)?;
                println!("prompt {k}, {}: {}", r.name, describe(&m));
                out.add_mask(
                    m,
                    MaskMeta {
                        label: Some(r.name.clone()),
                        ..MaskMeta::default()
                    },
                );
            }
            "interactive"
        }
        Command::Batch { .. } | Command::Coco { .. } => {
            unreachable!("handled before the photo is read")
        }
    };
    out.write(cli, &files, name, &photo)
}

fn main() -> ExitCode {
    // reuse freed large blocks instead of page-faulting fresh ones on every layer
    omg_llava::reuse_freed_memory();
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    match run(&cli, &matches) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
