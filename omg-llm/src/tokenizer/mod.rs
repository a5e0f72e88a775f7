//! The InternLM2 tokenizer, as used by OMG-LLaVA.
//!
//! OMG-LLaVA loads `internlm/internlm2-chat-7b`'s tokenizer with `AutoTokenizer`
//! (`trust_remote_code=True`), i.e. `InternLM2TokenizerFast`: a HF `tokenizers` BPE model
//! converted from the sentencepiece `tokenizer.model` by the official
//! `InternLM2Converter` (`tokenization_internlm2_fast.py`). [`InternLm2Tokenizer`] wraps a
//! [`tokenizers::Tokenizer`] with exactly that configuration, built either
//!
//! - from a `tokenizer.json` ([`InternLm2Tokenizer::from_tokenizer_json`]), or
//! - directly from the sentencepiece `tokenizer.model`
//!   ([`InternLm2Tokenizer::from_sentencepiece_model`]), re-implementing the converter
//!   (the released InternLM2 checkpoints ship only `tokenizer.model`).
//!
//! Behaviour matches the *fast* HF tokenizer: special tokens are split out of the text
//! first, every remaining text segment gets its own dummy-prefix `▁`, encoding with
//! `add_bos` prepends `<s>` only, and decoding uses the `tokenizers` decoder (which,
//! unlike the slow sentencepiece tokenizer, inserts no spaces around special tokens).
//!
//! [`InternLm2Tokenizer::add_special_tokens`] adds tokens a fine-tune introduced (as HF
//! `add_tokens(…, special_tokens=True)`); [`InternLm2Tokenizer::token_id`] looks any
//! token up whole.

pub mod sentencepiece;
mod spans;
mod stream;

pub use spans::TextSpan;
pub use stream::StreamDecoder;

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use tokenizers::decoders::DecoderWrapper;
use tokenizers::decoders::byte_fallback::ByteFallback;
use tokenizers::decoders::fuse::Fuse;
use tokenizers::decoders::sequence::Sequence as DecoderSequence;
use tokenizers::decoders::strip::Strip;
use tokenizers::models::bpe::{BPE, Vocab};
use tokenizers::normalizers::{
    NormalizerWrapper, Prepend, Replace, Sequence as NormalizerSequence,
};
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{AddedToken, Tokenizer};

use self::sentencepiece::{ModelProto, ModelType, SentencePieceError};

