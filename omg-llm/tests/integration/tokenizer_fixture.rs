//! Parity of the InternLM2 tokenizer with the official HF tokenizers, on the
//! `tokenizer_tiny` fixture (`fixtures/parity/tokenizer_tiny`, see
//! `fixtures/parity/README.md`).
//!
//! The fixture directory is found by `fixtures/test_support.rs` (`$OMG_PARITY_DIR` if
//! set, else the repository's copy). A missing fixture is a test failure, not a skip.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use omg_llm::tokenizer::{
    InternLm2Tokenizer, TokenizerError,
    sentencepiece::{ModelProto, PieceType, extract_merges},
};
use serde_json::Value;

use crate::common;

fn parity_dir() -> PathBuf {
    common::parity_dir_with("tokenizer_tiny/cases.json")
}

fn tiny_dir() -> PathBuf {
    parity_dir().join("tokenizer_tiny")
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("bad JSON {}: {e}", path.display()))
}

fn cases() -> Value {
    read_json(&tiny_dir().join("cases.json"))
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .expect("id array")
        .iter()
        .map(|x| u32::try_from(x.as_u64().expect("id")).expect("u32 id"))
        .collect()
}

fn from_json() -> InternLm2Tokenizer {
    InternLm2Tokenizer::from_tokenizer_json(tiny_dir().join("tokenizer.json"))
        .expect("load tokenizer.json")
}

fn from_model() -> InternLm2Tokenizer {
    InternLm2Tokenizer::from_sentencepiece_model(tiny_dir().join("tokenizer.model"))
        .expect("build from tokenizer.model")
}

