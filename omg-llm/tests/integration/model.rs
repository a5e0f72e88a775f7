//! Model-level tests on small random InternLM2 models (no fixtures needed).

use burn::backend::Flex;
use burn::tensor::Tensor;
use omg_llm::generation::{GenerationConfig, Generator, argmax, generate};
use omg_llm::{ForwardOptions, InternLM2, InternLM2Config, LlmError, LogitsFor};

use crate::common;

use common::max_diff;

type B = Flex;

/// The random model of `config` that `seed` gives, the same in every run: the backend's
/// generator is seeded and every (lazily made) weight drawn under one lock, so the tests
/// running beside this one cannot draw from it in between.
fn seeded_model(config: &InternLM2Config, seed: u64) -> InternLM2<B> {
    use burn::module::{Module, ModuleVisitor, Param};

    /// Makes every float weight (drawn on first use).
    struct Draw;
    impl ModuleVisitor<B> for Draw {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            let _ = param.val();
        }
    }
    static DRAWS: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _draws = DRAWS.lock().unwrap_or_else(|e| e.into_inner());
    let device = Default::default();
    <B as burn::tensor::backend::Backend>::seed(&device, seed);
    let model = InternLM2::<B>::init(config, &device).unwrap();
    model.visit(&mut Draw);
    model
}

fn tiny_config() -> InternLM2Config {
    InternLM2Config {
        hidden_size: 64,
        num_hidden_layers: 2,
        num_attention_heads: 4,
        num_key_value_heads: Some(2),
        intermediate_size: 176,
        vocab_size: 97,
        ..InternLM2Config::internlm2_chat_7b()
    }
}

/// Sampling at temperature 1 with no top-k or top-p: every token is reachable.
fn untruncated(seed: u64) -> omg_llm::generation::Sampling {
    omg_llm::generation::Sampling::Sample {
        temperature: 1.0,
        top_k: 0,
        top_p: 1.0,
        seed,
    }
}

fn logits_of(out: omg_llm::ForwardOutput<B>) -> Vec<f32> {
    out.logits.unwrap().into_data().into_vec::<f32>().unwrap()
}

#[test]
fn a_7b_shaped_config_validates_and_builds_lazily() {
    let config = InternLM2Config::internlm2_chat_7b();
    config.validate().unwrap();
    // Parameters are lazy: building the 7.7 B-parameter model allocates nothing.
    let model = InternLM2::<B>::init(&config, &Default::default()).unwrap();
    assert_eq!(model.layers.len(), 32);
    assert_eq!(model.layers[31].attention.wqkv.dims(), [4096, 6144]);
    assert_eq!(model.layers[0].feed_forward.w2.dims(), [14336, 4096]);
    assert_eq!(model.output.dims(), [4096, 92544]);
    assert!(!model.output.float_weight().unwrap().is_initialized());
    // the same model with int8 linears: 7.7 B parameters in about 8.7 GB
    let int8 =
        InternLM2::<B>::init_with(&config, omg_llm::LlmWeights::Int8, &Default::default()).unwrap();
    assert_eq!(
        int8.layers[0].feed_forward.w1.bits(),
        Some(omg_kernels::QuantBits::Int8)
    );
    assert!(int8.output.float_weight().is_none());
    let gb = int8.parameter_bytes() as f64 / 1e9;
    assert!((8.0..9.5).contains(&gb), "{gb} GB");
    // bf16 linears, f32 embeddings: ≈ 16.2 GB, for a 24 GB GPU
    let bf16 =
        InternLM2::<B>::init_with(&config, omg_llm::LlmWeights::Bf16, &Default::default()).unwrap();
    assert_eq!(
        bf16.layers[0].feed_forward.w1.storage(),
        omg_llm::LinearStorage::Float(burn::tensor::FloatDType::BF16)
    );
    assert!(!bf16.output.float_weight().unwrap().is_initialized());
    let gb = bf16.parameter_bytes() as f64 / 1e9;
    assert!((15.5..17.0).contains(&gb), "{gb} GB");
}

