//! The chat template and placeholder parser: a question from the input goes through
//! the tasks' prompts (chat turns, region questions) and their tokenization by the demo
//! bundle's pipeline. The user's text never adds a token: the ids hold exactly the
//! template's own tokens and the region question's placeholders.

use std::sync::OnceLock;

use burn::backend::Flex;
use omg_llava::{Conversation, LoadOptions, Pipeline, Prompt, Region, Task};

/// Where the photo's visual tokens go in a prompt's ids.
const IMAGE: i64 = -200;

fn pipeline() -> &'static Pipeline<Flex> {
    static P: OnceLock<Pipeline<Flex>> = OnceLock::new();
    P.get_or_init(|| {
        Pipeline::from_dir(
            omg_demo::source_bundle_dir(),
            &LoadOptions::default(),
            Default::default(),
            |_| {},
        )
        .expect("the demo bundle loads")
    })
}

fn count(ids: &[i64], token: &str) -> usize {
    let id = i64::from(pipeline().token_id(token).expect("a token"));
    ids.iter().filter(|&&t| t == id).count()
}

fn ids(prompt: &Prompt) -> Vec<i64> {
    pipeline()
        .prompt_ids(prompt)
        .expect("a task's prompt tokenizes")
}

/// The `chat_template` target: runs on any bytes, panics only if a check fails.
pub fn chat_template(data: &[u8]) {
    let Ok(question) = std::str::from_utf8(data) else {
        return;
    };
    let p = pipeline();
    let vocab = i64::from(p.token_id("<mark>").expect("<mark>")) + 1;
    let valid = |ids: &[i64]| ids.iter().all(|&t| t == IMAGE || (0..vocab).contains(&t));

    // A chat turn, then a second one after an answer given as text.
    let first = ids(&Task::chat(question).prompt().expect("a chat prompt"));
    assert!(valid(&first));
    assert_eq!(first.iter().filter(|&&t| t == IMAGE).count(), 1);
    for token in ["[SEG]", "<p>", "</p>", "<region>", "<mark>"] {
        assert_eq!(count(&first, token), 0, "{token} injected");
    }
    assert_eq!(count(&first, "<|im_end|>"), 1);
    let mut conversation = Conversation::new();
    conversation.push_turn(question, "It is [SEG].");
    let second = ids(&Task::chat_after(&conversation, question).prompt().unwrap());
    assert!(valid(&second));
    assert_eq!(count(&second, "[SEG]"), 1);
    assert_eq!(count(&second, "<|im_end|>"), 3);
    // an answer given as text keeps only the model's tokens
    let mut replayed = Conversation::new();
    replayed.push_turn("q", question);
    let third = ids(&Task::chat_after(&replayed, "q").prompt().unwrap());
    assert_eq!(count(&third, "<|im_end|>"), 3);
    assert_eq!(third.iter().filter(|&&t| t == IMAGE).count(), 1);

    // A region question: its placeholders, and only those, are tokens.
    let regions = vec![Region::rect(0.0, 0.0, 4.0, 4.0), Region::point(1.0, 1.0)];
    let asked = ids(&Task::ask_regions(regions, question).prompt().unwrap());
    assert!(valid(&asked));
    let placeholders = question.contains("<region>") || question.contains("<mark>");
    let (r, m) = if placeholders {
        (
            question.matches("<region>").count(),
            question.matches("<mark>").count(),
        )
    } else {
        (1, 1)
    };
    assert!(count(&asked, "<region>") == r && count(&asked, "<mark>") == m);

    // As explicit markup it may be anything, but never a panic.
    let _ = p.prompt_ids(&Prompt::markup(question));
}
