//! The batch loader: decodes and preprocesses samples on a pool of worker threads, in a seeded order, a bounded
//! number of batches ahead of the training step.
//!
//! Written here rather than with `burn::data::dataloader` because a training run over real archives must skip
//! unreadable files, name them and stop once too many fail, and because every batch must be identical for a seed
//! whatever the thread count (each sample's augmentation draws from its own generator, keyed by seed, epoch and
//! sample index, and batches are yielded in order). Memory is bounded: at most `prefetch` finished batches wait.

use std::path::Path;
use std::sync::mpsc::{Receiver, sync_channel};
use std::sync::{Arc, Mutex};

use cxr_core::card::Normalization;
use cxr_core::decode::{DecodeLimits, decode, decode_rgb};
use cxr_core::preprocess::Preprocessor;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rayon::prelude::*;

use super::imagefolder::inception_augment;
use super::{Augment, DataError, Sample, Target};

/// How batches are made.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoaderConfig {
    pub batch_size: usize,
    /// Model input height and width.
    pub input_size: usize,
    /// Model input channels: 1 (gray) or 3 (color).
    pub channels: usize,
    pub normalization: Normalization,
    pub augment: Augment,
    /// Shuffle the order every epoch (training) or keep it (evaluation).
    pub shuffle: bool,
    pub seed: u64,
    /// Decoding threads.
    pub workers: usize,
    /// Finished batches that may wait for the training step.
    pub prefetch: usize,
    /// Fraction of unusable images above which the run fails.
    pub max_bad_fraction: f64,
}

/// One batch: `[n, channels, size, size]` inputs (row-major) and the matching targets.
#[derive(Debug, Clone)]
pub struct Batch {
    pub images: Vec<f32>,
    pub targets: Vec<Target>,
    /// Indices into the loader's sample list (skipped samples are absent).
    pub indices: Vec<usize>,
}

impl Batch {
    pub fn len(&self) -> usize {
        self.indices.len()
    }

    pub fn is_empty(&self) -> bool {
        self.indices.is_empty()
    }
}

/// Unusable images seen so far: counted and named (file name only).
#[derive(Debug, Default)]
struct BadImages {
    names: Vec<String>,
}

/// A seeded, multi-threaded loader over a fixed sample list.
pub struct Loader {
    samples: Arc<Vec<Sample>>,
    config: LoaderConfig,
    pool: Arc<rayon::ThreadPool>,
    bad: Arc<Mutex<BadImages>>,
}