#[test]
fn incremental_decoding_matches_the_full_forward_pass() {
    let model = seeded_model(&tiny_config(), 0);
    let ids: Vec<u32> = vec![5, 17, 3, 90, 44, 2, 61, 8, 12, 33, 70, 1, 0, 96];
    let (batch, t) = (2, 7);
    let full = logits_of(
        model
            .forward_ids(&ids, batch, None, ForwardOptions::default())
            .unwrap(),
    );
    let vocab = 97;
    // Prefill 3 positions, then one at a time.
    let mut cache = model.new_cache(batch, t);
    let prefix: Vec<u32> = (0..batch)
        .flat_map(|b| ids[b * t..b * t + 3].to_vec())
        .collect();
    let pre = logits_of(
        model
            .forward_ids(&prefix, batch, Some(&mut cache), ForwardOptions::default())
            .unwrap(),
    );
    for b in 0..batch {
        let expect = &full[b * t * vocab..(b * t + 3) * vocab];
        let got = &pre[b * 3 * vocab..(b + 1) * 3 * vocab];
        assert!(max_diff(got, expect) < 1e-5);
    }
    for pos in 3..t {
        let step: Vec<u32> = (0..batch).map(|b| ids[b * t + pos]).collect();
        let inc = logits_of(
            model
                .forward_ids(&step, batch, Some(&mut cache), ForwardOptions::default())
                .unwrap(),
        );
        for b in 0..batch {
            let expect = &full[(b * t + pos) * vocab..(b * t + pos + 1) * vocab];
            let d = max_diff(&inc[b * vocab..(b + 1) * vocab], expect);
            assert!(d < 1e-5, "position {pos} row {b}: {d}");
        }
    }
    assert_eq!(cache.len(), t);
    // The cache is full: one more position is an error, not a panic.
    let err = model
        .forward_ids(&[1, 2], batch, Some(&mut cache), ForwardOptions::default())
        .unwrap_err();
    assert!(
        err.to_string().contains("exceeds the KV cache capacity"),
        "{err}"
    );
}

#[test]
fn greedy_generation_agrees_with_teacher_forcing() {
    let model = seeded_model(&tiny_config(), 0);
    let prompt = vec![4u32, 9, 23, 1];
    let mut config = GenerationConfig::greedy(6);
    config.eos_token_id = None;
    config.keep_step_logits = true;
    let out = generate(&model, &prompt, 1, config).unwrap();
    let new = &out.tokens[0];
    assert_eq!(new.len(), 6);
    // Re-run the whole sequence without a cache: each generated token is the
    // arg-max of the logits at the previous position.
    let mut seq = prompt.clone();
    seq.extend_from_slice(&new[..5]);
    let full = logits_of(
        model
            .forward_ids(&seq, 1, None, ForwardOptions::default())
            .unwrap(),
    );
    for (k, &tok) in new.iter().enumerate() {
        let pos = prompt.len() - 1 + k;
        let row = &full[pos * 97..(pos + 1) * 97];
        assert_eq!(argmax(row), tok, "step {k}");
        assert!(max_diff(row, &out.step_logits[k][0]) < 1e-5);
    }
}

#[test]
fn generation_stops_on_stop_ids_and_captures_hidden_states() {
    let model = seeded_model(&tiny_config(), 0);
    let prompt = vec![4u32, 9, 23];
    let mut probe = GenerationConfig::greedy(4);
    probe.eos_token_id = None;
    let free = generate(&model, &prompt, 1, probe.clone()).unwrap().tokens[0].clone();

    // Stop on the second generated token.
    let mut stop = probe.clone();
    stop.stop_token_ids = vec![free[1]];
    let stopped = generate(&model, &prompt, 1, stop).unwrap().tokens[0].clone();
    let first_stop = free.iter().position(|&t| t == free[1]).unwrap();
    assert_eq!(stopped, free[..=first_stop].to_vec());

    // Force token 50 at index 1 and capture its hidden state: it must equal the
    // final-norm state of a full forward pass at that position.
    let mut forced = probe.clone();
    forced.forced_tokens.insert(1, 50);
    forced.capture_hidden_for = vec![50];
    // while streaming, the state is there as soon as the token was fed back
    let mut streaming = Generator::from_ids(&model, &prompt, 1, forced.clone()).unwrap();
    for index in 0..3 {
        streaming.next_step().unwrap().unwrap();
        let seen: Vec<usize> = streaming.captured().iter().map(|c| c.index).collect();
        assert_eq!(seen, if index == 0 { vec![] } else { vec![1] });
    }
    let out = generate(&model, &prompt, 1, forced).unwrap();
    assert_eq!(out.tokens[0][1], 50);
    let captured: Vec<_> = out.captured.iter().filter(|c| c.index == 1).collect();
    assert_eq!(captured.len(), 1);
    let mut seq = prompt.clone();
    seq.extend_from_slice(&out.tokens[0][..2]);
    let full = model
        .forward_ids(
            &seq,
            1,
            None,
            ForwardOptions {
                logits: LogitsFor::None,
                output_hidden_states: false,
            },
        )
        .unwrap();
    let h = 64;
    let last = full
        .last_hidden_state
        .slice([0..1, seq.len() - 1..seq.len(), 0..h])
        .reshape([h]);
    let d = max_diff(
        &captured[0]
            .hidden
            .clone()
            .into_data()
            .into_vec::<f32>()
            .unwrap(),
        &last.into_data().into_vec::<f32>().unwrap(),
    );
    assert!(d < 1e-5, "{d}");
}

