//! Tests of the PyTorch `.pth` reader against checkpoints written by real
//! PyTorch (`tests/data/make_pth_fixtures.py`) and against corrupted variants.

use std::collections::BTreeMap;
use std::io::{Cursor, Write};
use std::path::{Path, PathBuf};

use burn::tensor::{BoolStore, DType};
use omg_checkpoint::pth::PthFile;
use omg_checkpoint::{CheckpointError, TensorSource};
use safetensors::{Dtype, SafeTensors};

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

fn fixture(name: &str) -> PathBuf {
    data_dir().join(name)
}

/// The expected tensors of `<stem>.pth`: name -> (shape, dtype, bytes).
fn expected(stem: &str) -> BTreeMap<String, (Vec<usize>, DType, Vec<u8>)> {
    let buf = std::fs::read(fixture("expected.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&buf).unwrap();
    let prefix = format!("{stem}/");
    st.tensors()
        .into_iter()
        .filter_map(|(name, view)| {
            let name = name.strip_prefix(&prefix)?.to_string();
            let dtype = match view.dtype() {
                Dtype::F32 => DType::F32,
                Dtype::F16 => DType::F16,
                Dtype::BF16 => DType::BF16,
                Dtype::F64 => DType::F64,
                Dtype::I64 => DType::I64,
                Dtype::I32 => DType::I32,
                Dtype::I16 => DType::I16,
                Dtype::I8 => DType::I8,
                Dtype::U8 => DType::U8,
                Dtype::BOOL => DType::Bool(BoolStore::Native),
                other => panic!("unexpected dtype {other:?} in expected.safetensors"),
            };
            Some((name, (view.shape().to_vec(), dtype, view.data().to_vec())))
        })
        .collect()
}

/// Every tensor of `file` equals the expected one exactly, and nothing else is listed.
fn check_against_expected(file: &str, stem: &str) {
    let pth = PthFile::open(fixture(file)).unwrap();
    let want = expected(stem);
    assert!(!want.is_empty());
    let names = pth.names();
    assert_eq!(
        names,
        want.keys().cloned().collect::<Vec<_>>(),
        "names of {file}"
    );
    for (name, (shape, dtype, bytes)) in &want {
        let info = pth.info(name).unwrap();
        assert_eq!(&info.shape, shape, "{name} shape (info)");
        assert_eq!(info.dtype, *dtype, "{name} dtype (info)");
        let data = pth.read(name).unwrap();
        assert_eq!(data.shape.as_slice(), shape.as_slice(), "{name} shape");
        assert_eq!(data.dtype, *dtype, "{name} dtype");
        assert_eq!(data.as_bytes(), bytes.as_slice(), "{name} values");
    }
}

#[test]
fn plain_state_dict_matches_torch() {
    check_against_expected("plain.pth", "plain");
}

#[test]
fn plain_views_are_materialised_row_major() {
    let pth = PthFile::open(fixture("plain.pth")).unwrap();
    // base = arange(12).reshape(3, 4) / 4; transposed = base.t()
    let t = pth.read("transposed").unwrap();
    assert_eq!(t.shape.as_slice(), &[4, 3]);
    let want: Vec<f32> = (0..4)
        .flat_map(|i| (0..3).map(move |j| (j * 4 + i) as f32 / 4.0))
        .collect();
    assert_eq!(t.to_vec::<f32>().unwrap(), want);
    // column = base[:, 1]
    let c = pth.read("column").unwrap().to_vec::<f32>().unwrap();
    assert_eq!(c, vec![0.25, 1.25, 2.25]);
    // big = arange(10) - 4.5; shared_b = big[4:], shared_c = big[::3]
    let b = pth.read("shared_b").unwrap().to_vec::<f32>().unwrap();
    assert_eq!(b, vec![-0.5, 0.5, 1.5, 2.5, 3.5, 4.5]);
    let c = pth.read("shared_c").unwrap().to_vec::<f32>().unwrap();
    assert_eq!(c, vec![-4.5, -1.5, 1.5, 4.5]);
    let e = pth.read("expanded").unwrap().to_vec::<f32>().unwrap();
    assert_eq!(e, vec![1.0, -2.0, 1.0, -2.0, 1.0, -2.0]);
    let s = pth.read("scalar").unwrap();
    assert!(s.shape.as_slice().is_empty());
    assert_eq!(s.to_vec::<f32>().unwrap(), vec![3.5]);
    let z = pth.read("empty").unwrap();
    assert_eq!(z.shape.as_slice(), &[0, 3]);
    assert!(z.as_bytes().is_empty());
    let m = pth.read("bool").unwrap();
    assert_eq!(
        m.as_slice::<bool>().unwrap(),
        &[true, false, false, false, true, true]
    );
}

#[test]
fn mmengine_checkpoint_yields_exactly_the_state_dict() {
    check_against_expected("mmengine_like.pth", "mmengine_like");
    let pth = PthFile::open(fixture("mmengine_like.pth")).unwrap();
    assert!(pth.names().iter().all(|n| !n.starts_with("meta")
        && !n.starts_with("message_hub")
        && !n.starts_with("optimizer")));
    assert!(pth.describe().contains("mmengine_like.pth"));
}

#[test]
fn nested_dicts_are_flattened_and_unsupported_dtypes_skipped() {
    check_against_expected("nested.pth", "nested");
    let pth = PthFile::open(fixture("nested.pth")).unwrap();
    assert!(!pth.contains("complex"));
    assert!(!pth.contains("float8"));
    assert!(!pth.contains("list_of_tensors"));
    match pth.read("complex") {
        Err(CheckpointError::UnsupportedDType { key, dtype }) => {
            assert_eq!(key, "complex");
            assert_eq!(dtype, "torch.ComplexFloatStorage");
        }
        other => panic!("expected UnsupportedDType, got {other:?}"),
    }
    match pth.read("float8") {
        Err(CheckpointError::UnsupportedDType { dtype, .. }) => {
            assert_eq!(dtype, "torch.float8_e4m3fn")
        }
        other => panic!("expected UnsupportedDType, got {other:?}"),
    }
    assert!(matches!(
        pth.read("no.such.tensor"),
        Err(CheckpointError::MissingKey { .. })
    ));
    assert!(pth.describe().contains("2 tensors"));
}

// --- corrupt inputs -----------------------------------------------------

fn write_temp(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.path().join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// Opens `bytes` as a checkpoint and reads every listed tensor.
fn open_and_read_all(path: &Path) -> Result<usize, CheckpointError> {
    let pth = PthFile::open(path)?;
    for n in pth.names() {
        pth.read(&n)?;
    }
    Ok(pth.names().len())
}

fn format_message(r: Result<usize, CheckpointError>) -> String {
    match r {
        Err(CheckpointError::Format { message, .. }) => message,
        other => panic!("expected a Format error, got {other:?}"),
    }
}

/// Rewrites the zip `src` entry by entry: `edit` may drop an entry (None) or
/// replace its content; `extra` entries are appended. Entries stay uncompressed.
fn rewrite_zip(
    src: &[u8],
    edit: impl Fn(&str, Vec<u8>) -> Option<Vec<u8>>,
    extra: &[(&str, &[u8])],
) -> Vec<u8> {
    use std::io::Read;
    let mut archive = zip::ZipArchive::new(Cursor::new(src)).unwrap();
    let mut out = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let opts =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for i in 0..archive.len() {
        let mut f = archive.by_index(i).unwrap();
        let name = f.name().to_string();
        let mut content = Vec::new();
        f.read_to_end(&mut content).unwrap();
        if let Some(content) = edit(&name, content) {
            out.start_file(name, opts).unwrap();
            out.write_all(&content).unwrap();
        }
    }
    for (name, content) in extra {
        out.start_file(*name, opts).unwrap();
        out.write_all(content).unwrap();
    }
    out.finish().unwrap().into_inner()
}

#[test]
fn rewritten_zip_still_reads() {
    // Sanity check of the helper used below.
    let dir = tempfile::tempdir().unwrap();
    let good = std::fs::read(fixture("plain.pth")).unwrap();
    let copy = rewrite_zip(&good, |_, c| Some(c), &[]);
    let p = write_temp(&dir, "copy.pth", &copy);
    assert_eq!(open_and_read_all(&p).unwrap(), expected("plain").len());
}

#[test]
fn truncated_files_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let good = std::fs::read(fixture("plain.pth")).unwrap();
    for len in (0..good.len()).step_by(61).chain([good.len() - 1]) {
        let p = write_temp(&dir, "t.pth", &good[..len]);
        assert!(open_and_read_all(&p).is_err(), "truncated to {len} bytes");
    }
}

#[test]
fn non_zip_files_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let p = write_temp(&dir, "text.pth", b"this is not a checkpoint at all\n");
    assert!(format_message(open_and_read_all(&p)).contains("zip"));
    // The legacy (pre-1.6) format starts with a pickle.
    let p = write_temp(
        &dir,
        "legacy.pth",
        b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19.",
    );
    assert!(format_message(open_and_read_all(&p)).contains("legacy"));
    let p = dir.path().join("does-not-exist.pth");
    assert!(matches!(PthFile::open(&p), Err(CheckpointError::Io { .. })));
}

#[test]
fn zip_without_data_pkl_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let good = std::fs::read(fixture("plain.pth")).unwrap();
    let bad = rewrite_zip(&good, |n, c| (!n.ends_with("data.pkl")).then_some(c), &[]);
    let p = write_temp(&dir, "nopkl.pth", &bad);
    assert!(format_message(open_and_read_all(&p)).contains("data.pkl"));
}

