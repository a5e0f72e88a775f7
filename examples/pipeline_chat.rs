//! Image-level chat with the Pipeline: a multi-turn conversation about one encoded
//! photo, then a streamed turn printed piece by piece.
//!
//! ```text
//! cargo run --release --example pipeline_chat [BUNDLE_DIR]
//! ```
//! Without an argument it loads the tiny random-weight bundle (gibberish answers).

use std::io::Write;

use omg_examples::{bundle_from_args, load_pipeline_and_photo};
use omg_llava::{Conversation, GenerateOptions, StreamEvent};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // reuse freed large blocks instead of page-faulting fresh ones on every layer
    omg_llava::reuse_freed_memory();
    let (pipeline, photo) = load_pipeline_and_photo(&bundle_from_args())?;
    // Encode once; every question below reuses the handle.
    let image = pipeline.encode(&photo)?;
    let options = GenerateOptions::default().with_max_new_tokens(32);

    // Blocking turns: the conversation keeps the history like the official chat tool.
    let mut conversation = Conversation::new();
    for question in ["What is in the picture?", "What colour is it?"] {
        let answer = pipeline.chat(&image, &mut conversation, question, &options)?;
        println!("> {question}\n{}\n", answer.text);
    }

    // A streamed turn: same prompt the blocking call would build, text as it comes.
    let question = "Where could this photo have been taken?";
    println!("> {question}");
    let prompt = conversation.prompt_for(question);
    let mut stream = pipeline.stream_prompt(&image, &prompt, &[], &options)?;
    for event in stream.by_ref() {
        if let StreamEvent::Text(piece) = event? {
            print!("{piece}");
            std::io::stdout().flush()?;
        }
    }
    let answer = stream.finish()?;
    conversation.push(prompt, question, &answer.raw_text);
    println!(
        "\n\n{} turns, last answer {} tokens",
        conversation.turns().len(),
        answer.token_ids.len()
    );
    Ok(())
}
