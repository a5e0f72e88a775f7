//! `omg eval`: OMG-LLaVA's benchmarks on their official annotation files, without
//! Python. A benchmark's split is read with `omg-eval`'s readers ([`EvalSet::load`]),
//! turned into `omg batch` inputs with the official question of each sample
//! ([`EvalSet::inputs`]), run by the batch runner (resumable, shardable) into a
//! results file, and scored with `omg-eval`'s metrics ([`EvalSet::score`]), each equal
//! to its official scorer.
//!
//! | benchmark | `--data` | samples | job | metrics |
//! |---|---|---|---|---|
//! | `refcoco`, `refcoco+`, `refcocog` | the folder of `refs(unc).p` / `refs(umd).p` and `instances.json`; photos in its `train2014/` or `--images` | one per referring sentence | `segment` with the sentence: `Please segment {sentence} in this image.` | cIoU, gIoU |
//! | `reasonseg` | the folder of `val/`, `test/` | one per photo | `chat` with the query's question | cIoU, gIoU (ignore regions left out) |
//! | `gcg` | the folder of `gcg_val_test/` (the ground-truth JSON files) and `val_test/` (the photos; or `--images`) | one per photo | `ground` | METEOR, CIDEr, AP50, mIoU, recall |
//! | `region-caption` | the folder of `finetune_refcocog_val_with_mask.json` and `finetune_refcocog_val_captions.json`; photos in its `train2014/` or `--images` | one per region | `region` with the official question and the region's mask as its `<mark>` (sent as `<region>`: the same embedding row) | METEOR, CIDEr |
//!
//! - [`score`]: results to the metric table, and the running figure of the progress
//!   bar.

pub mod score;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use omg_eval::data::region_caption::{CAPTIONS_FILE, REGIONS_FILE};
use omg_eval::data::{gcg, reasonseg, refcoco, region_caption};
use omg_eval::prompts::REGION_CAPTION_QUESTION;
use omg_masks::BinaryMask;

use crate::batch::Input;
use crate::jobs::JobKind;
use crate::records::RegionSpec;

pub use score::{RunningScore, ScoreError};

/// A benchmark of the paper's tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Benchmark {
    /// Referring segmentation on RefCOCO (splits `val`, `testA`, `testB`).
    #[value(name = "refcoco")]
    RefCoco,
    /// Referring segmentation on RefCOCO+ (splits `val`, `testA`, `testB`).
    #[value(name = "refcoco+")]
    RefCocoPlus,
    /// Referring segmentation on RefCOCOg (splits `val`, `test`).
    #[value(name = "refcocog")]
    RefCocoG,
    /// Reasoning segmentation on ReasonSeg (splits `val`, `test`).
    #[value(name = "reasonseg")]
    ReasonSeg,
    /// Grounded conversation generation on GranD-f (splits `val`, `test`).
    #[value(name = "gcg")]
    Gcg,
    /// Region captioning on RefCOCOg (split `val`).
    #[value(name = "region-caption")]
    RegionCaption,
}

impl Benchmark {
    /// The benchmark's name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Benchmark::RefCoco => "refcoco",
            Benchmark::RefCocoPlus => "refcoco+",
            Benchmark::RefCocoG => "refcocog",
            Benchmark::ReasonSeg => "reasonseg",
            Benchmark::Gcg => "gcg",
            Benchmark::RegionCaption => "region-caption",
        }
    }

    fn referring(self) -> Option<refcoco::RefDataset> {
        match self {
            Benchmark::RefCoco => Some(refcoco::RefDataset::RefCoco),
            Benchmark::RefCocoPlus => Some(refcoco::RefDataset::RefCocoPlus),
            Benchmark::RefCocoG => Some(refcoco::RefDataset::RefCocoG),
            _ => None,
        }
    }
}

/// The ground truth of one split, as its reader gives it.
#[derive(Debug, Clone)]
pub enum Samples {
    /// RefCOCO, RefCOCO+, RefCOCOg: one sample per sentence.
    Referring(Vec<refcoco::RefCocoSample>),
    /// ReasonSeg: one sample per photo.
    ReasonSeg(Vec<reasonseg::ReasonSegSample>),
    /// GCG: one sample per photo.
    Gcg(Vec<gcg::GcgImage>),
    /// Region captions: one sample per region.
    RegionCaption(Vec<region_caption::RegionCaptionSample>),
}

impl Samples {
    fn len(&self) -> usize {
        match self {
            Samples::Referring(s) => s.len(),
            Samples::ReasonSeg(s) => s.len(),
            Samples::Gcg(s) => s.len(),
            Samples::RegionCaption(s) => s.len(),
        }
    }

    fn truncate(&mut self, n: usize) {
        match self {
            Samples::Referring(s) => s.truncate(n),
            Samples::ReasonSeg(s) => s.truncate(n),
            Samples::Gcg(s) => s.truncate(n),
            Samples::RegionCaption(s) => s.truncate(n),
        }
    }
}

/// One split of a benchmark: its samples with their ground truth.
#[derive(Debug, Clone)]
pub struct EvalSet {
    /// The benchmark.
    pub benchmark: Benchmark,
    /// The split's name.
    pub split: String,
    /// The samples.
    pub samples: Samples,
}

