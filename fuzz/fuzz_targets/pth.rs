//! The `.pth` reader: zip directory, CRC-32 checks, the restricted pickle machine, and
//! the views it describes, on arbitrary bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use omg_checkpoint::pth::PthFile;
use omg_fuzz::{read_all, scratch};

fuzz_target!(|data: &[u8]| {
    let path = scratch().join("checkpoint.pth");
    std::fs::write(&path, data).expect("scratch write");
    if let Ok(file) = PthFile::open(&path) {
        read_all(&file);
    }
});
