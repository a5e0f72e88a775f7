//! Stages `llm` (InternLM2 forward, hidden states, embeddings path, greedy
//! generation) and `checkpoint_format` (the released OMG-LLaVA `.pth` layout with
//! LoRA merged).

use burn::tensor::{Tensor, TensorData, backend::Backend};
use omg_checkpoint::{PrefixView, TensorSource};
use omg_llm::LlmWeights;
use omg_llm::generation::{GenerationConfig, Generator};
use omg_llm::loader::{LoraOptions, PeftRelease, load_hf, load_hf_peft};
use omg_llm::{ForwardOptions, ForwardOutput, InternLM2, InternLM2Config, LogitsFor};

use crate::ParityError;
use crate::checker::host;
use crate::compare::{Comparison, compare_exact, compare_f32};
use crate::fixture::{Fixture, Weights};
use crate::tolerance::Tolerances;

fn check<B: Backend, const D: usize>(
    fx: &Fixture,
    key: &str,
    actual: Tensor<B, D>,
    tol: crate::compare::Tolerance,
) -> Result<Comparison, ParityError> {
    let (shape, values) = host(actual);
    let (eshape, evalues) = fx.f32(key)?;
    Ok(compare_f32(
        key,
        (&shape, &values),
        (&eshape, &evalues),
        tol,
    ))
}

fn ids_u32(fx: &Fixture, key: &str) -> Result<(Vec<usize>, Vec<u32>), ParityError> {
    let (shape, ids) = fx.i64(key)?;
    let ids = ids
        .into_iter()
        .map(|i| u32::try_from(i).map_err(|_| fx.malformed(format!("`{key}` holds id {i}"))))
        .collect::<Result<_, _>>()?;
    Ok((shape, ids))
}

/// Compares a forward pass's logits, final-norm and per-layer hidden states.
fn check_forward<B: Backend>(
    fx: &Fixture,
    out: ForwardOutput<B>,
    keys: (&str, &str, Option<&str>),
    tols: &Tolerances,
    results: &mut Vec<Comparison>,
) -> Result<(), ParityError> {
    let (logits_key, hidden_key, layers_prefix) = keys;
    if let Some(logits) = out.logits {
        results.push(check(fx, logits_key, logits, tols.float("logits"))?);
    }
    results.push(check(
        fx,
        hidden_key,
        out.last_hidden_state,
        tols.float("hidden"),
    )?);
    if let Some(prefix) = layers_prefix {
        for (i, h) in out.hidden_states.into_iter().enumerate() {
            let key = format!("{prefix}{i}");
            if fx.has(&key) {
                results.push(check(fx, &key, h, tols.float("hidden"))?);
            }
        }
    }
    Ok(())
}

/// Greedy generation compared with `ids_key` (new ids `[B, n]`, optionally
/// preceded by a BOS column that HF prepends when generating from embeddings) and
/// the raw step logits `logits_key` `[B, n, V]`.
fn check_generation<B: Backend>(
    fx: &Fixture,
    generator: Generator<'_, B>,
    (ids_key, logits_key, bos_prefix): (&str, &str, Option<u32>),
    tols: &Tolerances,
    results: &mut Vec<Comparison>,
) -> Result<(), ParityError> {
    let out = generator.run()?;
    let (_, expected) = ids_u32(fx, ids_key)?;
    let actual: Vec<u32> = out
        .tokens
        .iter()
        .flat_map(|row| bos_prefix.into_iter().chain(row.iter().copied()))
        .collect();
    results.push(compare_exact(ids_key, &actual, &expected));
    if fx.has(logits_key) {
        // [step][row][vocab] → [row][step][vocab]
        let (rows, steps) = (out.tokens.len(), out.step_logits.len());
        let vocab = out.step_logits.first().map_or(0, |s| s[0].len());
        let mut values = Vec::with_capacity(rows * steps * vocab);
        for r in 0..rows {
            for step in &out.step_logits {
                values.extend_from_slice(&step[r]);
            }
        }
        let (eshape, evalues) = fx.f32(logits_key)?;
        results.push(compare_f32(
            logits_key,
            (&[rows, steps, vocab], &values),
            (&eshape, &evalues),
            tols.float("logits"),
        ));
    }
    Ok(())
}

fn generation_config(fx: &Fixture, config: &InternLM2Config, steps: usize) -> GenerationConfig {
    let _ = fx;
    GenerationConfig {
        eos_token_id: Some(config.eos_token_id),
        pad_token_id: config.pad_token_id,
        keep_step_logits: true,
        ..GenerationConfig::greedy(steps)
    }
}

