//! What the fuzz targets share: a scratch directory per process and the checks run on
//! every tensor source a reader accepted.

use std::path::Path;
use std::sync::OnceLock;

use omg_checkpoint::TensorSource;

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
