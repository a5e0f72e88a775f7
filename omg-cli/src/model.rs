//! The model flags every tool takes, and loading a [`Pipeline`] from them with a
//! progress bar on stderr. Without `--bundle` the built-in tiny demo bundle is used
//! (random weights: it shows the tools working, its answers are meaningless).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use omg_llava::{LlmWeights, LoadOptions, LoadStep, OmgLlavaError, Pipeline, RandomWeights};

use crate::B;

/// The model to load: the bundle and how its weights are held.
#[derive(clap::Args, Debug, Clone)]
pub struct ModelArgs {
    /// Checkpoint bundle directory (the official release files) [default: the built-in
    /// tiny demo bundle, random weights].
    #[arg(long, global = true, value_name = "DIR", help_heading = "Model")]
    pub bundle: Option<PathBuf>,
    /// Download the official OMG-LLaVA-7B bundle from the Hugging Face hub (cached)
    /// instead of reading `--bundle`.
    #[cfg(feature = "hub")]
    #[arg(long, global = true, help_heading = "Model")]
    pub hub: bool,
    /// Precision of the LLM's linear weights: f32, bf16/f16 (2 bytes per weight; for
    /// GPUs), int8 (≈ 1.06 bytes per weight) or int4 (≈ 0.53), converted while loading;
    /// the vision side stays f32. int8 runs the 7B model in ≈ 11 GB on a CPU, bf16 in
    /// ≈ 17 GB on a GPU.
    #[arg(
        long,
        global = true,
        default_value = "f32",
        value_name = "f32|bf16|f16|int8|int4",
        help_heading = "Model"
    )]
    pub llm_weights: LlmWeights,
    /// Check while loading that every weight is finite (no NaN or infinity); a bad
    /// tensor is named in the error.
    #[arg(long, global = true, help_heading = "Model")]
    pub check_finite: bool,
    /// Instead of a bundle, random weights of real sizes: the official vision side
    /// (OMG-Seg at 1024²) with an InternLM2 of 0.5 B (`small`) or 7.7 B (`7b`)
    /// parameters, and the demo bundle's tokenizer. The answers are meaningless; the
    /// memory and speed are a real model's (for load tests and benchmarks).
    #[arg(
        long,
        global = true,
        value_name = "small|7b",
        conflicts_with = "bundle",
        help_heading = "Model"
    )]
    pub random: Option<RandomSize>,
}

/// The sizes `--random` builds.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum RandomSize {
    /// The official vision side with a 0.5 B InternLM2 (hidden 1024, 24 layers).
    Small,
    /// OMG-LLaVA-7B's sizes (InternLM2-chat-7B).
    #[value(name = "7b")]
    SevenB,
}

impl RandomSize {
    /// The sizes, with the LLM's linears in `weights`.
    pub fn sizes(self, weights: LlmWeights) -> RandomWeights {
        match self {
            RandomSize::Small => RandomWeights::scaled(1024, 24, weights),
            RandomSize::SevenB => RandomWeights::official_7b(weights),
        }
    }
}

