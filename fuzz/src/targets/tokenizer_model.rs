//! `tokenizer.model` (sentencepiece protobuf) parsing and the conversion to a BPE
//! tokenizer; an accepted model must encode and decode a sentence.

use omg_llm::tokenizer::InternLm2Tokenizer;

/// The `tokenizer_model` target: runs on any bytes, panics only if a check fails.
pub fn tokenizer_model(data: &[u8]) {
    if let Ok(tokenizer) = InternLm2Tokenizer::from_sentencepiece_bytes(data) {
        let ids = tokenizer
            .encode("Please segment the cat <|im_end|> in this image.", true)
            .expect("an accepted tokenizer encodes");
        let vocab = tokenizer.vocab_size();
        assert!(
            ids.iter().all(|&id| (id as usize) < vocab),
            "ids within the vocabulary of {vocab}: {ids:?}"
        );
        tokenizer
            .decode(&ids, false)
            .expect("an accepted tokenizer decodes");
    }
}
