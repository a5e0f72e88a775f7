//! Bad tokenizer files: each refused with the variant that names the problem.

use omg_llm::tokenizer::{InternLm2Tokenizer, TokenizerError};

fn data(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

/// Found by the `tokenizer_model` fuzz target: a model whose pieces repeat left ids
/// that the vocabulary size did not count. Such a model is refused, as sentencepiece
/// refuses it.
#[test]
fn a_model_with_a_repeated_piece_is_refused() {
    match InternLm2Tokenizer::from_sentencepiece_model(data("fuzz_duplicate_piece.model")) {
        Err(TokenizerError::UnsupportedModel { reason, .. }) => {
            assert!(reason.contains("defined twice"), "{reason}")
        }
        other => panic!("{:?}", other.map(|t| t.vocab_size())),
    }
}

/// Found by the `tokenizer_model` fuzz target: a model whose `trainer_spec.unk_piece`
/// is not one of its pieces loaded, then failed on the first unknown character.
#[test]
fn a_model_whose_unknown_piece_is_missing_is_refused() {
    match InternLm2Tokenizer::from_sentencepiece_model(data("fuzz_unknown_unk_piece.model")) {
        Err(TokenizerError::UnsupportedModel { reason, .. }) => {
            assert!(reason.contains("unknown piece"), "{reason}")
        }
        other => panic!("{:?}", other.map(|t| t.vocab_size())),
    }
}

#[test]
fn empty_truncated_and_garbage_models_are_invalid() {
    let good = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../omg-demo/assets/tiny/internlm2/tokenizer.model"),
    )
    .unwrap();
    assert!(InternLm2Tokenizer::from_sentencepiece_bytes(&good).is_ok());
    for bad in [&[][..], &good[..good.len() / 2], &[0xff; 64][..]] {
        match InternLm2Tokenizer::from_sentencepiece_bytes(bad) {
            Err(
                TokenizerError::InvalidSentencePiece { .. }
                | TokenizerError::UnsupportedModel { .. },
            ) => {}
            other => panic!("{} bytes: {:?}", bad.len(), other.map(|t| t.vocab_size())),
        }
    }
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(
        InternLm2Tokenizer::from_dir(dir.path()),
        Err(TokenizerError::NoTokenizerFile { .. })
    ));
    std::fs::write(dir.path().join("tokenizer.json"), b"{ not json").unwrap();
    assert!(matches!(
        InternLm2Tokenizer::from_dir(dir.path()),
        Err(TokenizerError::InvalidTokenizerJson { .. })
    ));
}
