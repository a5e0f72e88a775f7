//! `omg`: OMG-LLaVA on the command line. Chat about a photo, caption it, segment what a
//! sentence names, ground a description in masks, ask about points / boxes / masks, run
//! the visual encoder's own panoptic and interactive segmentation, and run a task over
//! a dataset (`batch`, `coco`), and the paper's benchmarks (`eval`).
//!
//! ```text
//! omg segment "the cat" --force-seg 1
//! omg chat -q "What is this?" -q "Why?"
//! omg region --point 200,150 --box 50,40,250,220
//! omg --bundle ~/omg-llava-7b --llm-weights int8 --image dog.jpg segment "the dog"
//! omg batch --manifest photos.jsonl --task segment --out results.jsonl
//! omg eval refcoco --data omg-eval/tiny/refcoco --split val
//! ```
//!
//! Without `--bundle` it runs the tiny demo bundle built into the binary (random
//! weights: the text is gibberish and it never emits `[SEG]` by itself; `--force-seg K`
//! forces `[SEG]` as the K-th new token to show the mask path). Without `--image` it
//! uses the built-in sample photo. Answers stream to stdout, progress to stderr, files
//! to `--out` (`out/`).

mod photo;
mod regions;
mod report;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser, Subcommand};
use omg_cli::batch::runner::pending;
use omg_cli::batch::{Shard, read_manifest, run_batch};
use omg_cli::jobs::JobKind;
use omg_cli::model::ModelArgs;
use omg_llava::{GenerateOptions, Sampling};

use crate::regions::RegionArgs;

pub(crate) type Res<T> = Result<T, Box<dyn std::error::Error>>;

#[derive(Parser)]
#[command(
    name = "omg",
    version,
    about = "OMG-LLaVA: chat, captions, region questions, segmentation and grounding on a photo",
    after_help = "Examples:\n  omg segment \"the cat\" --force-seg 1\n  omg region --point 200,150 --box 50,40,250,220\n  omg chat -q \"What is this?\" -q \"Why?\"\n  omg --bundle pretrained/omg_llava --llm-weights int8 --image dog.jpg segment \"the dog\""
)]
pub(crate) struct Cli {
    #[command(flatten)]
    model: ModelArgs,
    /// The photo [default: the built-in sample photo, a 451×300 cat].
    #[arg(long, global = true, value_name = "PATH")]
    image: Option<PathBuf>,
    /// Directory the masks, overlay and JSON are written to (`batch`: the results file,
    /// or a directory for it).
    #[arg(long, global = true, value_name = "DIR", default_value = "out")]
    out: PathBuf,
    #[command(flatten)]
    generation: GenerationArgs,
    #[command(subcommand)]
    command: Command,
}

/// How answers are generated.
#[derive(clap::Args)]
struct GenerationArgs {
    /// Maximum number of new tokens per answer.
    #[arg(
        long,
        global = true,
        value_name = "N",
        default_value_t = 100,
        help_heading = "Generation"
    )]
    max_new_tokens: usize,
    /// Sample like the official demo (temperature 0.1, top-p 0.75, top-k 40) instead of
    /// greedy decoding.
    #[arg(long, global = true, help_heading = "Generation")]
    sample: bool,
    /// Seed of --sample.
    #[arg(
        long,
        global = true,
        value_name = "SEED",
        default_value_t = 0,
        help_heading = "Generation"
    )]
    seed: u64,
    /// Force `[SEG]` as the K-th new token (from 0): shows the mask path on weights that
    /// never emit it, such as the demo bundle's. K must be below N - 1, since a `[SEG]`
    /// gets its mask when it is fed back.
    #[arg(long, global = true, value_name = "K", help_heading = "Generation")]
    force_seg: Option<usize>,
}

impl GenerationArgs {
    fn options(&self) -> Res<GenerateOptions> {
        let n = self.max_new_tokens;
        let mut options = if self.sample {
            GenerateOptions::demo(n, self.seed)
        } else {
            GenerateOptions::default()
                .with_max_new_tokens(n)
                .with_sampling(Sampling::Greedy)
        };
        if let Some(k) = self.force_seg {
            options = options.with_forced_seg(k);
        }
        options.validate()?;
        Ok(options)
    }
}