/// Stage `llm`.
pub fn run_llm<B: Backend>(
    fx: &Fixture,
    device: &B::Device,
) -> Result<Vec<Comparison>, ParityError> {
    let config_json = fx
        .json("/config")
        .ok_or_else(|| fx.malformed("the llm sidecar has no `config`"))?;
    let config = InternLM2Config::from_json_str(&config_json.to_string())?;
    let tols = Tolerances::from_sidecar(fx.json("/tolerance"));
    let model: InternLM2<B> = load_hf(&config, &Weights(&fx.tensors), device)?;
    let mut results = Vec::new();
    let all = ForwardOptions {
        logits: LogitsFor::All,
        output_hidden_states: true,
    };

    let (shape, ids) = ids_u32(fx, "in.input_ids")?;
    let out = model.forward_ids(&ids, shape[0], None, all)?;
    check_forward(
        fx,
        out,
        (
            "out.logits",
            "out.last_hidden_state",
            Some("out.hidden_states."),
        ),
        &tols,
        &mut results,
    )?;

    // Incremental decoding (KV cache, one position at a time) against the full pass.
    let kv = kv_cache_consistency(&model, &ids, shape[0])?;
    let tol = tols.float("logits");
    results.push(Comparison {
        key: "kv_cache_vs_full_forward(in.input_ids)".into(),
        max_abs_diff: kv,
        tolerance: tol,
        pass: match tol {
            crate::compare::Tolerance::Abs(t) => kv <= t,
            _ => kv <= 1e-4,
        },
        note: None,
    });

    if fx.has("in.inputs_embeds") {
        let (eshape, evalues) = fx.f32("in.inputs_embeds")?;
        let embeds = Tensor::<B, 3>::from_data(
            TensorData::new(evalues, [eshape[0], eshape[1], eshape[2]]),
            device,
        );
        let out = model.forward_embeds(embeds.clone(), None, all)?;
        check_forward(
            fx,
            out,
            ("out.embeds_logits", "out.embeds_last_hidden_state", None),
            &tols,
            &mut results,
        )?;
        if fx.has("out.gen_embeds_new_ids") {
            // HF returns [BOS] + n new ids when generating from embeddings.
            let n = fx.shape("out.gen_embeds_new_ids")?[1] - 1;
            let generator = Generator::from_embeds(
                &model,
                embeds,
                Vec::new(),
                generation_config(fx, &config, n),
            )?;
            check_generation(
                fx,
                generator,
                (
                    "out.gen_embeds_new_ids",
                    "out.gen_embeds_step_logits",
                    Some(config.bos_token_id),
                ),
                &tols,
                &mut results,
            )?;
        }
    }

    if fx.has("out.gen_new_ids") {
        let n = fx.shape("out.gen_new_ids")?[1];
        let generator =
            Generator::from_ids(&model, &ids, shape[0], generation_config(fx, &config, n))?;
        check_generation(
            fx,
            generator,
            ("out.gen_new_ids", "out.gen_step_logits", None),
            &tols,
            &mut results,
        )?;
    }
    Ok(results)
}

/// Incremental decoding against a full forward pass on the same ids: the
/// logits of every position computed one token at a time with the KV cache.
pub fn kv_cache_consistency<B: Backend>(
    model: &InternLM2<B>,
    ids: &[u32],
    batch: usize,
) -> Result<f64, ParityError> {
    let t = ids.len() / batch;
    let full = model.forward_ids(ids, batch, None, ForwardOptions::default())?;
    let (_, full) = host(full.logits.expect("logits requested"));
    let mut cache = model.new_cache(batch, t);
    let vocab = model.config().vocab_size;
    let mut max = 0f64;
    for pos in 0..t {
        let step: Vec<u32> = (0..batch).map(|b| ids[b * t + pos]).collect();
        let out = model.forward_ids(&step, batch, Some(&mut cache), ForwardOptions::default())?;
        let (_, inc) = host(out.logits.expect("logits requested"));
        for b in 0..batch {
            let full_row = &full[(b * t + pos) * vocab..(b * t + pos + 1) * vocab];
            let inc_row = &inc[b * vocab..(b + 1) * vocab];
            for (x, y) in full_row.iter().zip(inc_row) {
                max = max.max((x - y).abs() as f64);
            }
        }
    }
    Ok(max)
}