impl Loader {
    pub fn new(samples: Vec<Sample>, config: LoaderConfig) -> Result<Self, DataError> {
        if samples.is_empty() {
            return Err(DataError::Empty { path: "(sample list)".into() });
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(config.workers.max(1))
            .thread_name(|i| format!("cxr-loader-{i}"))
            .build()
            .map_err(DataError::Threads)?;
        Ok(Loader { samples: Arc::new(samples), config, pool: Arc::new(pool), bad: Arc::default() })
    }

    pub fn samples(&self) -> &[Sample] {
        &self.samples
    }

    pub fn config(&self) -> &LoaderConfig {
        &self.config
    }

    /// Batches per epoch.
    pub fn batches_per_epoch(&self) -> usize {
        self.samples.len().div_ceil(self.config.batch_size)
    }

    /// Distinct unusable files met so far, by file name.
    pub fn bad_files(&self) -> Vec<String> {
        self.bad.lock().expect("bad-image list").names.clone()
    }

    /// The sample order of `epoch`: shuffled with (seed, epoch) when shuffling, else the list order.
    pub fn order(&self, epoch: usize) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.samples.len()).collect();
        if self.config.shuffle {
            order.shuffle(&mut StdRng::seed_from_u64(mix(self.config.seed, epoch as u64, u64::MAX)));
        }
        order
    }

    /// The batches of one epoch, produced in the background. Iteration yields an error (and stops) once unusable
    /// images exceed `max_bad_fraction` of the list.
    pub fn epoch(&self, epoch: usize) -> EpochIter {
        let (tx, rx) = sync_channel(self.config.prefetch.max(1));
        let (samples, config, pool, bad) =
            (Arc::clone(&self.samples), self.config, Arc::clone(&self.pool), Arc::clone(&self.bad));
        let order = self.order(epoch);
        std::thread::Builder::new()
            .name("cxr-loader".into())
            .spawn(move || {
                let pre = Preprocessor::new(config.input_size, config.normalization);
                for chunk in order.chunks(config.batch_size) {
                    let loaded: Vec<(usize, Result<Vec<f32>, String>)> = pool.install(|| {
                        chunk
                            .par_iter()
                            .map(|&i| (i, load(&samples[i], &pre, &config, mix(config.seed, epoch as u64, i as u64))))
                            .collect()
                    });
                    let mut batch = Batch { images: Vec::new(), targets: Vec::new(), indices: Vec::new() };
                    let mut failed = None;
                    for (i, result) in loaded {
                        match result {
                            Ok(tensor) => {
                                batch.images.extend(tensor);
                                batch.targets.push(samples[i].target.clone());
                                batch.indices.push(i);
                            }
                            Err(reason) => {
                                let name = file_name(&samples[i].path);
                                tracing::warn!(file = %name, %reason, "skipping unusable image");
                                let mut bad = bad.lock().expect("bad-image list");
                                if !bad.names.contains(&name) {
                                    bad.names.push(name);
                                }
                                if bad.names.len() as f64 > config.max_bad_fraction * samples.len() as f64 {
                                    failed = Some(DataError::TooManyBad {
                                        bad: bad.names.len(),
                                        seen: samples.len(),
                                        max_fraction: config.max_bad_fraction,
                                        examples: bad.names.iter().take(5).cloned().collect(),
                                    });
                                }
                            }
                        }
                    }
                    if let Some(err) = failed {
                        let _ = tx.send(Err(err));
                        return;
                    }
                    if !batch.is_empty() && tx.send(Ok(batch)).is_err() {
                        return; // The consumer stopped early.
                    }
                }
            })
            .expect("spawn loader thread");
        EpochIter { rx }
    }
}

/// The batches of one epoch, in order.
pub struct EpochIter {
    rx: Receiver<Result<Batch, DataError>>,
}

impl Iterator for EpochIter {
    type Item = Result<Batch, DataError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.rx.recv().ok()
    }
}

/// SplitMix64-style mixing of (seed, epoch, index) into one generator seed.
fn mix(seed: u64, epoch: u64, index: u64) -> u64 {
    let mut z = seed ^ epoch.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ index.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The file name alone: what logs and errors may show of a path.
pub fn file_name(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "(unnamed)".into())
}

/// Reads, decodes, augments and preprocesses one sample into `channels × size²` values.
fn load(sample: &Sample, pre: &Preprocessor, config: &LoaderConfig, seed: u64) -> Result<Vec<f32>, String> {
    let bytes = std::fs::read(&sample.path).map_err(|e| e.kind().to_string())?;
    let limits = DecodeLimits::default();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut tensor = match config.augment {
        Augment::Inception => {
            let planes = decode_rgb(&bytes, &limits).map_err(|e| e.to_string())?;
            inception_augment(planes, pre, config.channels, &mut rng)
        }
        Augment::None | Augment::Flip => {
            let image = decode(&bytes, &limits).map_err(|e| e.to_string())?.image;
            pre.tensor(&image, config.channels)
        }
    };
    if config.augment == Augment::Flip && rng.random_bool(0.5) {
        flip_horizontal(&mut tensor, config.input_size);
    }
    Ok(tensor)
}

