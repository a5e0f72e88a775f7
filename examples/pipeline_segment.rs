//! Pixel-level use of the Pipeline: referring segmentation ("the cat") and grounded
//! conversation, with the masks written as overlays on the photo to `out/`.
//!
//! ```text
//! cargo run --release -p omg-examples --example pipeline_segment [BUNDLE_DIR]
//! ```
//! The demo bundle (the default) never emits `[SEG]` by itself, so on it `[SEG]` is
//! forced as the second new token to show the mask path.

use omg_examples::{load_pipeline_and_photo, on_demo_bundle};
use omg_llava::{BinaryMask, GenerateOptions};
use omg_masks::{overlay_many, palette};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // reuse freed large blocks instead of page-faulting fresh ones on every layer
    omg_llava::reuse_freed_memory();
    let (pipeline, photo) = load_pipeline_and_photo()?;
    let image = pipeline.encode(&photo)?;
    let mut options = GenerateOptions::default().with_max_new_tokens(24);
    if on_demo_bundle() {
        options = options.with_forced_seg(1);
    }
    std::fs::create_dir_all("out")?;
    let rgb = photo.to_rgb8();

    // Referring segmentation: the first [SEG]'s mask, in the photo's pixels.
    let s = pipeline.segment(&image, "the cat", &options)?;
    println!("segment: {:?}", s.answer.text);
    if let Some(m) = &s.mask {
        println!(
            "  mask: bbox {:?}, area {}, score {:.3}",
            m.bbox(),
            m.area(),
            m.score()
        );
        m.mask()
            .overlay(&rgb, palette(0), 0.5)?
            .save("out/pipeline_segment.png")?;
        println!("  wrote out/pipeline_segment.png");
    }

    // Grounded conversation: k-th <p>phrase</p> ↔ k-th [SEG] mask.
    let g = pipeline.ground(&image, &options)?;
    println!("ground: {:?}\n  caption: {:?}", g.answer.text, g.caption);
    for p in &g.phrases {
        println!(
            "  phrase {:?}: mask area {:?}",
            p.phrase,
            p.mask.as_ref().map(|m| m.area())
        );
    }
    let layers: Vec<(&BinaryMask, [u8; 3])> = g
        .answer
        .masks
        .iter()
        .enumerate()
        .map(|(k, m)| (m.mask(), palette(k)))
        .collect();
    if !layers.is_empty() {
        overlay_many(&rgb, &layers, 0.5)?.save("out/pipeline_ground.png")?;
        println!("  wrote out/pipeline_ground.png ({} masks)", layers.len());
    }
    Ok(())
}
