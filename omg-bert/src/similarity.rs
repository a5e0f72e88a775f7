//! The phrase similarity of the official GCG recall: sklearn's `cosine_similarity` of
//! two phrase embeddings, with the embeddings of a run kept so that each phrase is
//! embedded once.

use std::collections::HashMap;
use std::sync::Mutex;

use burn::tensor::backend::Backend;
use omg_eval::EvalError;
use omg_eval::gcg::PhraseSimilarity;

use crate::PhraseEncoder;

/// Cosine similarity as sklearn's `cosine_similarity` of two row vectors: each vector
/// divided by its norm (a zero vector left as it is, so its similarity is 0), then
/// their dot product. Vectors of different lengths have no similarity (`NaN`).
pub fn cosine_similarity(a: &[f32], b: &[f32]) -> f64 {
    if a.len() != b.len() {
        return f64::NAN;
    }
    let norm = |v: &[f32]| {
        let n = v
            .iter()
            .map(|&x| f64::from(x) * f64::from(x))
            .sum::<f64>()
            .sqrt();
        if n == 0.0 { 1.0 } else { n }
    };
    let dot: f64 = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| f64::from(x) * f64::from(y))
        .sum();
    dot / (norm(a) * norm(b))
}

/// [`PhraseSimilarity`] with a BERT [`PhraseEncoder`]: the official GCG recall's
/// similarity when the encoder is `bert-base-uncased`.
pub struct BertPhraseSimilarity<B: Backend> {
    encoder: PhraseEncoder<B>,
    cache: Mutex<HashMap<String, Vec<f32>>>,
}

impl<B: Backend> BertPhraseSimilarity<B> {
    /// Similarities from `encoder`'s embeddings.
    pub fn new(encoder: PhraseEncoder<B>) -> Self {
        Self {
            encoder,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The encoder.
    pub fn encoder(&self) -> &PhraseEncoder<B> {
        &self.encoder
    }

    /// The embedding of `text`, computed once per distinct phrase.
    pub fn embedding(&self, text: &str) -> Result<Vec<f32>, EvalError> {
        if let Some(e) = self.lock().get(text) {
            return Ok(e.clone());
        }
        let e = self
            .encoder
            .embed(text)
            .map_err(|e| EvalError::Similarity(Box::new(e)))?;
        self.lock().insert(text.to_owned(), e.clone());
        Ok(e)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<f32>>> {
        // a panic while holding the lock leaves a consistent map (inserts are whole)
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl<B: Backend> PhraseSimilarity for BertPhraseSimilarity<B> {
    fn similarity(&self, reference: &str, candidate: &str) -> Result<f64, EvalError> {
        let a = self.embedding(reference)?;
        let b = self.embedding(candidate)?;
        Ok(cosine_similarity(&a, &b))
    }
}