fn both() -> [(&'static str, InternLm2Tokenizer); 2] {
    [
        ("tokenizer.json", from_json()),
        ("tokenizer.model", from_model()),
    ]
}

fn check_cases(name: &str, tok: &InternLm2Tokenizer) {
    let cases = cases();
    let list = cases["cases"].as_array().expect("cases");
    assert_eq!(list.len(), 32);
    for case in list {
        let text = case["text"].as_str().expect("text");
        let with_bos = ids(&case["fast_ids_with_bos"]);
        let no_special = ids(&case["fast_ids_no_special"]);
        assert_eq!(
            tok.encode(text, true).unwrap(),
            with_bos,
            "[{name}] encode+bos {text:?}"
        );
        assert_eq!(
            tok.encode(text, false).unwrap(),
            no_special,
            "[{name}] encode {text:?}"
        );
        // `pieces` are the pieces of the raw sentencepiece encoding `sp_encode`.
        let pieces: Vec<String> = ids(&case["sp_encode"])
            .iter()
            .map(|&id| tok.id_to_token(id).expect("piece"))
            .collect();
        let expected_pieces: Vec<&str> = case["pieces"]
            .as_array()
            .expect("pieces")
            .iter()
            .map(|p| p.as_str().expect("piece"))
            .collect();
        assert_eq!(pieces, expected_pieces, "[{name}] pieces {text:?}");
        // Raw sentencepiece differs from the HF tokenizers only before a leading special.
        if case["sp_equals_tokenizer_json"].as_bool() == Some(true) {
            assert_eq!(ids(&case["sp_encode"]), no_special, "[{name}] sp {text:?}");
        }
        assert_eq!(
            tok.decode(&no_special, false).unwrap(),
            case["fast_decode_no_special"].as_str().unwrap(),
            "[{name}] decode {text:?}"
        );
        assert_eq!(
            tok.decode(&with_bos, false).unwrap(),
            case["fast_decode_with_bos"].as_str().unwrap(),
            "[{name}] decode with bos {text:?}"
        );
        // The fixture records the skip-special decode of the slow tokenizer only; on these
        // strings the fast one (checked with `tokenizers` 0.15) gives the same text.
        assert_eq!(
            tok.decode(&with_bos, true).unwrap(),
            case["slow_decode_with_bos_skip_special"].as_str().unwrap(),
            "[{name}] decode skip special {text:?}"
        );
    }
    let decode_cases = cases["decode_cases"].as_array().expect("decode_cases");
    assert!(!decode_cases.is_empty());
    for case in decode_cases {
        let case_ids = ids(&case["ids"]);
        assert_eq!(
            tok.decode(&case_ids, false).unwrap(),
            case["fast_decode"].as_str().unwrap(),
            "[{name}] decode_case {case_ids:?}"
        );
    }
    // `<s> 你 </s>` with specials skipped.
    assert_eq!(tok.decode(&[1, 237, 198, 169, 2], true).unwrap(), "你");
}

#[test]
fn encode_decode_match_fast_tokenizer_from_json() {
    check_cases("tokenizer.json", &from_json());
}

#[test]
fn encode_decode_match_fast_tokenizer_from_model() {
    check_cases("tokenizer.model", &from_model());
}

#[test]
fn from_dir_prefers_json_and_falls_back_to_model() {
    let tok = InternLm2Tokenizer::from_dir(tiny_dir()).expect("from_dir");
    check_cases("from_dir(json)", &tok);

    let tmp = tempfile::tempdir().unwrap();
    std::fs::copy(
        tiny_dir().join("tokenizer.model"),
        tmp.path().join("tokenizer.model"),
    )
    .unwrap();
    let tok = InternLm2Tokenizer::from_dir(tmp.path()).expect("from_dir(model)");
    check_cases("from_dir(model)", &tok);

    // With the official tokenizer_config.json (its added_tokens_decoder) as well.
    std::fs::copy(
        tiny_dir().join("tokenizer_config.json"),
        tmp.path().join("tokenizer_config.json"),
    )
    .unwrap();
    let tok = InternLm2Tokenizer::from_dir(tmp.path()).expect("from_dir(model+config)");
    check_cases("from_dir(model+config)", &tok);
    assert_eq!(serialized(&tok), serialized(&from_json()));
}

/// The tokenizer as `tokenizers` serializes it (vocab maps are order-independent here).
fn serialized(tok: &InternLm2Tokenizer) -> Value {
    serde_json::from_str(&tok.inner().to_string(false).expect("serialize")).expect("JSON")
}

#[test]
fn model_built_tokenizer_equals_tokenizer_json() {
    let json = from_json();
    let model = from_model();
    assert_eq!(
        json.inner().get_vocab(false),
        model.inner().get_vocab(false),
        "vocab"
    );
    assert_eq!(
        json.inner().get_vocab(true),
        model.inner().get_vocab(true),
        "vocab+added"
    );
    assert_eq!(json.vocab_size(), 512);
    assert_eq!(model.vocab_size(), 512);

    let sj = serialized(&json);
    let sm = serialized(&model);
    let merges_json = sj["model"]["merges"].as_array().expect("merges");
    assert_eq!(merges_json.len(), 112);
    assert_eq!(
        sj["model"]["merges"], sm["model"]["merges"],
        "merges (same order)"
    );
    for key in [
        "normalizer",
        "pre_tokenizer",
        "post_processor",
        "decoder",
        "added_tokens",
    ] {
        assert_eq!(sj[key], sm[key], "{key}");
    }
    // Everything else too (BPE options, truncation, padding, …).
    assert_eq!(sj, sm);

    // The merges also agree with the ones in the file as written by tokenizers 0.15
    // ("a b" strings).
    let raw = read_json(&tiny_dir().join("tokenizer.json"));
    let file_merges: Vec<(String, String)> = raw["model"]["merges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let (a, b) = m.as_str().unwrap().split_once(' ').unwrap();
            (a.to_owned(), b.to_owned())
        })
        .collect();
    let proto = ModelProto::parse(&std::fs::read(tiny_dir().join("tokenizer.model")).unwrap())
        .expect("parse model");
    let mut vocab_scores: Vec<(String, f32)> = proto
        .pieces
        .iter()
        .map(|p| (p.piece.clone(), p.score))
        .collect();
    for (i, name) in ["<unk>", "<s>", "</s>"].into_iter().enumerate() {
        vocab_scores[i] = (name.to_owned(), 0.0);
    }
    assert_eq!(extract_merges(&vocab_scores), file_merges);
}

