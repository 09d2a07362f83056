//! Burn-vs-ONNX Runtime parity: the exported file computes what the Burn model computes.
//!
//! For each variant, one seeded random-initialised Inception-V3 runs in Burn (`flex`) and, exported through
//! [`cxr_train::export::export_onnx`], in ONNX Runtime 1.31 via `ort`, on real chest X-rays decoded and
//! preprocessed by `cxr-core` (the same code the server uses). The probabilities must agree to 1e-4, and so must
//! the `features` and `cam` outputs (relative to their largest value), whose spatial mean is the logit; the FP16
//! file ([`cxr_train::fp16::to_fp16`]) to 1e-2.

use std::time::Instant;

use burn::tensor::activation::sigmoid;
use burn::tensor::{Device, Tensor, TensorData};
use cxr_core::card::{
    CAM_NAME, CARD_METADATA_KEY, FEATURES_NAME, INPUT_NAME, LOGITS_NAME, ModelCard, ModelVariant, PROBABILITIES_NAME,
};
use cxr_core::labels::NUM_LABELS;
use cxr_train::export::{export_onnx, untrained_card};
use cxr_train::model::{FEATURES, INPUT_SIZE, InceptionV3Config, feature_grid};

mod common;

use common::{fixture_batch, max_abs_diff, max_rel_diff, ort_outputs, ort_probabilities, ort_session};

const SEED: u64 = 7;
const TOLERANCE: f32 = 1e-4;
/// The FP16 file's bound: measured 9.5e-4 (color) and 1.1e-3 (gray) on these fixtures for the seeded models.
const FP16_TOLERANCE: f32 = 1e-2;
const FIXTURES: [&str; 2] = ["images/nih_00000001_000.png", "dicom/cxr_explicit_le.dcm"];