/// The LLM hyper-parameters of a fixture that has no `config`: shapes from its
/// weights, head counts from its `tiny_hparams` or a sibling sidecar's, the rest
/// (θ, ε) from the official InternLM2 preset.
pub(crate) fn config_from_shapes(
    fx: &Fixture,
    weights: &dyn TensorSource,
) -> Result<InternLM2Config, ParityError> {
    let shape = |key: &str| {
        weights
            .info(key)
            .map(|i| i.shape)
            .ok_or_else(|| fx.malformed(format!("missing weight `{key}`")))
    };
    let emb = shape("model.tok_embeddings.weight")?;
    let ffn = shape("model.layers.0.feed_forward.w1.weight")?;
    let layers = (0..)
        .take_while(|l| weights.contains(&format!("model.layers.{l}.attention.wqkv.weight")))
        .count();
    let mut config = InternLM2Config {
        hidden_size: emb[1],
        num_hidden_layers: layers,
        intermediate_size: ffn[0],
        vocab_size: emb[0],
        ..InternLM2Config::internlm2_chat_7b()
    };
    if let Some(c) = fx.json("/config") {
        let from = InternLM2Config::from_json_str(&c.to_string())?;
        config.num_attention_heads = from.num_attention_heads;
        config.num_key_value_heads = from.num_key_value_heads;
        config.rope_theta = from.rope_theta;
        config.rms_norm_eps = from.rms_norm_eps;
        config.rope_scaling = from.rope_scaling;
        return Ok(config);
    }
    let heads = |v: &serde_json::Value| {
        let h = v.pointer("/tiny_hparams/llm_heads")?.as_u64()?;
        let kv = v.pointer("/tiny_hparams/llm_kv_heads")?.as_u64()?;
        let hidden = v.pointer("/tiny_hparams/llm_hidden")?.as_u64()?;
        (hidden as usize == config.hidden_size).then_some((h as usize, kv as usize))
    };
    let mut found = heads(&fx.sidecar);
    if found.is_none() {
        // The stages of one fixture set share the tiny model; read a sibling sidecar.
        let dir = fx.path.parent().unwrap_or(std::path::Path::new("."));
        let mut siblings: Vec<_> = std::fs::read_dir(dir)
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        siblings.sort();
        for path in siblings {
            if path.extension().is_some_and(|e| e == "json")
                && path != fx.path.with_extension("json")
                && let Ok(text) = std::fs::read_to_string(&path)
                && let Ok(v) = serde_json::from_str::<serde_json::Value>(&text)
                && let Some(h) = heads(&v)
            {
                found = Some(h);
                break;
            }
        }
    }
    let (h, kv) = found.ok_or_else(|| {
        fx.malformed(
            "the number of attention heads is not in the sidecar (`config` or \
             `tiny_hparams.llm_heads`) nor in a sibling sidecar with the same hidden size",
        )
    })?;
    config.num_attention_heads = h;
    config.num_key_value_heads = Some(kv);
    config.validate()?;
    Ok(config)
}

/// Stage `checkpoint_format`: the base LLM under `hf.`, the released `.pth` layout
/// under `pth.`, loaded through [`load_hf_peft`] and compared on its logits.
pub fn run_checkpoint_format<B: Backend>(
    fx: &Fixture,
    device: &B::Device,
) -> Result<Vec<Comparison>, ParityError> {
    let tols = Tolerances::from_sidecar(fx.json("/tolerance"));
    let base = PrefixView::new(&fx.tensors, "hf.");
    let release = PrefixView::new(&fx.tensors, "pth.");
    let config = config_from_shapes(fx, &base)?;
    let lora_alpha = fx
        .json("/lora_config/lora_alpha")
        .and_then(|v| v.as_f64())
        .ok_or_else(|| fx.malformed("no `lora_config.lora_alpha` in the sidecar"))?;
    let peft = PeftRelease {
        source: &release,
        prefix: "llm.",
        lora: LoraOptions { lora_alpha },
    };
    let (model, report) = load_hf_peft::<B>(&config, &base, peft, LlmWeights::F32, device)?;
    let mut results = Vec::new();
    // Every LoRA adapter of the release was merged, and every merged weight matches
    // the peft merge stored under `merged.`.
    let expected_lora = release
        .names()
        .iter()
        .filter(|n| n.contains(".lora_A."))
        .count();
    results.push(compare_exact(
        "lora_adapters_merged",
        &[report.lora_merged.len()],
        &[expected_lora],
    ));
    let merged = PrefixView::new(&fx.tensors, "merged.");
    if merged.contains("model.tok_embeddings.weight") {
        let reference: InternLM2<B> = load_hf(&model.config().clone(), &merged, device)?;
        let (ids_shape, ids) = ids_u32(fx, "in.input_ids")?;
        let a = model.forward_ids(&ids, ids_shape[0], None, ForwardOptions::default())?;
        let b = reference.forward_ids(&ids, ids_shape[0], None, ForwardOptions::default())?;
        let (shape, av) = host(a.logits.expect("logits"));
        let (_, bv) = host(b.logits.expect("logits"));
        results.push(compare_f32(
            "merged.* (logits of the peft-merged weights)",
            (&shape, &av),
            (&shape, &bv),
            tols.float("logits"),
        ));
    }
    let (shape, ids) = ids_u32(fx, "in.input_ids")?;
    let out = model.forward_ids(&ids, shape[0], None, ForwardOptions::default())?;
    check_forward(
        fx,
        out,
        ("out.logits", "out.last_hidden_state", None),
        &tols,
        &mut results,
    )?;
    Ok(results)
}
