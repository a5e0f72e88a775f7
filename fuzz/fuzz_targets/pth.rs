//! The `pth` fuzz target (`omg_fuzz::targets::pth`).
#![cfg_attr(fuzzing, no_main)]

omg_fuzz::fuzz_binary!(pth);
