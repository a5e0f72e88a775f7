//! The phrase embeddings, similarities and GCG recall of a tiny random BERT against the
//! values of the official evaluation's functions (transformers' `AutoTokenizer` and
//! `AutoModel`, sklearn's `cosine_similarity`, GLaMM's matching), written by
//! `omg-bert/reference/generate.py` into `tests/data/`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn_flex::Flex;
use omg_bert::{BertError, BertPhraseSimilarity, PhraseEncoder, cosine_similarity};
use omg_eval::PhraseMatches;
use omg_eval::RecallAccumulator;
use omg_eval::gcg::PhraseSimilarity;
use omg_masks::BinaryMask;
use serde::Deserialize;

type B = Flex;

#[derive(Deserialize)]
struct Phrase {
    text: String,
    input_ids: Vec<u32>,
    embedding: Vec<f32>,
}

#[derive(Deserialize)]
struct Mask {
    height: usize,
    width: usize,
    bits: String,
}

#[derive(Deserialize)]
struct RecallImage {
    gt_masks: Vec<Mask>,
    gt_phrases: Vec<String>,
    pred_masks: Vec<Mask>,
    pred_phrases: Vec<String>,
    matches: Vec<(usize, usize)>,
    matched_in_range: bool,
}

#[derive(Deserialize)]
struct Official {
    phrases: Vec<Phrase>,
    similarities: Vec<Vec<f64>>,
    recall_images: Vec<RecallImage>,
    true_positives: u64,
    actual_positives: u64,
    recall: f64,
}

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

fn model_dir() -> PathBuf {
    data().join("tiny-bert")
}

