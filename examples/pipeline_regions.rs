//! Object-level use of the Pipeline: questions about a point, a rectangle and a mask of
//! the photo (in its own pixels), and the encoder's own mask for each region.
//!
//! ```text
//! cargo run --release -p omg-examples --example pipeline_regions [BUNDLE_DIR]
//! ```

use omg_examples::load_pipeline_and_photo;
use omg_llava::{BinaryMask, GenerateOptions, Region, Task};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // reuse freed large blocks instead of page-faulting fresh ones on every layer
    omg_llava::reuse_freed_memory();
    let (pipeline, photo) = load_pipeline_and_photo()?;
    let image = pipeline.encode(&photo)?;
    let options = GenerateOptions::default().with_max_new_tokens(24);

    // A mask region: a rectangle of the photo's size (any BinaryMask works).
    let (w, h) = (photo.width() as usize, photo.height() as usize);
    let data = (0..w * h)
        .map(|i| (100..200).contains(&(i / w)) && (150..300).contains(&(i % w)))
        .collect();
    let regions = [
        Region::point(200.0, 150.0),
        Region::rect(50.0, 40.0, 250.0, 220.0),
        Region::Mask(BinaryMask::from_vec(h, w, data)?),
    ];

    // One question about all three: `<mark>` for the point, `<region>` for box and mask.
    let question = "What is the relation between <mark>, <region> and <region>?";
    let answer = pipeline.ask_regions(&image, &regions, question, &options)?;
    println!("> {question}\n{}\n", answer.text);

    for region in &regions {
        let kind = match region {
            Region::Point { .. } => "point",
            Region::Rect(_) => "rectangle",
            Region::Mask(_) => "mask",
        };
        // The official region-caption prompt.
        let caption = pipeline.run(&image, &Task::describe_region(region.clone()), &options)?;
        // Interactive segmentation: the region's own mask.
        let m = pipeline.segment_region(&image, region)?;
        println!(
            "{kind}: {:?}\n  its mask: bbox {:?}, area {}, score {:.3}",
            caption.text,
            m.bbox(),
            m.area(),
            m.score()
        );
    }
    Ok(())
}
