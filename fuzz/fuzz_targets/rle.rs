//! The `rle` fuzz target (`omg_fuzz::targets::rle`).
#![cfg_attr(fuzzing, no_main)]

omg_fuzz::fuzz_binary!(rle);
