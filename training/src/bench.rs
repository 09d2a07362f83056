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

use crate::cause::Cause;
use crate::data::loader::{Loader, LoaderConfig};
use crate::data::{Augment, Sample, Target};
use crate::device::DeviceSpec;
use crate::model::InceptionV3Config;
use crate::run::TrainError;

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
    let x = Tensor::<4>::random(
        [batch, variant.channels(), input_size, input_size],
        Distribution::Normal(0.0, 1.0),
        &device,
    );
    let y = Tensor::<2, Int>::zeros([batch, NUM_LABELS], &device);
    let mut started = Instant::now();
    for step in 0..=steps {
        if step == 1 {
            device.sync().map_err(|e| TrainError::Training(Cause::debug(e)))?;
            started = Instant::now();
        }
        let loss = loss_fn.forward(model.forward(x.clone()), y.clone());
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(1e-4, model, grads);
    }
    device.sync().map_err(|e| TrainError::Training(Cause::debug(e)))?;
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

/// What `cxr-train bench` measures (the CLI's `bench` arguments, resolved).
#[derive(Debug, Clone)]
pub struct BenchConfig {
    /// The Burn device, printed in the table.
    pub device: DeviceSpec,
    pub batch_sizes: Vec<usize>,
    pub input_size: usize,
    /// Timed training steps per row (after one warm-up step).
    pub steps: usize,
    /// Folder with `images/` and `dicom/` fixtures for the loader rows.
    pub images: PathBuf,
    /// Loader threads.
    pub workers: usize,
    /// The same training steps in PyTorch, run by this Python (with `torch` and `torchvision`).
    pub pytorch: Option<PyTorchSide>,
    /// Also write every row as JSON here.
    pub json: Option<PathBuf>,
    /// Skip the loader rows (the GPU script times training only).
    pub no_loader: bool,
    /// Skip the training rows.
    pub no_training: bool,
}

/// The arithmetic of the PyTorch side (`bench/python/train_pytorch.py --precision`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PyTorchPrecision {
    Fp32,
    /// TF32 matrix multiplies (CUDA).
    Tf32,
    /// bfloat16 autocast.
    Bf16,
    /// float16 autocast.
    Fp16,
}

cxr_core::keywords!(clap PyTorchPrecision, "PyTorch precision", {
    Fp32 => "fp32",
    Tf32 => "tf32",
    Bf16 => "bf16",
    Fp16 => "fp16",
});

/// How the PyTorch side of the comparison runs.
#[derive(Debug, Clone)]
pub struct PyTorchSide {
    pub python: PathBuf,
    /// Intra-op CPU threads, the same number Burn's CPU backends use.
    pub threads: usize,
    /// `cpu` or `cuda[:N]`.
    pub device: String,
    /// PyTorch's side only; the Burn side runs FP32.
    pub precision: PyTorchPrecision,
    pub channels_last: bool,
}

/// The PyTorch script the comparison runs, embedded so that the table always runs this exact code.
const PYTORCH_SCRIPT: &str = include_str!("../../bench/python/train_pytorch.py");

/// Images/s of the same training steps in PyTorch (see `bench/python/train_pytorch.py`).
pub fn pytorch_training_throughput(
    side: &PyTorchSide,
    variant: ModelVariant,
    batch: usize,
    input_size: usize,
    steps: usize,
) -> Result<f64, TrainError> {
    let mut command = std::process::Command::new(&side.python);
    command.arg("-c").arg(PYTORCH_SCRIPT).args(["--variant", variant.as_str()]);
    command.args(["--batch", &batch.to_string(), "--input-size", &input_size.to_string()]);
    command.args(["--steps", &steps.to_string(), "--threads", &side.threads.to_string()]);
    command.args(["--device", &side.device, "--precision", side.precision.as_str()]);
    if side.channels_last {
        command.arg("--channels-last");
    }
    // PyTorch's warnings go to our stderr; stdout carries the one JSON line.
    let output = command
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| TrainError::Config(format!("cannot run {} for the PyTorch side: {e}", side.python.display())))?;
    if !output.status.success() {
        return Err(TrainError::Training(Cause::Check(format!(
            "the PyTorch side ({}) failed with {}; it needs torch and torchvision (pip install torch==2.9.0 \
             torchvision==0.24.0)",
            side.python.display(),
            output.status
        ))));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout.lines().rev().find(|l| l.starts_with('{')).unwrap_or_default();
    serde_json::from_str::<serde_json::Value>(line)
        .ok()
        .and_then(|v| v["images_per_second"].as_f64())
        .ok_or_else(|| TrainError::Training(Cause::Check(format!("the PyTorch side printed no result: {stdout:?}"))))
}

