//! The visual encoder's panoptic segmentation through the Pipeline: every segment's
//! label, thing/stuff kind, score, box, area and COCO RLE, in the photo's pixels.
//!
//! ```text
//! cargo run --release -p omg-examples --example pipeline_panoptic [BUNDLE_DIR]
//! ```

use omg_examples::load_pipeline_and_photo;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // reuse freed large blocks instead of page-faulting fresh ones on every layer
    omg_llava::reuse_freed_memory();
    let (pipeline, photo) = load_pipeline_and_photo()?;
    let image = pipeline.encode(&photo)?;
    let segments = pipeline.panoptic(&image)?;
    println!(
        "{} segments on the {}×{} photo",
        segments.len(),
        photo.width(),
        photo.height()
    );
    let mut covered = 0;
    for (k, s) in segments.iter().enumerate() {
        let m = &s.mask;
        covered += m.area();
        let rle = m.rle();
        let counts: String = rle.counts.chars().take(40).collect();
        println!(
            "{k}: {} ({}, class {}) score {:.3}, bbox {:?}, area {}\n   RLE size {:?}, counts {counts}{}",
            s.label,
            if s.is_thing { "thing" } else { "stuff" },
            s.class_id,
            m.score(),
            m.bbox().map(|b| [b.x, b.y, b.width, b.height]),
            m.area(),
            rle.size,
            if rle.counts.len() > 40 { "…" } else { "" }
        );
    }
    let total = u64::from(photo.width()) * u64::from(photo.height());
    println!("{covered} of {total} pixels covered");
    Ok(())
}