#[test]
fn sentencepiece_model_fields() {
    let proto = ModelProto::parse(&std::fs::read(tiny_dir().join("tokenizer.model")).unwrap())
        .expect("parse model");
    assert_eq!(proto.pieces.len(), 512);
    let trainer = proto.trainer_spec.as_ref().unwrap();
    assert_eq!(
        trainer.model_type,
        omg_llm::tokenizer::sentencepiece::ModelType::Bpe
    );
    assert!(trainer.byte_fallback);
    assert_eq!(
        (
            trainer.unk_id,
            trainer.bos_id,
            trainer.eos_id,
            trainer.pad_id
        ),
        (0, 1, 2, -1)
    );
    assert_eq!(trainer.unk_piece, "<unk>");
    let norm = proto.normalizer_spec.as_ref().unwrap();
    assert_eq!(norm.name, "identity");
    assert!(norm.precompiled_charsmap.is_empty());
    assert!(norm.add_dummy_prefix);
    assert!(!norm.remove_extra_whitespaces);
    assert_eq!(proto.pieces[0].kind, PieceType::Unknown);
    assert_eq!(proto.pieces[1].kind, PieceType::Control);
    assert_eq!(proto.pieces[8].piece, "<|im_start|>");
    assert_eq!(proto.pieces[8].kind, PieceType::UserDefined);
    assert_eq!(proto.pieces[9].piece, "<0x00>");
    assert_eq!(proto.pieces[264].piece, "<0xFF>");
    assert!(
        proto.pieces[9..265]
            .iter()
            .all(|p| p.kind == PieceType::Byte)
    );
}

#[test]
fn special_token_ids() {
    let cases = cases();
    let special = cases["special_ids"].as_object().unwrap();
    for (name, tok) in both() {
        assert_eq!(tok.bos_id(), 1, "[{name}]");
        assert_eq!(tok.eos_id(), 2, "[{name}]");
        for (token, id) in special {
            let token = match token.as_str() {
                "unk" => "<unk>",
                "bos" => "<s>",
                "eos" => "</s>",
                t => t,
            };
            let id = u32::try_from(id.as_u64().unwrap()).unwrap();
            assert_eq!(tok.token_id(token), Some(id), "[{name}] {token}");
            assert_eq!(tok.id_to_token(id).as_deref(), Some(token), "[{name}] {id}");
        }
        assert_eq!(tok.token_id("▁"), Some(373), "[{name}]");
        assert_eq!(tok.token_id("<0x0A>"), Some(19), "[{name}]");
        assert_eq!(tok.token_id("[SEG]"), None, "[{name}]");
        assert_eq!(
            tok.token_id("Hello world"),
            None,
            "[{name}] lookup never encodes"
        );
        assert_eq!(tok.id_to_token(512), None, "[{name}]");
        assert_eq!(
            (
                tok.bos_id(),
                tok.eos_id(),
                tok.token_id("<|im_start|>"),
                tok.token_id("<|im_end|>")
            ),
            (1, 2, Some(8), Some(7)),
            "[{name}]"
        );
        assert_eq!(tok.token_id("<mark>"), None);
    }
}

fn e2e_token_ids() -> BTreeMap<String, i64> {
    let e2e = read_json(&parity_dir().join("e2e.json"));
    e2e["token_ids"]
        .as_object()
        .unwrap()
        .iter()
        .filter_map(|(k, v)| v.as_i64().map(|v| (k.clone(), v)))
        .collect()
}

/// Adds OMG-LLaVA's tokens in the official order (`[SEG]`, `<p>`, `</p>`, `<region>`,
/// then `<mark>`), as a fine-tune adds tokens.
fn add_release_tokens(tok: &mut InternLm2Tokenizer) {
    tok.add_special_tokens(&["[SEG]", "<p>", "</p>", "<region>"]);
    tok.add_special_tokens(&["<mark>"]);
}