/// Runs every row and prints the markdown table: training steps per variant and batch size on the device (beside
/// PyTorch's at the same settings when asked, with the ratio), then the loader with and without Inception
/// augmentation on the PNG/JPEG/DICOM files under `images/{images,dicom}`.
pub fn print_table(config: &BenchConfig, device: &Device) -> Result<(), TrainError> {
    let BenchConfig { device: device_name, input_size, steps, workers, .. } = config;
    let mut rows = Vec::new();
    let batch_sizes: &[usize] = if config.no_training { &[] } else { &config.batch_sizes };
    if !batch_sizes.is_empty() {
        match &config.pytorch {
            Some(side) => {
                println!(
                    "| what | Burn device | variant | batch | input | Burn images/s | PyTorch {} {} ({} threads) images/s | Burn / PyTorch |",
                    side.device, side.precision, side.threads
                );
                println!("|---|---|---|---|---|---|---|---|");
            }
            None => {
                println!("| what | device | variant | batch | input | images/s |");
                println!("|---|---|---|---|---|---|");
            }
        }
    }
    for variant in ModelVariant::ALL {
        for &batch in batch_sizes {
            let rate = training_throughput(variant, batch, *input_size, *steps, device)?;
            let mut row = serde_json::json!({
                "what": "training step", "device": device_name.to_string(), "variant": variant.as_str(), "batch": batch,
                "input_size": input_size, "steps": steps, "burn_images_per_second": rate,
            });
            match &config.pytorch {
                Some(side) => {
                    let torch = pytorch_training_throughput(side, variant, batch, *input_size, *steps)?;
                    println!(
                        "| training step (fwd + bwd + RMSProp) | {device_name} | {variant} | {batch} | {input_size}² | {rate:.2} | {torch:.2} | {:.2}× |",
                        rate / torch
                    );
                    row["pytorch_images_per_second"] = torch.into();
                    row["pytorch_device"] = side.device.clone().into();
                    row["pytorch_precision"] = side.precision.as_str().into();
                    row["pytorch_threads"] = side.threads.into();
                    row["ratio"] = (rate / torch).into();
                }
                None => println!(
                    "| training step (fwd + bwd + RMSProp) | {device_name} | {variant} | {batch} | {input_size}² | {rate:.2} |"
                ),
            }
            rows.push(row);
        }
    }
    if !config.no_loader {
        let files = fixture_files(&config.images)?;
        let loaders = [
            ("loader, X-ray (decode + preprocess + flip)", Augment::Flip),
            ("loader, ImageNet-style (+ Inception augmentation)", Augment::Inception),
        ];
        println!();
        println!("| what | device | variant | batch | input | images/s |");
        println!("|---|---|---|---|---|---|");
        for (what, augment) in loaders {
            for variant in ModelVariant::ALL {
                let rate = loader_throughput(&files, 4 * files.len(), variant, augment, *workers)?;
                println!(
                    "| {what}, {} files, {workers} threads | cpu | {variant} | 32 | 299² | {rate:.1} |",
                    files.len()
                );
                rows.push(serde_json::json!({
                    "what": what, "variant": variant.as_str(), "workers": workers, "images_per_second": rate,
                }));
            }
        }
    }
    if let Some(path) = &config.json {
        let body = serde_json::to_string_pretty(&serde_json::json!({ "rows": rows }))
            .map_err(|e| TrainError::Training(e.into()))?;
        std::fs::write(path, body).map_err(|e| TrainError::run_dir(path, e))?;
    }
    Ok(())
}

/// The PNG/JPEG/DICOM fixtures under `images/{images,dicom}`, sorted.
fn fixture_files(images: &Path) -> Result<Vec<PathBuf>, TrainError> {
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
    Ok(files)
}