/// The beginning-of-sequence token of InternLM2.
pub const BOS_TOKEN: &str = "<s>";
/// The end-of-sequence token of InternLM2.
pub const EOS_TOKEN: &str = "</s>";
/// The unknown token of InternLM2.
pub const UNK_TOKEN: &str = "<unk>";
/// Chat turn start token of the InternLM2 chat template.
pub const IM_START_TOKEN: &str = "<|im_start|>";
/// Chat turn end token of the InternLM2 chat template.
pub const IM_END_TOKEN: &str = "<|im_end|>";
/// The start of a user turn in InternLM2's chat template (`internlm2_chat`, no system
/// prompt): a turn is `USER_TURN_START + text + ASSISTANT_TURN_START`, and the answer
/// follows.
pub const USER_TURN_START: &str = "<|im_start|>user\n";
/// The end of a user turn and the start of the assistant's, in InternLM2's chat
/// template.
pub const ASSISTANT_TURN_START: &str = "<|im_end|>\n<|im_start|>assistant\n";
/// The InternLM2 chat tokens (`additional_special_tokens` of `internlm2-chat-7b`).
///
/// When building from a `tokenizer.model`, these are registered as special tokens if
/// they are pieces of the model, whatever their sentencepiece piece type.
pub const INTERNLM2_CHAT_TOKENS: [&str; 6] = [
    "<|im_start|>",
    "<|im_end|>",
    "<|action_start|>",
    "<|action_end|>",
    "<|interpreter|>",
    "<|plugin|>",
];
/// Errors of tokenizer loading, encoding and decoding.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenizerError {
    /// A file could not be read (missing, unreadable, …).
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// [`InternLm2Tokenizer::from_dir`] found neither `tokenizer.json` nor `tokenizer.model`.
    #[error("no tokenizer.json or tokenizer.model in {dir}")]
    NoTokenizerFile {
        /// The directory that was searched.
        dir: PathBuf,
    },
    /// A `tokenizer.json` that the `tokenizers` crate cannot load.
    #[error("invalid tokenizer.json {path}: {source}")]
    InvalidTokenizerJson {
        /// The file.
        path: PathBuf,
        /// The parse error.
        #[source]
        source: tokenizers::Error,
    },
    /// A `tokenizer.model` that is not a valid sentencepiece protobuf.
    #[error("invalid sentencepiece model {path}: {source}")]
    InvalidSentencePiece {
        /// The file (`<memory>` for [`InternLm2Tokenizer::from_sentencepiece_bytes`]).
        path: PathBuf,
        /// The wire-format error.
        #[source]
        source: SentencePieceError,
    },
    /// A valid sentencepiece model that this crate cannot convert (not BPE, a
    /// non-identity normalizer, too few pieces, …).
    #[error("unsupported sentencepiece model {path}: {reason}")]
    UnsupportedModel {
        /// The file (`<memory>` for [`InternLm2Tokenizer::from_sentencepiece_bytes`]).
        path: PathBuf,
        /// What is unsupported.
        reason: String,
    },
    /// A `tokenizer_config.json` whose `added_tokens_decoder` is malformed or contradicts
    /// the `tokenizer.model`.
    #[error("invalid tokenizer config {path}: {reason}")]
    InvalidConfig {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The `tokenizers` crate rejected the converted model.
    #[error("cannot build the tokenizer from {path}: {source}")]
    Build {
        /// The source file.
        path: PathBuf,
        /// The error.
        #[source]
        source: tokenizers::Error,
    },
    /// A required token is not in the vocabulary.
    #[error("token {token:?} is not in the tokenizer vocabulary")]
    MissingToken {
        /// The token text.
        token: String,
    },
    /// Encoding failed.
    #[error("encoding failed: {source}")]
    Encode {
        /// The error.
        #[source]
        source: tokenizers::Error,
    },
    /// Decoding failed.
    #[error("decoding failed: {source}")]
    Decode {
        /// The error.
        #[source]
        source: tokenizers::Error,
    },
    /// Streaming detokenization reached an inconsistent state.
    #[error("streaming decode: {0}")]
    Stream(String),
}

/// The InternLM2 tokenizer (`InternLM2TokenizerFast` behaviour), wrapping a
/// [`tokenizers::Tokenizer`].
#[derive(Debug, Clone)]
pub struct InternLm2Tokenizer {
    inner: Tokenizer,
    bos: u32,
    eos: u32,
    /// `len(tokenizer)`: vocabulary including added tokens (cached, it is O(n) to compute).
    vocab_size: usize,
}

fn read_file(path: &Path) -> Result<Vec<u8>, TokenizerError> {
    std::fs::read(path).map_err(|source| TokenizerError::Io {
        path: path.to_owned(),
        source,
    })
}

impl InternLm2Tokenizer {
    fn wrap(inner: Tokenizer) -> Result<Self, TokenizerError> {
        let lookup = |token: &str| {
            inner
                .token_to_id(token)
                .ok_or_else(|| TokenizerError::MissingToken {
                    token: token.to_owned(),
                })
        };
        let bos = lookup(BOS_TOKEN)?;
        let eos = lookup(EOS_TOKEN)?;
        let vocab_size = inner.get_vocab_size(true);
        Ok(Self {
            inner,
            bos,
            eos,
            vocab_size,
        })
    }

    /// Loads a HF `tokenizer.json` (for InternLM2: as written by `InternLM2TokenizerFast`).
    ///
    /// # Errors
    ///
    /// [`TokenizerError::Io`] when the file cannot be read,
    /// [`TokenizerError::InvalidTokenizerJson`] when `tokenizers` cannot load it, and
    /// [`TokenizerError::MissingToken`] when it lacks `<s>` or `</s>`.
    pub fn from_tokenizer_json(path: impl AsRef<Path>) -> Result<Self, TokenizerError> {
        let path = path.as_ref();
        let bytes = read_file(path)?;
        let inner = Tokenizer::from_bytes(&bytes).map_err(|source| {
            TokenizerError::InvalidTokenizerJson {
                path: path.to_owned(),
                source,
            }
        })?;
        Self::wrap(inner)
    }