#[test]
fn streaming_yields_the_same_tokens_and_sampling_is_seeded() {
    let model = seeded_model(&tiny_config(), 0);
    let prompt = vec![7u32, 3, 11];
    let config = GenerationConfig::demo_sampling(5, 42);
    let a = generate(&model, &prompt, 1, config.clone()).unwrap().tokens;
    let streamed: Vec<u32> = Generator::from_ids(&model, &prompt, 1, config)
        .unwrap()
        .map(|s| s.unwrap().tokens[0])
        .collect();
    assert_eq!(a[0], streamed);
    // T = 1, no truncation: a different seed gives a different sequence here.
    let hot = |seed| {
        let mut c = GenerationConfig::demo_sampling(8, seed);
        c.eos_token_id = None;
        c.sampling = untruncated(seed);
        generate(&model, &prompt, 1, c).unwrap().tokens[0].clone()
    };
    assert_eq!(hot(1), hot(1));
    assert_ne!(hot(1), hot(2));
}

#[test]
fn bad_inputs_are_errors() {
    let model = seeded_model(&tiny_config(), 0);
    let e = model
        .forward_ids(&[1, 200], 1, None, ForwardOptions::default())
        .unwrap_err();
    assert!(e.to_string().contains("token id 200"), "{e}");
    assert!(
        model
            .forward_ids(&[1, 2, 3], 2, None, ForwardOptions::default())
            .is_err()
    );
    let wrong = Tensor::<B, 3>::zeros([1, 2, 32], &Default::default());
    assert!(
        model
            .forward_embeds(wrong, None, ForwardOptions::default())
            .is_err()
    );
    assert!(generate(&model, &[1, 2], 1, GenerationConfig::greedy(0)).is_err());
    // prompt rows: none, no ids, or ids that do not split into equal rows
    for (ids, batch) in [(&[1u32, 2][..], 0), (&[][..], 1), (&[1, 2, 3][..], 2)] {
        let e = generate(&model, ids, batch, GenerationConfig::greedy(2)).unwrap_err();
        assert!(e.to_string().contains("equal non-empty rows"), "{e}");
    }
    // sampling settings: each bound, its first bad value refused, the edge accepted
    let sampled = |temperature: f32, top_p: f32, repetition_penalty: f32| {
        let mut c = GenerationConfig::demo_sampling(2, 0);
        c.repetition_penalty = repetition_penalty;
        c.sampling = omg_llm::generation::Sampling::Sample {
            temperature,
            top_k: 0,
            top_p,
            seed: 0,
        };
        generate(&model, &[1, 2], 1, c).map(|_| ())
    };
    for t in [0.0, -1.0, f32::INFINITY, f32::NAN] {
        let e = sampled(t, 1.0, 1.0).unwrap_err();
        assert!(
            e.to_string().contains("temperature must be positive"),
            "{e}"
        );
    }
    for p in [0.0, -0.1, 1.0001, f32::NAN] {
        let e = sampled(1.0, p, 1.0).unwrap_err();
        assert!(e.to_string().contains("top_p must be in (0, 1]"), "{e}");
    }
    for r in [0.0, -1.0, f32::INFINITY, f32::NAN] {
        let e = sampled(1.0, 1.0, r).unwrap_err();
        assert!(
            e.to_string()
                .contains("repetition_penalty must be positive"),
            "{e}"
        );
    }
    sampled(1e-3, 1.0, 1e-3).unwrap();
    sampled(1.0, 1e-3, 1.0).unwrap();
    // the official demo's settings
    assert_eq!(
        GenerationConfig::demo_sampling(7, 5).sampling,
        omg_llm::generation::Sampling::Sample {
            temperature: 0.1,
            top_k: 40,
            top_p: 0.75,
            seed: 5
        }
    );
    // embed checks its ids on the device: the last row is fine, one past it and a
    // negative id are typed errors (not a panic on the CPU, not garbage on a GPU)
    let ids = |v: Vec<i64>| {
        let n = v.len();
        Tensor::<B, 2, burn::tensor::Int>::from_data(
            burn::tensor::TensorData::new(v, [1, n]),
            &Default::default(),
        )
    };
    let vocab = tiny_config().vocab_size as i64;
    assert_eq!(
        model.embed(ids(vec![0, vocab - 1])).unwrap().dims(),
        [1, 2, 64]
    );
    for bad in [vec![1, vocab], vec![-1, 2]] {
        match model.embed(ids(bad)) {
            Err(LlmError::Input(m)) => assert!(m.contains("outside the embedding table"), "{m}"),
            other => panic!("{:?}", other.map(|t| t.dims())),
        }
    }
}

