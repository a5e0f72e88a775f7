//! Phrase embeddings as the official GCG evaluation computes them: the mean over every
//! token (`[CLS]` and `[SEP]` included) of the last hidden states of the phrase
//! tokenized with `max_length=512, truncation=True`.

use std::path::Path;

use burn::tensor::backend::Backend;
use omg_checkpoint::safetensors::open_hf_dir;

use crate::tokenizer::BertTokenizer;
use crate::{BertConfig, BertError, BertModel, load_bert};

/// A BERT model with its tokenizer, embedding phrases.
#[derive(Debug)]
pub struct PhraseEncoder<B: Backend> {
    model: BertModel<B>,
    tokenizer: BertTokenizer,
    config: BertConfig,
}

impl<B: Backend> PhraseEncoder<B> {
    /// Loads a Hugging Face BERT folder (for the GCG recall, `bert-base-uncased`):
    /// `config.json`, `model.safetensors` (or a sharded set with its index) and
    /// `tokenizer.json` or `vocab.txt`.
    pub fn from_dir(dir: impl AsRef<Path>, device: &B::Device) -> Result<Self, BertError> {
        let dir = dir.as_ref();
        let config = BertConfig::from_file(&dir.join("config.json"))?;
        let tokenizer = BertTokenizer::from_dir(dir)?;
        let source = open_hf_dir(dir)?;
        let model = load_bert::<B>(&config, source.as_ref(), device)?;
        Ok(Self {
            model,
            tokenizer,
            config,
        })
    }

    /// The model's configuration.
    pub fn config(&self) -> &BertConfig {
        &self.config
    }

    /// The token ids of `text` as the model sees them (checked against its vocabulary
    /// and positions).
    pub fn token_ids(&self, text: &str) -> Result<Vec<u32>, BertError> {
        let ids = self.tokenizer.encode(text)?;
        if let Some(&id) = ids
            .iter()
            .find(|&&id| id as usize >= self.config.vocab_size)
        {
            return Err(BertError::TokenOutOfVocabulary {
                id,
                vocab_size: self.config.vocab_size,
            });
        }
        if ids.len() > self.config.max_position_embeddings {
            return Err(BertError::TooManyTokens {
                tokens: ids.len(),
                max_positions: self.config.max_position_embeddings,
            });
        }
        Ok(ids)
    }

    /// The phrase embedding of `text` (`hidden_size` values).
    pub fn embed(&self, text: &str) -> Result<Vec<f32>, BertError> {
        let ids = self.token_ids(text)?;
        if ids.is_empty() {
            // a tokenizer without a [CLS] … [SEP] template and an empty phrase: the
            // mean of no token is NaN in the official code
            return Ok(vec![f32::NAN; self.config.hidden_size]);
        }
        let hidden = self.model.forward(&ids);
        let mean = hidden.mean_dim(0);
        mean.into_data()
            .convert::<f32>()
            .into_vec::<f32>()
            .map_err(|e| BertError::Backend(format!("{e:?}")))
    }
}
