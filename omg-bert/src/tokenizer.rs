//! The tokenizer of a Hugging Face BERT folder: its `tokenizer.json` when it has one
//! (as `AutoTokenizer` prefers), else the WordPiece pipeline built from `vocab.txt`
//! and `tokenizer_config.json` as transformers' converter builds it (BERT
//! normalizer with the config's lower-casing, accent and Chinese-character options,
//! BERT pre-tokenizer, `[CLS] … [SEP]` template, the five special tokens matched
//! before normalization). Phrases are truncated to the official evaluation's 512
//! tokens, special tokens included.

use std::path::Path;

use serde::Deserialize;
use tokenizers::models::wordpiece::WordPiece;
use tokenizers::normalizers::BertNormalizer;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::processors::bert::BertProcessing;
use tokenizers::{AddedToken, Tokenizer, TruncationParams};

use crate::BertError;

/// Tokens per phrase: the official evaluation calls the tokenizer with
/// `max_length=512, truncation=True`.
pub const MAX_TOKENS: usize = 512;

/// The options of `tokenizer_config.json` the vocabulary-only pipeline reads.
#[derive(Debug, Deserialize)]
#[serde(default)]
struct TokenizerConfig {
    do_lower_case: bool,
    strip_accents: Option<bool>,
    tokenize_chinese_chars: bool,
}

impl Default for TokenizerConfig {
    fn default() -> Self {
        Self {
            do_lower_case: true,
            strip_accents: None,
            tokenize_chinese_chars: true,
        }
    }
}

/// A BERT tokenizer that truncates to [`MAX_TOKENS`].
#[derive(Debug, Clone)]
pub struct BertTokenizer {
    inner: Tokenizer,
}

impl BertTokenizer {
    /// The tokenizer of the folder `dir`: `tokenizer.json`, else `vocab.txt` (with
    /// `tokenizer_config.json` if present).
    pub fn from_dir(dir: &Path) -> Result<Self, BertError> {
        let json = dir.join("tokenizer.json");
        let vocab = dir.join("vocab.txt");
        let mut inner = if json.is_file() {
            Tokenizer::from_file(&json).map_err(|e| BertError::Tokenizer {
                path: json.clone(),
                message: e.to_string(),
            })?
        } else if vocab.is_file() {
            from_vocab(&vocab, &dir.join("tokenizer_config.json"))?
        } else {
            return Err(BertError::Tokenizer {
                path: dir.to_owned(),
                message: "neither tokenizer.json nor vocab.txt found".to_owned(),
            });
        };
        inner.with_padding(None);
        inner
            .with_truncation(Some(TruncationParams {
                max_length: MAX_TOKENS,
                ..TruncationParams::default()
            }))
            .map_err(|e| BertError::Tokenizer {
                path: dir.to_owned(),
                message: e.to_string(),
            })?;
        Ok(Self { inner })
    }

    /// The token ids of `text` with `[CLS]` and `[SEP]`, at most [`MAX_TOKENS`].
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, BertError> {
        self.inner
            .encode(text, true)
            .map(|e| e.get_ids().to_vec())
            .map_err(|e| BertError::Encode {
                text: text.chars().take(80).collect(),
                message: e.to_string(),
            })
    }
}

/// The pipeline transformers builds from a `vocab.txt`.
fn from_vocab(vocab: &Path, config_path: &Path) -> Result<Tokenizer, BertError> {
    let err = |path: &Path, message: String| BertError::Tokenizer {
        path: path.to_owned(),
        message,
    };
    let config: TokenizerConfig = if config_path.is_file() {
        let text = std::fs::read_to_string(config_path).map_err(|source| BertError::Io {
            path: config_path.to_owned(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|e| err(config_path, e.to_string()))?
    } else {
        TokenizerConfig::default()
    };
    let vocab_str = vocab
        .to_str()
        .ok_or_else(|| err(vocab, "the path is not UTF-8".to_owned()))?;
    let model = WordPiece::from_file(vocab_str)
        .unk_token("[UNK]".to_owned())
        .continuing_subword_prefix("##".to_owned())
        .max_input_chars_per_word(100)
        .build()
        .map_err(|e| err(vocab, e.to_string()))?;
    let id = |token: &str| {
        tokenizers::Model::token_to_id(&model, token)
            .ok_or_else(|| err(vocab, format!("the vocabulary has no {token}")))
    };
    let (cls, sep) = (id("[CLS]")?, id("[SEP]")?);
    let mut inner = Tokenizer::new(model);
    inner.with_normalizer(Some(BertNormalizer::new(
        true,
        config.tokenize_chinese_chars,
        config.strip_accents,
        config.do_lower_case,
    )));
    inner.with_pre_tokenizer(Some(BertPreTokenizer));
    inner.with_post_processor(Some(BertProcessing::new(
        ("[SEP]".to_owned(), sep),
        ("[CLS]".to_owned(), cls),
    )));
    let specials: Vec<AddedToken> = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        .into_iter()
        .filter(|t| tokenizers::Model::token_to_id(inner.get_model(), t).is_some())
        .map(|t| AddedToken::from(t, true))
        .collect();
    inner.add_special_tokens(&specials);
    Ok(inner)
}