impl EvalSet {
    /// Reads `split` of `benchmark` from `data` (see the module's table for what the
    /// folder holds), with the photos in `images` where given.
    ///
    /// # Errors
    /// The reader's error, naming the file at fault or listing the valid splits.
    pub fn load(
        benchmark: Benchmark,
        data: &Path,
        images: Option<&Path>,
        split: &str,
    ) -> Result<Self, omg_eval::EvalError> {
        let photos = |default: &str| images.map_or_else(|| data.join(default), Path::to_path_buf);
        let samples = match benchmark {
            Benchmark::RefCoco | Benchmark::RefCocoPlus | Benchmark::RefCocoG => {
                let dataset = benchmark.referring().expect("a referring benchmark");
                let set = refcoco::load(data, dataset, split, &photos("train2014"))?;
                Samples::Referring(set.samples)
            }
            Benchmark::ReasonSeg => Samples::ReasonSeg(reasonseg::load(data, split)?),
            Benchmark::Gcg => Samples::Gcg(gcg::load(
                &data.join("gcg_val_test"),
                split,
                &photos("val_test"),
            )?),
            Benchmark::RegionCaption => {
                if split != "val" {
                    return Err(omg_eval::EvalError::UnknownSplit {
                        path: data.to_path_buf(),
                        split: split.to_owned(),
                        valid: "val".to_owned(),
                    });
                }
                Samples::RegionCaption(region_caption::load(
                    &data.join(REGIONS_FILE),
                    Some(&data.join(CAPTIONS_FILE)),
                    &photos("train2014"),
                )?)
            }
        };
        Ok(Self {
            benchmark,
            split: split.to_owned(),
            samples,
        })
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// Whether the split has no sample.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Keeps the first `n` samples (`--limit`).
    pub fn truncate(&mut self, n: usize) {
        self.samples.truncate(n);
    }

    /// The batch inputs of the samples, in order: each sample's id, photo, job and the
    /// official question.
    ///
    /// # Errors
    /// A region-caption sample whose region mask cannot be built (its file is named).
    pub fn inputs(&self) -> Result<Vec<Input>, omg_eval::EvalError> {
        let input = |id: String, image: &Path, task: JobKind, prompt: Option<String>| Input {
            id,
            image: image.to_path_buf(),
            task: Some(task),
            prompt,
            regions: Vec::new(),
            image_path: image.to_path_buf(),
        };
        Ok(match &self.samples {
            // the segment job asks the official `Please segment {sentence} in this image.`
            Samples::Referring(s) => s
                .iter()
                .map(|r| {
                    let prompt = Some(r.sentence.clone());
                    input(r.id.clone(), &r.image_path, JobKind::Segment, prompt)
                })
                .collect(),
            Samples::ReasonSeg(s) => s
                .iter()
                .map(|r| {
                    input(
                        r.id.clone(),
                        &r.image_path,
                        JobKind::Chat,
                        Some(r.question()),
                    )
                })
                .collect(),
            // the ground job asks the official GCG question
            Samples::Gcg(s) => s
                .iter()
                .map(|g| input(g.id.clone(), &g.image_path, JobKind::Ground, None))
                .collect(),
            Samples::RegionCaption(s) => s
                .iter()
                .map(|r| {
                    let mask: BinaryMask = r.mask()?;
                    // The official evaluation puts the mask's visual prompt at a `<mark>`;
                    // the Pipeline pairs masks with `<region>`. Both placeholders are
                    // replaced by the same one embedding row, so the LLM input is the same.
                    let question = REGION_CAPTION_QUESTION.replace("<mark>", "<region>");
                    let mut i = input(
                        r.id.to_string(),
                        &r.image_path,
                        JobKind::Region,
                        Some(question),
                    );
                    i.regions = vec![RegionSpec::MaskRle(mask.to_rle())];
                    Ok(i)
                })
                .collect::<Result<_, omg_eval::EvalError>>()?,
        })
    }

    /// The inputs of one `--shard`, grouped by photo: every sample of a photo lands in
    /// the same shard (the photos are dealt round-robin in order of first appearance)
    /// and the samples of a photo follow each other in the order of `inputs`, so that
    /// the runner encodes the photo once for all of them. The samples of each photo
    /// keep their order, and the results are scored by id, so the order changes no
    /// figure.
    pub fn shard_inputs(inputs: Vec<Input>, shard: crate::batch::Shard) -> Vec<Input> {
        let mut photos: Vec<Vec<Input>> = Vec::new();
        let mut index: HashMap<PathBuf, usize> = HashMap::new();
        for input in inputs {
            let k = *index.entry(input.image_path.clone()).or_insert_with(|| {
                photos.push(Vec::new());
                photos.len() - 1
            });
            photos[k].push(input);
        }
        photos
            .into_iter()
            .enumerate()
            .filter(|(k, _)| shard.takes(*k))
            .flat_map(|(_, inputs)| inputs)
            .collect()
    }

    /// The results file of a run of this split: `DIR/eval-{benchmark}-{split}.jsonl`
    /// (one file per shard when the run is sharded).
    pub fn results_path(&self, dir: &Path, shard: crate::batch::Shard) -> PathBuf {
        let stem = format!("eval-{}-{}", self.benchmark.name(), self.split);
        if shard.count == 1 {
            dir.join(format!("{stem}.jsonl"))
        } else {
            dir.join(format!(
                "{stem}.shard-{}-of-{}.jsonl",
                shard.index, shard.count
            ))
        }
    }

    /// The file the metric table is written to: `DIR/eval-{benchmark}-{split}.metrics.json`.
    pub fn metrics_path(&self, dir: &Path) -> PathBuf {
        dir.join(format!(
            "eval-{}-{}.metrics.json",
            self.benchmark.name(),
            self.split
        ))
    }
}