/// Why the model could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The built-in demo bundle could not be written to its cache directory.
    #[error(
        "cannot write the built-in demo bundle to its cache directory: {0} (set OMG_DEMO_DIR to a writable directory)"
    )]
    Demo(#[source] std::io::Error),
    /// Loading failed.
    #[error(transparent)]
    Pipeline(#[from] OmgLlavaError),
}

/// A loaded model and where it came from.
pub struct Loaded {
    /// The pipeline.
    pub pipeline: Pipeline<B>,
    /// The bundle (a directory, `hub`, or the demo bundle's cache directory).
    pub source: String,
    /// Whether it is the built-in demo bundle (random weights).
    pub demo: bool,
}

impl ModelArgs {
    /// The load options of the flags.
    pub fn load_options(&self) -> LoadOptions {
        LoadOptions::default()
            .with_llm_weights(self.llm_weights)
            .with_check_finite(self.check_finite)
    }

    /// Loads the model the flags name on the default device, showing progress on
    /// stderr.
    pub fn load(&self) -> Result<Loaded, LoadError> {
        let t0 = Instant::now();
        let options = self.load_options();
        let device = omg_llava::backend::default_device();
        let progress = LoadProgress::new();
        let step = |s: LoadStep| progress.step(s);
        #[cfg(feature = "hub")]
        if self.hub {
            eprintln!("downloading the official bundle from the Hugging Face hub (cached)");
            let bundle = omg_llava::hub::download_bundle(&Default::default(), None)?;
            let pipeline = Pipeline::from_bundle(&bundle, &options, device, step)?;
            progress.finish(t0);
            return Ok(Loaded {
                pipeline,
                source: "hub".into(),
                demo: false,
            });
        }
        if let Some(size) = self.random {
            let demo = omg_demo::bundle_dir().map_err(LoadError::Demo)?;
            let tokenizer = omg_llava::CheckpointBundle::from_dir(&demo)?.llm_dir;
            eprintln!(
                "building random weights of the {size:?} sizes (meaningless answers) on {}",
                omg_llava::backend::NAME
            );
            let sizes = size.sizes(self.llm_weights);
            let pipeline = Pipeline::with_random_weights(&sizes, tokenizer, device)?;
            progress.finish(t0);
            return Ok(Loaded {
                pipeline,
                source: format!("random-{size:?}").to_lowercase(),
                demo: false,
            });
        }
        let (dir, demo) = match &self.bundle {
            Some(dir) => (dir.clone(), false),
            None => (omg_demo::bundle_dir().map_err(LoadError::Demo)?, true),
        };
        eprintln!(
            "loading {}{} on {}",
            dir.display(),
            if demo {
                " (the built-in demo bundle: random weights)"
            } else {
                ""
            },
            omg_llava::backend::NAME
        );
        let pipeline = Pipeline::from_dir(&dir, &options, device, step)?;
        progress.finish(t0);
        Ok(Loaded {
            pipeline,
            source: dir.display().to_string(),
            demo,
        })
    }
}

impl ModelArgs {
    /// `omg prepare`: loads the LLM of the bundle the flags name from its checkpoints
    /// (LoRA merged, converted to `--llm-weights`) and writes it beside the release,
    /// so that later loads with these weights read it instead. Returns its path.
    pub fn prepare(&self) -> Result<PathBuf, LoadError> {
        let options = self.load_options();
        let device = omg_llava::backend::default_device();
        #[cfg(feature = "hub")]
        if self.hub {
            let bundle = omg_llava::hub::download_bundle(&Default::default(), None)?;
            return Ok(Pipeline::<B>::prepare_llm(&bundle, &options, device)?);
        }
        let dir = match &self.bundle {
            Some(dir) => dir.clone(),
            None => omg_demo::bundle_dir().map_err(LoadError::Demo)?,
        };
        let bundle = omg_llava::CheckpointBundle::from_dir(&dir).map_err(LoadError::Pipeline)?;
        Ok(Pipeline::<B>::prepare_llm(&bundle, &options, device)?)
    }
}

/// A progress bar (stderr) over the steps of a load, with the elapsed time of the
/// current step ticking (the language model of a 7B bundle takes a while).
struct LoadProgress(indicatif::ProgressBar);

impl LoadProgress {
    fn new() -> Self {
        let bar = indicatif::ProgressBar::new(1);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{spinner} [{pos}/{len}] {msg} ({elapsed})")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        bar.enable_steady_tick(Duration::from_millis(120));
        Self(bar)
    }

    fn step(&self, step: LoadStep) {
        self.0.set_length(step.total as u64);
        self.0.set_position(step.index as u64);
        self.0.set_message(step.what);
    }

    fn finish(&self, t0: Instant) {
        self.0
            .finish_with_message(format!("loaded in {:.2?}", t0.elapsed()));
    }
}
