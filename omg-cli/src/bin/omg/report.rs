//! What a single-photo command writes into `--out`: `<command>_<k>.png` (each mask,
//! 255 inside), `<command>_overlay.png` (every mask blended over the photo) and
//! `<command>.json` (the turns' text, and per mask its bbox, area, score, COCO RLE and
//! label or phrase).

use std::fs;
use std::path::Path;

use image::DynamicImage;
use omg_llava::{Answer, BinaryMask, MaskOutput, MaskSummary};
use omg_masks::{overlay_many, palette};
use serde::Serialize;

use crate::Res;

/// Opacity of the masks in the overlay pictures.
const OVERLAY_ALPHA: f32 = 0.5;

/// Extra fields of a mask in the JSON.
#[derive(Serialize, Default)]
pub struct MaskMeta {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub class_id: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub is_thing: Option<bool>,
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
pub struct PhraseRecord {
    pub phrase: String,
    /// Index into `masks`.
    pub mask: Option<usize>,
}

#[derive(Serialize)]
struct Report<'a> {
    command: &'a str,
    bundle: &'a str,
    image: &'a str,
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
pub struct Outputs {
    turns: Vec<Turn>,
    pub caption: Option<String>,
    pub phrases: Vec<PhraseRecord>,
    masks: Vec<(MaskOutput, MaskMeta)>,
}

/// Where a command's inputs came from, for the report.
pub struct Sources<'a> {
    pub bundle: &'a str,
    pub image: &'a str,
}

impl Outputs {
    pub fn add_mask(&mut self, mask: MaskOutput, meta: MaskMeta) -> usize {
        self.masks.push((mask, meta));
        self.masks.len() - 1
    }

    /// Records a turn; its masks are labelled by `labels` where given.
    pub fn add_turn(
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

    /// Writes `<command>_<k>.png`, `<command>_overlay.png` and `<command>.json` into
    /// `dir`.
    pub fn write(
        self,
        dir: &Path,
        command: &str,
        sources: Sources<'_>,
        photo: &DynamicImage,
    ) -> Res<()> {
        fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let mut written = Vec::new();
        let mut records = Vec::new();
        for (k, (mask, meta)) in self.masks.iter().enumerate() {
            let path = dir.join(format!("{command}_{k}.png"));
            mask.mask()
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
                .map(|(k, (m, _))| (m.mask(), palette(k)))
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
            bundle: sources.bundle,
            image: sources.image,
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

/// `bbox [x, y, w, h], area A, score S`.
pub fn describe(m: &MaskOutput) -> String {
    let bbox = m.bbox().map_or("empty".to_owned(), |b| {
        format!("bbox [{}, {}, {}, {}]", b.x, b.y, b.width, b.height)
    });
    format!("{bbox}, area {}, score {:.3}", m.area(), m.score())
}
