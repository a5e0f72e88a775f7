//! Streaming detokenization on the tiny InternLM2 tokenizer of the demo bundle
//! (`omg-demo/assets/tiny`).

use std::path::Path;

use omg_llm::tokenizer::InternLm2Tokenizer;

#[test]
fn streamed_pieces_concatenate_to_the_full_decode() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../omg-demo/assets/tiny/internlm2");
    let tok = InternLm2Tokenizer::from_dir(dir).unwrap();
    for text in [
        "Hello world",
        "  leading spaces and 中文 mixed",
        "emoji 😀🐶 and flags 👍🏽🇨🇳",
        "<|im_start|>assistant\nA <p>dog</p> [SEG].",
    ] {
        let ids = tok.encode(text, true).unwrap();
        let mut stream = tok.stream_decoder(false);
        let mut pieces = Vec::new();
        for &id in &ids {
            let piece = stream.push(id).unwrap();
            assert!(
                !piece.contains('\u{FFFD}'),
                "{text:?}: partial character emitted"
            );
            pieces.push(piece);
        }
        pieces.push(stream.finish().unwrap());
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

/// Random id sequences, half of them byte-fallback tokens (invalid UTF-8 runs, bytes
/// that decode alone but not with the next one), as random weights generate: the
/// streamed pieces always concatenate to the full decode.
#[test]
fn streamed_random_ids_concatenate_to_the_full_decode() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../omg-demo/assets/tiny/internlm2");
    let tok = InternLm2Tokenizer::from_dir(dir).unwrap();
    let vocab = tok.vocab_size() as u64;
    let byte = |b: u8| {
        tok.inner()
            .token_to_id(&format!("<0x{b:02X}>"))
            .expect("byte token")
    };
    // "\r" then the first byte of a 3-byte character, then text: `DecodeStream`
    // emits "\r" and then fails, because the run decodes as "��" once extended.
    let text_id = tok.encode("6", false).unwrap()[0];
    let mut cases = vec![vec![byte(0x0D), byte(0xE4), text_id]];
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = |n: u64| {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) % n
    };
    for _ in 0..200 {
        let len = 1 + next(40) as usize;
        cases.push(
            (0..len)
                .map(|_| {
                    if next(2) == 0 {
                        byte(next(256) as u8)
                    } else {
                        next(vocab) as u32
                    }
                })
                .collect(),
        );
    }
    for ids in &cases {
        for skip in [false, true] {
            let mut stream = tok.stream_decoder(skip);
            let mut pieces = String::new();
            for &id in ids {
                pieces.push_str(&stream.push(id).unwrap());
            }
            pieces.push_str(&stream.finish().unwrap());
            assert_eq!(
                pieces,
                tok.decode(ids, skip).unwrap(),
                "{ids:?} skip={skip}"
            );
        }
    }
}
