//! Batched generation: several prompts (each about its own image, or the same one)
//! answered in one generation, rows left-padded as HF pads decoder-only batches, each
//! row finishing on its own end token.

use burn::tensor::{Tensor, backend::Backend};
use omg_llm::generation::Generator;

use crate::error::OmgLlavaError;
use crate::image_handle::ImageHandle;
use crate::options::GenerateOptions;
use crate::output::{Answer, MaskOutput};
use crate::pipeline::Pipeline;
use crate::region::Region;
use crate::stream::answer;
use crate::template::Prompt;

/// One prompt of [`Pipeline::answer_batch`]: a full prompt (template applied, see
/// [`crate::Conversation::prompt_for`]), the image it is about, and the regions its
/// placeholders take in order.
#[derive(Clone)]
pub struct BatchPrompt<'a, B: Backend> {
    /// The encoded image.
    pub image: &'a ImageHandle<B>,
    /// The prompt.
    pub prompt: Prompt,
    /// The regions of its `<region>` / `<mark>` placeholders.
    pub regions: Vec<Region>,
}

impl<'a, B: Backend> BatchPrompt<'a, B> {
    /// A prompt about `image` without regions.
    pub fn new(image: &'a ImageHandle<B>, prompt: impl Into<Prompt>) -> Self {
        Self {
            image,
            prompt: prompt.into(),
            regions: Vec::new(),
        }
    }
}

impl<B: Backend> Pipeline<B> {
    /// Answers several prompts in one generation: the prompts are spliced one by one,
    /// left-padded to the longest, and decoded together (each step one forward pass
    /// for every row); a row that emits its end token stops while the others go on.
    ///
    /// With greedy decoding each answer equals [`answer_prompt`](Self::answer_prompt)
    /// on its own prompt, up to float rounding (padding moves a row's RoPE positions,
    /// which leaves its attention scores as they are). With sampling the rows draw from
    /// one random generator, so a row's samples depend on the batch (as in HF).
    ///
    /// # Errors
    ///
    /// Those of [`answer_prompt`](Self::answer_prompt) for any row (the first bad row
    /// is named by its error; nothing is generated).
    pub fn answer_batch(
        &self,
        prompts: &[BatchPrompt<'_, B>],
        options: &GenerateOptions,
    ) -> Result<Vec<Answer>, OmgLlavaError> {
        if prompts.is_empty() {
            return Ok(Vec::new());
        }
        let m = self.model();
        let rows = prompts
            .iter()
            .map(|p| self.prompt_embeds(p.image, &p.prompt, &p.regions, options))
            .collect::<Result<Vec<_>, _>>()?;
        let longest = rows.iter().map(|r| r.dims()[1]).max().unwrap_or(0);
        let hidden = m.llm.config().hidden_size;
        let device = self.device();
        let padding: Vec<usize> = rows.iter().map(|r| longest - r.dims()[1]).collect();
        let padded: Vec<Tensor<B, 3>> = rows
            .into_iter()
            .zip(&padding)
            .map(|(row, &pad)| {
                if pad == 0 {
                    row
                } else {
                    Tensor::cat(vec![Tensor::zeros([1, pad, hidden], device), row], 1)
                }
            })
            .collect();
        let embeds = Tensor::cat(padded, 0);
        let config = self.generation_config(options);
        // as `stream_prompt`: the repetition penalty sees BOS and the new tokens only
        let bos = vec![vec![m.special.bos]; prompts.len()];
        let mut generator = Generator::from_embeds_padded(&m.llm, embeds, padding, bos, config)?;
        let mut tokens = vec![Vec::new(); prompts.len()];
        let mut running = vec![true; prompts.len()];
        while let Some(step) = generator.next_step()? {
            for (row, &t) in step.tokens.iter().enumerate() {
                if running[row] {
                    tokens[row].push(t);
                }
            }
            running = step.finished.iter().map(|f| !f).collect();
        }
        let captured = generator.captured();
        prompts
            .iter()
            .zip(tokens)
            .enumerate()
            .map(|(row, (p, tokens))| {
                let states: Vec<Tensor<B, 1>> = captured
                    .iter()
                    .filter(|c| c.row == row)
                    .map(|c| c.hidden.clone())
                    .collect();
                let masks: Vec<MaskOutput> = if states.is_empty() {
                    Vec::new()
                } else {
                    m.decode_seg(p.image, Tensor::stack::<2>(states, 0))?
                };
                answer(m, tokens, masks)
            })
            .collect()
    }
}
