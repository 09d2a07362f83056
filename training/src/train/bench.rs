//! `cxr-train bench`: training throughput (forward + backward + RMSProp step, images/s) per variant and batch
//! size on a Burn device, and loader throughput (decode + preprocess + augment, images/s) on real fixture files.
//! A benchmark, not a test: it prints a markdown table.

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::Module;
use burn::nn::loss::BinaryCrossEntropyLossConfig;
use burn::optim::{GradientsParams, RmsPropConfig};
use burn::tensor::{Device, Distribution, Int, Tensor};
use cxr_core::card::{ModelVariant, Normalization};
use cxr_core::labels::NUM_LABELS;

use super::TrainError;
use crate::data::loader::{Loader, LoaderConfig};
use crate::data::{Augment, Sample, Target};
use crate::model::InceptionV3Config;

/// One row of the table.
#[derive(Debug, Clone)]
pub struct BenchRow {
    pub what: &'static str,
    pub variant: ModelVariant,
    pub batch: usize,
    pub images_per_second: f64,
}

/// Images/s of `steps` timed training steps after one warm-up step.
pub fn training_throughput(
    variant: ModelVariant,
    batch: usize,
    input_size: usize,
    steps: usize,
    device: &Device,
) -> Result<f64, TrainError> {
    let device = device.clone().autodiff();
    let mut model = InceptionV3Config::for_variant(variant, NUM_LABELS).init_seeded(1, &device);
    let mut optim = RmsPropConfig::new().with_alpha(0.9).with_momentum(0.9).with_epsilon(1.0).init();
    let loss_fn = BinaryCrossEntropyLossConfig::new().with_logits(true).init(&device);
    let x = Tensor::<4>::random([batch, variant.channels(), input_size, input_size], Distribution::Normal(0.0, 1.0), &device);
    let y = Tensor::<2, Int>::zeros([batch, NUM_LABELS], &device);
    let mut started = Instant::now();
    for step in 0..=steps {
        if step == 1 {
            device.sync().map_err(|e| TrainError::Training(format!("{e:?}")))?;
            started = Instant::now();
        }
        let loss = loss_fn.forward(model.forward(x.clone()), y.clone());
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(1e-4, model, grads);
    }
    device.sync().map_err(|e| TrainError::Training(format!("{e:?}")))?;
    let _ = model.valid();
    Ok((steps * batch) as f64 / started.elapsed().as_secs_f64())
}

/// Images/s of one pass of the loader over `files` repeated to `count` samples, with `augment`.
pub fn loader_throughput(
    files: &[PathBuf],
    count: usize,
    variant: ModelVariant,
    augment: Augment,
    workers: usize,
) -> Result<f64, TrainError> {
    let samples: Vec<Sample> =
        (0..count).map(|i| Sample { path: files[i % files.len()].clone(), target: Target::Class(0) }).collect();
    let loader = Loader::new(
        samples,
        LoaderConfig {
            batch_size: 32,
            input_size: crate::model::INPUT_SIZE,
            channels: variant.channels(),
            normalization: Normalization::INCEPTION,
            augment,
            shuffle: true,
            seed: 1,
            workers,
            prefetch: 2,
            max_bad_fraction: 0.0,
        },
    )?;
    let started = Instant::now();
    let mut images = 0;
    for batch in loader.epoch(0) {
        images += batch?.len();
    }
    Ok(images as f64 / started.elapsed().as_secs_f64())
}

/// Runs every row and prints the markdown table: training steps per variant and batch size on `device`, then the
/// loader with and without Inception augmentation on the PNG/JPEG/DICOM files under `images/{images,dicom}`.
#[allow(clippy::too_many_arguments)]
pub fn print_table(
    device_name: &str,
    device: &Device,
    batch_sizes: &[usize],
    input_size: usize,
    steps: usize,
    images: &Path,
    workers: usize,
) -> Result<(), TrainError> {
    println!("| what | device | variant | batch | input | images/s |");
    println!("|---|---|---|---|---|---|");
    for variant in ModelVariant::ALL {
        for &batch in batch_sizes {
            let rate = training_throughput(variant, batch, input_size, steps, device)?;
            println!("| training step (fwd + bwd + RMSProp) | {device_name} | {variant} | {batch} | {input_size}² | {rate:.2} |");
        }
    }
    let mut files: Vec<PathBuf> = ["images", "dicom"]
        .iter()
        .filter_map(|d| std::fs::read_dir(images.join(d)).ok())
        .flatten()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "png" || e == "jpg" || e == "dcm"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(TrainError::Config(format!(
            "no images under {}/images or {}/dicom",
            images.display(),
            images.display()
        )));
    }
    let loaders = [
        ("loader, X-ray (decode + preprocess + flip)", Augment::Flip),
        ("loader, ImageNet-style (+ Inception augmentation)", Augment::Inception),
    ];
    for (what, augment) in loaders {
        for variant in ModelVariant::ALL {
            let rate = loader_throughput(&files, 4 * files.len(), variant, augment, workers)?;
            println!("| {what}, {} files, {workers} threads | cpu | {variant} | 32 | 299² | {rate:.1} |", files.len());
        }
    }
    Ok(())
}
