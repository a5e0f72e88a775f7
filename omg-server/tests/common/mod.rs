//! Helpers of the server's test files: a server on a free loopback port over the demo
//! bundle, a client, the sample photo as a data URL, error codes of answers.

#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use base64::Engine;
use omg_cli::B;
use omg_llava::backend::default_device;
use omg_llava::{LoadOptions, Pipeline};
use omg_server::{Queue, ServeConfig, router, spawn};
use reqwest::blocking::{Client, Response};
use serde_json::{Value, json};

pub fn pipeline() -> Pipeline<B> {
    Pipeline::<B>::from_dir(
        omg_demo::source_bundle_dir(),
        &LoadOptions::default(),
        default_device(),
        |_| {},
    )
    .unwrap()
}

/// Starts a server with `config` on a free loopback port.
pub fn start(config: ServeConfig) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let queue = Queue::start(pipeline(), &config);
    let connections = config.connections.clone();
    spawn(listener, router(queue, config), connections).unwrap();
    addr
}

pub fn url(addr: SocketAddr, path: &str) -> String {
    format!("http://{addr}{path}")
}

pub fn client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(300))
        .build()
        .unwrap()
}

pub fn photo_bytes() -> Vec<u8> {
    std::fs::read(omg_demo::source_sample_photo()).unwrap()
}

pub fn data_url(bytes: &[u8]) -> String {
    format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

/// The error code of a failed response, checking its status.
pub fn error_code(r: Response, status: u16) -> (String, String) {
    let got = r.status().as_u16();
    let text = r.text().unwrap();
    assert_eq!(got, status, "{text}");
    let body: Value = serde_json::from_str(&text).unwrap();
    (
        body["error"]["code"].as_str().unwrap().to_owned(),
        body["error"]["message"].as_str().unwrap().to_owned(),
    )
}

pub fn chat_body(question: &str, stream: bool) -> Value {
    json!({
        "model": "tiny-test",
        "max_tokens": 7,
        "force_seg": 2,
        "stream": stream,
        "stream_options": {"include_usage": true},
        "messages": [
            {"role": "system", "content": "You are helpful."},
            {"role": "user", "content": [
                {"type": "text", "text": question},
                {"type": "image_url", "image_url": {"url": data_url(&photo_bytes())}}
            ]}
        ]
    })
}

/// Polls `done` every 50 ms until it holds. Not a timing assertion: the only bound is a
/// guard against a hang (10 minutes, far past any wait these tests expect), which
/// fails the test naming `what`.
pub fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let t0 = std::time::Instant::now();
    while !done() {
        assert!(
            t0.elapsed() < Duration::from_secs(600),
            "still waiting for {what} after 10 minutes"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
