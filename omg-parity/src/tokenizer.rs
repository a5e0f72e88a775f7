//! Stage `tokenizer`: a fixture folder with `tokenizer.json`, `tokenizer.model` and
//! `cases.json` (ids and decodes of the official `InternLM2TokenizerFast`).

use std::path::Path;

use omg_llm::tokenizer::InternLm2Tokenizer;

use crate::ParityError;
use crate::compare::{Comparison, compare_exact};

fn ids(v: &serde_json::Value, what: &str) -> Result<Vec<u32>, ParityError> {
    v.as_array()
        .and_then(|a| {
            a.iter()
                .map(|x| x.as_u64().and_then(|x| u32::try_from(x).ok()))
                .collect::<Option<Vec<_>>>()
        })
        .ok_or_else(|| ParityError::Malformed(format!("cases.json: `{what}` is not a list of ids")))
}

fn text<'a>(v: &'a serde_json::Value, what: &str) -> Result<&'a str, ParityError> {
    v.as_str()
        .ok_or_else(|| ParityError::Malformed(format!("cases.json: `{what}` is not a string")))
}

/// Runs every case of `dir/cases.json` through the tokenizer built from
/// `tokenizer.json` and the one built from `tokenizer.model` (each when present).
/// One comparison line per check kind and tokenizer; the difference is the number
/// of cases that differ.
pub fn run_tokenizer(dir: &Path) -> Result<Vec<Comparison>, ParityError> {
    let cases_path = dir.join("cases.json");
    let text_all = std::fs::read_to_string(&cases_path).map_err(|e| {
        ParityError::Malformed(format!("cannot read {}: {e}", cases_path.display()))
    })?;
    let cases: serde_json::Value = serde_json::from_str(&text_all).map_err(|e| {
        ParityError::Malformed(format!("{} is not JSON: {e}", cases_path.display()))
    })?;
    let list = cases
        .get("cases")
        .and_then(|c| c.as_array())
        .ok_or_else(|| ParityError::Malformed("cases.json has no `cases` list".into()))?;
    let decode_cases = cases
        .get("decode_cases")
        .and_then(|c| c.as_array())
        .cloned()
        .unwrap_or_default();

    let mut tokenizers = Vec::new();
    if dir.join("tokenizer.json").is_file() {
        tokenizers.push((
            "tokenizer.json",
            InternLm2Tokenizer::from_tokenizer_json(dir.join("tokenizer.json"))?,
        ));
    }
    if dir.join("tokenizer.model").is_file() {
        tokenizers.push((
            "tokenizer.model",
            InternLm2Tokenizer::from_sentencepiece_model(dir.join("tokenizer.model"))?,
        ));
    }
    if tokenizers.is_empty() {
        return Err(ParityError::Malformed(format!(
            "{}: neither tokenizer.json nor tokenizer.model",
            dir.display()
        )));
    }

    let mut results = Vec::new();
    for (name, tok) in &tokenizers {
        // Per check: (case index, actual, expected) collected, then one line each.
        let mut checks: Vec<(&str, Vec<String>, Vec<String>)> = vec![
            ("encode_with_bos", vec![], vec![]),
            ("encode_no_special", vec![], vec![]),
            ("decode_with_bos", vec![], vec![]),
            ("decode_no_special", vec![], vec![]),
        ];
        for (i, case) in list.iter().enumerate() {
            let input = text(&case["text"], &format!("cases[{i}].text"))?;
            let with_bos = ids(&case["fast_ids_with_bos"], "fast_ids_with_bos")?;
            let no_special = ids(&case["fast_ids_no_special"], "fast_ids_no_special")?;
            let got = [
                format!("{:?}", tok.encode(input, true)?),
                format!("{:?}", tok.encode(input, false)?),
                tok.decode(&with_bos, false)?,
                tok.decode(&no_special, false)?,
            ];
            let want = [
                format!("{with_bos:?}"),
                format!("{no_special:?}"),
                text(&case["fast_decode_with_bos"], "fast_decode_with_bos")?.to_owned(),
                text(&case["fast_decode_no_special"], "fast_decode_no_special")?.to_owned(),
            ];
            for (c, (g, w)) in checks.iter_mut().zip(got.into_iter().zip(want)) {
                c.1.push(g);
                c.2.push(w);
            }
        }
        for (check, got, want) in checks {
            results.push(compare_exact(
                &format!("{name}.{check} ({} cases)", want.len()),
                &got,
                &want,
            ));
        }
        if !decode_cases.is_empty() {
            let mut got = Vec::new();
            let mut want = Vec::new();
            for (i, case) in decode_cases.iter().enumerate() {
                let case_ids = ids(&case["ids"], &format!("decode_cases[{i}].ids"))?;
                got.push(tok.decode(&case_ids, false)?);
                want.push(text(&case["fast_decode"], "fast_decode")?.to_owned());
            }
            results.push(compare_exact(
                &format!("{name}.decode_cases ({} cases)", want.len()),
                &got,
                &want,
            ));
        }
    }
    Ok(results)
}
