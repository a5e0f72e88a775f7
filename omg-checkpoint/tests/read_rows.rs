//! `TensorSource::read_rows_f32` (and `prefetch_rows`) on every source: any block of
//! rows equals the same rows of the whole tensor read and converted to f32, and a bad
//! request is an error naming the tensor.

use std::ops::Range;
use std::path::Path;

use burn::tensor::{DType, bf16, f16};
use omg_checkpoint::pth::PthFile;
use omg_checkpoint::safetensors::{SafetensorsFile, open_hf_dir};
use omg_checkpoint::{CheckpointError, FiniteCheck, PrefixView, TensorSource};
use safetensors::{Dtype, tensor::TensorView};

fn data(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn is_float(dtype: DType) -> bool {
    matches!(dtype, DType::F32 | DType::F16 | DType::BF16 | DType::F64)
}

/// The whole tensor read with `read` and converted to f32.
fn whole_f32(source: &dyn TensorSource, name: &str) -> Vec<f32> {
    source
        .read(name)
        .unwrap()
        .convert_dtype(DType::F32)
        .into_vec::<f32>()
        .unwrap()
}

/// Row ranges worth trying on a tensor of `n` rows.
fn ranges(n: usize) -> Vec<Range<usize>> {
    let mut out = vec![0..n, 0..0, n..n];
    if n > 0 {
        out.extend([0..1, n - 1..n, n / 2..n]);
    }
    if n > 2 {
        out.push(1..n - 1);
    }
    out
}

/// Every float tensor of `source`: every range of rows equals those rows of the
/// whole tensor, bit for bit. Returns how many tensors were checked.
fn check_source(source: &dyn TensorSource) -> usize {
    let mut checked = 0;
    for name in source.names() {
        let info = source.info(&name).unwrap();
        if !is_float(info.dtype) {
            continue;
        }
        let whole = whole_f32(source, &name);
        let rows = info.shape.first().copied().unwrap_or(1);
        let row_len: usize = info.shape.iter().skip(1).product();
        for range in ranges(rows) {
            source.prefetch_rows(&name, range.clone());
            let mut out = vec![f32::NAN; range.len() * row_len];
            source
                .read_rows_f32(&name, range.clone(), &mut out)
                .unwrap();
            let want = &whole[range.start * row_len..range.end * row_len];
            let same = out
                .iter()
                .zip(want)
                .all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(same, "{name} rows {range:?}: {out:?} vs {want:?}");
        }
        checked += 1;
    }
    checked
}

#[test]
fn pth_rows_equal_the_whole_tensor_views_included() {
    // torch-written files: contiguous tensors, a transposed view, strided and offset
    // views of shared storages, a stride-0 expansion, bf16 and f16 tensors
    for file in ["plain.pth", "nested.pth", "mmengine_like.pth"] {
        let pth = PthFile::open(data(file)).unwrap();
        let n = check_source(&pth);
        assert!(n >= 3, "{file}: only {n} float tensors");
        // through a box, a prefix view and the finite check too
        let boxed: Box<dyn TensorSource> = Box::new(PthFile::open(data(file)).unwrap());
        assert_eq!(check_source(&boxed), n);
        assert_eq!(check_source(&FiniteCheck::new(&pth)), n);
    }
    let pth = PthFile::open(data("plain.pth")).unwrap();
    let first = pth.names()[0].clone();
    let (prefix, rest) = first.split_at(1);
    let view = PrefixView::new(&pth, prefix);
    let info = view.info(rest).unwrap();
    let len: usize = info.shape.iter().product();
    let rows = info.shape.first().copied().unwrap_or(1);
    if is_float(info.dtype) {
        let mut out = vec![0.0; len];
        view.read_rows_f32(rest, 0..rows, &mut out).unwrap();
        assert_eq!(out, whole_f32(&pth, &first));
    }
}

/// A safetensors file of `tensors` (name, dtype, shape, f32 values stored as dtype).
fn write(path: &Path, tensors: &[(&str, Dtype, Vec<usize>, Vec<f32>)]) {
    let bytes: Vec<Vec<u8>> = tensors
        .iter()
        .map(|(_, dtype, _, v)| match dtype {
            Dtype::F32 => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            Dtype::F64 => v.iter().flat_map(|&x| f64::from(x).to_le_bytes()).collect(),
            Dtype::BF16 => v
                .iter()
                .flat_map(|&x| bf16::from_f32(x).to_le_bytes())
                .collect(),
            Dtype::F16 => v
                .iter()
                .flat_map(|&x| f16::from_f32(x).to_le_bytes())
                .collect(),
            Dtype::I32 => v.iter().flat_map(|&x| (x as i32).to_le_bytes()).collect(),
            other => panic!("{other:?}"),
        })
        .collect();
    let views: Vec<(&str, TensorView<'_>)> = tensors
        .iter()
        .zip(&bytes)
        .map(|((n, d, s, _), b)| (*n, TensorView::new(*d, s.clone(), b).unwrap()))
        .collect();
    safetensors::serialize_to_file(views, None, path).unwrap();
}

fn values(n: usize, seed: f32) -> Vec<f32> {
    (0..n)
        .map(|i| (i as f32 * 0.37 + seed).sin() * 3.0)
        .collect()
}

#[test]
fn safetensors_rows_equal_the_whole_tensor_in_every_float_dtype() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("m.safetensors");
    write(
        &file,
        &[
            ("f32", Dtype::F32, vec![7, 5], values(35, 0.1)),
            ("bf16", Dtype::BF16, vec![6, 3, 2], values(36, 0.2)),
            ("f16", Dtype::F16, vec![9, 4], values(36, 0.3)),
            ("f64", Dtype::F64, vec![5, 1], values(5, 0.4)),
            ("vector", Dtype::F32, vec![11], values(11, 0.5)),
            ("empty", Dtype::F32, vec![0, 4], vec![]),
            ("int", Dtype::I32, vec![2, 2], vec![1.0, 2.0, 3.0, 4.0]),
        ],
    );
    let st = SafetensorsFile::open(&file).unwrap();
    assert_eq!(check_source(&st), 6);

    // a sharded set: each name answered by its shard
    std::fs::write(
        dir.path().join("model.safetensors.index.json"),
        r#"{"weight_map": {"f32": "m.safetensors", "bf16": "m.safetensors", "f16": "m.safetensors",
            "f64": "m.safetensors", "vector": "m.safetensors", "empty": "m.safetensors",
            "int": "m.safetensors"}}"#,
    )
    .unwrap();
    let sharded = open_hf_dir(dir.path()).unwrap();
    assert_eq!(check_source(sharded.as_ref()), 6);
}

