//! The `omg-server` routes on loopback ports, exercised with `reqwest` as a client
//! would: every endpoint's answer equals the Pipeline's own (called directly on the same
//! demo bundle), streaming concatenates to the blocking answer, the cache encodes a
//! photo once, bad inputs get the 4xx that names them, and a full queue answers 503
//! with `Retry-After`.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use omg_cli::B;
use omg_cli::jobs::{Job, JobKind, run_job};
use omg_cli::records::{OutputMask, RegionSpec};
use omg_llava::{Conversation, FinishReason, GenerateOptions, Pipeline, Region, Task};
use omg_server::ServeConfig;
use reqwest::blocking::Response;
use serde_json::{Value, json};

mod common;
use common::*;

/// The shared server (a large token limit, to reach the context length) and a
/// Pipeline of the same bundle for the expected answers.
struct Fixture {
    addr: SocketAddr,
    pipeline: Pipeline<B>,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| Fixture {
        addr: start(ServeConfig {
            model_name: "tiny-test".into(),
            max_tokens_limit: 1 << 20,
            max_body_bytes: 4 << 20,
            ..ServeConfig::default()
        }),
        pipeline: pipeline(),
    })
}

fn photo() -> image::DynamicImage {
    image::load_from_memory(&photo_bytes()).unwrap()
}

fn get_json(addr: SocketAddr, path: &str) -> Value {
    ok_json(client().get(url(addr, path)).send().unwrap())
}

fn post(path: &str, body: &Value) -> Response {
    client()
        .post(url(fixture().addr, path))
        .json(body)
        .send()
        .unwrap()
}

fn ok_json(r: Response) -> Value {
    let status = r.status();
    let text = r.text().unwrap();
    assert!(status.is_success(), "{status}: {text}");
    serde_json::from_str(&text).unwrap()
}

fn seg_options(n: usize, at: usize) -> GenerateOptions {
    GenerateOptions::default()
        .with_max_new_tokens(n)
        .with_forced_seg(at)
}

fn masks_of(v: &Value) -> Vec<OutputMask> {
    serde_json::from_value(v["masks"].clone()).unwrap()
}

/// The `data:` payloads of a server-sent event stream.
fn events(r: Response) -> Vec<String> {
    assert!(r.status().is_success(), "{}", r.status());
    let kind = r.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(kind.starts_with("text/event-stream"), "{kind}");
    BufReader::new(r)
        .lines()
        .map(Result::unwrap)
        .filter_map(|l| l.strip_prefix("data: ").map(str::to_owned))
        .collect()
}

#[test]
fn health_models_and_the_page() {
    let f = fixture();
    let health: Value = get_json(f.addr, "/health");
    assert_eq!(health["status"], "ok");
    assert_eq!(health["queue"]["capacity"], 8);
    let models: Value = get_json(f.addr, "/v1/models");
    assert_eq!(models["data"][0]["id"], "tiny-test");
    let page = client().get(url(f.addr, "/")).send().unwrap();
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = page.text().unwrap();
    assert!(html.contains("<canvas") && html.contains("/v1/chat/completions"));
    // self-contained: nothing loaded from elsewhere
    assert!(!html.contains("http://") && !html.contains("https://") && !html.contains("src=\"/"));
    let (code, message) = error_code(
        client().get(url(f.addr, "/v2/nothing")).send().unwrap(),
        404,
    );
    assert_eq!(code, "not_found");
    assert!(message.contains("/v2/nothing"));
}