/// Mirrors every `size × size` plane of a CHW tensor left to right.
pub fn flip_horizontal(tensor: &mut [f32], size: usize) {
    for row in tensor.chunks_exact_mut(size) {
        row.reverse();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes `n` small gray PNGs whose intensity encodes their index, plus a corrupt one and a missing path.
    fn fixture(dir: &Path, n: usize) -> Vec<Sample> {
        std::fs::create_dir_all(dir).unwrap();
        let mut samples: Vec<Sample> = (0..n)
            .map(|i| {
                let path = dir.join(format!("img{i:03}.png"));
                let img = image::GrayImage::from_fn(16, 12, |x, _| image::Luma([(i * 10 + x as usize) as u8]));
                img.save(&path).unwrap();
                Sample { path, target: Target::Class(i) }
            })
            .collect();
        std::fs::write(dir.join("corrupt.png"), b"\x89PNG\r\n\x1a\nnot really").unwrap();
        samples.push(Sample { path: dir.join("corrupt.png"), target: Target::Class(98) });
        samples.push(Sample { path: dir.join("missing.png"), target: Target::Class(99) });
        samples
    }

    fn config(workers: usize, max_bad_fraction: f64) -> LoaderConfig {
        LoaderConfig {
            batch_size: 4,
            input_size: 8,
            channels: 1,
            normalization: Normalization::INCEPTION,
            augment: Augment::Flip,
            shuffle: true,
            seed: 11,
            workers,
            prefetch: 2,
            max_bad_fraction,
        }
    }

    fn collect(loader: &Loader, epoch: usize) -> Vec<Batch> {
        loader.epoch(epoch).collect::<Result<Vec<_>, _>>().expect("epoch loads")
    }

    #[test]
    fn batches_are_deterministic_across_thread_counts_and_skip_bad_files() {
        let dir = std::env::temp_dir().join(format!("cxr-loader-{}", std::process::id()));
        let samples = fixture(&dir, 10);
        let one = Loader::new(samples.clone(), config(1, 0.5)).unwrap();
        let four = Loader::new(samples, config(4, 0.5)).unwrap();
        let (a, b) = (collect(&one, 0), collect(&four, 0));
        assert_eq!(a.iter().map(|b| &b.images).collect::<Vec<_>>(), b.iter().map(|b| &b.images).collect::<Vec<_>>());
        assert_eq!(a.iter().map(|b| &b.indices).collect::<Vec<_>>(), b.iter().map(|b| &b.indices).collect::<Vec<_>>());
        // 10 good images arrive, each once, with its own target; the two bad ones are named.
        let mut seen: Vec<usize> = a.iter().flat_map(|b| b.indices.clone()).collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..10).collect::<Vec<_>>());
        for batch in &a {
            assert_eq!(batch.images.len(), batch.len() * 64);
            for (i, t) in batch.indices.iter().zip(&batch.targets) {
                assert_eq!(*t, Target::Class(*i));
            }
        }
        let mut bad = one.bad_files();
        bad.sort();
        assert_eq!(bad, ["corrupt.png", "missing.png"]);
        // Another epoch has another order; the same epoch again is identical.
        assert_ne!(one.order(0), one.order(1));
        assert_eq!(
            collect(&one, 1).iter().map(|b| &b.images).collect::<Vec<_>>(),
            collect(&four, 1).iter().map(|b| &b.images).collect::<Vec<_>>()
        );
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn too_many_bad_files_fail_the_epoch() {
        let dir = std::env::temp_dir().join(format!("cxr-loader-bad-{}", std::process::id()));
        let samples = fixture(&dir, 6);
        let loader = Loader::new(samples, config(2, 0.1)).unwrap();
        let err = loader.epoch(0).find_map(Result::err).expect("the epoch fails");
        let text = err.to_string();
        assert!(matches!(err, DataError::TooManyBad { .. }), "{text}");
        assert!(
            text.contains("--max-bad-fraction") && (text.contains("corrupt.png") || text.contains("missing.png")),
            "{text}"
        );
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn flip_mirrors_each_row() {
        let mut t = vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0];
        flip_horizontal(&mut t, 2);
        assert_eq!(t, [2.0, 1.0, 4.0, 3.0, 6.0, 5.0, 8.0, 7.0]);
    }
}
