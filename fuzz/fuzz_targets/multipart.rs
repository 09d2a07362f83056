//! The server's upload reader (`cxr_serve::api::body::read_upload`: raw or multipart body, size limit) on arbitrary
//! bytes sent as `multipart/form-data`: the file or an error, never a panic. The first byte picks a boundary
//! length so that generated bodies can match it. Seeded with multipart bodies of the fixtures (fuzz/seed.sh).
#![no_main]

use axum::body::Body;
use axum::http::Request;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&n, rest)) = data.split_first() else { return };
    let n = usize::from(n % 40).min(rest.len());
    let (boundary, body) = rest.split_at(n);
    let Ok(boundary) = std::str::from_utf8(boundary) else { return };
    let request = match Request::post("/predict")
        .header("content-type", format!("multipart/form-data; boundary={boundary}"))
        .body(Body::from(body.to_vec()))
    {
        Ok(request) => request,
        Err(_) => return,
    };
    thread_local! {
        static STATE: cxr_serve::AppState = cxr_serve::AppState::new(&cxr_serve::Config::defaults());
        static RUNTIME: tokio::runtime::Runtime =
            tokio::runtime::Builder::new_current_thread().enable_time().build().expect("runtime");
    }
    let state = STATE.with(Clone::clone);
    RUNTIME.with(|rt| {
        if let Ok(upload) = rt.block_on(cxr_serve::api::body::read_upload(request, &state)) {
            assert!(upload.bytes.len() <= body.len());
        }
    });
});
