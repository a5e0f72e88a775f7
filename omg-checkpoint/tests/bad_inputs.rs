//! The readers on bad files: empty, truncated, garbage, offsets past the end, headers
//! that lie, index files that reach outside their directory, and non-finite values
//! under the opt-in check. Each case asserts the error variant.

use std::path::Path;

use omg_checkpoint::pth::PthFile;
use omg_checkpoint::safetensors::{INDEX_FILE, SafetensorsFile, ShardedSafetensors};
use omg_checkpoint::{CheckpointError, FiniteCheck, TensorSource};
use safetensors::Dtype;
use safetensors::tensor::TensorView;

fn data(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data")
            .join(name),
    )
    .unwrap()
}

fn format_message<T>(r: Result<T, CheckpointError>) -> String {
    match r {
        Err(CheckpointError::Format { message, .. }) => message,
        Err(other) => panic!("not a format error: {other}"),
        Ok(_) => panic!("accepted"),
    }
}

/// A safetensors file from a header (JSON) and a data section.
fn raw_safetensors(header: &str, data_len: usize) -> Vec<u8> {
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend(header.as_bytes());
    out.extend(vec![0u8; data_len]);
    out
}

#[test]
fn safetensors_empty_truncated_garbage_and_lying_headers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.safetensors");
    let open = |bytes: &[u8]| {
        std::fs::write(&path, bytes).unwrap();
        SafetensorsFile::open(&path)
    };
    let good = data("expected.safetensors");
    assert!(open(&good).is_ok());
    for bad in [
        &[][..],
        &good[..5],
        &good[..good.len() / 2],
        &good[..good.len() - 1],
        b"\xff\xff\xff\xff\xff\xff\xff\x7fgarbage",
    ] {
        let message = format_message(open(bad));
        assert!(message.contains("invalid safetensors header"), "{message}");
    }
    // Offsets past the end of the data, offsets that do not match the shape, a
    // header length past the end of the file.
    let past = raw_safetensors(
        r#"{"t":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#,
        8,
    );
    format_message(open(&past));
    let wrong = raw_safetensors(
        r#"{"t":{"dtype":"F32","shape":[4],"data_offsets":[0,12]}}"#,
        12,
    );
    format_message(open(&wrong));
    let mut long = raw_safetensors(r#"{}"#, 0);
    long[..8].copy_from_slice(&1000u64.to_le_bytes());
    format_message(open(&long));
    // A dtype burn has no type for.
    let fp8 = raw_safetensors(
        r#"{"t":{"dtype":"F8_E4M3","shape":[2],"data_offsets":[0,2]}}"#,
        2,
    );
    assert!(matches!(open(&fp8), Err(CheckpointError::UnsupportedDType { key, .. }) if key == "t"));
}

#[test]
fn pth_empty_truncated_garbage_and_flipped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.pth");
    let open = |bytes: &[u8]| {
        std::fs::write(&path, bytes).unwrap();
        PthFile::open(&path)
    };
    let good = data("plain.pth");
    let file = open(&good).unwrap();
    for name in file.names() {
        file.read(&name).unwrap();
    }
    assert!(format_message(open(&[])).contains("empty"));
    for cut in [10, good.len() / 2, good.len() - 1] {
        format_message(open(&good[..cut]));
    }
    format_message(open(&[
        0x50, 0x4b, 0x05, 0x06, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ]));
    format_message(open(&vec![0x42; 4096]));
    // Bytes flipped inside a storage record: opening succeeds (the record is checked
    // when it is read), reading names the record's CRC-32.
    let file = open(&good).unwrap();
    let names = file.names();
    drop(file);
    let mut failed = 0;
    for at in (200..good.len() - 200).step_by(97) {
        let mut bytes = good.clone();
        bytes[at] ^= 0x5a;
        std::fs::write(&path, &bytes).unwrap();
        let Ok(file) = PthFile::open(&path) else {
            continue;
        };
        for name in &names {
            match file.read(name) {
                Ok(_) => {}
                Err(CheckpointError::Format { message, .. }) => {
                    assert!(message.contains("CRC"), "{message}");
                    failed += 1;
                }
                Err(other) => panic!("{other}"),
            }
        }
    }
    assert!(failed > 0, "no flipped byte was caught");
}