#[test]
fn added_tokens_get_official_ids() {
    let official = e2e_token_ids();
    for (name, mut tok) in both() {
        add_release_tokens(&mut tok);
        for (token, id) in [
            ("[SEG]", 512),
            ("<p>", 513),
            ("</p>", 514),
            ("<region>", 515),
            ("<mark>", 516),
        ] {
            assert_eq!(tok.token_id(token), Some(id), "[{name}] {token}");
            assert_eq!(i64::from(id), official[token], "[{name}] {token}");
            assert_eq!(tok.id_to_token(id).as_deref(), Some(token));
        }
        assert_eq!(i64::from(tok.bos_id()), official["bos"]);
        assert_eq!(i64::from(tok.eos_id()), official["eos"]);
        assert_eq!(tok.vocab_size(), 517, "[{name}]");

        // Added tokens are matched whole, never split, and are special; each text
        // segment around them gets its own dummy prefix (ids from `tokenizers` 0.15).
        let ids = tok.encode("segment the dog [SEG] please", false).unwrap();
        assert_eq!(
            ids,
            [
                277, 374, 383, 390, 308, 292, 374, 369, 373, 512, 275, 391, 302, 380, 385, 374
            ],
            "[{name}]"
        );
        assert_eq!(
            tok.decode(&ids, false).unwrap(),
            "segment the dog [SEG]  please"
        );
        assert_eq!(tok.decode(&ids, true).unwrap(), "segment the dog   please");
        let ids = tok.encode("<p>tree</p> and <region><mark>", false).unwrap();
        assert_eq!(
            ids,
            [513, 266, 267, 374, 514, 275, 285, 382, 373, 515, 516],
            "[{name}]"
        );
        assert_eq!(
            tok.decode(&ids, false).unwrap(),
            "<p> tree</p>  and <region><mark>"
        );
        assert_eq!(tok.decode(&ids, true).unwrap(), "tree  and ");

        // Adding again keeps the ids; existing tokens keep theirs.
        assert_eq!(
            tok.add_special_tokens(&["[SEG]", "<s>", "<|im_end|>"]),
            vec![512, 1, 7]
        );
        assert_eq!(tok.add_special_tokens(&["<extra>"]), vec![517]);
        assert_eq!(tok.add_special_tokens(&["", "<extra2>"]), vec![518]);
        assert_eq!(tok.vocab_size(), 519);
    }
}

