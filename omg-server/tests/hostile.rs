//! The server under requests meant to hurt it, each answered with the 4xx that names
//! the abuse before any model work (a small version of every class of
//! `scripts/abuse.py`): huge declared region masks, endless placeholders or history,
//! text past the limit, foreign hosts and pages, other content types, missing keys,
//! half-sent requests, more connections than the cap; and a client that goes away is
//! not answered at the model's expense.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use omg_server::{AccessPolicy, ConnectionLimits, RequestLimits, ServeConfig};
use reqwest::blocking::Response;
use serde_json::{Value, json};

mod common;
use common::*;

/// A server with the default limits, on the demo bundle.
fn server() -> SocketAddr {
    static ADDR: OnceLock<SocketAddr> = OnceLock::new();
    *ADDR.get_or_init(|| start(ServeConfig::default()))
}

fn post_to(addr: SocketAddr, path: &str, body: &Value) -> Response {
    client().post(url(addr, path)).json(body).send().unwrap()
}

/// The demo photo's size.
fn photo_size() -> (u32, u32) {
    let p = image::load_from_memory(&photo_bytes()).unwrap();
    (p.width(), p.height())
}

#[test]
fn region_masks_larger_than_the_photo_are_refused_before_decoding() {
    let huge = json!({"mask_rle": {"size": [16384, 16384], "counts": "0"}});
    let mut chat = chat_body("What is <region>?", false);
    chat["regions"] = json!([huge]);
    let (code, msg) = error_code(post_to(server(), "/v1/chat/completions", &chat), 400);
    assert_eq!(code, "bad_regions");
    assert!(msg.contains("16384×16384"), "{msg}");
    let body = json!({"image": data_url(&photo_bytes()), "regions": [huge]});
    let (code, _) = error_code(post_to(server(), "/v1/interactive", &body), 400);
    assert_eq!(code, "bad_regions");
    // more regions than the limit, and lists far past every limit while parsing
    let many = vec![json!({"point": [1, 1]}); 17];
    let body = json!({"image": data_url(&photo_bytes()), "regions": many});
    let (code, msg) = error_code(post_to(server(), "/v1/interactive", &body), 400);
    assert_eq!(code, "bad_regions");
    assert!(msg.contains("at most 16"), "{msg}");
    let body = json!({"image": data_url(&photo_bytes()), "regions": vec![json!({"point": [1, 1]}); 10000]});
    let (code, _) = error_code(post_to(server(), "/v1/interactive", &body), 400);
    assert_eq!(code, "list_too_long");
}

#[test]
fn text_past_the_limit_and_endless_history_are_refused() {
    let placeholders = "<region>".repeat(131_072);
    let mut chat = chat_body(&placeholders, false);
    chat["regions"] = json!([{"point": [1, 1]}]);
    let (code, msg) = error_code(post_to(server(), "/v1/chat/completions", &chat), 400);
    assert_eq!(code, "text_too_long");
    assert!(msg.contains("1048576 characters"), "{msg}");
    let body = json!({"image": data_url(&photo_bytes()), "prompt": "a".repeat(8193)});
    let (code, _) = error_code(post_to(server(), "/v1/segment", &body), 400);
    assert_eq!(code, "text_too_long");
    // at the limit, the text is taken
    let body =
        json!({"image": data_url(&photo_bytes()), "prompt": "a ".repeat(4096), "max_tokens": 1});
    assert!(
        post_to(server(), "/v1/segment", &body)
            .status()
            .is_success()
    );
    // 100 000 turns stop the parse at the message limit
    let mut messages = vec![json!({"role": "user", "content": [
        {"type": "text", "text": "q"},
        {"type": "image_url", "image_url": {"url": data_url(&photo_bytes())}}
    ]})];
    for _ in 0..50_000 {
        messages.push(json!({"role": "assistant", "content": "a"}));
        messages.push(json!({"role": "user", "content": "q"}));
    }
    let (code, msg) = error_code(
        post_to(
            server(),
            "/v1/chat/completions",
            &json!({"messages": messages}),
        ),
        400,
    );
    assert_eq!(code, "list_too_long");
    assert!(msg.contains("64 elements"), "{msg}");
    // one past the limit: the parse cap is the message limit here (the larger of it and
    // the region limit)
    let short: Vec<Value> = messages[..65].to_vec();
    let (code, _) = error_code(
        post_to(
            server(),
            "/v1/chat/completions",
            &json!({"messages": short}),
        ),
        400,
    );
    assert_eq!(code, "list_too_long");
    // where the region limit is the larger, a list within the parse cap is still
    // counted against the message limit
    let few_messages = start(ServeConfig {
        limits: RequestLimits {
            max_messages: 4,
            max_regions: 8,
            ..RequestLimits::default()
        },
        ..ServeConfig::default()
    });
    let chat = |n: usize| json!({"messages": messages[..n].to_vec(), "max_tokens": 1});
    let (code, msg) = error_code(post_to(few_messages, "/v1/chat/completions", &chat(5)), 400);
    assert_eq!(code, "too_many_messages");
    assert!(msg.contains('4'), "{msg}");
    assert!(
        post_to(few_messages, "/v1/chat/completions", &chat(3))
            .status()
            .is_success()
    );
    // parts of one message are capped as well
    let parts = vec![json!({"type": "text", "text": "x"}); 1000];
    let body = json!({"messages": [{"role": "user", "content": parts}]});
    let (code, _) = error_code(post_to(server(), "/v1/chat/completions", &body), 400);
    assert_eq!(code, "list_too_long");
}