#[test]
fn missing_storage_entry_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let good = std::fs::read(fixture("plain.pth")).unwrap();
    let bad = rewrite_zip(&good, |n, c| (n != "plain/data/0").then_some(c), &[]);
    let p = write_temp(&dir, "nostorage.pth", &bad);
    let msg = format_message(open_and_read_all(&p));
    assert!(msg.contains("plain/data/0"), "{msg}");
}

#[test]
fn short_storage_entry_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let good = std::fs::read(fixture("plain.pth")).unwrap();
    let bad = rewrite_zip(
        &good,
        |n, mut c| {
            if n.starts_with("plain/data/") {
                c.truncate(c.len() / 2);
            }
            Some(c)
        },
        &[],
    );
    let p = write_temp(&dir, "short.pth", &bad);
    assert!(format_message(open_and_read_all(&p)).contains("does not fit"));
}

#[test]
fn big_endian_checkpoints_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let good = std::fs::read(fixture("plain.pth")).unwrap();
    let bad = rewrite_zip(
        &good,
        |n, c| {
            Some(if n.ends_with("/byteorder") {
                b"big".to_vec()
            } else {
                c
            })
        },
        &[],
    );
    let p = write_temp(&dir, "big.pth", &bad);
    assert!(format_message(open_and_read_all(&p)).contains("big-endian"));
}