fn write_shard(dir: &Path, name: &str, tensors: &[(&str, Vec<f32>)]) {
    let bytes: Vec<Vec<u8>> = tensors
        .iter()
        .map(|(_, v)| v.iter().flat_map(|x| x.to_le_bytes()).collect())
        .collect();
    let views: Vec<(&str, TensorView<'_>)> = tensors
        .iter()
        .zip(&bytes)
        .map(|((n, v), b)| (*n, TensorView::new(Dtype::F32, vec![v.len()], b).unwrap()))
        .collect();
    safetensors::serialize_to_file(views, None, &dir.join(name)).unwrap();
}

#[test]
fn sharded_index_errors() {
    let dir = tempfile::tempdir().unwrap();
    write_shard(dir.path(), "a.safetensors", &[("x", vec![1.0, 2.0])]);
    let index = dir.path().join(INDEX_FILE);
    let open = |json: &str| {
        std::fs::write(&index, json).unwrap();
        ShardedSafetensors::open(&index)
    };
    assert!(open(r#"{"weight_map":{"x":"a.safetensors"}}"#).is_ok());
    format_message(open("not json"));
    format_message(open(r#"{"weight_map":[]}"#));
    format_message(open(r#"{"weight_map":{"x":3}}"#));
    // A name the shard lacks, a shard tensor the index does not name.
    format_message(open(
        r#"{"weight_map":{"x":"a.safetensors","y":"a.safetensors"}}"#,
    ));
    write_shard(
        dir.path(),
        "b.safetensors",
        &[("x", vec![1.0]), ("z", vec![2.0])],
    );
    format_message(open(r#"{"weight_map":{"x":"b.safetensors"}}"#));
    // A shard that is gone, and names that leave the index's directory.
    assert!(matches!(
        open(r#"{"weight_map":{"x":"gone.safetensors"}}"#),
        Err(CheckpointError::Io { .. })
    ));
    let outside = dir.path().parent().unwrap().join("outside.safetensors");
    for name in [
        "../outside.safetensors",
        outside.to_str().unwrap(),
        "..",
        "",
    ] {
        let json = format!(r#"{{"weight_map":{{"x":{}}}}}"#, serde_json_string(name));
        let message = format_message(open(&json));
        assert!(message.contains("not a file name"), "{name}: {message}");
    }
}

fn serde_json_string(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

#[test]
fn the_finite_check_names_the_first_bad_value() {
    let dir = tempfile::tempdir().unwrap();
    write_shard(
        dir.path(),
        "m.safetensors",
        &[
            ("ok", vec![1.0, -2.0, 3.5]),
            ("nan", vec![0.0, 1.0, f32::NAN, f32::INFINITY]),
            ("inf", vec![f32::NEG_INFINITY]),
        ],
    );
    let file = SafetensorsFile::open(dir.path().join("m.safetensors")).unwrap();
    // Unchecked, everything reads.
    for name in ["ok", "nan", "inf"] {
        file.read(name).unwrap();
    }
    let checked = FiniteCheck::new(&file);
    assert_eq!(checked.names(), file.names());
    assert!(checked.read("ok").is_ok());
    match checked.read("nan") {
        Err(CheckpointError::NonFinite {
            key,
            index: 2,
            value,
            ..
        }) => {
            assert_eq!(key, "nan");
            assert!(value.is_nan());
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        checked.read("inf"),
        Err(CheckpointError::NonFinite { index: 0, value, .. }) if value == f64::NEG_INFINITY
    ));
    // Half precision too.
    let half: Vec<u8> = [1.0f32, f32::INFINITY]
        .iter()
        .flat_map(|&v| burn::tensor::bf16::from_f32(v).to_le_bytes())
        .collect();
    let view = TensorView::new(Dtype::BF16, vec![2], &half).unwrap();
    safetensors::serialize_to_file([("h", view)], None, &dir.path().join("h.safetensors")).unwrap();
    let file = SafetensorsFile::open(dir.path().join("h.safetensors")).unwrap();
    assert!(matches!(
        FiniteCheck::new(&file).read("h"),
        Err(CheckpointError::NonFinite { index: 1, .. })
    ));
}