#[test]
fn bad_row_requests_are_errors_naming_the_tensor() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("m.safetensors");
    write(
        &file,
        &[
            ("w", Dtype::F32, vec![4, 3], values(12, 0.0)),
            ("int", Dtype::I32, vec![2, 2], vec![1.0, 2.0, 3.0, 4.0]),
            (
                "bad",
                Dtype::F32,
                vec![3, 2],
                vec![0.0, 1.0, 2.0, f32::NAN, 4.0, 5.0],
            ),
        ],
    );
    let st = SafetensorsFile::open(&file).unwrap();
    let pth = PthFile::open(data("plain.pth")).unwrap();
    let message = |r: Result<(), CheckpointError>| r.unwrap_err().to_string();
    for source in [&st as &dyn TensorSource, &FiniteCheck::new(&st)] {
        let mut out = vec![0.0; 6];
        // past the last row, reversed, a buffer of the wrong size
        let m = message(source.read_rows_f32("w", 3..5, &mut out));
        assert!(m.contains("`w`") && m.contains("3..5"), "{m}");
        #[allow(clippy::reversed_empty_ranges)]
        let m = message(source.read_rows_f32("w", 3..2, &mut out));
        assert!(m.contains("`w`"), "{m}");
        let m = message(source.read_rows_f32("w", 0..1, &mut out));
        assert!(m.contains("`w`") && m.contains("need 3 values"), "{m}");
        assert!(matches!(
            source.read_rows_f32("int", 0..1, &mut out[..2]),
            Err(CheckpointError::UnsupportedDType { key, .. }) if key == "int"
        ));
        assert!(matches!(
            source.read_rows_f32("nope", 0..1, &mut out),
            Err(CheckpointError::MissingKey { key, .. }) if key == "nope"
        ));
        // a hint for a request that could not be read does nothing
        source.prefetch_rows("w", 3..99);
        source.prefetch_rows("nope", 0..1);
    }
    for name in pth.names() {
        let mut out = vec![0.0; 1];
        assert!(pth.read_rows_f32(&name, 0..usize::MAX, &mut out).is_err());
    }
    let mut out = vec![0.0; 1];
    assert!(matches!(
        pth.read_rows_f32("nope", 0..1, &mut out),
        Err(CheckpointError::MissingKey { .. })
    ));

    // the finite check names the first bad value by its index in the whole tensor
    let mut out = vec![0.0; 4];
    st.read_rows_f32("bad", 1..3, &mut out).unwrap();
    assert!(out[1].is_nan());
    match FiniteCheck::new(&st).read_rows_f32("bad", 1..3, &mut out) {
        Err(CheckpointError::NonFinite { key, index, .. }) => {
            assert_eq!((key.as_str(), index), ("bad", 3));
        }
        other => panic!("{other:?}"),
    }
    let mut first = vec![0.0; 2];
    FiniteCheck::new(&st)
        .read_rows_f32("bad", 0..1, &mut first)
        .unwrap();
    assert_eq!(first, [0.0, 1.0]);
}