#[test]
fn chat_completion_equals_the_pipeline_with_masks() {
    let f = fixture();
    let p = &f.pipeline;
    let img = p.encode(&photo()).unwrap();
    let expected = p
        .chat(
            &img,
            &mut Conversation::new(),
            "What is it?",
            &seg_options(7, 2),
        )
        .unwrap();
    assert!(!expected.masks.is_empty());
    assert_eq!(expected.finish_reason, FinishReason::Length);
    let v = ok_json(post(
        "/v1/chat/completions",
        &chat_body("What is it?", false),
    ));
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["model"], "tiny-test");
    assert_eq!(v["choices"][0]["message"]["role"], "assistant");
    assert_eq!(
        v["choices"][0]["message"]["content"],
        expected.text.as_str()
    );
    assert_eq!(v["choices"][0]["finish_reason"], "length");
    assert_eq!(v["usage"]["completion_tokens"], expected.token_ids.len());
    assert_eq!(v["usage"]["prompt_tokens"], expected.prompt_tokens);
    assert_eq!(
        v["usage"]["total_tokens"],
        expected.prompt_tokens + expected.token_ids.len()
    );
    let masks = masks_of(&v);
    let want: Vec<OutputMask> = expected.masks.iter().map(OutputMask::new).collect();
    assert_eq!(masks, want);

    // the same request streamed: the deltas concatenate to the answer as generated (it
    // stopped at max_tokens, so there is no end-of-turn token to leave out), the masks
    // are the same, usage comes last, then [DONE]
    let data = events(post(
        "/v1/chat/completions",
        &chat_body("What is it?", true),
    ));
    assert_eq!(data.last().unwrap(), "[DONE]");
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert!(
        chunks
            .iter()
            .all(|c| c["object"] == "chat.completion.chunk")
    );
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, expected.raw_text);
    let streamed: Vec<OutputMask> = chunks
        .iter()
        .filter_map(|c| c.get("masks"))
        .flat_map(|m| serde_json::from_value::<Vec<OutputMask>>(m.clone()).unwrap())
        .collect();
    assert_eq!(streamed, want);
    let last = chunks.last().unwrap();
    assert_eq!(last["choices"][0]["finish_reason"], "length");
    assert_eq!(last["usage"], v["usage"]);
}

#[test]
fn a_second_turn_sees_the_history() {
    let f = fixture();
    let p = &f.pipeline;
    let img = p.encode(&photo()).unwrap();
    let options = GenerateOptions::default().with_max_new_tokens(6);
    let first = p
        .chat(&img, &mut Conversation::new(), "What is it?", &options)
        .unwrap();
    // the client sends the answer back as content; the server records it as a turn
    // given as text, closed as the model closes its turns
    let mut conversation = Conversation::new();
    conversation.push_turn("What is it?", &first.text);
    let expected = p
        .chat(&img, &mut conversation, "And its colour?", &options)
        .unwrap();
    let single = p
        .chat(&img, &mut Conversation::new(), "And its colour?", &options)
        .unwrap();
    let body = json!({
        "model": "tiny-test",
        "max_tokens": 6,
        "messages": [
            {"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": data_url(&photo_bytes())}},
                {"type": "text", "text": "What is it?"}
            ]},
            {"role": "assistant", "content": first.text},
            {"role": "user", "content": "And its colour?"}
        ]
    });
    let v = ok_json(post("/v1/chat/completions", &body));
    assert_eq!(
        v["choices"][0]["message"]["content"],
        expected.text.as_str()
    );
    // (on these random weights the history changes the answer)
    assert_ne!(expected.token_ids, single.token_ids);
}

#[test]
fn a_chat_question_about_regions_equals_the_pipeline() {
    let f = fixture();
    let p = &f.pipeline;
    let img = p.encode(&photo()).unwrap();
    let question = "Is <region> near <mark>?";
    let expected = p
        .run(
            &img,
            &Task::ask_regions(
                vec![
                    Region::rect(50.0, 40.0, 250.0, 220.0),
                    Region::point(200.0, 150.0),
                ],
                question,
            ),
            &seg_options(7, 2),
        )
        .unwrap();
    assert!(!expected.masks.is_empty());
    let mut body = chat_body(question, false);
    body["regions"] = json!([{"box": [50, 40, 250, 220]}, {"point": [200, 150]}]);
    let v = ok_json(post("/v1/chat/completions", &body));
    assert_eq!(
        v["choices"][0]["message"]["content"],
        expected.text.as_str()
    );
    assert_eq!(v["usage"]["prompt_tokens"], expected.prompt_tokens);
    let want: Vec<OutputMask> = expected.masks.iter().map(OutputMask::new).collect();
    assert_eq!(masks_of(&v), want);
    // regions in a later turn are refused
    body["messages"].as_array_mut().unwrap().extend([
        json!({"role": "assistant", "content": "a cat"}),
        json!({"role": "user", "content": question}),
    ]);
    let (code, _) = error_code(post("/v1/chat/completions", &body), 400);
    assert_eq!(code, "bad_regions");
}