    /// Builds the tokenizer directly from a sentencepiece `tokenizer.model` exactly as the
    /// official `InternLM2Converter` (transformers 4.36 `SpmConverter` subclass) does:
    ///
    /// - BPE vocabulary = the pieces with their ids, ids 0/1/2 named `<unk>`/`<s>`/`</s>`;
    /// - merges extracted like transformers' `SentencePieceExtractor.extract(vocab_scores)`
    ///   (see [`sentencepiece::extract_merges`]);
    /// - `unk_token` = `trainer_spec.unk_piece`, `fuse_unk`, `byte_fallback`;
    /// - normalizer `Prepend("▁")` (only when `add_dummy_prefix`) + `Replace(" ", "▁")`,
    ///   no pre-tokenizer;
    /// - decoder `Replace("▁", " ")` + `ByteFallback` + `Fuse` + `Strip(" ", 1, 0)`;
    /// - post-processor adding `<s>` (`add_bos_token=True`, `add_eos_token=False`);
    /// - ids 0–2, the `UNKNOWN` / `CONTROL` / `USER_DEFINED` pieces and the
    ///   [`INTERNLM2_CHAT_TOKENS`] present in the model are registered as special added
    ///   tokens (`normalized=false`), in id order.
    ///
    /// Rejects non-BPE models and models whose normalizer is not the identity (a
    /// non-empty `precompiled_charsmap` with a name other than `identity`). Like the
    /// official converter, `remove_extra_whitespaces` is not applied.
    ///
    /// # Errors
    ///
    /// [`TokenizerError::Io`] when the file cannot be read,
    /// [`TokenizerError::InvalidSentencePiece`] when it is not a valid protobuf (e.g.
    /// truncated), [`TokenizerError::UnsupportedModel`] for the rejected models above and
    /// [`TokenizerError::Build`] if `tokenizers` rejects the converted model.
    pub fn from_sentencepiece_model(path: impl AsRef<Path>) -> Result<Self, TokenizerError> {
        let path = path.as_ref();
        let bytes = read_file(path)?;
        Self::from_sentencepiece_impl(&bytes, path, None)
    }

    /// [`from_sentencepiece_model`](Self::from_sentencepiece_model) on the bytes of a
    /// `tokenizer.model` held in memory (errors name the path `<memory>`).
    ///
    /// # Errors
    ///
    /// As [`from_sentencepiece_model`](Self::from_sentencepiece_model), without I/O errors.
    pub fn from_sentencepiece_bytes(bytes: &[u8]) -> Result<Self, TokenizerError> {
        Self::from_sentencepiece_impl(bytes, Path::new("<memory>"), None)
    }

    /// Loads the tokenizer of a model directory: `tokenizer.json` when present, otherwise
    /// `tokenizer.model` (converted as [`from_sentencepiece_model`](Self::from_sentencepiece_model)).
    ///
    /// In the second case a `tokenizer_config.json` next to it is honoured the way the
    /// official converter does: the entries of its `added_tokens_decoder` are registered
    /// as added tokens with their flags (an entry whose id is a piece of the model must
    /// name that piece; entries past the model's pieces get their ids in order).
    ///
    /// # Errors
    ///
    /// [`TokenizerError::NoTokenizerFile`] when the directory holds neither file, the
    /// errors of the constructor used, and [`TokenizerError::InvalidConfig`] for a
    /// malformed or contradicting `tokenizer_config.json`.
    pub fn from_dir(dir: impl AsRef<Path>) -> Result<Self, TokenizerError> {
        let dir = dir.as_ref();
        let json = dir.join("tokenizer.json");
        if json.is_file() {
            return Self::from_tokenizer_json(json);
        }
        let model = dir.join("tokenizer.model");
        if model.is_file() {
            let bytes = read_file(&model)?;
            let config = dir.join("tokenizer_config.json");
            let config = if config.is_file() { Some(config) } else { None };
            return Self::from_sentencepiece_impl(&bytes, &model, config.as_deref());
        }
        Err(TokenizerError::NoTokenizerFile {
            dir: dir.to_owned(),
        })
    }

