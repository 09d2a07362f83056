//! What the models directory holds is what the server serves: a directory with only the gray model serves gray
//! alone, names what it loaded when asked for the other, and refuses to start when the configuration names a model
//! it lacks. The directory is made by linking the gray export of `models/` (and its card) into a fresh folder.

use std::path::PathBuf;

use cxr_serve::AppState;
use serde_json::Value;

use crate::helpers::{TestServer, client, config, expect_prediction, expect_problem, fixture, models_dir, post_raw};

/// A fresh directory `name` holding only the gray model (its ONNX file and its sidecar card, linked from
/// `models/`).
fn gray_only_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("cxr-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for file in ["cxr-inception-v3-gray.onnx", "cxr-inception-v3-gray.json"] {
        std::os::unix::fs::symlink(models_dir().join(file), dir.join(file)).unwrap();
    }
    dir
}

/// The test configuration with `extra` flags, serving `dir`.
fn config_in(dir: &std::path::Path, extra: &[&str]) -> cxr_serve::Config {
    let mut config = config(extra);
    config.models = dir.to_path_buf();
    config
}

#[tokio::test]
async fn a_directory_with_only_the_gray_model_serves_gray() {
    let dir = gray_only_dir("gray-only-serves");
    let server = TestServer::start(config_in(&dir, &[]));

    let models: Value = client().get(server.url("/v1/models")).send().await.unwrap().json().await.unwrap();
    let loaded: Vec<&str> = models["models"].as_array().unwrap().iter().map(|m| m["model"].as_str().unwrap()).collect();
    assert_eq!(loaded, ["gray"], "{models}");

    let png = fixture("images/nih_00000001_000.png");
    for query in ["", "?model=gray"] {
        let body = expect_prediction(post_raw(&server, query, "image/png", png.bytes()).await, &["gray"], query).await;
        assert_eq!(body["results"][0]["findings"].as_array().unwrap().len(), 14);
    }
    for query in ["?model=both", "?model=color"] {
        let response = post_raw(&server, query, "image/png", png.bytes()).await;
        let problem = expect_problem(response, 400, "model-not-loaded").await;
        let detail = problem["detail"].as_str().unwrap();
        assert!(detail.contains("color") && detail.contains("loaded: gray"), "{query}: {detail}");
    }
    // The Open Inference Protocol says the same of the absent model, and serves the present one.
    let absent = client().get(server.url("/v2/models/color")).send().await.unwrap();
    assert_eq!(absent.status(), 400);
    let error: Value = absent.json().await.unwrap();
    assert!(error["error"].as_str().unwrap().contains("loaded: gray"), "{error}");
    assert_eq!(client().get(server.url("/v2/models/gray/ready")).send().await.unwrap().status(), 200);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_configured_model_the_directory_lacks_stops_the_start() {
    let dir = gray_only_dir("gray-only-refuses");
    for (flags, flag) in [
        (&["--default-model", "color"][..], "--default-model color"),
        (&["--default-model", "both"][..], "--default-model both"),
        (&["--shadow", "color"][..], "--shadow color"),
    ] {
        let error = AppState::load(&config_in(&dir, flags)).await.err().expect("must not start").to_string();
        assert!(error.contains(flag) && error.contains("cxr-inception-v3-color.onnx"), "{flags:?}: {error}");
    }
    // An empty directory names both files it looked for.
    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let error = AppState::load(&config_in(&empty, &[])).await.err().expect("no models").to_string();
    assert!(error.contains("holds no model") && error.contains("cxr-inception-v3-gray.onnx"), "{error}");
    let _ = std::fs::remove_dir_all(&dir);
}
