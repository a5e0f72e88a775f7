//! The `png_mask` fuzz target (`omg_fuzz::targets::png_mask`).
#![cfg_attr(fuzzing, no_main)]

omg_fuzz::fuzz_binary!(png_mask);