    fn from_sentencepiece_impl(
        bytes: &[u8],
        path: &Path,
        config: Option<&Path>,
    ) -> Result<Self, TokenizerError> {
        let unsupported = |reason: String| TokenizerError::UnsupportedModel {
            path: path.to_owned(),
            reason,
        };
        let proto =
            ModelProto::parse(bytes).map_err(|source| TokenizerError::InvalidSentencePiece {
                path: path.to_owned(),
                source,
            })?;
        let trainer = proto
            .trainer_spec
            .as_ref()
            .ok_or_else(|| unsupported("no trainer_spec (model type unknown)".to_owned()))?;
        if trainer.model_type != ModelType::Bpe {
            return Err(unsupported(format!(
                "model type {:?}: InternLM2 is supposed to be a BPE model",
                trainer.model_type
            )));
        }
        let normalizer = proto.normalizer_spec.clone().unwrap_or_default();
        if !normalizer.precompiled_charsmap.is_empty() && normalizer.name != "identity" {
            return Err(unsupported(format!(
                "normalizer {:?} with a precompiled charsmap is not implemented (only identity)",
                normalizer.name
            )));
        }
        if proto.pieces.len() < 3 {
            return Err(unsupported(format!(
                "{} pieces; ids 0/1/2 must be <unk>/<s>/</s>",
                proto.pieces.len()
            )));
        }
        if u32::try_from(proto.pieces.len()).is_err() {
            return Err(unsupported("too many pieces".to_owned()));
        }

        // InternLM2Converter.vocab(): ids 0..3 renamed, score 0.
        let mut vocab_scores: Vec<(String, f32)> = Vec::with_capacity(proto.pieces.len());
        for name in [UNK_TOKEN, BOS_TOKEN, EOS_TOKEN] {
            vocab_scores.push((name.to_owned(), 0.0));
        }
        vocab_scores.extend(proto.pieces[3..].iter().map(|p| (p.piece.clone(), p.score)));
        // Each piece names one id, as sentencepiece itself requires ("piece is already
        // defined"); a repeated piece would leave ids that `len(tokenizer)` does not count.
        let mut seen: HashSet<&str> = HashSet::with_capacity(vocab_scores.len());
        for (id, (piece, _)) in vocab_scores.iter().enumerate() {
            if !seen.insert(piece.as_str()) {
                return Err(unsupported(format!(
                    "piece {piece:?} (id {id}) is defined twice"
                )));
            }
        }

        // Added tokens (the slow tokenizer's `added_tokens_decoder`), in id order.
        let mut added: BTreeMap<u32, AddedToken> = BTreeMap::new();
        let chat: HashSet<&str> = INTERNLM2_CHAT_TOKENS.into_iter().collect();
        for (id, ((piece, _), proto_piece)) in vocab_scores.iter().zip(&proto.pieces).enumerate() {
            if id < 3 || proto_piece.kind.is_special() || chat.contains(piece.as_str()) {
                added.insert(id as u32, AddedToken::from(piece.clone(), true));
            }
        }
        let mut extra: Vec<(u32, AddedToken)> = Vec::new();
        if let Some(config) = config {
            for (id, token) in read_added_tokens_decoder(config)? {
                match vocab_scores.get(id as usize) {
                    Some((piece, _)) if *piece == token.content => {
                        added.insert(id, token);
                    }
                    Some((piece, _)) => {
                        return Err(TokenizerError::InvalidConfig {
                            path: config.to_owned(),
                            reason: format!(
                                "added_tokens_decoder[{id}] = {:?} but the model's piece {id} is {piece:?}",
                                token.content
                            ),
                        });
                    }
                    None => extra.push((id, token)),
                }
            }
        }

        // The unknown piece must be a piece: `tokenizers` only finds out when an
        // unknown character is encoded.
        if !seen.contains(trainer.unk_piece.as_str()) {
            return Err(unsupported(format!(
                "the unknown piece {:?} of trainer_spec is not a piece of the model",
                trainer.unk_piece
            )));
        }
        let merges = sentencepiece::extract_merges(&vocab_scores);
        let vocab: Vocab = vocab_scores
            .iter()
            .enumerate()
            .map(|(id, (piece, _))| (piece.clone(), id as u32))
            .collect();
        let build_err = |source: tokenizers::Error| TokenizerError::Build {
            path: path.to_owned(),
            source,
        };
        let bpe = BPE::builder()
            .vocab_and_merges(vocab, merges)
            .unk_token(trainer.unk_piece.clone())
            .fuse_unk(true)
            .byte_fallback(true)
            .build()
            .map_err(build_err)?;

        let mut inner = Tokenizer::new(bpe);
        let mut normalizers: Vec<NormalizerWrapper> = Vec::with_capacity(2);
        if normalizer.add_dummy_prefix {
            normalizers.push(Prepend::new("▁".to_owned()).into());
        }
        normalizers.push(Replace::new(" ", "▁").map_err(build_err)?.into());
        inner.with_normalizer(Some(NormalizerSequence::new(normalizers)));
        let decoders: Vec<DecoderWrapper> = vec![
            Replace::new("▁", " ").map_err(build_err)?.into(),
            ByteFallback::new().into(),
            Fuse::new().into(),
            Strip::new(' ', 1, 0).into(),
        ];
        inner.with_decoder(Some(DecoderSequence::new(decoders)));
        let bos = vocab_scores
            .iter()
            .rposition(|(p, _)| p == BOS_TOKEN)
            .unwrap_or(1) as u32;
        let template = TemplateProcessing::builder()
            .try_single(format!("{BOS_TOKEN}:0 $A:0"))
            .and_then(|b| b.try_pair(format!("{BOS_TOKEN}:0 $A:0 {BOS_TOKEN}:1 $B:1")))
            .map_err(|e| build_err(e.into()))?
            .special_tokens(vec![(BOS_TOKEN, bos)])
            .build()
            .map_err(|e| build_err(Box::new(e)))?;
        inner.with_post_processor(Some(template));

        let added: Vec<AddedToken> = added.into_values().collect();
        inner.add_special_tokens(&added);
        if let Some(config) = config {
            extra.sort_by_key(|(id, _)| *id);
            for (id, token) in extra {
                let content = token.content.clone();
                if token.special {
                    inner.add_special_tokens(&[token]);
                } else {
                    inner.add_tokens(&[token]);
                }
                if inner.token_to_id(&content) != Some(id) {
                    return Err(TokenizerError::InvalidConfig {
                        path: config.to_owned(),
                        reason: format!(
                            "added_tokens_decoder[{id}] = {content:?} cannot get id {id} (ids past the model must be consecutive)"
                        ),
                    });
                }
            }
        }
        Self::wrap(inner)
    }

