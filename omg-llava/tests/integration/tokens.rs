//! The ids of OMG-LLaVA's tokens in the demo bundle's tokenizer are the official ones
//! recorded in the e2e parity fixture (`token_ids`): the four tokens added before the
//! embedding resize, `<mark>` after it, and BOS / EOS.

use std::path::Path;

use burn::backend::Flex;
use omg_llava::{LoadOptions, Pipeline};

use crate::common;

type B = Flex;

#[test]
fn token_ids_are_the_official_ones() {
    let dir = common::parity_dir_with("e2e.json");
    let sidecar: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("e2e.json")).unwrap()).unwrap();
    let official = &sidecar["token_ids"];
    let p = Pipeline::<B>::from_dir(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../omg-demo/assets/tiny"),
        &LoadOptions::default(),
        Default::default(),
        |_| {},
    )
    .unwrap();
    for (token, key) in [
        ("[SEG]", "[SEG]"),
        ("<p>", "<p>"),
        ("</p>", "</p>"),
        ("<region>", "<region>"),
        ("<mark>", "<mark>"),
        ("<s>", "bos"),
        ("</s>", "eos"),
    ] {
        let expected = official[key]
            .as_u64()
            .unwrap_or_else(|| panic!("e2e.json has token_ids.{key}"));
        assert_eq!(p.token_id(token).map(u64::from), Some(expected), "{token}");
    }
    // the chat template's tokens exist; other text is no token
    assert!(p.token_id("<|im_start|>").is_some());
    assert!(p.token_id("<|im_end|>").is_some());
    assert_ne!(p.token_id("<|im_end|>"), p.token_id("</s>"));
    assert_eq!(p.token_id("<image>"), None);
    assert_eq!(p.token_id("no such token"), None);
}
