//! # omg-bert
//!
//! The BERT text encoder the official GCG evaluation uses for its mask recall: a
//! ground-truth phrase and a predicted phrase count as the same object when the cosine
//! similarity of their `bert-base-uncased` embeddings (the mean of the last hidden
//! states over every token) is at least 0.5. This crate loads any Hugging Face BERT
//! folder (`config.json`, `model.safetensors` or a sharded set, `tokenizer.json` or
//! `vocab.txt`), embeds phrases as the official evaluation does, and implements
//! `omg_eval`'s [`PhraseSimilarity`](omg_eval::gcg::PhraseSimilarity) with it.
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use burn_flex::Flex;
//! use omg_bert::{BertPhraseSimilarity, PhraseEncoder};
//! use omg_eval::gcg::PhraseSimilarity;
//!
//! let encoder = PhraseEncoder::<Flex>::from_dir("bert-base-uncased", &Default::default())?;
//! let similarity = BertPhraseSimilarity::new(encoder);
//! let s = similarity.similarity("a man in a red shirt", "the man")?;
//! println!("{s:.3}");
//! # Ok(()) }
//! ```
//!
//! The model runs on any burn backend; the products go through `omg-kernels`.

mod config;
mod encoder;
mod error;
mod load;
mod model;
mod similarity;
pub mod tokenizer;

pub use config::BertConfig;
pub use encoder::PhraseEncoder;
pub use error::BertError;
pub use load::load_bert;
pub use model::{BertEmbeddings, BertLayer, BertModel};
pub use similarity::{BertPhraseSimilarity, cosine_similarity};
pub use tokenizer::BertTokenizer;
