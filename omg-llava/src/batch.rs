//! Batched generation: several tasks (each about its own photo, or the same one)
//! answered in one generation, rows left-padded as HF pads decoder-only batches, each
//! row finishing on its own end token.

use burn::tensor::backend::Backend;

use crate::batch_stream::BatchRow;
use crate::error::OmgLlavaError;
use crate::image_handle::ImageHandle;
use crate::options::GenerateOptions;
use crate::output::Answer;
use crate::pipeline::Pipeline;
use crate::task::Task;

impl<B: Backend> Pipeline<B> {
    /// Answers several tasks in one generation ([`stream_batch`](Self::stream_batch)
    /// with the same options for every row, collected): each task's prompt is spliced alone,
    /// the rows are left-padded to the longest and decoded together (each step one
    /// forward pass for every row); a row that emits its end token stops while the
    /// others go on. One answer per task, in order.
    ///
    /// With greedy decoding each answer equals [`run`](Self::run) of its task alone, up
    /// to float rounding (padding moves a row's RoPE positions, which leaves its
    /// attention scores as they are). With sampling the rows draw from one random
    /// generator, so a row's samples depend on the batch (as in HF).
    ///
    /// # Errors
    ///
    /// Those of [`run`](Self::run) for any task (the first bad one is named by its
    /// error; nothing is generated).
    pub fn run_batch(
        &self,
        tasks: &[(&ImageHandle<B>, &Task)],
        options: &GenerateOptions,
    ) -> Result<Vec<Answer>, OmgLlavaError> {
        if tasks.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<BatchRow<'_, B>> = tasks
            .iter()
            .map(|&(image, task)| BatchRow {
                image,
                task,
                options,
            })
            .collect();
        self.stream_batch(&rows)?.finish()?.into_iter().collect()
    }
}
