//! `openapi.yaml` documents exactly the router's routes and every problem type, and is what the server serves.
//! (`ARCHITECTURE.md`'s codemap and layering are checked by `xtask check`.)

use std::collections::BTreeSet;

use cxr_serve::api::OPENAPI_YAML;
use cxr_serve::{Endpoint, ProblemKind};
use serde_yaml::Value;
use tower::ServiceExt;

fn document() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.yaml");
    let text = std::fs::read_to_string(path).expect("openapi.yaml exists at the repository top level");
    serde_yaml::from_str(&text).expect("openapi.yaml is valid YAML")
}

#[test]
fn openapi_documents_exactly_the_routes_of_the_router() {
    let doc = document();
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.1")), "OpenAPI 3.1");
    let paths = doc["paths"].as_mapping().expect("paths");

    for endpoint in Endpoint::ALL {
        let item = &doc["paths"][endpoint.path()];
        assert!(item.is_mapping(), "{} is not documented in openapi.yaml", endpoint.path());
        let operation = &item[endpoint.method().to_ascii_lowercase().as_str()];
        assert!(operation.is_mapping(), "{} {} is not documented", endpoint.method(), endpoint.path());
        assert!(operation["responses"].is_mapping(), "{} {} has no responses", endpoint.method(), endpoint.path());
    }

    let documented: BTreeSet<(String, String)> = paths
        .iter()
        .flat_map(|(path, item)| {
            let path = path.as_str().unwrap().to_string();
            item.as_mapping()
                .unwrap()
                .keys()
                .filter_map(|k| k.as_str())
                .filter(|k| ["get", "put", "post", "delete", "patch", "head", "options"].contains(k))
                .map(move |method| (method.to_ascii_uppercase(), path.clone()))
        })
        .collect();
    let served: BTreeSet<(String, String)> =
        Endpoint::ALL.iter().map(|e| (e.method().to_string(), e.path().to_string())).collect();
    assert_eq!(documented, served, "openapi.yaml must document exactly the routes the router serves");
}

#[test]
fn openapi_lists_every_problem_type_and_the_schemas() {
    let doc = document();
    let schemas = &doc["components"]["schemas"];
    for schema in
        ["PredictResponse", "Finding", "ModelCard", "Problem", "ModelResult", "Timing", "InputInfo", "ABSummary"]
    {
        assert!(schemas[schema].is_mapping(), "schema {schema} is missing");
    }
    let listed: BTreeSet<&str> = schemas["Problem"]["properties"]["type"]["enum"]
        .as_sequence()
        .expect("Problem.type enum")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let defined: BTreeSet<String> = ProblemKind::ALL.iter().map(|k| k.type_uri()).collect();
    assert_eq!(listed, defined.iter().map(String::as_str).collect(), "Problem.type enum vs ProblemKind::ALL");
    let description = schemas["Problem"]["properties"]["type"]["description"].as_str().unwrap();
    for kind in ProblemKind::ALL {
        let line = format!("`{}` ({}", kind.type_uri(), kind.status().as_u16());
        assert!(description.contains(&line), "Problem.type description lacks {line}");
    }
}

#[tokio::test]
async fn the_served_document_is_the_file() {
    // The document is served without models: the in-process router is enough.
    let app = cxr_serve::app(cxr_serve::AppState::new(&cxr_serve::Config::defaults()));
    let request = axum::http::Request::get("/openapi.yaml").body(axum::body::Body::empty()).unwrap();
    let response = app.oneshot(request).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/yaml");
    let served = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
    let file = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.yaml")).unwrap();
    assert_eq!(served, file.as_bytes());
    assert_eq!(OPENAPI_YAML, file);
}