#[test]
fn settings_out_of_range_and_boxes_past_the_photo() {
    let good = data_url(&photo_bytes());
    let body = json!({"image": good, "prompt": "x", "max_tokens": 4, "force_seg": u64::MAX});
    let (code, msg) = error_code(post_to(server(), "/v1/segment", &body), 400);
    assert_eq!(code, "bad_parameter");
    assert!(msg.starts_with("force_seg"), "{msg}");
    // a box reaching far past the photo is the box of the whole photo
    let (w, h) = photo_size();
    let ask = |b: Value| {
        let body = json!({"image": good, "regions": [{"box": b}], "max_tokens": 3});
        let r = post_to(server(), "/v1/regions", &body);
        assert!(r.status().is_success(), "{}", r.status());
        r.json::<Value>().unwrap()["text"].clone()
    };
    assert_eq!(ask(json!([0, 0, 3e38, 3e38])), ask(json!([0, 0, w, h])));
    assert_eq!(ask(json!([-1e30, -5, w, 1e20])), ask(json!([0, 0, w, h])));
    // a coordinate past f32 is not finite
    let body = json!({"image": good, "regions": [{"box": [0, 0, 1e39, 10]}]});
    let (code, msg) = error_code(post_to(server(), "/v1/regions", &body), 400);
    assert_eq!(code, "bad_regions");
    assert!(msg.contains("not all finite"), "{msg}");
}

#[test]
fn foreign_hosts_pages_and_content_types_are_refused() {
    let addr = server();
    let body = serde_json::to_string(&chat_body("hi", false)).unwrap();
    let send = |headers: &[(&str, &str)]| {
        let mut r = client()
            .post(url(addr, "/v1/chat/completions"))
            .body(body.clone());
        for (k, v) in headers {
            r = r.header(*k, *v);
        }
        r.send().unwrap()
    };
    let (code, _) = error_code(send(&[("content-type", "text/plain")]), 415);
    assert_eq!(code, "unsupported_content_type");
    let (code, _) = error_code(send(&[]), 415);
    assert_eq!(code, "unsupported_content_type");
    let json_type = ("content-type", "application/json");
    let (code, _) = error_code(send(&[json_type, ("host", "evil.example")]), 403);
    assert_eq!(code, "forbidden_host");
    let (code, _) = error_code(send(&[json_type, ("origin", "http://evil.example")]), 403);
    assert_eq!(code, "forbidden_origin");
    let (code, _) = error_code(send(&[json_type, ("origin", "null")]), 403);
    assert_eq!(code, "forbidden_origin");
    // the loopback names, with a port, and a page served from them are allowed
    let host = format!("localhost:{}", addr.port());
    let origin = format!("http://localhost:{}", addr.port());
    let ok = send(&[json_type, ("host", &host), ("origin", &origin)]);
    assert!(ok.status().is_success(), "{}", ok.status());
    // a GET is refused from a foreign host too
    let r = client()
        .get(url(addr, "/health"))
        .header("host", "evil.example")
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
}

