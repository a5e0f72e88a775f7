//! Streaming detokenization on the tiny InternLM2 tokenizer shipped with the examples.

use std::path::Path;

use omg_llm::tokenizer::{InternLm2Tokenizer, StreamDecoder};

#[test]
fn streamed_pieces_concatenate_to_the_full_decode() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/assets/tiny/internlm2");
    let tok = InternLm2Tokenizer::from_dir(dir).unwrap();
    for text in [
        "Hello world",
        "  leading spaces and 中文 mixed",
        "emoji 😀🐶 and flags 👍🏽🇨🇳",
        "<|im_start|>assistant\nA <p>dog</p> [SEG].",
    ] {
        let ids = tok.encode(text, true).unwrap();
        let mut stream = StreamDecoder::new(false);
        let mut pieces = Vec::new();
        for &id in &ids {
            let piece = stream.push(&tok, id).unwrap();
            assert!(
                !piece.contains('\u{FFFD}'),
                "{text:?}: partial character emitted"
            );
            pieces.push(piece);
        }
        pieces.push(stream.finish(&tok).unwrap());
        assert_eq!(
            pieces.concat(),
            tok.decode(&ids, false).unwrap(),
            "{text:?}"
        );
        // A multi-byte character spread over byte tokens appears only once complete.
        if text.contains('😀') {
            assert!(pieces.iter().any(|p| p.contains('😀')));
        }
    }
}
