//! Every failure cause answers its status and its stable problem `type`, as `application/problem+json`.

use std::sync::OnceLock;

use serde_json::Value;

use crate::helpers::{
    TestServer, client, config, default_server, expect_prediction, expect_problem, fixture, post_multipart, post_raw,
};

/// A server with small limits: 1.5 MB bodies and 0.5 megapixels.
fn limited_server() -> &'static TestServer {
    static SERVER: OnceLock<TestServer> = OnceLock::new();
    SERVER.get_or_init(|| TestServer::start(config(&["--max-body-bytes", "1500000", "--max-pixels", "500000"])))
}

#[tokio::test]
async fn garbage_bytes_are_an_unsupported_media_type() {
    let server = default_server();
    let garbage = b"this is not an image, whatever the header says".repeat(10);
    let response = post_raw(server, "", "image/png", garbage.clone()).await;
    expect_problem(response, 415, "unsupported-media-type").await;
    let response = post_multipart(server, "", "x.dcm", garbage).await;
    expect_problem(response, 415, "unsupported-media-type").await;
}

#[tokio::test]
async fn truncated_files_are_corrupt() {
    let server = default_server();
    for file in [
        "dicom/cxr_explicit_le.dcm",
        "dicom/cxr_j2k_lossless.dcm",
        "images/nih_00000001_000.png",
        "images/padchest_16747_3_1.jpg",
    ] {
        let fixture = fixture(file);
        let bytes = fixture.bytes();
        let truncated = bytes[..bytes.len() / 2].to_vec();
        let problem =
            expect_problem(post_raw(server, "", fixture.media_type(), truncated).await, 422, "corrupt-image").await;
        assert!(problem["detail"].as_str().unwrap().contains(fixture.format()), "{file}: {problem}");
    }
}

#[tokio::test]
async fn an_empty_body_is_a_bad_request() {
    expect_problem(post_raw(default_server(), "", "application/dicom", Vec::new()).await, 400, "bad-request").await;
}

#[tokio::test]
async fn an_unknown_model_is_not_found() {
    let png = fixture("images/nih_00000001_000.png");
    let problem =
        expect_problem(post_raw(default_server(), "?model=nope", "image/png", png.bytes()).await, 404, "unknown-model")
            .await;
    assert!(problem["detail"].as_str().unwrap().contains("nope"));
}

#[tokio::test]
async fn multipart_without_a_file_field_is_a_bad_request() {
    let server = default_server();
    let form = reqwest::multipart::Form::new().text("image", "no file here");
    let response = client().post(server.url("/predict")).multipart(form).send().await.unwrap();
    let problem = expect_problem(response, 400, "invalid-multipart").await;
    assert!(problem["detail"].as_str().unwrap().contains("file"), "{problem}");

    // A multipart content type whose body is not multipart at all.
    let response = client()
        .post(server.url("/predict"))
        .header("content-type", "multipart/form-data; boundary=XYZ")
        .body("garbage without any boundary")
        .send()
        .await
        .unwrap();
    expect_problem(response, 400, "invalid-multipart").await;

    // A multipart content type without a boundary.
    let response = client()
        .post(server.url("/predict"))
        .header("content-type", "multipart/form-data")
        .body("x")
        .send()
        .await
        .unwrap();
    expect_problem(response, 400, "invalid-multipart").await;
}

/// Sends `head` (request line and headers, without the blank line) and `body` over a fresh connection and returns
/// the response's status line and body. A server refusing a body it has not read answers and closes at once; a
/// plain client that is still writing the body sees a broken pipe instead of the answer, so these requests send
/// at most what the server will read.
fn raw_exchange(server: &TestServer, head: &str, body: &[u8]) -> (String, Value) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(server.addr).expect("connect");
    stream.set_read_timeout(Some(std::time::Duration::from_secs(60))).unwrap();
    stream.write_all(format!("{head}\r\nHost: {}\r\nConnection: close\r\n\r\n", server.addr).as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).expect("read the response");
    let text = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no header end in {text:?}"));
    assert!(head.to_ascii_lowercase().contains("content-type: application/problem+json"), "{head}");
    let status_line = head.lines().next().unwrap().to_string();
    (status_line, serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body:?}")))
}

