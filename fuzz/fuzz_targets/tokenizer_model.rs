//! The `tokenizer_model` fuzz target (`omg_fuzz::targets::tokenizer_model`).
#![cfg_attr(fuzzing, no_main)]

omg_fuzz::fuzz_binary!(tokenizer_model);
