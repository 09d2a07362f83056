//! [`BurnLoader`]: this crate's [`Loader`] as a burn-train `DataLoader`, so the training loop gets its seeded,
//! bounded, bad-file-counting batches as tensors on the training device. Each `iter()` is one epoch; the epoch
//! number (which seeds the shuffle and the augmentation) continues from the resumed checkpoint.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use burn::data::dataloader::{DataLoader, DataLoaderIterator, Progress};
use burn::data::dataset::DatasetError;
use burn::tensor::{Device, Int, Tensor, TensorData};

use super::steps::TrainBatch;
use crate::data::Target;
use crate::data::loader::{Batch, EpochIter, Loader};
use crate::run::Task;

/// A [`Loader`] on a device, counting epochs.
pub struct BurnLoader {
    loader: Arc<Loader>,
    task: Task,
    num_classes: usize,
    device: Device,
    epoch: Arc<AtomicUsize>,
}

impl BurnLoader {
    /// `first_epoch`: the epoch the first `iter()` is (non-zero when resuming).
    pub fn new(loader: Loader, task: Task, num_classes: usize, device: Device, first_epoch: usize) -> Self {
        BurnLoader {
            loader: Arc::new(loader),
            task,
            num_classes,
            device,
            epoch: Arc::new(AtomicUsize::new(first_epoch)),
        }
    }
}

/// Moves one batch to `device` as tensors.
pub fn to_tensors(
    batch: Batch,
    task: Task,
    num_classes: usize,
    size: usize,
    channels: usize,
    device: &Device,
) -> TrainBatch {
    let n = batch.len();
    let images = Tensor::<4>::from_data(TensorData::new(batch.images, [n, channels, size, size]), device);
    let (classes, labels) = if task.is_softmax() {
        let classes: Vec<i64> = batch
            .targets
            .iter()
            .map(|t| match t {
                Target::Class(c) => *c as i64,
                Target::MultiLabel(_) => panic!("a softmax task got multi-label targets"),
            })
            .collect();
        (Some(Tensor::<1, Int>::from_data(TensorData::new(classes, [n]), device)), None)
    } else {
        let labels: Vec<i64> = batch
            .targets
            .iter()
            .flat_map(|t| match t {
                Target::MultiLabel(v) => v.iter().map(|&x| i64::from(x >= 0.5)).collect::<Vec<_>>(),
                Target::Class(_) => panic!("a multi-label task got class targets"),
            })
            .collect();
        (None, Some(Tensor::<2, Int>::from_data(TensorData::new(labels, [n, num_classes]), device)))
    };
    TrainBatch { images, classes, labels }
}

struct BurnIter {
    inner: EpochIter,
    task: Task,
    num_classes: usize,
    size: usize,
    channels: usize,
    device: Device,
    processed: usize,
    total: usize,
}

impl Iterator for BurnIter {
    type Item = Result<TrainBatch, DatasetError>;

    fn next(&mut self) -> Option<Self::Item> {
        let batch = self.inner.next()?;
        Some(batch.map_err(DatasetError::new).map(|b| {
            self.processed += b.len();
            to_tensors(b, self.task, self.num_classes, self.size, self.channels, &self.device)
        }))
    }
}

impl DataLoaderIterator<TrainBatch> for BurnIter {
    fn progress(&self) -> Progress {
        Progress::new(self.processed, self.total, Some("images".into()))
    }
}

impl DataLoader<TrainBatch> for BurnLoader {
    fn iter<'a>(&'a self) -> Box<dyn DataLoaderIterator<TrainBatch> + 'a> {
        let epoch = self.epoch.fetch_add(1, Ordering::SeqCst);
        let config = self.loader.config();
        Box::new(BurnIter {
            inner: self.loader.epoch(epoch),
            task: self.task,
            num_classes: self.num_classes,
            size: config.input_size,
            channels: config.channels,
            device: self.device.clone(),
            processed: 0,
            total: self.loader.samples().len(),
        })
    }

    fn num_items(&self) -> usize {
        self.loader.samples().len()
    }

    fn to_device(&self, device: &Device) -> Arc<dyn DataLoader<TrainBatch>> {
        Arc::new(BurnLoader {
            loader: Arc::clone(&self.loader),
            task: self.task,
            num_classes: self.num_classes,
            device: device.clone(),
            epoch: Arc::clone(&self.epoch),
        })
    }

    fn slice(&self, start: usize, end: usize) -> Arc<dyn DataLoader<TrainBatch>> {
        let samples = self.loader.samples()[start..end.min(self.loader.samples().len())].to_vec();
        let loader = Loader::new(samples, *self.loader.config()).expect("a non-empty slice of a valid loader");
        Arc::new(BurnLoader {
            loader: Arc::new(loader),
            task: self.task,
            num_classes: self.num_classes,
            device: self.device.clone(),
            epoch: Arc::new(AtomicUsize::new(self.epoch.load(Ordering::SeqCst))),
        })
    }
}