#[test]
fn checkpoint_without_byteorder_record_reads() {
    // Files from PyTorch < 1.13 have no `byteorder` entry.
    let dir = tempfile::tempdir().unwrap();
    let good = std::fs::read(fixture("plain.pth")).unwrap();
    let old = rewrite_zip(&good, |n, c| (!n.ends_with("/byteorder")).then_some(c), &[]);
    let p = write_temp(&dir, "old.pth", &old);
    assert_eq!(open_and_read_all(&p).unwrap(), expected("plain").len());
}

#[test]
fn compressed_entries_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let good = std::fs::read(fixture("plain.pth")).unwrap();
    let mut bad = rewrite_zip(&good, |_, c| Some(c), &[]);
    // Mark every entry as deflated (method 8) in the local and central headers.
    let mut i = 0;
    while i + 4 <= bad.len() {
        match &bad[i..i + 4] {
            b"PK\x03\x04" => bad[i + 8] = 8,
            b"PK\x01\x02" => bad[i + 10] = 8,
            _ => {}
        }
        i += 1;
    }
    let p = write_temp(&dir, "deflated.pth", &bad);
    assert!(format_message(open_and_read_all(&p)).contains("compressed"));
}

#[test]
fn corrupt_pickles_are_errors_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    let good = std::fs::read(fixture("mmengine_like.pth")).unwrap();
    for pkl in [
        &b""[..],
        b"\x80\x02",
        b"\x80\x02N.",               // not a dict
        b"\x80\x02}q\x00(X\x01\x00", // truncated
        b"\x80\x02h\x07.",           // memo entry never stored
        b"\x80\x02}(K\x01u.",        // odd SETITEMS
        b"\x80\x02\xee.",            // unknown opcode
    ] {
        let bad = rewrite_zip(
            &good,
            |n, c| {
                Some(if n.ends_with("/data.pkl") {
                    pkl.to_vec()
                } else {
                    c
                })
            },
            &[],
        );
        let p = write_temp(&dir, "badpkl.pth", &bad);
        format_message(open_and_read_all(&p));
    }
}

