//! The `safetensors` fuzz target (`omg_fuzz::targets::safetensors`).
#![cfg_attr(fuzzing, no_main)]

omg_fuzz::fuzz_binary!(safetensors);
