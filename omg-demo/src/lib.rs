//! # omg-demo
//!
//! The tiny OMG-LLaVA demo bundle and a sample photo, built into the program.
//!
//! The bundle holds a complete OMG-LLaVA (InternLM2, OMG-Seg, projectors, class
//! embeddings) in the official file layouts with **random weights**: it exercises every
//! loading path and task in seconds, and its answers are meaningless. The files are
//! compiled into the binary, so a tool built with this crate (`omg`, `omg-server`) runs
//! the demo from any directory, without the source tree: [`bundle_dir`] writes them
//! once into a cache directory and returns it.
//!
//! The same files are in this crate's `assets/` folder in the source tree
//! ([`source_bundle_dir`]), where the tests read them.

use std::io;
use std::path::{Path, PathBuf};

/// One file of the bundle: its path inside the bundle directory and its bytes.
struct Asset {
    path: &'static str,
    bytes: &'static [u8],
}

macro_rules! asset {
    ($path:literal) => {
        Asset {
            path: $path,
            bytes: include_bytes!(concat!("../assets/tiny/", $path)),
        }
    };
}

/// Every file of the tiny bundle.
const BUNDLE: &[Asset] = &[
    asset!("README.md"),
    asset!("class_embed_tiny.pth"),
    asset!("omg_llava_config.json"),
    asset!("omg_llava_tiny.pth"),
    asset!("omg_seg_tiny.pth"),
    asset!("internlm2/config.json"),
    asset!("internlm2/model.safetensors"),
    asset!("internlm2/special_tokens_map.json"),
    asset!("internlm2/tokenizer.json"),
    asset!("internlm2/tokenizer.model"),
    asset!("internlm2/tokenizer_config.json"),
];

/// The sample photo: "Chelsea the cat", a 451×300 RGB PNG (CC0, from scikit-image's
/// sample data).
pub const SAMPLE_PHOTO_PNG: &[u8] = include_bytes!("../assets/chelsea.png");

/// The file name of [`SAMPLE_PHOTO_PNG`] (for messages and output records).
pub const SAMPLE_PHOTO_NAME: &str = "chelsea.png";

/// The bundle directory in the source tree (`omg-demo/assets/tiny`): for tests and
/// programs run from a checkout.
pub fn source_bundle_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/assets/tiny"))
}

/// The sample photo in the source tree (`omg-demo/assets/chelsea.png`).
pub fn source_sample_photo() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/assets/chelsea.png"))
}

/// The demo bundle as a directory on disk, written from the bytes built into the
/// program the first time it is asked for: `$OMG_DEMO_DIR` if set, else
/// `$XDG_CACHE_HOME/omg-llava` (or `~/.cache/omg-llava`, or the temporary directory),
/// in a sub-directory named by the bundle's content hash, so that programs of other
/// versions never share one. Files are written to a temporary name and renamed, so
/// processes starting at the same time do not see half-written files.
pub fn bundle_dir() -> io::Result<PathBuf> {
    let dir = cache_root().join(format!("demo-bundle-{:016x}", content_hash()));
    materialize(&dir)?;
    Ok(dir)
}

/// The root of the cache directories.
fn cache_root() -> PathBuf {
    if let Some(dir) = std::env::var_os("OMG_DEMO_DIR") {
        return PathBuf::from(dir);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("omg-llava")
}

/// FNV-1a over every file's path and bytes.
fn content_hash() -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for asset in BUNDLE {
        for &b in asset.path.as_bytes().iter().chain(asset.bytes) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// Writes every file of the bundle under `dir` that is missing or of another size.
fn materialize(dir: &Path) -> io::Result<()> {
    for asset in BUNDLE {
        let path = dir.join(asset.path);
        let complete = std::fs::metadata(&path)
            .map(|m| m.len() == asset.bytes.len() as u64)
            .unwrap_or(false);
        if complete {
            continue;
        }
        let parent = path.parent().unwrap_or(dir);
        std::fs::create_dir_all(parent)?;
        let temporary = parent.join(format!(
            ".{}.{}.partial",
            path.file_name().and_then(|n| n.to_str()).unwrap_or("file"),
            std::process::id()
        ));
        std::fs::write(&temporary, asset.bytes)?;
        std::fs::rename(&temporary, &path)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bundle_file_is_built_in_and_equal_to_the_source() {
        let mut on_disk = Vec::new();
        let mut stack = vec![source_bundle_dir().to_path_buf()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else {
                    on_disk.push(path);
                }
            }
        }
        assert_eq!(on_disk.len(), BUNDLE.len(), "{on_disk:?}");
        for asset in BUNDLE {
            let bytes = std::fs::read(source_bundle_dir().join(asset.path)).unwrap();
            assert!(bytes == asset.bytes, "{}", asset.path);
        }
        assert_eq!(
            std::fs::read(source_sample_photo()).unwrap(),
            SAMPLE_PHOTO_PNG
        );
    }

    #[test]
    fn the_bundle_is_written_once_and_repaired() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("demo");
        materialize(&dir).unwrap();
        let config = dir.join("internlm2/config.json");
        assert_eq!(
            std::fs::read(&config).unwrap(),
            include_bytes!("../assets/tiny/internlm2/config.json")
        );
        // a truncated file (an interrupted copy) is written again
        std::fs::write(&config, b"{").unwrap();
        materialize(&dir).unwrap();
        assert_eq!(
            std::fs::read(&config).unwrap(),
            include_bytes!("../assets/tiny/internlm2/config.json")
        );
        let leftovers = std::fs::read_dir(dir.join("internlm2"))
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".partial")
            })
            .count();
        assert_eq!(leftovers, 0);
    }
}