#[test]
fn malformed_tensor_arguments_are_errors() {
    // {'w': _rebuild_tensor_v2(('storage', FloatStorage, '0', 'cpu', 2), 0, (4,), (1,), False, None)}
    // whose view needs 4 elements of a 2-element storage, and one with a stride
    // tuple of the wrong rank.
    fn pkl(size_and_stride: &[u8]) -> Vec<u8> {
        let mut v = b"\x80\x02}X\x01\x00\x00\x00wctorch._utils\n_rebuild_tensor_v2\n((X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpuK\x02tQK\x00".to_vec();
        v.extend_from_slice(size_and_stride);
        v.extend_from_slice(b"\x89Nt\x52s.");
        v
    }
    let dir = tempfile::tempdir().unwrap();
    let storage = [0u8; 8];
    for (case, body, want) in [
        ("oob", &b"K\x04\x85K\x01\x85"[..], "does not fit"),
        ("rank", &b"K\x02\x85K\x01K\x01\x86"[..], "dimensions"),
        ("ok", &b"K\x02\x85K\x01\x85"[..], ""),
    ] {
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        w.start_file("arc/data.pkl", opts).unwrap();
        w.write_all(&pkl(body)).unwrap();
        w.start_file("arc/data/0", opts).unwrap();
        w.write_all(&storage).unwrap();
        let bytes = w.finish().unwrap().into_inner();
        let p = write_temp(&dir, &format!("{case}.pth"), &bytes);
        if want.is_empty() {
            assert_eq!(open_and_read_all(&p).unwrap(), 1);
        } else {
            let msg = format_message(open_and_read_all(&p));
            assert!(msg.contains(want) && msg.contains("`w`"), "{case}: {msg}");
        }
    }
}

#[test]
fn byte_flips_never_panic() {
    // Every byte of each data.pkl record and every 16th byte elsewhere.
    let dir = tempfile::tempdir().unwrap();
    for stem in ["plain", "mmengine_like", "nested"] {
        let good = std::fs::read(fixture(&format!("{stem}.pth"))).unwrap();
        let pkl = {
            let mut z = zip::ZipArchive::new(Cursor::new(&good[..])).unwrap();
            let f = z.by_name(&format!("{stem}/data.pkl")).unwrap();
            let start = usize::try_from(f.data_start()).unwrap();
            start..start + usize::try_from(f.size()).unwrap()
        };
        for i in (0..good.len()).filter(|i| pkl.contains(i) || i % 16 == 0) {
            let mut bad = good.clone();
            bad[i] ^= 0xa5;
            let p = write_temp(&dir, &format!("{stem}-{i}.pth"), &bad);
            // Either outcome is fine; only a panic would fail the test.
            let _ = open_and_read_all(&p);
        }
    }
}

#[test]
fn a_corrupt_storage_record_is_named_by_its_crc() {
    let bytes = std::fs::read(fixture("plain.pth")).unwrap();
    // flip one byte inside the first tensor storage record (`<archive>/data/<key>`)
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes.as_slice())).unwrap();
    let (name, at) = (0..archive.len())
        .find_map(|i| {
            let f = archive.by_index_raw(i).unwrap();
            let name = f.name().to_string();
            (name.contains("/data/") && f.size() > 0).then(|| (name, f.data_start() as usize))
        })
        .expect("a storage record");
    let mut corrupt = bytes.clone();
    corrupt[at] ^= 0x5a;
    let dir = tempfile::tempdir().unwrap();
    let path = write_temp(&dir, "corrupt.pth", &corrupt);
    // the pickle is intact: the file opens, the damaged record fails when read
    assert!(PthFile::open(&path).is_ok());
    let message = format_message(open_and_read_all(&path));
    assert!(message.contains("CRC-32"), "{message}");
    assert!(message.contains(&name), "{message}");
    // the intact original still reads
    assert!(open_and_read_all(&fixture("plain.pth")).is_ok());
}

#[test]
fn a_corrupt_pickle_record_fails_at_open() {
    let bytes = std::fs::read(fixture("plain.pth")).unwrap();
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes.as_slice())).unwrap();
    let (at, size) = (0..archive.len())
        .find_map(|i| {
            let f = archive.by_index_raw(i).unwrap();
            f.name()
                .ends_with("data.pkl")
                .then(|| (f.data_start() as usize, f.size()))
        })
        .expect("a data.pkl record");
    let mut corrupt = bytes.clone();
    // the pickle's last byte (STOP): a changed opcode the CRC catches first
    corrupt[at + size as usize - 1] ^= 0x01;
    let dir = tempfile::tempdir().unwrap();
    let path = write_temp(&dir, "corrupt.pth", &corrupt);
    let message = format_message(PthFile::open(&path).map(|_| 0));
    assert!(message.contains("CRC-32"), "{message}");
    assert!(message.contains("data.pkl"), "{message}");
}