#[test]
fn task_endpoints_equal_the_pipeline() {
    let f = fixture();
    let p = &f.pipeline;
    let img = p.encode(&photo()).unwrap();
    let options = seg_options(6, 1);
    let regions = vec![
        RegionSpec::Point([200.0, 150.0]),
        RegionSpec::Box([50.0, 40.0, 250.0, 220.0]),
    ];
    let cases: [(&str, JobKind, Option<&str>, &[RegionSpec]); 6] = [
        ("segment", JobKind::Segment, Some("the cat"), &[]),
        ("ground", JobKind::Ground, None, &[]),
        ("caption", JobKind::Caption, None, &[]),
        (
            "regions",
            JobKind::Region,
            Some("Is <region> near <mark>?"),
            &regions,
        ),
        // without a question, each region is described
        ("regions", JobKind::Region, None, &regions),
        ("panoptic", JobKind::Panoptic, None, &[]),
    ];
    for (path, kind, prompt, regions) in cases {
        let job = Job {
            kind,
            prompt: prompt.map(str::to_owned),
            regions: regions.to_vec(),
        };
        let expected = run_job(p, &img, &job, &options).unwrap();
        let mut body = json!({
            "image": data_url(&photo_bytes()),
            "max_tokens": 6,
            "force_seg": 1,
            "regions": regions,
        });
        if let Some(q) = prompt {
            body["prompt"] = json!(q);
        }
        let v = ok_json(post(&format!("/v1/{path}"), &body));
        assert_eq!(v["task"], path);
        assert_eq!(
            (v["width"].as_u64(), v["height"].as_u64()),
            (Some(451), Some(300))
        );
        assert_eq!(v["text"].as_str(), expected.text.as_deref(), "{path}");
        assert_eq!(masks_of(&v), expected.masks, "{path}");
        // (ground's masks go with <p> phrases, which random weights do not write)
        if matches!(kind, JobKind::Segment | JobKind::Region | JobKind::Panoptic) {
            assert!(!expected.masks.is_empty(), "{path} has masks to compare");
        }
    }
    // interactive: one mask per region, each the Pipeline's
    let v = ok_json(post(
        "/v1/interactive",
        &json!({"image": data_url(&photo_bytes()), "regions": regions}),
    ));
    assert_eq!(v["task"], "interactive");
    assert!(v.get("text").is_none());
    let want: Vec<OutputMask> = [
        Region::point(200.0, 150.0),
        Region::rect(50.0, 40.0, 250.0, 220.0),
    ]
    .iter()
    .map(|r| OutputMask::new(&p.segment_region(&img, r).unwrap()))
    .collect();
    assert_eq!(masks_of(&v), want);
    assert!(want.iter().all(|m| m.area > 0));
}

#[test]
fn multipart_equals_json() {
    let f = fixture();
    let form = reqwest::blocking::multipart::Form::new()
        .part(
            "image",
            reqwest::blocking::multipart::Part::bytes(photo_bytes()).file_name("chelsea.png"),
        )
        .text("prompt", "the cat")
        .text("max_tokens", "6")
        .text("force_seg", "1");
    let r = client()
        .post(url(f.addr, "/v1/segment"))
        .multipart(form)
        .send()
        .unwrap();
    let from_form = ok_json(r);
    let from_json = ok_json(post(
        "/v1/segment",
        &json!({"image": data_url(&photo_bytes()), "prompt": "the cat", "max_tokens": 6, "force_seg": 1}),
    ));
    assert_eq!(from_form["text"], from_json["text"]);
    assert_eq!(from_form["masks"], from_json["masks"]);
    assert!(!masks_of(&from_form).is_empty());
}