    /// Adds tokens like HF `tokenizer.add_tokens(tokens, special_tokens=True)`: each new
    /// token gets the next id (`len(tokenizer)`), is matched as a whole token (before
    /// normalization) and is never split; it is a special token (skipped by
    /// `decode(.., true)`). A token that already exists (in the vocabulary or as an added
    /// token) keeps its id.
    ///
    /// Returns the ids of `tokens`, in order. Empty strings are ignored (as HF does) and
    /// have no entry in the result.
    pub fn add_special_tokens(&mut self, tokens: &[&str]) -> Vec<u32> {
        let tokens: Vec<&str> = tokens.iter().copied().filter(|t| !t.is_empty()).collect();
        let added: Vec<AddedToken> = tokens.iter().map(|t| AddedToken::from(*t, true)).collect();
        self.inner.add_special_tokens(&added);
        self.vocab_size = self.inner.get_vocab_size(true);
        // Every non-empty token is now in the added vocabulary, so the lookup succeeds.
        tokens
            .iter()
            .filter_map(|t| self.inner.token_to_id(t))
            .collect()
    }

    /// Whole-token id lookup (vocabulary piece or added token); the string is never
    /// encoded. `None` when `token` is not a token.
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// Encodes `text` (HF `tokenizer(text, add_special_tokens=add_bos).input_ids`):
    /// special/added tokens are split out first, each remaining segment is normalized
    /// (dummy-prefix `▁`, spaces → `▁`) and BPE-encoded with byte fallback; with
    /// `add_bos`, `<s>` is prepended (never `</s>`).
    ///
    /// # Errors
    ///
    /// [`TokenizerError::Encode`] if `tokenizers` fails (not expected for any `&str`).
    pub fn encode(&self, text: &str, add_bos: bool) -> Result<Vec<u32>, TokenizerError> {
        let encoding = self
            .inner
            .encode_fast(text, add_bos)
            .map_err(|source| TokenizerError::Encode { source })?;
        Ok(encoding.get_ids().to_vec())
    }