/// `read_shared` gives the bytes `read` gives, for aligned tensors (shared with the
/// map) and for a tensor whose offset is not aligned for its type (copied).
#[test]
fn shared_reads_equal_copied_reads_aligned_or_not() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("m.safetensors");
    write(
        &file,
        &[
            ("f32", Dtype::F32, vec![3, 5], values(15, 0.1)),
            ("bf16", Dtype::BF16, vec![4], values(4, 0.2)),
            ("int", Dtype::I32, vec![2], vec![1.0, -2.0]),
        ],
    );
    let st = SafetensorsFile::open(&file).unwrap();
    for name in st.names() {
        let (shared, copied) = (st.read_shared(&name).unwrap(), st.read(&name).unwrap());
        assert_eq!(shared.shape, copied.shape, "{name}");
        assert_eq!(shared.dtype, copied.dtype, "{name}");
        assert_eq!(shared.as_bytes(), copied.as_bytes(), "{name}");
    }
    // a one-byte tensor first puts the f32 one at an odd offset
    let header = r#"{"b":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"w":{"dtype":"F32","shape":[2],"data_offsets":[1,9]}}"#;
    let mut header = header.as_bytes().to_vec();
    while !header.len().is_multiple_of(8) {
        header.push(b' ');
    }
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend(&header);
    bytes.push(7);
    bytes.extend(1.5f32.to_le_bytes());
    bytes.extend((-2.0f32).to_le_bytes());
    let odd = dir.path().join("odd.safetensors");
    std::fs::write(&odd, bytes).unwrap();
    let st = SafetensorsFile::open(&odd).unwrap();
    let w = st.read_shared("w").unwrap();
    assert_eq!(w.into_vec::<f32>().unwrap(), [1.5, -2.0]);
    assert_eq!(st.read_shared("b").unwrap().as_bytes(), [7]);
    assert!(matches!(
        st.read_shared("nope"),
        Err(CheckpointError::MissingKey { .. })
    ));
}