fn official() -> Official {
    let text = std::fs::read_to_string(data().join("official.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn encoder(dir: &Path) -> PhraseEncoder<B> {
    PhraseEncoder::<B>::from_dir(dir, &Default::default()).unwrap()
}

fn mask(m: &Mask) -> BinaryMask {
    let bits = m.bits.chars().map(|c| c == '1').collect();
    BinaryMask::from_vec(m.height, m.width, bits).unwrap()
}

/// A copy of the tiny model's folder in a temporary directory, without `skip`.
fn copy_dir(skip: &[&str]) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(model_dir()).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        if !skip.contains(&name.to_str().unwrap()) {
            std::fs::copy(entry.path(), tmp.path().join(&name)).unwrap();
        }
    }
    tmp
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn token_ids_equal_the_official_tokenizer() {
    let off = official();
    let enc = encoder(&model_dir());
    for p in &off.phrases {
        assert_eq!(enc.token_ids(&p.text).unwrap(), p.input_ids, "{:?}", p.text);
    }
    // the longest phrase is truncated to 512 tokens, [CLS] and [SEP] included
    assert!(off.phrases.iter().any(|p| p.input_ids.len() == 512));
}

#[test]
fn the_vocabulary_alone_tokenizes_as_tokenizer_json() {
    let off = official();
    let dir = copy_dir(&["tokenizer.json"]);
    let enc = encoder(dir.path());
    for p in &off.phrases {
        assert_eq!(enc.token_ids(&p.text).unwrap(), p.input_ids, "{:?}", p.text);
    }
}

#[test]
fn embeddings_equal_the_official_ones() {
    let off = official();
    let enc = encoder(&model_dir());
    let mut worst = 0.0f32;
    for p in &off.phrases {
        let ours = enc.embed(&p.text).unwrap();
        let d = max_abs_diff(&ours, &p.embedding);
        assert!(d <= 1e-5, "{:?}: max abs diff {d}", p.text);
        worst = worst.max(d);
    }
    eprintln!("phrase embeddings: max abs diff {worst:e}");
}

#[test]
fn similarities_equal_the_official_ones() {
    let off = official();
    let sim = BertPhraseSimilarity::new(encoder(&model_dir()));
    let (mut below, mut above) = (0, 0);
    let mut worst = 0.0f64;
    for (i, a) in off.phrases.iter().enumerate() {
        for (j, b) in off.phrases.iter().enumerate() {
            let want = off.similarities[i][j];
            let got = sim.similarity(&a.text, &b.text).unwrap();
            assert!(
                (got - want).abs() <= 1e-5,
                "{:?} vs {:?}: ours {got}, official {want}",
                a.text,
                b.text
            );
            worst = worst.max((got - want).abs());
            if want < 0.5 {
                below += 1;
            } else {
                above += 1;
            }
        }
    }
    eprintln!("similarities: max abs diff {worst:e}");
    // the set tests both sides of the recall's threshold
    assert!(below > 50 && above > 50, "{below} below, {above} above 0.5");
}

#[test]
fn cosine_similarity_follows_sklearn() {
    assert_eq!(cosine_similarity(&[0.0, 0.0], &[1.0, 2.0]), 0.0);
    assert!((cosine_similarity(&[1.0, 2.0], &[2.0, 4.0]) - 1.0).abs() < 1e-12);
    assert!((cosine_similarity(&[1.0, 0.0], &[-3.0, 0.0]) + 1.0).abs() < 1e-12);
    assert!(cosine_similarity(&[1.0], &[1.0, 2.0]).is_nan());
}

#[test]
fn recall_equals_the_official_one() {
    let off = official();
    let sim = BertPhraseSimilarity::new(encoder(&model_dir()));
    let mut acc = RecallAccumulator::new();
    for (n, im) in off.recall_images.iter().enumerate() {
        let gt: Vec<BinaryMask> = im.gt_masks.iter().map(mask).collect();
        let pred: Vec<BinaryMask> = im.pred_masks.iter().map(mask).collect();
        let gtp: Vec<&str> = im.gt_phrases.iter().map(String::as_str).collect();
        let predp: Vec<&str> = im.pred_phrases.iter().map(String::as_str).collect();
        let got = acc
            .add_image_with(&gt, &gtp, &pred, &predp, &sim, &format!("image {n}"))
            .unwrap();
        match got {
            PhraseMatches::Matched(m) => {
                assert!(im.matched_in_range, "image {n}");
                assert_eq!(m, im.matches, "image {n}");
            }
            PhraseMatches::OutOfRange { .. } => {
                assert!(!im.matched_in_range, "image {n}");
            }
        }
    }
    assert_eq!(acc.true_positives(), off.true_positives);
    assert_eq!(acc.actual_positives(), off.actual_positives);
    assert_eq!(acc.recall(), off.recall);
    assert!(off.true_positives > 0 && off.true_positives < off.actual_positives);
}

/// Rewrites the tiny model's weights under the pre-training checkpoint's names
/// (`bert.` in front, LayerNorm `gamma`/`beta`, an extra `cls.` head), as
/// `bert-base-uncased`'s files store them.
fn write_pretraining_names(dir: &Path) {
    let bytes = std::fs::read(model_dir().join("model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut out: BTreeMap<String, (safetensors::Dtype, Vec<usize>, Vec<u8>)> = BTreeMap::new();
    for (name, view) in st.tensors() {
        let renamed = format!("bert.{name}")
            .replace("LayerNorm.weight", "LayerNorm.gamma")
            .replace("LayerNorm.bias", "LayerNorm.beta");
        out.insert(
            renamed,
            (view.dtype(), view.shape().to_vec(), view.data().to_vec()),
        );
    }
    out.insert(
        "cls.predictions.bias".to_owned(),
        (safetensors::Dtype::F32, vec![2], vec![0; 8]),
    );
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = out
        .iter()
        .map(|(k, (d, s, b))| {
            (
                k.clone(),
                safetensors::tensor::TensorView::new(*d, s.clone(), b).unwrap(),
            )
        })
        .collect();
    safetensors::serialize_to_file(views, None, &dir.join("model.safetensors")).unwrap();
}

#[test]
fn pretraining_checkpoint_names_load_the_same_model() {
    let dir = copy_dir(&["model.safetensors"]);
    write_pretraining_names(dir.path());
    let a = encoder(&model_dir());
    let b = encoder(dir.path());
    for text in ["a man in a red shirt", "the blue sky"] {
        assert_eq!(a.embed(text).unwrap(), b.embed(text).unwrap());
    }
}

#[test]
fn a_missing_config_names_the_file() {
    let dir = copy_dir(&["config.json"]);
    let err = PhraseEncoder::<B>::from_dir(dir.path(), &Default::default()).unwrap_err();
    assert!(matches!(err, BertError::Io { .. }), "{err}");
    assert!(err.to_string().contains("config.json"), "{err}");
}

#[test]
fn an_unsupported_activation_is_refused() {
    let dir = copy_dir(&[]);
    let path = dir.path().join("config.json");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replace("\"gelu\"", "\"relu\"")).unwrap();
    let err = PhraseEncoder::<B>::from_dir(dir.path(), &Default::default()).unwrap_err();
    assert!(matches!(err, BertError::Config { .. }), "{err}");
    assert!(err.to_string().contains("relu"), "{err}");
}

#[test]
fn a_mis_shaped_weight_names_its_key() {
    let dir = copy_dir(&[]);
    let path = dir.path().join("config.json");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        text.replace("\"intermediate_size\": 37", "\"intermediate_size\": 36"),
    )
    .unwrap();
    let err = PhraseEncoder::<B>::from_dir(dir.path(), &Default::default()).unwrap_err();
    assert!(err.to_string().contains("intermediate.dense"), "{err}");
}

#[test]
fn a_token_outside_the_model_vocabulary_is_an_error() {
    let dir = copy_dir(&["tokenizer.json"]);
    let path = dir.path().join("vocab.txt");
    let mut vocab = std::fs::read_to_string(&path).unwrap();
    vocab.push_str("zebra\n");
    std::fs::write(&path, vocab).unwrap();
    let enc = encoder(dir.path());
    let err = enc.embed("a zebra").unwrap_err();
    assert!(
        matches!(err, BertError::TokenOutOfVocabulary { .. }),
        "{err}"
    );
}

#[test]
fn a_folder_without_a_tokenizer_is_refused() {
    let dir = copy_dir(&["tokenizer.json", "vocab.txt"]);
    let err = PhraseEncoder::<B>::from_dir(dir.path(), &Default::default()).unwrap_err();
    assert!(matches!(err, BertError::Tokenizer { .. }), "{err}");
}
