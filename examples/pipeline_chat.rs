//! Image-level chat with the Pipeline: a multi-turn conversation about one encoded
//! photo, then a streamed turn printed piece by piece.
//!
//! ```text
//! cargo run --release -p omg-examples --example pipeline_chat [BUNDLE_DIR]
//! ```
//! Without an argument it loads the tiny random-weight demo bundle (gibberish answers).

use std::io::Write;

use omg_examples::load_pipeline_and_photo;
use omg_llava::{Conversation, GenerateOptions, StreamEvent, Task};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // reuse freed large blocks instead of page-faulting fresh ones on every layer
    omg_llava::reuse_freed_memory();
    let (pipeline, photo) = load_pipeline_and_photo()?;
    // Encode once; every question below reuses the handle.
    let image = pipeline.encode(&photo)?;
    let options = GenerateOptions::default().with_max_new_tokens(32);

    // Blocking turns: the conversation keeps the history like the official chat tool.
    let mut conversation = Conversation::new();
    for question in ["What is in the picture?", "What colour is it?"] {
        let answer = pipeline.chat(&image, &mut conversation, question, &options)?;
        println!("> {question}\n{}\n", answer.text);
    }

    // A streamed turn: the same task the blocking call runs, text as it comes.
    let question = "Where could this photo have been taken?";
    println!("> {question}");
    let task = Task::chat_after(&conversation, question);
    let mut stream = pipeline.stream(&image, &task, &options)?;
    for event in stream.by_ref() {
        if let StreamEvent::Text(piece) = event? {
            print!("{piece}");
            std::io::stdout().flush()?;
        }
    }
    let answer = stream.finish()?;
    conversation.record(question, &answer);
    println!(
        "\n\n{} turns, last answer {} tokens ({:?})",
        conversation.len(),
        answer.token_ids.len(),
        answer.finish_reason
    );
    Ok(())
}
