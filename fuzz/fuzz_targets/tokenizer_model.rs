//! `tokenizer.model` (sentencepiece protobuf) parsing and the conversion to a BPE
//! tokenizer; an accepted model must encode and decode a sentence.
#![no_main]

use libfuzzer_sys::fuzz_target;
use omg_llm::tokenizer::InternLm2Tokenizer;

fuzz_target!(|data: &[u8]| {
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
});