fn parity(variant: ModelVariant) {
    let device = Device::default();
    let model = InceptionV3Config::for_variant(variant, NUM_LABELS).init_seeded(SEED, &device);
    let card = untrained_card(variant, SEED, model.num_trainable_params() as u64);

    let started = Instant::now();
    let onnx = export_onnx(&model, &card, &device).expect("export");
    let export_s = started.elapsed().as_secs_f64();

    let (shape, data) = fixture_batch(&FIXTURES, variant.channels());
    let started = Instant::now();
    let input = Tensor::<4>::from_data(TensorData::new(data.clone(), shape.clone()), &device);
    let burn: Vec<f32> = sigmoid(model.forward(input.clone())).into_data().try_to_vec::<f32>().expect("f32 output");
    let burn_s = started.elapsed().as_secs_f64() / shape[0] as f64;
    let burn_features = model.features(input);
    let burn_cam: Vec<f32> = model.cam(burn_features.clone()).into_data().try_to_vec().expect("f32 cam");
    let burn_features: Vec<f32> = burn_features.into_data().try_to_vec().expect("f32 features");

    let mut session = ort_session(&onnx);
    // The card embedded in the file is the card we exported.
    let embedded = session.metadata().expect("metadata").custom(CARD_METADATA_KEY).expect("card in metadata_props");
    assert_eq!(ModelCard::from_json(&embedded).expect("valid card"), card);
    assert_eq!(session.inputs().len(), 1);
    assert_eq!(session.inputs()[0].name(), INPUT_NAME);
    let names: Vec<_> = session.outputs().iter().map(|o| o.name().to_string()).collect();
    assert_eq!(names, [PROBABILITIES_NAME, LOGITS_NAME, FEATURES_NAME, CAM_NAME]);
    assert_eq!(card.outputs, names, "the card lists the graph's outputs");

    // The maps: ONNX Runtime's features and cam equal Burn's, and each cam map averages to its logit.
    let grid = feature_grid(INPUT_SIZE);
    let [(_, logits), (features_shape, features), (cam_shape, cam)] =
        <[_; 3]>::try_from(ort_outputs(&mut session, &shape, data.clone(), &[LOGITS_NAME, FEATURES_NAME, CAM_NAME]))
            .unwrap();
    let n = shape[0] as i64;
    assert_eq!(features_shape, [n, FEATURES as i64, grid as i64, grid as i64]);
    assert_eq!(cam_shape, [n, NUM_LABELS as i64, grid as i64, grid as i64]);
    let (diff_features, diff_cam) = (max_rel_diff(&burn_features, &features), max_rel_diff(&burn_cam, &cam));
    println!("parity {variant}: features max rel Δ {diff_features:.2e}, cam max rel Δ {diff_cam:.2e}");
    assert!(diff_features <= TOLERANCE, "{variant}: features Burn vs ORT {diff_features}");
    assert!(diff_cam <= TOLERANCE, "{variant}: cam Burn vs ORT {diff_cam}");
    for (k, (map, logit)) in cam.chunks_exact(grid * grid).zip(&logits).enumerate() {
        let mean = map.iter().map(|v| f64::from(*v)).sum::<f64>() / map.len() as f64;
        assert!((mean - f64::from(*logit)).abs() <= 1e-4, "{variant} map {k}: mean {mean} vs logit {logit}");
    }
    let spread = |m: &[f32]| m.iter().fold(f32::MIN, |a, v| a.max(*v)) - m.iter().fold(f32::MAX, |a, v| a.min(*v));
    assert!(cam.chunks_exact(grid * grid).all(|m| spread(m) > 1e-4), "{variant}: every map varies over the image");

    let started = Instant::now();
    let ort_batch = ort_probabilities(&mut session, &shape, data.clone());
    let ort_s = started.elapsed().as_secs_f64() / shape[0] as f64;
    let diff = max_abs_diff(&burn, &ort_batch);

    // Batch 1 through the dynamic batch axis gives the first row of the batch.
    let per_image = variant.channels() * INPUT_SIZE * INPUT_SIZE;
    let mut single_shape = shape.clone();
    single_shape[0] = 1;
    let ort_single = ort_probabilities(&mut session, &single_shape, data[..per_image].to_vec());
    let diff_single = max_abs_diff(&burn[..NUM_LABELS], &ort_single);

    // The FP16 file (`export --fp16`) against the same Burn outputs: its own, looser bound (FP16 keeps ~11 bits).
    let fp16 = cxr_train::fp16::to_fp16(&onnx).expect("FP16 conversion");
    let mut fp16_session = ort_session(&fp16);
    let diff_fp16 = max_abs_diff(&burn, &ort_probabilities(&mut fp16_session, &shape, data.clone()));
    println!("parity {variant}: FP16 file {:.1} MB, max|Δp| vs Burn {diff_fp16:.2e}", fp16.len() as f64 / 1e6);
    assert!(diff_fp16 <= FP16_TOLERANCE, "{variant}: FP16 vs Burn max |Δp| {diff_fp16} > {FP16_TOLERANCE}");
    assert!(diff_fp16 > diff, "{variant}: the FP16 file is no less exact than FP32: was it converted?");

    println!(
        "parity {variant}: onnx {:.1} MB, export {export_s:.2} s, burn flex {:.0} ms/img, ort {:.0} ms/img, \
         max|Δp| batch {} = {diff:.2e}, batch 1 = {diff_single:.2e}",
        onnx.len() as f64 / 1e6,
        burn_s * 1e3,
        ort_s * 1e3,
        shape[0],
    );
    assert!(burn.iter().all(|p| p.is_finite() && *p > 0.0 && *p < 1.0), "probabilities in (0, 1)");
    assert!(diff <= TOLERANCE, "{variant}: Burn vs ORT max |Δp| {diff} > {TOLERANCE}");
    assert!(diff_single <= TOLERANCE, "{variant}: batch-1 max |Δp| {diff_single} > {TOLERANCE}");
    // The two fixtures are different images: a model that ignored its input would pass the checks above.
    assert!(max_abs_diff(&burn[..NUM_LABELS], &burn[NUM_LABELS..]) > 1e-6, "output depends on the input");
}

#[test]
fn gray_export_matches_burn() {
    parity(ModelVariant::Gray);
}

#[test]
fn color_export_matches_burn() {
    parity(ModelVariant::Color);
}

#[test]
fn export_is_deterministic_and_variants_differ_only_in_conv1() {
    let device = Device::default();
    let export = |variant: ModelVariant| {
        let model = InceptionV3Config::for_variant(variant, NUM_LABELS).init_seeded(SEED, &device);
        let card = untrained_card(variant, SEED, model.num_trainable_params() as u64);
        export_onnx(&model, &card, &device).expect("export")
    };
    let gray = export(ModelVariant::Gray);
    assert_eq!(gray, export(ModelVariant::Gray), "same seed, same bytes");
    let color = export(ModelVariant::Color);

    use onnx_ir::{Message, ModelProto};
    let shapes = |bytes: &[u8]| -> Vec<Vec<i64>> {
        let model = ModelProto::parse_from_bytes(bytes).expect("parse");
        model.graph.initializer.iter().filter(|t| t.dims.len() == 4).map(|t| t.dims.clone()).collect()
    };
    let (mut g, mut c) = (shapes(&gray), shapes(&color));
    let conv1 = |channels: i64| vec![32, channels, 3, 3];
    assert_eq!(g.iter().filter(|s| **s == conv1(1)).count(), 1, "gray conv1 weight is [32, 1, 3, 3]");
    assert_eq!(c.iter().filter(|s| **s == conv1(3)).count(), 1, "color conv1 weight is [32, 3, 3, 3]");
    g.retain(|s| *s != conv1(1));
    c.retain(|s| *s != conv1(3));
    g.sort();
    c.sort();
    assert_eq!(g, c, "every other conv weight has the same shape");
}