#[test]
fn a_photo_is_encoded_once_for_follow_up_questions() {
    // a server of its own: the other tests' photos do not move its counter
    let addr = start(ServeConfig::default());
    let encoded = || -> u64 {
        let h: Value = get_json(addr, "/health");
        h["cache"]["encoded"].as_u64().unwrap()
    };
    let send = |path: &str, body: &Value| {
        ok_json(client().post(url(addr, path)).json(body).send().unwrap())
    };
    assert_eq!(encoded(), 0);
    let body = json!({"image": data_url(&photo_bytes()), "prompt": "the cat", "max_tokens": 2});
    let _ = send("/v1/segment", &body);
    assert_eq!(encoded(), 1);
    let _ = send("/v1/caption", &body);
    let _ = send("/v1/segment", &body);
    let _ = send("/v1/chat/completions", &chat_body("What is it?", false));
    assert_eq!(encoded(), 1, "follow-ups reuse the encoded photo");
    // another photo is encoded
    let mut flipped = Vec::new();
    photo()
        .fliph()
        .write_to(
            &mut std::io::Cursor::new(&mut flipped),
            image::ImageFormat::Png,
        )
        .unwrap();
    let _ = send(
        "/v1/caption",
        &json!({"image": data_url(&flipped), "max_tokens": 2}),
    );
    assert_eq!(encoded(), 2);
}

#[test]
fn bad_inputs_get_the_4xx_that_names_them() {
    let good = data_url(&photo_bytes());
    let seg = |image: &str, extra: Value| {
        let mut body = json!({"image": image, "prompt": "the cat", "max_tokens": 4});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        post("/v1/segment", &body)
    };
    let (code, msg) = error_code(seg("data:image/png;base64,@@@not base64", json!({})), 400);
    assert_eq!(code, "bad_image");
    assert!(msg.contains("base64"), "{msg}");
    let junk = data_url(b"this is not a picture at all");
    let (code, _) = error_code(seg(&junk, json!({})), 415);
    assert_eq!(code, "unsupported_image");
    let (code, msg) = error_code(seg("https://example.com/cat.png", json!({})), 400);
    assert_eq!(code, "bad_image");
    assert!(msg.contains("data URL"), "{msg}");
    // past the pipeline's side limit, refused from the header
    let mut wide = Vec::new();
    image::DynamicImage::new_luma8(5000, 1)
        .write_to(
            &mut std::io::Cursor::new(&mut wide),
            image::ImageFormat::Png,
        )
        .unwrap();
    let (code, msg) = error_code(seg(&data_url(&wide), json!({})), 413);
    assert_eq!(code, "image_too_large");
    assert!(msg.contains("5000"), "{msg}");
    // regions outside the photo (a box may overlap its border, as in the official tools)
    let r = post(
        "/v1/regions",
        &json!({"image": good, "regions": [{"box": [500, 10, 900, 100]}]}),
    );
    let (code, msg) = error_code(r, 400);
    assert_eq!(code, "bad_region");
    assert!(msg.contains("451"), "{msg}");
    let r = post(
        "/v1/interactive",
        &json!({"image": good, "regions": [{"point": [100, 300]}]}),
    );
    let (code, _) = error_code(r, 400);
    assert_eq!(code, "bad_region");
    let (code, _) = error_code(post("/v1/interactive", &json!({"image": good})), 400);
    assert_eq!(code, "bad_regions");
    let (code, _) = error_code(post("/v1/regions", &json!({"image": good})), 400);
    assert_eq!(code, "bad_input");
    // a region mask whose RLE does not decode
    let bad_rle = json!([{"mask_rle": {"size": [300, 451], "counts": "~~~~"}}]);
    let (code, _) = error_code(
        post(
            "/v1/interactive",
            &json!({"image": good, "regions": bad_rle}),
        ),
        400,
    );
    assert_eq!(code, "bad_regions");
    let mut chat_bad_rle = chat_body("What is <region>?", false);
    chat_bad_rle["regions"] = bad_rle;
    let (code, _) = error_code(post("/v1/chat/completions", &chat_bad_rle), 400);
    assert_eq!(code, "bad_regions");
    // a prompt that does not fit the context with the new tokens
    let (code, msg) = error_code(seg(&good, json!({"max_tokens": 40000})), 400);
    assert_eq!(code, "prompt_too_long");
    assert!(msg.contains("40000"), "{msg}");
    let (code, _) = error_code(seg(&good, json!({"max_tokens": 0})), 400);
    assert_eq!(code, "bad_parameter");
    // the Pipeline's own checks of the settings, named by the request's fields
    let (code, msg) = error_code(seg(&good, json!({"force_seg": 3})), 400);
    assert_eq!(code, "bad_parameter");
    assert!(msg.starts_with("force_seg"), "{msg}");
    let (code, msg) = error_code(seg(&good, json!({"temperature": 0.5, "top_p": 1.5})), 400);
    assert_eq!(code, "bad_parameter");
    assert!(msg.starts_with("top_p"), "{msg}");
    let (code, _) = error_code(seg(&good, json!({"temperature": -1.0})), 400);
    assert_eq!(code, "bad_parameter");
    let (code, _) = error_code(post("/v1/segment", &json!({"image": good})), 400);
    assert_eq!(code, "bad_input");
    let (code, _) = error_code(post("/v1/segment", &json!({"prompt": "x"})), 400);
    assert_eq!(code, "bad_image");
    let (code, _) = error_code(
        client()
            .post(url(fixture().addr, "/v1/segment"))
            .header("content-type", "application/json")
            .body("{not json")
            .send()
            .unwrap(),
        400,
    );
    assert_eq!(code, "bad_json");
    // chat: no image, two images, a conversation that does not end with a question
    let no_image = json!({"messages": [{"role": "user", "content": "hi"}]});
    let (code, msg) = error_code(post("/v1/chat/completions", &no_image), 400);
    assert_eq!(code, "bad_messages");
    assert!(msg.contains("no image"), "{msg}");
    let part = json!({"type": "image_url", "image_url": {"url": good}});
    let two = json!({"messages": [{"role": "user", "content": [part.clone(), part]}]});
    let (code, _) = error_code(post("/v1/chat/completions", &two), 400);
    assert_eq!(code, "bad_messages");
    let mut ends_with_answer = chat_body("hi", false);
    ends_with_answer["messages"]
        .as_array_mut()
        .unwrap()
        .push(json!({"role": "assistant", "content": "hello"}));
    let (code, _) = error_code(post("/v1/chat/completions", &ends_with_answer), 400);
    assert_eq!(code, "bad_messages");
    // a streamed request that cannot start is an error status, not an event
    let mut stream_bad = chat_body("hi", true);
    stream_bad["max_tokens"] = json!(40000);
    stream_bad["force_seg"] = Value::Null;
    let (code, _) = error_code(post("/v1/chat/completions", &stream_bad), 400);
    assert_eq!(code, "prompt_too_long");
    // a body past the server's limit is refused from its declared length, before it is
    // read (the request's head alone is sent: a client still writing the body when the
    // answer comes may see its connection closed first)
    for path in ["/v1/segment", "/v1/chat/completions"] {
        let mut tcp = std::net::TcpStream::connect(fixture().addr).unwrap();
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            5 << 20
        );
        std::io::Write::write_all(&mut tcp, head.as_bytes()).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let mut answer = String::new();
        let _ = std::io::Read::read_to_string(&mut tcp, &mut answer);
        assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
        let body: Value = serde_json::from_str(answer.split("\r\n\r\n").nth(1).unwrap()).unwrap();
        assert_eq!(body["error"]["code"], "body_too_large");
        let msg = body["error"]["message"].as_str().unwrap();
        assert!(msg.contains(&(4 << 20).to_string()), "{msg}");
    }
}