    /// Decodes ids like HF `InternLM2TokenizerFast.decode(ids, skip_special_tokens)`
    /// (`clean_up_tokenization_spaces=False`): `▁` → space, byte pieces fused into UTF-8
    /// (invalid sequences become U+FFFD), one leading space stripped. Special tokens are
    /// kept verbatim (no spaces inserted around them) unless `skip_special_tokens`.
    /// Ids that are not in the vocabulary are skipped, as in `tokenizers`.
    ///
    /// # Errors
    ///
    /// [`TokenizerError::Decode`] if the `tokenizers` decoder fails (not expected).
    pub fn decode(&self, ids: &[u32], skip_special_tokens: bool) -> Result<String, TokenizerError> {
        self.inner
            .decode(ids, skip_special_tokens)
            .map_err(|source| TokenizerError::Decode { source })
    }

    /// The token text of `id` (piece or added token), `None` when out of range.
    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    /// `len(tokenizer)`: the vocabulary size including added tokens.
    pub fn vocab_size(&self) -> usize {
        self.vocab_size
    }

    /// The id of `<s>`.
    pub fn bos_id(&self) -> u32 {
        self.bos
    }

    /// The id of `</s>` (also InternLM2's padding token).
    pub fn eos_id(&self) -> u32 {
        self.eos
    }

    /// The wrapped [`tokenizers::Tokenizer`].
    pub fn inner(&self) -> &Tokenizer {
        &self.inner
    }
}

/// Reads `added_tokens_decoder` of a HF `tokenizer_config.json` (absent → empty).
fn read_added_tokens_decoder(path: &Path) -> Result<Vec<(u32, AddedToken)>, TokenizerError> {
    let invalid = |reason: String| TokenizerError::InvalidConfig {
        path: path.to_owned(),
        reason,
    };
    let bytes = read_file(path)?;
    let value: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| invalid(format!("not JSON: {e}")))?;
    let Some(decoder) = value.get("added_tokens_decoder") else {
        return Ok(Vec::new());
    };
    let decoder = decoder
        .as_object()
        .ok_or_else(|| invalid("added_tokens_decoder is not an object".to_owned()))?;
    let mut out = Vec::with_capacity(decoder.len());
    for (key, entry) in decoder {
        let id: u32 = key
            .parse()
            .map_err(|_| invalid(format!("added_tokens_decoder key {key:?} is not an id")))?;
        let content = entry
            .get("content")
            .and_then(|c| c.as_str())
            .ok_or_else(|| invalid(format!("added_tokens_decoder[{key}] has no string content")))?;
        let flag = |name: &str, default: bool| {
            entry
                .get(name)
                .and_then(serde_json::Value::as_bool)
                .unwrap_or(default)
        };
        let special = flag("special", false);
        let token = AddedToken::from(content, special)
            .normalized(flag("normalized", !special))
            .lstrip(flag("lstrip", false))
            .rstrip(flag("rstrip", false))
            .single_word(flag("single_word", false));
        out.push((id, token));
    }
    Ok(out)
}