#[test]
fn the_comparison_helper_sees_nan() {
    assert_eq!(max_diff(&[f32::NAN, f32::NAN], &[1.0, 2.0]), f32::INFINITY);
    assert_eq!(max_diff(&[1.0, f32::NAN], &[1.0, 2.0]), f32::INFINITY);
    assert_eq!(max_diff(&[f32::NAN, 1.0], &[f32::NAN, 1.5]), 0.5);
    assert_eq!(max_diff(&[f32::INFINITY], &[f32::INFINITY]), 0.0);
}

/// Prompts of different lengths generated together, left-padded: each row's logits
/// and tokens are those of the row generated alone (no NaN from the padding queries),
/// the `[SEG]`-style hidden states land on their rows, and a row that emits a stop id
/// finishes while the other goes on.
#[test]
fn left_padded_rows_generate_as_they_would_alone() {
    // one fixed random model: with others, row 0 may emit the stop id before the token
    // whose state is captured, and there is nothing to capture
    let model = seeded_model(&tiny_config(), 4);
    let device = Default::default();
    let prompts: [Vec<u32>; 3] = [
        vec![4, 9, 23, 1, 17, 60, 2],
        vec![5, 88],
        vec![31, 7, 7, 40],
    ];
    let embed = |ids: &[u32]| {
        let data: Vec<i64> = ids.iter().map(|&i| i64::from(i)).collect();
        model.embed(Tensor::from_data(
            burn::tensor::TensorData::new(data, [1, ids.len()]),
            &device,
        ))
    };
    let mut config = GenerationConfig::greedy(6);
    config.eos_token_id = None;
    config.keep_step_logits = true;
    // alone
    let alone: Vec<_> = prompts
        .iter()
        .map(|p| {
            Generator::from_embeds(&model, embed(p).unwrap(), vec![vec![]], config.clone())
                .unwrap()
                .run()
                .unwrap()
        })
        .collect();
    // the token row 1 emits second finishes it early in the batch; capture the states
    // of the token row 0 emits third
    let stop = alone[1].tokens[0][1];
    let capture = alone[0].tokens[0][2];
    let mut batch_config = config.clone();
    batch_config.stop_token_ids = vec![stop];
    batch_config.capture_hidden_for = vec![capture];
    let pad = (0..97).find(|&t| t != capture && t != stop).unwrap();
    batch_config.pad_token_id = pad;
    let longest = prompts.iter().map(Vec::len).max().unwrap();
    let padding: Vec<usize> = prompts.iter().map(|p| longest - p.len()).collect();
    let rows: Vec<Tensor<B, 3>> = prompts
        .iter()
        .zip(&padding)
        .map(|(p, &pad)| {
            let row = embed(p).unwrap();
            if pad == 0 {
                row
            } else {
                Tensor::cat(vec![Tensor::zeros([1, pad, 64], &device), row], 1)
            }
        })
        .collect();
    let out = Generator::from_embeds_padded(
        &model,
        Tensor::cat(rows, 0),
        padding,
        vec![vec![]; 3],
        batch_config,
    )
    .unwrap()
    .run()
    .unwrap();
    // a row runs until it emits the stop id (row 1 at its second token at the latest)
    let steps: Vec<usize> = alone
        .iter()
        .map(|a| {
            a.tokens[0]
                .iter()
                .position(|&t| t == stop)
                .map_or(6, |k| k + 1)
        })
        .collect();
    assert!(steps[1] <= 2);
    assert_eq!(out.tokens[0].len(), *steps.iter().max().unwrap());
    for (row, a) in alone.iter().enumerate() {
        for (k, &got) in out.tokens[row].iter().enumerate() {
            if k < steps[row] {
                assert_eq!(got, a.tokens[0][k], "row {row} step {k}");
                let d = max_diff(&out.step_logits[k][row], &a.step_logits[k][0]);
                assert!(d < 1e-4, "row {row} step {k}: logits differ by {d}");
            } else {
                assert_eq!(got, pad, "row {row} is padded after it finished");
            }
        }
    }
    assert!(out.captured.iter().any(|c| c.row == 0));
    for c in &out.captured {
        assert_eq!(out.tokens[c.row][c.index], capture);
    }
    // a padding count that leaves a row without a token is an error
    let bad = Generator::from_embeds_padded(
        &model,
        Tensor::zeros([2, 3, 64], &device),
        vec![0, 3],
        vec![vec![]; 2],
        config,
    );
    assert!(matches!(bad, Err(LlmError::Input(_))));
}

