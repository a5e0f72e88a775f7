//! The manifest: one JSON object per line,
//! `{"id": "...", "image": "path", "task": "segment", "prompt": "...", "regions": [...]}`.
//! `task` defaults to the command line's `--task`; `image` is relative to the
//! manifest's directory unless absolute; `regions` are
//! `{"point": [x, y]}`, `{"box": [x1, y1, x2, y2]}` or
//! `{"mask_rle": {"size": [h, w], "counts": "..."}}` in the image's pixels.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::BatchError;
use crate::jobs::{Job, JobKind};
use crate::records::RegionSpec;

/// One manifest line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Input {
    /// A unique id; the results carry it, and a resumed run skips ids already written.
    pub id: String,
    /// The image file, relative to the manifest's directory unless absolute.
    pub image: PathBuf,
    /// The task (default: the command line's).
    #[serde(default)]
    pub task: Option<JobKind>,
    /// The expression (`segment`) or question (`region`).
    #[serde(default)]
    pub prompt: Option<String>,
    /// The regions of a `region` or `interactive` task.
    #[serde(default)]
    pub regions: Vec<RegionSpec>,
    /// `image` resolved against the manifest's directory (set by [`read_manifest`]).
    #[serde(skip)]
    pub image_path: PathBuf,
}

impl Input {
    /// The job of this line, its kind defaulting to `default`.
    pub fn job(&self, default: JobKind) -> Job {
        Job {
            kind: self.task.unwrap_or(default),
            prompt: self.prompt.clone(),
            regions: self.regions.clone(),
        }
    }
}

/// One shard of a manifest: the inputs whose 0-based line index `k` (counting input
/// lines only) has `k % count == index`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// This shard, `0..count`.
    pub index: usize,
    /// Number of shards.
    pub count: usize,
}

impl Shard {
    /// The whole manifest.
    pub const ALL: Shard = Shard { index: 0, count: 1 };

    /// Whether the `k`-th input belongs to this shard.
    pub fn takes(&self, k: usize) -> bool {
        k % self.count == self.index
    }
}

impl FromStr for Shard {
    type Err = BatchError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BatchError::Shard(s.to_owned());
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let index: usize = i.trim().parse().map_err(|_| bad())?;
        let count: usize = n.trim().parse().map_err(|_| bad())?;
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

/// Reads a manifest: every non-blank line must be an [`Input`] and ids must be
/// unique (checked over the whole manifest, so that every shard agrees). Returns the
/// inputs of `shard`, with `image_path` resolved against the manifest's directory.
pub fn read_manifest(path: &Path, shard: Shard) -> Result<Vec<Input>, BatchError> {
    let text = std::fs::read_to_string(path).map_err(|source| BatchError::Io {
        path: path.to_owned(),
        source,
    })?;
    let base = path.parent().unwrap_or(Path::new("."));
    let mut ids = HashSet::new();
    let mut inputs = Vec::new();
    let mut k = 0;
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad = |reason: String| BatchError::Manifest {
            path: path.to_owned(),
            line: n + 1,
            reason,
        };
        let mut input: Input = serde_json::from_str(line).map_err(|e| bad(e.to_string()))?;
        if !ids.insert(input.id.clone()) {
            return Err(bad(format!("the id {:?} is used twice", input.id)));
        }
        if shard.takes(k) {
            input.image_path = base.join(&input.image);
            inputs.push(input);
        }
        k += 1;
    }
    Ok(inputs)
}
