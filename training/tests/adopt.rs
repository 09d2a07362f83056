//! `cxr-train adopt`: ONNX classifiers in the shapes `torch.onnx` and `tf2onnx` produce (tests/data/onnx, built with
//! the `onnx` package by tests/python/make_adopt_fixtures.py) and a renamed copy of our own export, wrapped into the
//! served interface; ONNX Runtime on the adopted file agrees with ONNX Runtime on the original on real X-rays. Each
//! refusal is a clear error that names the option adapting it.

mod common;

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use cxr_core::card::{INPUT_NAME, LOGITS_NAME, ModelCard, ModelVariant, PROBABILITIES_NAME};
use cxr_core::labels::{LABELS, NUM_LABELS};
use cxr_train::export::export_untrained;
use onnx_ir::{Message, ModelProto};
use ort::value::Tensor as OrtTensor;

use common::{cxr_train, fixture_batch, max_abs_diff, ort_probabilities, ort_session, testdata};

const FIXTURES: [&str; 2] = ["images/nih_00000001_000.png", "dicom/cxr_jpeg_baseline.dcm"];

fn tempdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("cxr-adopt-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn adopt(args: &[&str]) -> std::process::Output {
    cxr_train().arg("adopt").args(args).output().unwrap()
}

fn adopt_ok(args: &[&str]) {
    let out = adopt(args);
    assert!(out.status.success(), "adopt {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

fn adopt_fails(args: &[&str]) -> String {
    let out = adopt(args);
    assert!(!out.status.success(), "adopt {args:?} should fail");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn onnx(name: &str) -> String {
    testdata(&format!("onnx/{name}")).display().to_string()
}

/// Runs an arbitrary single-input model and returns output `name`.
fn run_original(path: &Path, input: &str, shape: Vec<usize>, data: Vec<f32>, output: &str) -> Vec<f32> {
    let mut session = ort_session(&std::fs::read(path).unwrap());
    let tensor = OrtTensor::from_array((shape, data)).unwrap();
    let outputs = session.run(ort::inputs![input => tensor]).unwrap();
    outputs[output].try_extract_tensor::<f32>().unwrap().1.to_vec()
}

fn adopted(dir: &Path, stem: &str) -> (Vec<u8>, ModelCard) {
    let bytes = std::fs::read(dir.join(format!("{stem}.onnx"))).unwrap();
    let card = ModelCard::from_json(&std::fs::read_to_string(dir.join(format!("{stem}.json"))).unwrap()).unwrap();
    (bytes, card)
}

/// Rows of a model's outputs in its label file's order → the served order (LABELS), other labels dropped.
fn to_served_order(rows: &[f32], labels_file: &str) -> Vec<f32> {
    let labels: Vec<String> =
        std::fs::read_to_string(testdata(labels_file)).unwrap().lines().map(|l| l.replace(' ', "_")).collect();
    rows.chunks(labels.len())
        .flat_map(|row| LABELS.iter().map(|l| row[labels.iter().position(|x| x == l).unwrap()]).collect::<Vec<_>>())
        .collect()
}

fn sigmoid(v: &[f32]) -> Vec<f32> {
    v.iter().map(|x| 1.0 / (1.0 + (-x).exp())).collect()
}

#[test]
fn torch_style_logits_are_wrapped_with_a_sigmoid() {
    let out = tempdir("torch");
    adopt_ok(&[
        "--onnx",
        &onnx("torch_style.onnx"),
        "--variant",
        "color",
        "--labels",
        &onnx("torch_style.labels.txt"),
        "--trained",
        "--out",
        out.to_str().unwrap(),
    ]);
    let (bytes, card) = adopted(&out, "cxr-inception-v3-color");
    assert!(card.trained && card.provenance.trained);
    let source = card.provenance.source.as_ref().expect("source recorded");
    assert_eq!((source.file.as_str(), source.format.as_str()), ("torch_style.onnx", "onnx"));
    assert_eq!(format!("{:?}", source.kind), "Adopted");
    assert_eq!(card.input_size, 299);

    let mut session = ort_session(&bytes);
    assert_eq!(session.inputs()[0].name(), INPUT_NAME);
    let names: Vec<_> = session.outputs().iter().map(|o| o.name().to_string()).collect();
    assert_eq!(names, [PROBABILITIES_NAME, LOGITS_NAME]);
    let (shape, data) = fixture_batch(&FIXTURES, 3);
    let served = ort_probabilities(&mut session, &shape, data.clone());
    let original = sigmoid(&run_original(&testdata("onnx/torch_style.onnx"), "image", shape, data, "logits"));
    // The file lists the findings in the CSV's column order, not the served (LABELS) order.
    let diff = max_abs_diff(&served, &to_served_order(&original, "onnx/torch_style.labels.txt"));
    println!("torch-style adopted vs original: max |Δp| {diff:.2e}");
    assert!(diff <= 1e-6, "{diff}");
    assert!(max_abs_diff(&served[..NUM_LABELS], &served[NUM_LABELS..]) > 1e-4, "output depends on the image");
}

#[test]
fn tf_style_nhwc_sigmoid_with_extra_label_is_transposed_normalised_and_reordered() {
    let out = tempdir("tf");
    let base = ["--onnx", &onnx("tf_style.onnx"), "--variant", "gray", "--labels", &onnx("tf_style.labels.txt")];
    let out_s = out.to_str().unwrap();
    let err = adopt_fails(&[&base[..], &["--out", out_s]].concat());
    assert!(err.contains("channels-last (NHWC)") && err.contains("--layout nhwc"), "{err}");
    let err = adopt_fails(&[&base[..], &["--layout", "nhwc", "--out", out_s]].concat());
    assert!(err.contains("No Finding") && err.contains("--drop-extra-labels"), "{err}");
    adopt_ok(
        &[
            &base[..],
            &["--layout", "nhwc", "--drop-extra-labels", "--input-mean", "0", "--input-std", "1", "--out", out_s],
        ]
        .concat(),
    );
    let (bytes, card) = adopted(&out, "cxr-inception-v3-gray");
    assert!(!card.trained, "not stated trained");
    assert_eq!(card.channels, 1);

    let (shape, data) = fixture_batch(&FIXTURES, 1);
    let served = ort_probabilities(&mut ort_session(&bytes), &shape, data.clone());
    // The original takes [0, 1] pixels channels-last (1 channel: the same values) and answers in its label order.
    let pixels: Vec<f32> = data.iter().map(|v| v * 0.5 + 0.5).collect();
    let nhwc = vec![shape[0], shape[2], shape[3], 1];
    let original = run_original(&testdata("onnx/tf_style.onnx"), "input_1", nhwc, pixels, "dense/Sigmoid:0");
    let diff = max_abs_diff(&served, &to_served_order(&original, "onnx/tf_style.labels.txt"));
    println!("tf-style adopted vs original (reordered, No Finding dropped): max |Δp| {diff:.2e}");
    assert!(diff <= 1e-5, "{diff}");
}

#[test]
fn renamed_copy_of_our_export_is_adopted_unchanged() {
    let dir = tempdir("own");
    let exported = export_untrained(ModelVariant::Gray, 11, &dir.join("ours"), &Device::default()).unwrap();
    // What another tool would leave: other names, no metadata.
    let mut model = ModelProto::parse_from_bytes(&std::fs::read(&exported.onnx_path).unwrap()).unwrap();
    model.metadata_props.clear();
    let graph = model.graph.as_mut().unwrap();
    let renames = [(INPUT_NAME, "input.1"), (PROBABILITIES_NAME, "output_probs"), (LOGITS_NAME, "output_logits")];
    for (from, to) in renames {
        for n in graph.node.iter_mut() {
            n.input.iter_mut().chain(n.output.iter_mut()).filter(|s| *s == from).for_each(|s| *s = to.into());
        }
        for v in graph.input.iter_mut().chain(graph.output.iter_mut()) {
            if v.name == from {
                v.name = to.into();
            }
        }
    }
    let renamed = dir.join("renamed.onnx");
    std::fs::write(&renamed, model.write_to_bytes().unwrap()).unwrap();
    let labels = dir.join("labels.txt");
    std::fs::write(&labels, LABELS.join("\n")).unwrap();
    let (r, l, out) = (renamed.to_str().unwrap(), labels.to_str().unwrap(), dir.join("adopted"));
    let out = out.to_str().unwrap();
    let err = adopt_fails(&["--onnx", r, "--variant", "gray", "--labels", l, "--out", out]);
    assert!(err.contains("4 outputs") && err.contains("output_probs") && err.contains("--output"), "{err}");
    adopt_ok(&["--onnx", r, "--variant", "gray", "--labels", l, "--output", "output_probs", "--out", out]);
    let (bytes, card) = adopted(Path::new(out), "cxr-inception-v3-gray");
    // Counted from the initializers, which also hold the batch-norm statistics our cards leave out.
    assert!(card.parameters > exported.card.parameters && card.parameters < exported.card.parameters * 101 / 100);

    let (shape, data) = fixture_batch(&FIXTURES, 1);
    let ours = ort_probabilities(&mut ort_session(&std::fs::read(&exported.onnx_path).unwrap()), &shape, data.clone());
    let served = ort_probabilities(&mut ort_session(&bytes), &shape, data);
    let diff = max_abs_diff(&ours, &served);
    println!("renamed own export adopted: max |Δp| {diff:.2e}");
    assert!(diff <= 1e-6, "{diff}");

    // Probabilities without a Sigmoid node: logits recovered as log(p / (1 - p)).
    let out2 = dir.join("adopted-p");
    adopt_ok(&[
        "--onnx",
        r,
        "--variant",
        "gray",
        "--labels",
        l,
        "--output",
        "output_probs",
        "--output-kind",
        "probabilities",
        "--out",
        out2.to_str().unwrap(),
    ]);
    let (bytes, _) = adopted(&out2, "cxr-inception-v3-gray");
    let (shape, data) = fixture_batch(&FIXTURES, 1);
    let served = ort_probabilities(&mut ort_session(&bytes), &shape, data);
    assert!(max_abs_diff(&ours, &served) <= 1e-5);
}

#[test]
fn refusals_name_what_adapts_them() {
    let dir = tempdir("refuse");
    let out = dir.to_str().unwrap();
    let labels = onnx("torch_style.labels.txt");
    let case = |file: &str, extra: &[&str]| {
        adopt_fails(
            &[&["--onnx", &onnx(file), "--variant", "color", "--labels", &labels, "--out", out][..], extra].concat(),
        )
    };
    let err = case("fixed_batch.onnx", &[]);
    assert!(err.contains("fixed batch size 1") && err.contains("dynamic"), "{err}");
    let err = case("softmax.onnx", &[]);
    assert!(err.contains("Softmax") && err.contains("independent"), "{err}");
    let err = case("size224.onnx", &[]);
    assert!(err.contains("224×224") && err.contains("--input-size 224"), "{err}");
    let err = case("two_outputs.onnx", &[]);
    assert!(err.contains("--output") && err.contains("features"), "{err}");
    let err = case("two_outputs.onnx", &["--output", "nope"]);
    assert!(err.contains("no output `nope`"), "{err}");
    let err =
        adopt_fails(&["--onnx", &onnx("torch_style.onnx"), "--variant", "gray", "--labels", &labels, "--out", out]);
    assert!(err.contains("3 channel(s)") && err.contains("--variant color"), "{err}");
    // Label files that do not fit.
    let short = dir.join("short.txt");
    std::fs::write(&short, LABELS[..13].join("\n")).unwrap();
    let err = adopt_fails(&[
        "--onnx",
        &onnx("torch_style.onnx"),
        "--variant",
        "color",
        "--labels",
        short.to_str().unwrap(),
        "--out",
        out,
    ]);
    assert!(err.contains("13 labels for a model with 14 output columns"), "{err}");
    let wrong = dir.join("wrong.txt");
    std::fs::write(&wrong, [&LABELS[..13], &["Fracture"]].concat().join("\n")).unwrap();
    let err = adopt_fails(&[
        "--onnx",
        &onnx("torch_style.onnx"),
        "--variant",
        "color",
        "--labels",
        wrong.to_str().unwrap(),
        "--out",
        out,
    ]);
    assert!(err.contains(&format!("missing from the file: {}", LABELS[13])), "{err}");
    // Not ONNX.
    let garbage = dir.join("garbage.onnx");
    std::fs::write(&garbage, b"\xff\xfe definitely not protobuf").unwrap();
    let err =
        adopt_fails(&["--onnx", garbage.to_str().unwrap(), "--variant", "color", "--labels", &labels, "--out", out]);
    assert!(err.contains("not an ONNX model") || err.contains("no graph"), "{err}");
    assert!(!dir.join("cxr-inception-v3-color.onnx").exists(), "nothing written on failure");

    // A 224 model is served at 224 when asked.
    adopt_ok(&[
        "--onnx",
        &onnx("size224.onnx"),
        "--variant",
        "color",
        "--labels",
        &labels,
        "--input-size",
        "224",
        "--out",
        out,
    ]);
    let (bytes, card) = adopted(&dir, "cxr-inception-v3-color");
    assert_eq!(card.input_size, 224);
    let session = ort_session(&bytes);
    drop(session);
}
