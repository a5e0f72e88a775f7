//! A job on one photo, as `omg batch` lines and the server's task endpoints name it:
//! a kind, an optional prompt and regions. Its language-model part is a list of the
//! Pipeline's [`Task`]s (the prompts are defined there, once); its output is text and
//! masks as COCO RLE.

use burn::tensor::backend::Backend;
use omg_llava::{
    Answer, GenerateOptions, GroundedAnswer, ImageHandle, OmgLlavaError, Pipeline, Region, Task,
};
use serde::{Deserialize, Serialize};

use crate::records::{OutputMask, RegionSpec};

/// What a job asks of a photo.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum JobKind {
    /// Referring segmentation of the prompt ([`Task::Segment`]).
    Segment,
    /// Grounded conversation ([`Task::Ground`]): phrases with masks.
    Ground,
    /// A short caption ([`Task::Caption`]).
    Caption,
    /// A question of your own about the photo (the prompt, [`Task::Chat`]): the
    /// answer, and the mask of each `[SEG]` it holds.
    Chat,
    /// A question (the prompt) about the regions ([`Task::AskRegions`]), or without a
    /// prompt a description of each region ([`Task::DescribeRegion`]).
    Region,
    /// OMG-Seg's panoptic segmentation (`Pipeline::panoptic`; no language model).
    Panoptic,
    /// The mask of each region (`Pipeline::segment_region`; no language model).
    Interactive,
}

impl JobKind {
    /// The kind's name (`segment`, …).
    pub fn name(self) -> &'static str {
        match self {
            JobKind::Segment => "segment",
            JobKind::Ground => "ground",
            JobKind::Caption => "caption",
            JobKind::Chat => "chat",
            JobKind::Region => "region",
            JobKind::Panoptic => "panoptic",
            JobKind::Interactive => "interactive",
        }
    }

    /// Whether the job generates text (and so takes generation options).
    pub fn generates(self) -> bool {
        !matches!(self, JobKind::Panoptic | JobKind::Interactive)
    }
}

/// Why a job could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JobError {
    /// The job lacks what its kind needs.
    #[error("a {kind} job needs {needs}")]
    Missing {
        /// The job's kind.
        kind: &'static str,
        /// What it lacks (`a "prompt"`, `"regions"`).
        needs: &'static str,
    },
    /// The Pipeline refused or failed (a bad region, a prompt too long, …).
    #[error(transparent)]
    Pipeline(#[from] OmgLlavaError),
}

/// A job: its kind, its prompt (the expression of `segment`, the question of `region`)
/// and its regions (`region`, `interactive`).
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    /// What to do.
    pub kind: JobKind,
    /// The expression or question.
    pub prompt: Option<String>,
    /// The regions, in the photo's pixels.
    pub regions: Vec<RegionSpec>,
}

impl Job {
    fn missing(&self, needs: &'static str) -> JobError {
        JobError::Missing {
            kind: self.kind.name(),
            needs,
        }
    }

    /// The regions, decoded (an RLE mask is decoded here).
    pub fn decoded_regions(&self) -> Result<Vec<Region>, JobError> {
        Ok(self
            .regions
            .iter()
            .map(RegionSpec::to_region)
            .collect::<Result<_, _>>()?)
    }

    /// The language-model tasks of the job, in order (none for `panoptic` and
    /// `interactive`).
    pub fn tasks(&self) -> Result<Vec<Task>, JobError> {
        Ok(match self.kind {
            JobKind::Segment => {
                let expression = self.prompt.as_deref().ok_or(self.missing("a \"prompt\""))?;
                vec![Task::segment(expression)]
            }
            JobKind::Ground => vec![Task::Ground],
            JobKind::Caption => vec![Task::Caption],
            JobKind::Chat => {
                let question = self.prompt.as_deref().ok_or(self.missing("a \"prompt\""))?;
                vec![Task::chat(question)]
            }
            JobKind::Region => {
                let regions = self.decoded_regions()?;
                if regions.is_empty() {
                    return Err(self.missing("\"regions\""));
                }
                match &self.prompt {
                    Some(q) => vec![Task::ask_regions(regions, q.clone())],
                    None => regions.into_iter().map(Task::describe_region).collect(),
                }
            }
            JobKind::Panoptic | JobKind::Interactive => Vec::new(),
        })
    }
}

/// What a job produced: its text (none for `panoptic` and `interactive`) and masks.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct JobOutput {
    /// The answer (`ground`: the caption, without `<p>` tags; `region` without a prompt:
    /// one description per region, one per line).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// The masks (`ground`: with their phrases; `panoptic`: with their classes).
    #[serde(default)]
    pub masks: Vec<OutputMask>,
}

impl JobOutput {
    /// The output of a job of `kind` from the answers of its [`Job::tasks`].
    pub fn from_answers(kind: JobKind, answers: Vec<Answer>) -> Self {
        match kind {
            JobKind::Ground => {
                let grounded = answers.into_iter().next().map(GroundedAnswer::from);
                Self {
                    masks: grounded
                        .as_ref()
                        .map(|g| OutputMask::grounded(&g.phrases))
                        .unwrap_or_default(),
                    text: grounded.map(|g| g.caption),
                }
            }
            _ => Self {
                masks: answers
                    .iter()
                    .flat_map(|a| a.masks.iter().map(OutputMask::new))
                    .collect(),
                text: Some(
                    answers
                        .iter()
                        .map(|a| a.text.as_str())
                        .collect::<Vec<_>>()
                        .join("\n"),
                ),
            },
        }
    }
}

/// Runs `job` on an encoded photo.
pub fn run_job<B: Backend>(
    p: &Pipeline<B>,
    img: &ImageHandle<B>,
    job: &Job,
    options: &GenerateOptions,
) -> Result<JobOutput, JobError> {
    match job.kind {
        JobKind::Panoptic => Ok(JobOutput {
            text: None,
            masks: p.panoptic(img)?.iter().map(OutputMask::panoptic).collect(),
        }),
        JobKind::Interactive => {
            let regions = job.decoded_regions()?;
            if regions.is_empty() {
                return Err(job.missing("\"regions\""));
            }
            let masks = regions
                .iter()
                .map(|r| p.segment_region(img, r).map(|m| OutputMask::new(&m)))
                .collect::<Result<_, _>>()?;
            Ok(JobOutput { text: None, masks })
        }
        kind => {
            let answers = job
                .tasks()?
                .iter()
                .map(|t| p.run(img, t, options))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(JobOutput::from_answers(kind, answers))
        }
    }
}