/// Reads `in.input_ids` of `e2e.safetensors` (an int64 tensor).
fn e2e_input_ids() -> Vec<i64> {
    let bytes = std::fs::read(parity_dir().join("e2e.safetensors")).expect("e2e.safetensors");
    let tensors = safetensors::SafeTensors::deserialize(&bytes).expect("safetensors");
    let view = tensors.tensor("in.input_ids").expect("in.input_ids");
    assert_eq!(view.dtype(), safetensors::Dtype::I64);
    view.data()
        .chunks_exact(8)
        .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

#[test]
fn e2e_prompt_ids_match_official() {
    const IMAGE_TOKEN_INDEX: i64 = -200;
    let expected = e2e_input_ids();
    assert_eq!(expected.len(), 36);
    let official = e2e_token_ids();
    assert_eq!(official["IMAGE_TOKEN_INDEX"], IMAGE_TOKEN_INDEX);
    let prompt =
        "<|im_start|>user\n<image>\nPlease segment the dog.<|im_end|>\n<|im_start|>assistant\n";
    for (name, mut tok) in both() {
        add_release_tokens(&mut tok);
        // xtuner/OMG-LLaVA: split at <image>, chunk 0 with BOS, later chunks without.
        let mut ids: Vec<i64> = Vec::new();
        for (i, chunk) in prompt.split("<image>").enumerate() {
            if i > 0 {
                ids.push(IMAGE_TOKEN_INDEX);
            }
            ids.extend(
                tok.encode(chunk, i == 0)
                    .unwrap()
                    .into_iter()
                    .map(i64::from),
            );
        }
        assert_eq!(ids, expected, "[{name}]");
    }
}

fn assert_err<T: std::fmt::Debug>(r: Result<T, TokenizerError>, what: &str) -> TokenizerError {
    match r {
        Ok(v) => panic!("{what}: expected an error, got {v:?}"),
        Err(e) => {
            // Errors render without panicking and name the problem.
            assert!(!e.to_string().is_empty());
            e
        }
    }
}

#[test]
fn errors_not_panics() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("nope");

    let e = assert_err(
        InternLm2Tokenizer::from_tokenizer_json(missing.join("tokenizer.json")),
        "json",
    );
    assert!(matches!(e, TokenizerError::Io { .. }), "{e}");
    assert!(e.to_string().contains("tokenizer.json"), "{e}");
    let e = assert_err(
        InternLm2Tokenizer::from_sentencepiece_model(missing.join("tokenizer.model")),
        "model",
    );
    assert!(matches!(e, TokenizerError::Io { .. }), "{e}");
    let e = assert_err(InternLm2Tokenizer::from_dir(&missing), "dir");
    assert!(matches!(e, TokenizerError::NoTokenizerFile { .. }), "{e}");
    let e = assert_err(InternLm2Tokenizer::from_dir(tmp.path()), "empty dir");
    assert!(matches!(e, TokenizerError::NoTokenizerFile { .. }), "{e}");

    // Truncated tokenizer.model: every cut is an error (the trainer_spec comes after the
    // pieces, so even a cut at a piece boundary cannot pass for a valid BPE model).
    let model = std::fs::read(tiny_dir().join("tokenizer.model")).unwrap();
    for cut in [
        0,
        1,
        2,
        7,
        100,
        model.len() / 2,
        model.len() - 200,
        model.len() - 1,
    ] {
        let r = InternLm2Tokenizer::from_sentencepiece_bytes(&model[..cut]);
        let e = assert_err(r, &format!("model cut at {cut}"));
        assert!(
            matches!(
                e,
                TokenizerError::InvalidSentencePiece { .. }
                    | TokenizerError::UnsupportedModel { .. }
            ),
            "cut {cut}: {e}"
        );
    }
    for cut in (0..model.len()).step_by(97) {
        assert!(
            InternLm2Tokenizer::from_sentencepiece_bytes(&model[..cut]).is_err(),
            "cut {cut}"
        );
    }
    let path = tmp.path().join("tokenizer.model");
    std::fs::write(&path, &model[..model.len() / 2]).unwrap();
    let e = assert_err(
        InternLm2Tokenizer::from_sentencepiece_model(&path),
        "truncated file",
    );
    assert!(e.to_string().contains("tokenizer.model"), "{e}");

    // Garbage.
    std::fs::write(&path, b"this is not a sentencepiece model\n\xff\xfe\x00").unwrap();
    let e = assert_err(
        InternLm2Tokenizer::from_sentencepiece_model(&path),
        "garbage model",
    );
    assert!(
        matches!(
            e,
            TokenizerError::InvalidSentencePiece { .. } | TokenizerError::UnsupportedModel { .. }
        ),
        "{e}"
    );
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    for len in [1usize, 3, 16, 200, 4096] {
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        assert!(
            InternLm2Tokenizer::from_sentencepiece_bytes(&bytes).is_err(),
            "random {len}"
        );
    }
    let json_path = tmp.path().join("tokenizer.json");
    for garbage in [
        &b"{ not json"[..],
        b"",
        b"[1, 2, 3]",
        b"{\"model\": {\"type\": \"BPE\"}}",
        b"\xff\xfe",
    ] {
        std::fs::write(&json_path, garbage).unwrap();
        let e = assert_err(
            InternLm2Tokenizer::from_tokenizer_json(&json_path),
            "garbage json",
        );
        assert!(
            matches!(e, TokenizerError::InvalidTokenizerJson { .. }),
            "{e}"
        );
    }
    // from_dir picks the (garbage) tokenizer.json and reports it.
    let e = assert_err(
        InternLm2Tokenizer::from_dir(tmp.path()),
        "dir with garbage json",
    );
    assert!(
        matches!(e, TokenizerError::InvalidTokenizerJson { .. }),
        "{e}"
    );

    // A valid protobuf that is not BPE: the tiny model with model_type = UNIGRAM appended
    // (a repeated trainer_spec is merged by protobuf, so the last model_type wins).
    let mut unigram = model.clone();
    unigram.extend_from_slice(&[0x12, 0x02, 0x18, 0x01]);
    let e = assert_err(
        InternLm2Tokenizer::from_sentencepiece_bytes(&unigram),
        "unigram",
    );
    assert!(matches!(e, TokenizerError::UnsupportedModel { .. }), "{e}");
    assert!(e.to_string().contains("BPE"), "{e}");
    // A non-identity precompiled normalizer.
    let mut nfkc = model.clone();
    nfkc.extend_from_slice(&[0x1a, 0x0d, 0x0a, 0x08]);
    nfkc.extend_from_slice(b"nmt_nfkc");
    nfkc.extend_from_slice(&[0x12, 0x01, 0x00]);
    let e = assert_err(InternLm2Tokenizer::from_sentencepiece_bytes(&nfkc), "nfkc");
    assert!(matches!(e, TokenizerError::UnsupportedModel { .. }), "{e}");

    // A tokenizer_config.json contradicting the model.
    let dir = tmp.path().join("badcfg");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("tokenizer.model"), &model).unwrap();
    std::fs::write(
        dir.join("tokenizer_config.json"),
        r#"{"added_tokens_decoder": {"5": {"content": "<nope>", "special": true}}}"#,
    )
    .unwrap();
    let e = assert_err(InternLm2Tokenizer::from_dir(&dir), "bad config");
    assert!(matches!(e, TokenizerError::InvalidConfig { .. }), "{e}");
    std::fs::write(dir.join("tokenizer_config.json"), "not json").unwrap();
    let e = assert_err(InternLm2Tokenizer::from_dir(&dir), "garbage config");
    assert!(matches!(e, TokenizerError::InvalidConfig { .. }), "{e}");

    // Encoding/decoding odd input does not panic.
    let tok = from_model();
    assert_eq!(tok.decode(&[], false).unwrap(), "");
    assert_eq!(
        tok.decode(&[u32::MAX, 1_000_000], false).unwrap(),
        "",
        "unknown ids are skipped"
    );
    assert_eq!(tok.encode("", false).unwrap(), Vec::<u32>::new());
    assert_eq!(tok.encode("", true).unwrap(), vec![1]);
    let weird = "\u{0}\u{fffd}\u{10ffff}<|im_start|<s></s><unk>";
    let ids = tok.encode(weird, false).unwrap();
    assert_eq!(
        ids,
        [
            373, 9, 248, 200, 198, 253, 152, 200, 200, 481, 133, 377, 390, 104, 361, 282, 375, 133,
            1, 2, 0
        ]
    );
    assert_eq!(tok.decode(&ids, false).unwrap(), weird);
}