/// Rows of a sampled batch share one seeded generator, drawn in row order at each step
/// (as HF's `torch.multinomial` over the batch), and a stopped row draws nothing: each
/// token is the softmax's inverse CDF at the next uniform draw of `StdRng(seed)`.
#[test]
fn sampled_rows_share_one_generator_in_row_order() {
    use rand::{RngExt, SeedableRng, rngs::StdRng};

    let model = seeded_model(&tiny_config(), 5);
    let seed = 9;
    let mut config = GenerationConfig::greedy(6);
    config.eos_token_id = None;
    config.keep_step_logits = true;
    config.sampling = untruncated(seed);
    let prompts = [7u32, 3, 11, 50, 2, 64];
    let mut generator = Generator::from_ids(&model, &prompts, 2, config).unwrap();
    let mut steps = Vec::new();
    while let Some(step) = generator.next_step().unwrap() {
        if step.index == 1 {
            generator.stop_row(1);
        }
        steps.push(step);
    }
    assert_eq!(steps.len(), 6);

    let inverse_cdf = |logits: &[f32], u: f32| {
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let exps: Vec<f32> = logits.iter().map(|&s| (s - max).exp()).collect();
        let sum: f32 = exps.iter().sum();
        let mut acc = 0.0f32;
        for (i, e) in exps.iter().enumerate() {
            acc += e / sum;
            if u < acc {
                return i as u32;
            }
        }
        exps.len() as u32 - 1
    };
    let mut rng = StdRng::seed_from_u64(seed);
    let mut draws = 0;
    for step in &steps {
        let rows = step.logits.as_ref().unwrap().iter().zip(&step.tokens);
        for (row, (logits, &token)) in rows.enumerate() {
            if row == 1 && step.index >= 2 {
                // stopped after step 1: padded, and no draw spent on it
                assert_eq!(token, 2, "step {}", step.index);
                continue;
            }
            let u: f32 = rng.random();
            draws += 1;
            assert_eq!(
                token,
                inverse_cdf(logits, u),
                "step {} row {row}",
                step.index
            );
        }
    }
    assert_eq!(draws, 2 * 2 + 4);
    // the rows' draws interleave: row 0 alone (its own generator) takes a different path
    let mut alone_config = GenerationConfig::greedy(6);
    alone_config.eos_token_id = None;
    alone_config.sampling = untruncated(seed);
    let alone = generate(&model, &prompts[..3], 1, alone_config)
        .unwrap()
        .tokens;
    let batched: Vec<u32> = steps.iter().map(|s| s.tokens[0]).collect();
    assert_ne!(alone[0], batched);
}