#[tokio::test]
async fn a_body_over_the_limit_is_payload_too_large() {
    let server = limited_server();
    let big = fixture("dicom/cxr_12bit_no_voi.dcm"); // 2.1 MB > 1.5 MB
    let length = big.bytes().len();
    tokio::task::spawn_blocking(move || {
        // A declared length over the limit is refused before any byte of the body is read (as for curl, which
        // waits for `100 Continue`).
        for content_type in ["application/dicom", "multipart/form-data; boundary=b"] {
            let head = format!(
                "POST /predict HTTP/1.1\r\nContent-Type: {content_type}\r\nContent-Length: {length}\r\nExpect: 100-continue"
            );
            let (status, problem) = raw_exchange(server, &head, b"");
            assert!(status.contains(" 413 "), "{status}");
            assert_eq!(problem["type"], "https://cxr.example/problems/payload-too-large");
            assert!(problem["detail"].as_str().unwrap().contains("1500000"), "{problem}");
        }
        // A chunked body without a declared length is cut off once it passes the limit.
        let chunk = vec![0u8; 100_000];
        let mut body = Vec::new();
        for _ in 0..16 {
            body.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
            body.extend_from_slice(&chunk);
            body.extend_from_slice(b"\r\n");
        }
        let head = "POST /predict HTTP/1.1\r\nContent-Type: application/dicom\r\nTransfer-Encoding: chunked";
        let (status, problem) = raw_exchange(server, head, &body);
        assert!(status.contains(" 413 "), "{status}");
        assert_eq!(problem["type"], "https://cxr.example/problems/payload-too-large");
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn an_image_over_the_pixel_limit_is_refused() {
    let server = limited_server();
    let dicom = fixture("dicom/cxr_explicit_le.dcm"); // 1024 × 1024 > 0.5 MP, 1 MB < 1.5 MB
    let problem =
        expect_problem(post_raw(server, "", "application/dicom", dicom.bytes()).await, 422, "too-many-pixels").await;
    assert!(problem["detail"].as_str().unwrap().contains("1024x1024"), "{problem}");
    let jpeg = fixture("images/padchest_16747_3_1.jpg"); // 1036 × 885
    expect_problem(post_raw(server, "", "image/jpeg", jpeg.bytes()).await, 422, "too-many-pixels").await;
    // Under both limits the same server answers.
    let png = fixture("images/nih_00000001_000.png"); // 512 × 512
    expect_prediction(post_raw(server, "", "image/png", png.bytes()).await, &["gray"], "small png").await;
}

#[tokio::test]
async fn a_full_queue_or_concurrency_limit_is_overloaded_with_retry_after() {
    // One image in flight per model plus one waiting; six requests admitted at once. An Inception-V3 run takes far
    // longer than the admitted requests take to reach the queue, so some of them find it full.
    let server =
        TestServer::start(config(&["--queue-capacity", "1", "--max-batch", "1", "--max-concurrent-requests", "6"]));
    let png = fixture("images/nih_00000001_000.png").bytes();
    let requests = (0..16).map(|_| {
        let png = png.clone();
        let url = server.url("/predict?model=gray");
        tokio::spawn(async move {
            client().post(url).header("content-type", "image/png").body(png).send().await.expect("answered")
        })
    });
    let mut ok = 0;
    let mut details = Vec::new();
    for request in requests.collect::<Vec<_>>() {
        let response = request.await.unwrap();
        if response.status() == 200 {
            expect_prediction(response, &["gray"], "admitted request").await;
            ok += 1;
        } else {
            assert_eq!(response.headers().get("retry-after").and_then(|v| v.to_str().ok()), Some("1"));
            let problem: Value = expect_problem(response, 503, "overloaded").await;
            details.push(problem["detail"].as_str().unwrap().to_string());
        }
    }
    assert!(ok >= 1, "some requests are served");
    assert!(!details.is_empty(), "16 concurrent requests against 6 slots must overload");
    assert!(details.iter().any(|d| d.contains("in progress")), "the concurrency limit refuses: {details:?}");
    assert!(details.iter().any(|d| d.contains("queue is full")), "the queue refuses: {details:?}");
}

/// POSTs `len` zero bytes to `path` in full, then reads the response's status line and JSON body.
fn upload_then_read(addr: std::net::SocketAddr, path: &str, len: usize) -> std::io::Result<(String, Value)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(std::time::Duration::from_secs(60)))?;
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/dicom\r\nContent-Length: {len}\r\n\
         Connection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes())?;
    let chunk = vec![0u8; 1 << 16];
    for _ in 0..len / chunk.len() {
        stream.write_all(&chunk)?;
    }
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let text = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.lines().next().unwrap_or_default().to_string();
    Ok((status, serde_json::from_str(body).unwrap_or(Value::Null)))
}