#[test]
fn a_full_queue_answers_503_with_retry_after() {
    // no request may wait: while one runs, the next is refused
    let addr = start(ServeConfig {
        queue_capacity: 0,
        max_tokens_limit: 1 << 20,
        ..ServeConfig::default()
    });
    let mut long = chat_body("Tell me everything.", true);
    long["max_tokens"] = json!(20000);
    long["force_seg"] = Value::Null;
    long["ignore_eos"] = json!(true);
    // without a queue, a request is taken only while the model thread waits for one:
    // until that thread has started (a busy machine may delay it), the first is refused
    let mut running = None;
    eventually("the model thread to take the long request", || {
        let r = client()
            .post(url(addr, "/v1/chat/completions"))
            .json(&long)
            .send()
            .unwrap();
        if r.status().is_success() {
            running = Some(r);
            return true;
        }
        assert_eq!(r.status().as_u16(), 503);
        false
    });
    let mut lines = BufReader::new(running.unwrap()).lines();
    // the first chunk has arrived: the long request is running
    assert!(lines.next().unwrap().unwrap().starts_with("data: "));
    let refused = client()
        .post(url(addr, "/v1/caption"))
        .json(&json!({"image": data_url(&photo_bytes()), "max_tokens": 2}))
        .send()
        .unwrap();
    assert_eq!(refused.status().as_u16(), 503);
    assert_eq!(refused.headers()["retry-after"], "2");
    let body: Value = refused.json().unwrap();
    assert_eq!(body["error"]["code"], "queue_full");
    // the client goes away: the worker stops at its next chunk and takes requests again
    drop(lines);
    eventually("the worker to take requests again", || {
        let r = client()
            .post(url(addr, "/v1/caption"))
            .json(&json!({"image": data_url(&photo_bytes()), "max_tokens": 2}))
            .send()
            .unwrap();
        if r.status().is_success() {
            return true;
        }
        assert_eq!(r.status().as_u16(), 503);
        false
    });
    let h: Value = get_json(addr, "/health");
    assert!(h["queue"]["refused"].as_u64().unwrap() >= 1);
}