#[derive(Subcommand)]
pub(crate) enum Command {
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
    /// Many photos: a JSON-lines manifest in, one JSON line of results per input out,
    /// written as each finishes; resumable and shardable. `--out` is the results file
    /// (`.jsonl`), or a directory for `results.jsonl`.
    Batch {
        /// The manifest: one `{"id", "image", "task"?, "prompt"?, "regions"?}` per line.
        #[arg(long, value_name = "JSONL")]
        manifest: PathBuf,
        /// The task of lines that do not name one.
        #[arg(long, value_enum, default_value = "segment")]
        task: JobKind,
        /// Run only every N-th input, starting at the I-th (0-based): `--shard I/N`.
        #[arg(long, value_name = "I/N", default_value = "0/1")]
        shard: Shard,
        /// Photos encoded together in one forward pass of the encoder.
        #[arg(long, value_name = "K", default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
        batch_size: u64,
    },
    /// Prepare the bundle's LLM for fast loads: merge its LoRA and convert it to
    /// --llm-weights once, writing `omg_llava_llm_<weights>.safetensors` beside the
    /// release; later loads with these weights read it (until the checkpoints change).
    Prepare,
    /// A benchmark of the paper on its official annotation files: every sample of the
    /// split through the Pipeline with the official question, one results line each
    /// (resumable and shardable as `batch`: `--out DIR` holds
    /// `eval-<benchmark>-<split>.jsonl`), then the metric table, printed and written
    /// beside them (`.metrics.json`).
    Eval {
        /// The benchmark.
        #[arg(value_enum)]
        benchmark: omg_cli::eval::Benchmark,
        /// The benchmark's annotation folder (see the guide's "Evaluation").
        #[arg(long, value_name = "DIR")]
        data: PathBuf,
        /// The photos, where they are not in the folder's default place.
        #[arg(long, value_name = "DIR")]
        images: Option<PathBuf>,
        /// The split: `val`, `testA`, `testB` (RefCOCO, RefCOCO+), `val`, `test`
        /// (RefCOCOg, ReasonSeg, GCG), `val` (region captions).
        #[arg(long, default_value = "val")]
        split: String,
        /// Only the first N samples of the split (a quick look).
        #[arg(long, value_name = "N")]
        limit: Option<usize>,
        /// Run only the samples of every N-th photo, starting at the I-th (0-based):
        /// `--shard I/N` (the samples of one photo stay together, encoded once).
        #[arg(long, value_name = "I/N", default_value = "0/1")]
        shard: Shard,
        /// Photos encoded together in one forward pass of the encoder.
        #[arg(long, value_name = "K", default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
        batch_size: u64,
        /// Score these results files (the shards of a run) without running the model.
        #[arg(long = "score-only", value_name = "JSONL", num_args = 1..)]
        score_only: Vec<PathBuf>,
        /// GCG recall: the Hugging Face folder of `bert-base-uncased` (config.json,
        /// model.safetensors, tokenizer.json or vocab.txt), whose phrase embeddings
        /// the official recall compares; without it the recall is not computed.
        #[arg(long, value_name = "DIR")]
        bert: Option<PathBuf>,
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

/// `omg batch`: the manifest is read (and checked whole) before the model loads, and
/// the model loads only if inputs are left to run.
fn run_batch_command(
    cli: &Cli,
    manifest: &Path,
    task: JobKind,
    shard: Shard,
    batch_size: usize,
) -> Res<()> {
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
    let options = cli.generation.options()?;
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
    let p = cli.model.load()?.pipeline;
    let bar = indicatif::ProgressBar::new(left.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} {elapsed} (eta {eta}) {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let summary = run_batch(
        &p,
        &left,
        &results,
        task,
        &options,
        batch_size,
        |out: &omg_cli::batch::Output| {
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

/// What `omg eval` is asked.
struct EvalArgs<'a> {
    benchmark: omg_cli::eval::Benchmark,
    data: &'a Path,
    images: Option<&'a Path>,
    split: &'a str,
    limit: Option<usize>,
    shard: Shard,
    batch_size: usize,
    score_only: &'a [PathBuf],
    bert: Option<&'a Path>,
}

/// `omg eval`: the split is read (and checked) before the model loads; the model loads
/// only if samples are left to run; the table covers the samples with results.
fn run_eval_command(cli: &Cli, a: EvalArgs) -> Res<()> {
    use omg_cli::batch::coco::read_results;
    use omg_cli::eval::{EvalSet, RunningScore};

    let mut set = EvalSet::load(a.benchmark, a.data, a.images, a.split)?;
    if let Some(n) = a.limit {
        set.truncate(n);
    }
    // loaded before the run, so that a bad folder fails before hours of answers
    let similarity = match a.bert {
        Some(dir) if a.benchmark == omg_cli::eval::Benchmark::Gcg => {
            let device = omg_llava::backend::default_device();
            let encoder = omg_bert::PhraseEncoder::<omg_cli::B>::from_dir(dir, &device)
                .map_err(|e| format!("--bert {}: {e}", dir.display()))?;
            Some(omg_bert::BertPhraseSimilarity::new(encoder))
        }
        Some(_) => {
            eprintln!("note: --bert is used by the gcg benchmark only");
            None
        }
        None => None,
    };
    let results = if a.score_only.is_empty() {
        let results = set.results_path(&cli.out, a.shard);
        let inputs = EvalSet::shard_inputs(set.inputs()?, a.shard);
        let (left, skipped) = pending(inputs, &results)?;
        eprintln!(
            "{} {}: {} samples in shard {}/{}, {skipped} already in {}",
            a.benchmark.name(),
            a.split,
            left.len() + skipped,
            a.shard.index,
            a.shard.count,
            results.display()
        );
        if !left.is_empty() {
            let options = cli.generation.options()?;
            let p = cli.model.load()?.pipeline;
            let bar = indicatif::ProgressBar::new(left.len() as u64);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{bar:30} {pos}/{len} {elapsed} (eta {eta}) {msg}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            let mut running = RunningScore::new(&set);
            run_batch(
                &p,
                &left,
                &results,
                JobKind::Segment,
                &options,
                a.batch_size,
                |out: &omg_cli::batch::Output| {
                    if let Some(figure) = running.update(out) {
                        bar.set_message(figure);
                    }
                    bar.inc(1);
                },
            )?;
            bar.finish_and_clear();
        }
        vec![results]
    } else {
        a.score_only.to_vec()
    };
    let mut outputs = Vec::new();
    for r in &results {
        outputs.extend(read_results(r)?);
    }
    let table = set.score_with(
        &outputs,
        similarity
            .as_ref()
            .map(|s| s as &dyn omg_eval::gcg::PhraseSimilarity),
    )?;
    print!("{table}");
    let metrics = set.metrics_path(&cli.out);
    if let Some(dir) = metrics.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    fs::write(&metrics, serde_json::to_string_pretty(&table)?)
        .map_err(|e| format!("cannot write {}: {e}", metrics.display()))?;
    eprintln!("wrote {}", metrics.display());
    Ok(())
}

/// `omg coco`: results files to one COCO annotation JSON.
fn run_coco_command(results: &[PathBuf], coco: &Path) -> Res<()> {
    use omg_cli::batch::coco::{read_results, to_coco};
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
    match &cli.command {
        Command::Batch {
            manifest,
            task,
            shard,
            batch_size,
        } => run_batch_command(cli, manifest, *task, *shard, *batch_size as usize),
        Command::Coco { results, coco } => run_coco_command(results, coco),
        Command::Eval {
            benchmark,
            data,
            images,
            split,
            limit,
            shard,
            batch_size,
            score_only,
            bert,
        } => run_eval_command(
            cli,
            EvalArgs {
                benchmark: *benchmark,
                data,
                images: images.as_deref(),
                split,
                limit: *limit,
                shard: *shard,
                batch_size: *batch_size as usize,
                score_only,
                bert: bert.as_deref(),
            },
        ),
        Command::Prepare => {
            let t0 = std::time::Instant::now();
            eprintln!(
                "preparing the LLM in {} (the LoRA merged, converted once)",
                cli.model.llm_weights
            );
            let path = cli.model.prepare()?;
            let bytes = fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            eprintln!(
                "wrote {} ({:.2} GB) in {:.1} s; loads with --llm-weights {} now read it",
                path.display(),
                bytes as f64 / 1e9,
                t0.elapsed().as_secs_f64(),
                cli.model.llm_weights
            );
            Ok(())
        }
        _ => photo::run_photo_command(cli, matches.subcommand().map(|(_, m)| m)),
    }
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
