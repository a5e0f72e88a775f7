//! What the examples share: the bundle they load (the first command-line argument, or
//! the built-in tiny demo bundle) and the photo they ask about.

use std::path::PathBuf;

use image::DynamicImage;
use omg_llava::backend::{DefaultBackend, NAME, default_device};
use omg_llava::{LoadOptions, Pipeline};

/// The bundle directory given as the first command-line argument, or the tiny demo
/// bundle (random weights: the answers are gibberish, the API is the real one).
pub fn bundle_from_args() -> Result<PathBuf, std::io::Error> {
    match std::env::args_os().nth(1) {
        Some(dir) => Ok(PathBuf::from(dir)),
        None => omg_demo::bundle_dir(),
    }
}

/// Whether the examples run on the demo bundle (no bundle argument).
pub fn on_demo_bundle() -> bool {
    std::env::args_os().nth(1).is_none()
}

/// Loads a Pipeline on the default backend from the bundle of [`bundle_from_args`]
/// (printing each load step) and decodes the sample photo (a 451×300 cat).
pub fn load_pipeline_and_photo()
-> Result<(Pipeline<DefaultBackend>, DynamicImage), Box<dyn std::error::Error>> {
    let dir = bundle_from_args()?;
    eprintln!("loading {} on {NAME}", dir.display());
    let pipeline = Pipeline::from_dir(&dir, &LoadOptions::default(), default_device(), |s| {
        eprintln!("[{}/{}] {}", s.index, s.total, s.what)
    })?;
    let photo = image::load_from_memory(omg_demo::SAMPLE_PHOTO_PNG)?;
    Ok((pipeline, photo))
}