#[tokio::test]
async fn a_request_over_the_concurrency_limit_is_answered_after_its_upload_is_drained() {
    // One request slot, held by an upload that stalls after its headers (the permit is taken before the body is
    // read). A 16 MB upload then gets its 503 — not a reset connection while it is still sending — on both
    // inference routes, exactly as a request without an API key gets its 401.
    let server = TestServer::start(config(&["--max-concurrent-requests", "1", "--body-timeout-secs", "60"]));
    let mut stalled = std::net::TcpStream::connect(server.addr).expect("connect");
    let head = format!(
        "POST /predict HTTP/1.1\r\nHost: {}\r\nContent-Type: image/png\r\nContent-Length: 1000000\r\n\r\n",
        server.addr
    );
    std::io::Write::write_all(&mut stalled, head.as_bytes()).unwrap();
    std::io::Write::write_all(&mut stalled, &[0u8; 1000]).unwrap();
    // The stalled request holds the slot once the server has routed it.
    let mut held = false;
    for _ in 0..100 {
        let probe = client().post(server.url("/predict")).body(Vec::<u8>::new()).send().await.unwrap();
        if probe.status() == 503 {
            held = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(held, "the stalled upload must hold the only request slot");
    for path in ["/predict", "/v2/models/gray/infer"] {
        let addr = server.addr;
        // A raw client that writes the whole body before reading: unless the server reads it, the write fails
        // (reset or broken pipe) once the server has answered and closed.
        let (status, body) = tokio::task::spawn_blocking(move || upload_then_read(addr, path, 16 << 20))
            .await
            .unwrap()
            .unwrap_or_else(|e| panic!("{path}: the 503 must arrive after the whole upload, got {e}"));
        assert!(status.contains(" 503 "), "{path}: {status}");
        // `/predict` answers a problem, `/v2` its protocol's `{"error": ...}`; the message is the same.
        let detail = body["detail"].as_str().or(body["error"].as_str()).unwrap_or_default();
        assert!(detail.contains("inference requests are already in progress"), "{path}: {body}");
    }
    drop(stalled);
}

#[tokio::test]
async fn unknown_routes_and_methods_are_problems_too() {
    let server = default_server();
    let response = client().get(server.url("/nope")).send().await.unwrap();
    expect_problem(response, 404, "not-found").await;
    let response = client().get(server.url("/predict")).send().await.unwrap();
    expect_problem(response, 405, "method-not-allowed").await;
}

#[tokio::test]
async fn a_sane_client_request_id_is_echoed_in_problems() {
    let server = default_server();
    let response = client()
        .post(server.url("/predict"))
        .header("x-request-id", "client-id-42")
        .body("garbage")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "client-id-42");
    let problem = expect_problem(response, 415, "unsupported-media-type").await;
    assert_eq!(problem["instance"], "client-id-42");
}