// ---------------------------------------------------------------------------------------
// Scale: a synthetic sentencepiece BPE model with InternLM2-chat-7b's 92544 pieces.

fn put_varint(mut v: u64, out: &mut Vec<u8>) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

fn put_len(field: u64, payload: &[u8], out: &mut Vec<u8>) {
    put_varint(field << 3 | 2, out);
    put_varint(payload.len() as u64, out);
    out.extend_from_slice(payload);
}

fn put_piece(piece: &str, score: f32, kind: u64, out: &mut Vec<u8>) {
    let mut p = Vec::with_capacity(piece.len() + 10);
    put_len(1, piece.as_bytes(), &mut p);
    put_varint(2 << 3 | 5, &mut p);
    p.extend_from_slice(&score.to_le_bytes());
    put_varint(3 << 3, &mut p);
    put_varint(kind, &mut p);
    put_len(1, &p, out);
}

#[test]
fn builds_internlm2_sized_model() {
    const N: usize = 92544;
    let mut bytes = Vec::new();
    let mut pieces: Vec<String> = Vec::with_capacity(N);
    for (p, kind) in [("<unk>", 2), ("<s>", 3), ("</s>", 3)] {
        put_piece(p, 0.0, kind, &mut bytes);
        pieces.push(p.to_owned());
    }
    for b in 0..=255u32 {
        let p = format!("<0x{b:02X}>");
        put_piece(&p, 0.0, 6, &mut bytes);
        pieces.push(p);
    }
    // Single characters, then merged pieces: every new piece = an earlier piece + a char.
    let alphabet: Vec<char> = ('a'..='z')
        .chain('A'..='Z')
        .chain(['▁'])
        .chain('一'..='龥')
        .collect();
    let mut rank = 0f32;
    for &c in &alphabet[..200] {
        put_piece(&c.to_string(), -rank, 1, &mut bytes);
        pieces.push(c.to_string());
        rank += 1.0;
    }
    let mut next = 259 + 200;
    let mut seen: std::collections::HashSet<String> = pieces.iter().cloned().collect();
    let mut i = 0usize;
    while pieces.len() < N - 6 {
        let base = pieces[259 + (i % (next - 259))].clone();
        let c = alphabet[(i * 7 + 3) % 60];
        let p = format!("{base}{c}");
        i += 1;
        if p.chars().count() > 16 || !seen.insert(p.clone()) {
            continue;
        }
        put_piece(&p, -rank, 1, &mut bytes);
        pieces.push(p);
        rank += 1.0;
        next = pieces.len();
    }
    for p in [
        "<|plugin|>",
        "<|interpreter|>",
        "<|action_end|>",
        "<|action_start|>",
        "<|im_end|>",
        "<|im_start|>",
    ] {
        put_piece(p, 0.0, 1, &mut bytes); // NORMAL, like they may be in the real model
        pieces.push(p.to_owned());
    }
    let mut trainer = Vec::new();
    put_varint(3 << 3, &mut trainer);
    put_varint(2, &mut trainer);
    put_varint(35 << 3, &mut trainer);
    put_varint(1, &mut trainer);
    put_len(2, &trainer, &mut bytes);
    let mut norm = Vec::new();
    put_len(1, b"identity", &mut norm);
    put_varint(4 << 3, &mut norm);
    put_varint(0, &mut norm);
    put_len(3, &norm, &mut bytes);

    let start = Instant::now();
    let mut tok = InternLm2Tokenizer::from_sentencepiece_bytes(&bytes).expect("build 92544");
    let elapsed = start.elapsed();
    eprintln!("built a {N}-piece tokenizer in {elapsed:?}");
    assert_eq!(tok.vocab_size(), N);
    assert_eq!(tok.token_id("<|im_start|>"), Some(92543));
    assert_eq!(tok.token_id("<|plugin|>"), Some(92538));
    add_release_tokens(&mut tok);
    assert_eq!(
        (tok.token_id("[SEG]"), tok.token_id("<mark>")),
        (Some(92544), Some(92548))
    );
    assert_eq!(
        (tok.token_id("<|im_start|>"), tok.token_id("<|im_end|>")),
        (Some(92543), Some(92542))
    );
    // The chat tokens are special (split out) even though their pieces are NORMAL.
    let ids = tok.encode("<|im_start|>user\nab<|im_end|>", true).unwrap();
    assert_eq!(ids[..2], [1, 92543]);
    assert_eq!(*ids.last().unwrap(), 92542);
    let text = "abc ABC 一丁  x ✓";
    let ids = tok.encode(text, false).unwrap();
    assert_eq!(tok.decode(&ids, false).unwrap(), text);
}

/// Streaming detokenization over every fixture case, token by token: the pieces
/// concatenate to the official fast decode, and no piece ends in half a character.
#[test]
fn streamed_decode_equals_the_official_decode() {
    let cases = cases();
    for (name, tok) in both() {
        for case in cases["cases"].as_array().expect("cases") {
            let text = case["text"].as_str().expect("text");
            let ids = ids(&case["fast_ids_with_bos"]);
            let expected = case["fast_decode_with_bos"].as_str().expect("decode");
            let mut stream = tok.stream_decoder(false);
            let mut pieces = Vec::new();
            for &id in &ids {
                pieces.push(stream.push(id).unwrap());
            }
            let last = stream.finish().unwrap();
            assert!(
                pieces.iter().all(|p| !p.ends_with('\u{FFFD}')) || expected.contains('\u{FFFD}'),
                "[{name}] {text:?}: a piece ends in an incomplete character: {pieces:?}"
            );
            pieces.push(last);
            assert_eq!(pieces.concat(), expected, "[{name}] {text:?}");
        }
    }
}
