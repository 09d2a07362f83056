//! API keys, the separate metrics listener and CORS on the real router.

use axum::body::Body;
use axum::http::Request;
use tower::ServiceExt;

use crate::helpers::{TestServer, client, config, expect_problem, fixture};

const KEY: &str = "test-key-0123456789abcdef";
const FILE_KEY: &str = "file-key-0123456789abcdef";

#[tokio::test]
async fn keys_guard_inference_and_model_routes_only() {
    let file = std::env::temp_dir().join(format!("cxr-api-keys-{}", std::process::id()));
    std::fs::write(&file, format!("# ops\n{FILE_KEY}\n")).unwrap();
    let server = TestServer::start(config(&["--api-key", KEY, "--api-key-file", file.to_str().unwrap()]));
    let image = fixture("dicom/cxr_explicit_le.dcm");
    let predict = |auth: Option<(&'static str, String)>| {
        let mut request =
            client().post(server.url("/predict")).header("content-type", image.media_type()).body(image.bytes());
        if let Some((name, value)) = auth {
            request = request.header(name, value);
        }
        request.send()
    };

    // Missing, wrong, wrong scheme: the same 401, which never says what was wrong.
    let mut details = Vec::new();
    for auth in [
        None,
        Some(("authorization", "Bearer wrong-key-0123456789abcdef".to_string())),
        Some(("authorization", format!("Basic {KEY}"))),
        Some(("x-api-key", format!("{KEY}x"))),
    ] {
        let response = predict(auth).await.unwrap();
        assert_eq!(response.headers()["www-authenticate"], "Bearer");
        let problem = expect_problem(response, 401, "unauthorized").await;
        details.push(problem["detail"].as_str().unwrap().to_string());
    }
    assert!(details.windows(2).all(|w| w[0] == w[1]), "the detail is the same whatever failed: {details:?}");
    assert!(!details[0].contains(KEY));
    // A large upload without a key still gets its 401, not a broken pipe: the body is read (and dropped) first.
    let big =
        client().post(server.url("/predict")).header("content-type", "application/dicom").body(vec![0u8; 16 << 20]);
    assert_eq!(big.send().await.expect("the 401 arrives").status(), 401);

    // Accepted: Bearer, X-API-Key, and a key from the file.
    for auth in [
        ("authorization", format!("Bearer {KEY}")),
        ("x-api-key", KEY.to_string()),
        ("x-api-key", FILE_KEY.to_string()),
    ] {
        assert_eq!(predict(Some(auth)).await.unwrap().status(), 200);
    }

    // Protected: models, A/B, v2 model routes. Open: health, readiness, metrics, the document, v2 health.
    for path in ["/v1/models", "/v1/ab", "/v2/models/gray", "/v2/models/gray/ready"] {
        assert_eq!(client().get(server.url(path)).send().await.unwrap().status(), 401, "{path}");
        let ok = client().get(server.url(path)).bearer_auth(KEY).send().await.unwrap();
        assert_eq!(ok.status(), 200, "{path} with a key");
    }
    let infer = client().post(server.url("/v2/models/gray/infer")).body("{}").send().await.unwrap();
    assert_eq!(infer.status(), 401);
    for path in ["/healthz", "/readyz", "/metrics", "/openapi.yaml", "/v2", "/v2/health/live", "/v2/health/ready"] {
        assert_eq!(client().get(server.url(path)).send().await.unwrap().status(), 200, "{path} stays open");
    }
    let metrics = client().get(server.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("problems/unauthorized") || metrics.contains("unauthorized"), "401s are counted");
    assert!(!metrics.contains(KEY), "keys never reach the metrics");
    let _ = std::fs::remove_file(&file);
}

#[tokio::test]
async fn a_missing_key_file_or_a_short_key_stops_startup() {
    let short = <cxr_serve::Config as clap::Parser>::try_parse_from(["cxr-serve", "--api-key", "short"]);
    assert!(short.unwrap_err().to_string().contains("at least 16"));
    let cfg = config(&["--api-key-file", "/nonexistent/keys.txt"]);
    let error = cxr_serve::serve(cfg).await.unwrap_err().to_string();
    assert!(error.contains("/nonexistent/keys.txt"), "{error}");
}

#[tokio::test]
async fn metrics_can_move_to_their_own_listener_and_cors_is_opt_in() {
    let state = cxr_serve::AppState::new(&config(&["--metrics-bind", "127.0.0.1:0"]));
    let main = cxr_serve::app(state.clone());
    let response = main.oneshot(Request::get("/metrics").body(Body::empty()).unwrap()).await.unwrap();
    assert_eq!(response.status(), 404, "not on the main listener");
    let metrics = cxr_serve::api::metrics_app(state);
    let response = metrics.oneshot(Request::get("/metrics").body(Body::empty()).unwrap()).await.unwrap();
    assert_eq!(response.status(), 200);

    let preflight = |origin: &str| {
        Request::builder()
            .method("OPTIONS")
            .uri("/predict")
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "authorization,content-type")
            .body(Body::empty())
            .unwrap()
    };
    let plain = cxr_serve::app(cxr_serve::AppState::new(&config(&[])));
    let response = plain.oneshot(preflight("https://viewer.example")).await.unwrap();
    assert!(response.headers().get("access-control-allow-origin").is_none(), "CORS off by default");
    let cors = cxr_serve::app(cxr_serve::AppState::new(&config(&["--cors-origin", "https://viewer.example"])));
    let response = cors.clone().oneshot(preflight("https://viewer.example")).await.unwrap();
    assert_eq!(response.headers()["access-control-allow-origin"], "https://viewer.example");
    let response = cors.oneshot(preflight("https://evil.example")).await.unwrap();
    assert!(response.headers().get("access-control-allow-origin").is_none(), "other origins get nothing");
}
