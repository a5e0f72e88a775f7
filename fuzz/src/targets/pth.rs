//! The `.pth` reader: zip directory, CRC-32 checks, the restricted pickle machine, and
//! the views it describes, on arbitrary bytes.

use crate::{read_all, scratch};
use omg_checkpoint::pth::PthFile;

/// The `pth` target: runs on any bytes, panics only if a check fails.
pub fn pth(data: &[u8]) {
    let path = scratch().join("checkpoint.pth");
    std::fs::write(&path, data).expect("scratch write");
    if let Ok(file) = PthFile::open(&path) {
        read_all(&file);
    }
}
