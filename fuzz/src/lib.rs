//! The fuzz targets' bodies, one function per parser of user bytes ([`targets`]), and
//! what they share: a scratch directory per process, the checks run on every tensor
//! source a reader accepted, and the replay of corpus files ([`replay`]).
//!
//! `cargo fuzz` (nightly) drives each body through libFuzzer from `fuzz_targets/`; the
//! workspace's tests replay every file under `corpus/` through the same bodies.

use std::path::Path;
use std::sync::OnceLock;

use omg_checkpoint::TensorSource;

pub mod targets;

/// A directory of this fuzzing process (in `/dev/shm` where there is one), for the
/// readers that take a path.
pub fn scratch() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let shm = Path::new("/dev/shm");
        if shm.is_dir() {
            tempfile::tempdir_in(shm).expect("a scratch directory in /dev/shm")
        } else {
            tempfile::tempdir().expect("a scratch directory")
        }
    })
    .path()
}

/// Reads every tensor a source lists and checks that what comes back is what its
/// `info` promised: the shape, and as many bytes as the shape and dtype need.
pub fn read_all(source: &dyn TensorSource) {
    for name in source.names() {
        let info = source.info(&name).expect("a listed tensor has info");
        if let Ok(data) = source.read(&name) {
            assert_eq!(data.shape.to_vec(), info.shape, "shape of {name}");
            let elements: usize = info.shape.iter().product();
            assert_eq!(
                data.as_bytes().len(),
                elements * info.dtype.size(),
                "bytes of {name}"
            );
        }
    }
}

/// Runs `target` on every file named on the command line (a directory: every file in
/// it), the way a fuzz target binary replays inputs when it is not built by
/// `cargo fuzz`. Prints how many inputs ran; a failing input panics with its path.
pub fn replay_main(target: fn(&[u8])) {
    let mut ran = 0usize;
    for arg in std::env::args_os().skip(1) {
        ran += replay(std::path::Path::new(&arg), target);
    }
    println!("replayed {ran} inputs");
}

/// Runs `target` on the file at `path`, or on every file in the directory at `path`
/// (sorted by name, not recursive); returns how many ran. Panics, naming the file, if
/// a file cannot be read or its input fails the target's checks.
pub fn replay(path: &Path, target: fn(&[u8])) -> usize {
    let mut files = if path.is_dir() {
        std::fs::read_dir(path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .map(|entry| entry.expect("a directory entry").path())
            .filter(|p| p.is_file())
            .collect::<Vec<_>>()
    } else {
        vec![path.to_path_buf()]
    };
    files.sort();
    for file in &files {
        let data = std::fs::read(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let outcome = std::panic::catch_unwind(|| target(&data));
        if let Err(cause) = outcome {
            let message = cause
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| cause.downcast_ref::<&str>().copied())
                .unwrap_or("a panic");
            panic!("{} fails its target: {message}", file.display());
        }
    }
    files.len()
}

/// The body of a fuzz target binary for `targets::$name`: a libFuzzer entry point
/// under `cargo fuzz` (`--cfg fuzzing`), otherwise a `main` that replays the files it is
/// given ([`replay_main`]). The binary itself starts with
/// `#![cfg_attr(fuzzing, no_main)]`.
#[macro_export]
macro_rules! fuzz_binary {
    ($name:ident) => {
        #[cfg(fuzzing)]
        libfuzzer_sys::fuzz_target!(|data: &[u8]| $crate::targets::$name(data));

        #[cfg(not(fuzzing))]
        fn main() {
            $crate::replay_main($crate::targets::$name);
        }
    };
}
