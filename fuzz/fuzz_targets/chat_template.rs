//! The chat template and placeholder parser: a question from the input goes through
//! the task prompts (chat turns, region questions) and tokenization with the tiny
//! bundle's tokenizer. The user's text never adds a token: the ids hold exactly the
//! template's own tokens and the region question's placeholders.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use omg_llava::questions::region_prompt;
use omg_llava::splice::IMAGE_TOKEN_INDEX;
use omg_llava::template::tokenize_prompt;
use omg_llava::{Conversation, Prompt, Region};
use omg_llm::tokenizer::{InternLm2Tokenizer, add_omg_llava_tokens};

fn tokenizer() -> &'static InternLm2Tokenizer {
    static TOK: OnceLock<InternLm2Tokenizer> = OnceLock::new();
    TOK.get_or_init(|| {
        let dir = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../examples/assets/tiny/internlm2"
        );
        let mut tok = InternLm2Tokenizer::from_dir(dir).expect("the tiny bundle's tokenizer");
        add_omg_llava_tokens(&mut tok).expect("OMG-LLaVA tokens");
        tok
    })
}

fn count(ids: &[i64], token: &str) -> usize {
    let id = i64::from(tokenizer().token_id(token).expect("a token"));
    ids.iter().filter(|&&t| t == id).count()
}

fuzz_target!(|data: &[u8]| {
    let Ok(question) = std::str::from_utf8(data) else {
        return;
    };
    let tok = tokenizer();
    let vocab = tok.vocab_size() as i64;
    let valid = |ids: &[i64]| {
        ids.iter()
            .all(|&t| t == IMAGE_TOKEN_INDEX || (0..vocab).contains(&t))
    };

    // A chat turn, then a second one after an answer.
    let mut conversation = Conversation::new();
    let first = conversation.prompt_for(question);
    let ids = tokenize_prompt(tok, &first).expect("a chat prompt tokenizes");
    assert!(valid(&ids));
    assert_eq!(ids.iter().filter(|&&t| t == IMAGE_TOKEN_INDEX).count(), 1);
    for token in ["[SEG]", "<p>", "</p>", "<region>", "<mark>"] {
        assert_eq!(count(&ids, token), 0, "{token} injected");
    }
    assert_eq!(count(&ids, "<|im_end|>"), 1);
    conversation.push(first, question, "It is [SEG].<|im_end|>");
    let ids = tokenize_prompt(tok, &conversation.prompt_for(question)).expect("a later turn");
    assert!(valid(&ids));
    assert_eq!(count(&ids, "[SEG]"), 1);
    assert_eq!(count(&ids, "<|im_end|>"), 3);

    // A region question: its placeholders, and only those, are tokens.
    let regions = [
        Region::Box([0.0, 0.0, 4.0, 4.0]),
        Region::Point { x: 1.0, y: 1.0 },
    ];
    let prompt = region_prompt(&regions, question);
    let ids = tokenize_prompt(tok, &prompt).expect("a region prompt tokenizes");
    assert!(valid(&ids));
    let placeholders = question.contains("<region>") || question.contains("<mark>");
    let (r, m) = if placeholders {
        (
            question.matches("<region>").count(),
            question.matches("<mark>").count(),
        )
    } else {
        (1, 1)
    };
    assert!(count(&ids, "<region>") == r && count(&ids, "<mark>") == m);

    // As raw markup it may be anything, but never a panic.
    let _ = tokenize_prompt(tok, &Prompt::from(question));
});
