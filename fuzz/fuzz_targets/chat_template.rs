//! The `chat_template` fuzz target (`omg_fuzz::targets::chat_template`).
#![cfg_attr(fuzzing, no_main)]

omg_fuzz::fuzz_binary!(chat_template);
