//! The open-vocabulary classifier: CLIP text embeddings of the class names (several
//! prompts per class), compared by cosine similarity with the query's embedding.

use burn::tensor::{Tensor, TensorData, backend::Backend};

use crate::EncoderError;

/// The class-embedding table `[K+1, P, D]`: the `K` classes of the OV file (each with
/// `P` prototypes of width `D`, unit norm) and an all-zero background row appended, as
/// `Mask2FormerVideoSemSamHead` builds its `cls_embed` buffer.
#[derive(Debug, Clone)]
pub struct ClassEmbedding<B: Backend> {
    table: Tensor<B, 2>,
    classes: usize,
    prototypes: usize,
    dim: usize,
}

impl<B: Backend> ClassEmbedding<B> {
    /// From the content of the official class-embedding file, `(K, P, D)` floats
    /// (e.g. `convnext_large_d_320_CocoPanopticOVDataset.pth`). Rows must have unit
    /// norm (the official code asserts it).
    pub fn from_ov_file(data: TensorData, device: &B::Device) -> Result<Self, EncoderError> {
        if data.shape.num_dims() != 3 {
            return Err(EncoderError::Input(format!(
                "class embeddings must be (classes, prototypes, dim), got {:?}",
                data.shape
            )));
        }
        let [k, p, d] = [data.shape[0], data.shape[1], data.shape[2]];
        let mut values: Vec<f32> = data
            .convert::<f32>()
            .into_vec::<f32>()
            .map_err(|e| EncoderError::Input(format!("class embeddings: {e:?}")))?;
        for (i, row) in values.chunks(d).enumerate() {
            let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt();
            if (norm - 1.0).abs() > 1e-3 {
                return Err(EncoderError::Input(format!(
                    "class embedding row {} (class {}, prototype {}) has norm {norm}, expected 1",
                    i,
                    i / p,
                    i % p
                )));
            }
        }
        values.extend(std::iter::repeat_n(0.0, p * d));
        Ok(Self {
            table: Tensor::from_data(TensorData::new(values, [(k + 1) * p, d]), device),
            classes: k,
            prototypes: p,
            dim: d,
        })
    }

    /// From the head's `cls_embed` buffer as the official module holds it, `(D, K+1, P)`
    /// with the all-zero background class last (the parity fixtures store this form).
    pub fn from_buffer(data: TensorData, device: &B::Device) -> Result<Self, EncoderError> {
        if data.shape.num_dims() != 3 || data.shape[1] < 2 {
            return Err(EncoderError::Input(format!(
                "a cls_embed buffer must be (dim, classes + 1, prototypes), got {:?}",
                data.shape
            )));
        }
        let [d, k1, p] = [data.shape[0], data.shape[1], data.shape[2]];
        let values: Vec<f32> = data
            .convert::<f32>()
            .into_vec::<f32>()
            .map_err(|e| EncoderError::Input(format!("cls_embed buffer: {e:?}")))?;
        // (D, K+1, P) → (K, P, D) without the background class.
        let mut ov = Vec::with_capacity((k1 - 1) * p * d);
        for k in 0..k1 - 1 {
            for j in 0..p {
                ov.extend((0..d).map(|c| values[(c * k1 + k) * p + j]));
            }
        }
        let background_is_zero =
            (0..d).all(|c| (0..p).all(|j| values[(c * k1 + k1 - 1) * p + j] == 0.0));
        if !background_is_zero {
            return Err(EncoderError::Input(
                "the last class of a cls_embed buffer must be the all-zero background".into(),
            ));
        }
        Self::from_ov_file(TensorData::new(ov, [k1 - 1, p, d]), device)
    }

    /// Number of classes `K` (without background).
    pub fn num_classes(&self) -> usize {
        self.classes
    }

    /// Width `D` of the embeddings.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// `exp(logit_scale) · max_p cos(e, T[k, p])` for embeddings `e` `[B, Q, D]` →
    /// `[B, Q, K+1]` (background column 0).
    pub fn logits(&self, e: Tensor<B, 3>, logit_scale: f32) -> Tensor<B, 3> {
        let [b, q, d] = e.dims();
        let norm = e.clone().square().sum_dim(2).sqrt().clamp_min(1e-12);
        let e = e / norm;
        let sims = e
            .reshape([b * q, d])
            .matmul(self.table.clone().transpose())
            .reshape([b, q, self.classes + 1, self.prototypes]);
        sims.max_dim(3).reshape([b, q, self.classes + 1]) * logit_scale.exp()
    }
}
