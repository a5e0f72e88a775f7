//! The safetensors header reader and the sharded index reader: the first byte picks
//! which; the rest is a `.safetensors` file, or the index JSON with one valid shard
//! (`a.safetensors`, tensor `x`) next to it.

use crate::{read_all, scratch};
use omg_checkpoint::safetensors::{INDEX_FILE, SafetensorsFile, ShardedSafetensors};

/// The `safetensors` target: runs on any bytes, panics only if a check fails.
pub fn safetensors(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let dir = scratch();
    if mode % 2 == 0 {
        let path = dir.join("model.safetensors");
        std::fs::write(&path, rest).expect("scratch write");
        if let Ok(file) = SafetensorsFile::open(&path) {
            read_all(&file);
        }
    } else {
        let shard = dir.join("a.safetensors");
        if !shard.exists() {
            let x =
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![2], &[0u8; 8])
                    .expect("a valid view");
            safetensors::serialize_to_file([("x", x)], None, &shard).expect("shard write");
        }
        let index = dir.join(INDEX_FILE);
        std::fs::write(&index, rest).expect("scratch write");
        if let Ok(sharded) = ShardedSafetensors::open(&index) {
            read_all(&sharded);
        }
    }
}
