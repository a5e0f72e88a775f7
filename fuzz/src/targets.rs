//! One function per fuzz target, each taking the raw input bytes.

mod chat_template;
mod png_mask;
mod pth;
mod rle;
mod safetensors;
mod tokenizer_model;

pub use self::chat_template::chat_template;
pub use self::png_mask::png_mask;
pub use self::pth::pth;
pub use self::rle::rle;
pub use self::safetensors::safetensors;
pub use self::tokenizer_model::tokenizer_model;