#[test]
fn waiting_chat_requests_are_generated_together_and_answer_as_alone() {
    let addr = start(ServeConfig {
        max_tokens_limit: 1 << 20,
        max_batch: 4,
        ..ServeConfig::default()
    });
    let health = || get_json(addr, "/health");
    // a long answer holds the model (all of its 20000 tokens: `ignore_eos`)
    let mut long = chat_body("hi", true);
    long["max_tokens"] = json!(20000);
    long["ignore_eos"] = json!(true);
    let blocker = client()
        .post(url(addr, "/v1/chat/completions"))
        .json(&long)
        .send()
        .unwrap();
    let mut lines = BufReader::new(blocker).lines();
    assert!(lines.next().unwrap().unwrap().starts_with("data: "));
    // three requests of their own lengths wait behind it, one of them streamed
    let asks = [
        ("What is it?", 6, false),
        ("hi", 9, true),
        ("Describe the image.", 4, false),
    ];
    let handles: Vec<_> = asks
        .iter()
        .map(|&(q, n, stream)| {
            let mut body = chat_body(q, stream);
            body["max_tokens"] = json!(n);
            std::thread::spawn(move || {
                client()
                    .post(url(addr, "/v1/chat/completions"))
                    .json(&body)
                    .send()
                    .unwrap()
            })
        })
        .collect();
    eventually("three waiting requests", || {
        health()["queue"]["waiting"].as_u64() == Some(3)
    });
    // the long answer's client goes away: the three run as one batch
    drop(lines);
    let p = &fixture().pipeline;
    let img = p.encode(&photo()).unwrap();
    for (&(q, n, stream), handle) in asks.iter().zip(handles) {
        let r = handle.join().unwrap();
        let alone = p.run(&img, &Task::chat(q), &seg_options(n, 2)).unwrap();
        let (text, masks) = if stream {
            let mut text = String::new();
            let mut masks = Vec::new();
            for e in events(r) {
                if e == "[DONE]" {
                    continue;
                }
                let v: Value = serde_json::from_str(&e).unwrap();
                if let Some(t) = v["choices"][0]["delta"]["content"].as_str() {
                    text.push_str(t);
                }
                if v.get("masks").is_some() {
                    masks.extend(masks_of(&v));
                }
            }
            (text, masks)
        } else {
            let v = ok_json(r);
            assert_eq!(
                v["usage"]["completion_tokens"].as_u64(),
                Some(alone.token_ids.len() as u64),
                "{q}"
            );
            (
                v["choices"][0]["message"]["content"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
                masks_of(&v),
            )
        };
        let expected = omg_llava::GroundedAnswer::from(alone);
        assert_eq!(text.trim_end(), expected.answer.text, "{q}");
        assert_eq!(masks.len(), expected.answer.masks.len(), "{q}");
        for (m, e) in masks.iter().zip(&expected.answer.masks) {
            let got = omg_llava::BinaryMask::from_rle(&m.rle).unwrap();
            assert!(got.iou(e.mask()).unwrap() >= 0.999, "{q}");
        }
    }
    let h = health();
    assert_eq!(h["queue"]["largest_batch"].as_u64(), Some(3), "{h}");
}