#[test]
fn with_an_api_key_every_route_but_health_and_the_page_needs_it() {
    let addr = start(ServeConfig {
        access: AccessPolicy {
            api_key: Some("sk-test-123".into()),
            ..AccessPolicy::default()
        },
        ..ServeConfig::default()
    });
    let get = |path: &str, key: Option<&str>| {
        let mut r = client().get(url(addr, path));
        if let Some(k) = key {
            r = r.bearer_auth(k);
        }
        r.send().unwrap()
    };
    assert!(get("/health", None).status().is_success());
    assert!(get("/", None).status().is_success());
    let r = get("/v1/models", None);
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    let (code, _) = error_code(r, 401);
    assert_eq!(code, "missing_api_key");
    let (code, _) = error_code(get("/v1/models", Some("sk-test-124")), 401);
    assert_eq!(code, "invalid_api_key");
    assert!(get("/v1/models", Some("sk-test-123")).status().is_success());
    for path in ["/v1/chat/completions", "/v1/segment", "/v1/nowhere"] {
        let (code, _) = error_code(post_to(addr, path, &chat_body("hi", false)), 401);
        assert_eq!(code, "missing_api_key", "{path}");
    }
    let r = client()
        .post(url(addr, "/v1/chat/completions"))
        .bearer_auth("sk-test-123")
        .json(&chat_body("hi", false))
        .send()
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
}

/// A server with short connection timeouts and a cap of `max` connections.
fn strict(max: usize) -> SocketAddr {
    start(ServeConfig {
        connections: ConnectionLimits {
            max_connections: max,
            header_timeout: Duration::from_secs(1),
            body_timeout: Duration::from_secs(1),
            ..ConnectionLimits::default()
        },
        ..ServeConfig::default()
    })
}

/// Everything the server sends on `stream` until it closes it (or 20 s pass).
fn read_to_close(stream: &mut TcpStream) -> String {
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn half_sent_requests_are_closed_after_their_timeout() {
    let addr = strict(16);
    // headers that never end: the connection is closed, nothing is answered
    let mut headers = TcpStream::connect(addr).unwrap();
    headers
        .write_all(b"POST /v1/segment HTTP/1.1\r\nHost: localhost\r\nContent-")
        .unwrap();
    let t0 = Instant::now();
    let answer = read_to_close(&mut headers);
    assert!(t0.elapsed() < Duration::from_secs(15), "{:?}", t0.elapsed());
    assert!(!answer.contains("200 OK"), "{answer}");
    // an idle connection is closed as well
    let mut idle = TcpStream::connect(addr).unwrap();
    let _ = read_to_close(&mut idle);
    assert!(t0.elapsed() < Duration::from_secs(15));
    // a body that stops halfway gets a 408
    let mut body = TcpStream::connect(addr).unwrap();
    body.write_all(
        b"POST /v1/segment HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"image\": ",
    )
    .unwrap();
    let answer = read_to_close(&mut body);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("body_timeout"), "{answer}");
}

#[test]
fn connections_past_the_cap_are_answered_503() {
    let addr = strict(2);
    // two connections held open (each sent a request and keeps the connection)
    let held: Vec<TcpStream> = (0..2)
        .map(|_| {
            let mut s = TcpStream::connect(addr).unwrap();
            s.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
                .unwrap();
            let mut buf = [0u8; 12];
            s.read_exact(&mut buf).unwrap();
            assert_eq!(&buf, b"HTTP/1.1 200");
            s
        })
        .collect();
    let mut third = TcpStream::connect(addr).unwrap();
    let answer = read_to_close(&mut third);
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("too_many_connections"), "{answer}");
    // once they are closed (by the client, or by the idle timeout) there is room again
    drop(held);
    eventually("room for a connection again", || {
        let r = client().get(url(addr, "/health")).send();
        r.is_ok_and(|r| r.status().is_success())
    });
}

