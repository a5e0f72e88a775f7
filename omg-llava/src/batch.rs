//! Batched generation: several tasks (each about its own photo, or the same one)
//! answered in one generation, rows left-padded as HF pads decoder-only batches, each
//! row finishing on its own end token.

use burn::tensor::{Tensor, backend::Backend};
use omg_llm::generation::Generator;

use crate::error::OmgLlavaError;
use crate::image_handle::ImageHandle;
use crate::options::GenerateOptions;
use crate::output::{Answer, MaskOutput};
use crate::pipeline::Pipeline;
use crate::stream::answer;
use crate::task::Task;

impl<B: Backend> Pipeline<B> {
    /// Answers several tasks in one generation: each task's prompt is spliced alone,
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
        let config = self.generation_config(options)?;
        let m = self.model();
        let mut rows = Vec::with_capacity(tasks.len());
        for (img, task) in tasks {
            let prompt = task.prompt()?;
            rows.push(m.prepare(img, &prompt, task.regions(), options.max_new_tokens)?);
        }
        let longest = rows.iter().map(|r| r.length).max().unwrap_or(0);
        let hidden = m.llm.config().hidden_size;
        let device = self.device();
        let padding: Vec<usize> = rows.iter().map(|r| longest - r.length).collect();
        let prompt_tokens: Vec<usize> = rows.iter().map(|r| r.prompt_tokens).collect();
        let padded: Vec<Tensor<B, 3>> = rows
            .into_iter()
            .zip(&padding)
            .map(|(row, &pad)| {
                if pad == 0 {
                    row.embeds
                } else {
                    Tensor::cat(vec![Tensor::zeros([1, pad, hidden], device), row.embeds], 1)
                }
            })
            .collect();
        let embeds = Tensor::cat(padded, 0);
        // as `stream`: the repetition penalty sees BOS and the new tokens only
        let bos = vec![vec![m.tokens.bos]; tasks.len()];
        let mut generator = Generator::from_embeds_padded(&m.llm, embeds, padding, bos, config)?;
        let mut tokens = vec![Vec::new(); tasks.len()];
        let mut running = vec![true; tasks.len()];
        while let Some(step) = generator.next_step()? {
            for (row, &t) in step.tokens.iter().enumerate() {
                if running[row] {
                    tokens[row].push(t);
                }
            }
            running = step.finished.iter().map(|f| !f).collect();
        }
        let captured = generator.captured();
        tasks
            .iter()
            .zip(tokens)
            .zip(prompt_tokens)
            .enumerate()
            .map(|(row, (((img, _), tokens), prompt_tokens))| {
                let states: Vec<Tensor<B, 1>> = captured
                    .iter()
                    .filter(|c| c.row == row)
                    .map(|c| c.hidden.clone())
                    .collect();
                let masks: Vec<MaskOutput> = if states.is_empty() {
                    Vec::new()
                } else {
                    m.decode_seg(img, Tensor::stack::<2>(states, 0))?
                };
                answer(m, tokens, masks, prompt_tokens)
            })
            .collect()
    }
}