#[test]
fn a_request_whose_client_has_gone_is_stopped() {
    let addr = start(ServeConfig {
        max_tokens_limit: 1 << 20,
        ..ServeConfig::default()
    });
    // an answer of 20000 tokens (all of them: `ignore_eos`)
    let mut long = chat_body("hi", false);
    long["max_tokens"] = json!(20000);
    long["force_seg"] = Value::Null;
    long["ignore_eos"] = json!(true);
    // the client gives up after a second, long before the answer's end
    let quick = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let sent = quick
        .post(url(addr, "/v1/chat/completions"))
        .json(&long)
        .send();
    assert!(sent.is_err(), "{:?}", sent.map(|r| r.text()));
    // the worker stops at its next token, counts the request cancelled and done, and is
    // free again (the two counters move one after the other: wait for both)
    eventually("the request to be cancelled and done", || {
        let h: Value = client()
            .get(url(addr, "/health"))
            .send()
            .unwrap()
            .json()
            .unwrap();
        h["queue"]["cancelled"].as_u64() == Some(1) && h["queue"]["done"].as_u64() == Some(1)
    });
    let body = json!({"image": data_url(&photo_bytes()), "max_tokens": 2});
    let r = post_to(addr, "/v1/caption", &body);
    assert!(r.status().is_success());
    // the cache's size is visible, and within its bound
    let h: Value = client()
        .get(url(addr, "/health"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let bytes = h["cache"]["bytes"].as_u64().unwrap();
    assert!(
        bytes > 0 && bytes <= h["cache"]["max_bytes"].as_u64().unwrap(),
        "{h}"
    );
    assert_eq!(h["cache"]["entries"].as_u64(), Some(1));
}

#[test]
fn a_shutdown_finishes_the_running_request_and_takes_no_new_one() {
    use std::io::{BufRead, BufReader};
    let config = ServeConfig {
        max_tokens_limit: 1 << 20,
        ..ServeConfig::default()
    };
    let queue = omg_server::Queue::start(pipeline(), &config);
    let connections = config.connections.clone();
    let app = omg_server::router(queue, config);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    listener.set_nonblocking(true).unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            omg_server::serve(listener, app, connections, async {
                let _ = stopped.await;
            })
            .await
        })
    });
    // a streamed answer of 400 tokens (all of them: `ignore_eos`)
    let mut body = chat_body("hi", true);
    body["max_tokens"] = json!(400);
    body["force_seg"] = Value::Null;
    body["ignore_eos"] = json!(true);
    let running = client()
        .post(url(addr, "/v1/chat/completions"))
        .json(&body)
        .send()
        .unwrap();
    assert!(running.status().is_success());
    let mut lines = BufReader::new(running).lines();
    assert!(lines.next().unwrap().unwrap().starts_with("data: "));
    stop.send(()).unwrap();
    // the running answer streams to its end
    let rest: Vec<String> = lines.map(Result::unwrap).collect();
    assert_eq!(
        rest.iter().rev().find(|l| !l.is_empty()).unwrap(),
        "data: [DONE]"
    );
    let chunks = rest.iter().filter(|l| l.starts_with("data: {")).count();
    assert!(chunks > 100, "{chunks} chunks after the shutdown began");
    // the server has returned, and takes no new connection
    server.join().unwrap().unwrap();
    assert!(client().get(url(addr, "/health")).send().is_err());
}

#[test]
fn metrics_count_requests_by_route_and_status() {
    let addr = start(ServeConfig::default());
    let _ = client().get(url(addr, "/health")).send().unwrap();
    let _ = client().get(url(addr, "/nowhere/at/all")).send().unwrap();
    let r = post_to(
        addr,
        "/v1/chat/completions",
        &chat_body("What is it?", false),
    );
    assert!(r.status().is_success());
    let r = post_to(addr, "/v1/segment", &json!({"prompt": "x"}));
    assert_eq!(r.status().as_u16(), 400);
    let r = client().get(url(addr, "/metrics")).send().unwrap();
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = r.text().unwrap();
    let value = |series: &str| -> f64 {
        let line = text
            .lines()
            .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
            .unwrap_or_else(|| panic!("no {series} in\n{text}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    assert_eq!(
        value(r#"omg_requests_total{route="/health",status="200"}"#),
        1.0
    );
    assert_eq!(
        value(r#"omg_requests_total{route="other",status="404"}"#),
        1.0
    );
    assert_eq!(
        value(r#"omg_requests_total{route="/v1/chat/completions",status="200"}"#),
        1.0
    );
    assert_eq!(
        value(r#"omg_requests_total{route="/v1/segment",status="400"}"#),
        1.0
    );
    // the chat answer's tokens (7, as max_tokens) and its first token
    assert_eq!(value("omg_generated_tokens_total"), 7.0);
    assert_eq!(value("omg_time_to_first_token_seconds_count"), 1.0);
    assert_eq!(
        value(r#"omg_time_to_first_token_seconds_bucket{le="+Inf"}"#),
        1.0
    );
    assert!(value("omg_generation_seconds_total") > 0.0);
    assert_eq!(value("omg_photos_encoded_total"), 1.0);
    assert_eq!(value("omg_cache_entries"), 1.0);
    assert!(value("omg_cache_bytes") > 0.0);
    assert_eq!(value("omg_queue_waiting"), 0.0);
    // every family is declared
    for family in [
        "omg_requests_total",
        "omg_queue_capacity",
        "omg_time_to_first_token_seconds",
    ] {
        assert!(text.contains(&format!("# TYPE {family} ")), "{family}");
    }
}
