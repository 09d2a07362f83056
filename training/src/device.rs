//! The Burn devices named on the command line: [`DeviceSpec`] (`kind[:index]`, parsed by clap) and
//! [`DeviceSpec::open`], which makes the Burn [`Device`] and proves it works before a run starts.
//!
//! Every kind is spelled once, in [`DeviceKind`]; kinds behind crate features that this binary was not built with
//! parse, and opening them says which feature builds them ([`BUILT`] lists what this binary has).

use std::fmt;
use std::str::FromStr;

use burn::tensor::Device;

use crate::run::TrainError;

/// A kind of Burn device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceKind {
    /// Burn's pure-Rust CPU backend, always built; bit-reproducible.
    Flex,
    /// LibTorch on the CPU (feature `tch`).
    Tch,
    /// LibTorch on the N-th CUDA GPU (feature `tch`).
    TchCuda,
    /// CubeCL CUDA (feature `cuda`).
    Cuda,
    /// Any Vulkan GPU, the N-th discrete one (feature `vulkan`).
    Vulkan,
}

cxr_core::keywords!(DeviceKind, "device", {
    Flex => "flex",
    Tch => "tch",
    TchCuda => "tch-cuda",
    Cuda => "cuda",
    Vulkan => "vulkan",
});

impl DeviceKind {
    /// Whether it runs on a GPU (the PyTorch side of `bench` then runs on CUDA too).
    pub fn is_gpu(self) -> bool {
        matches!(self, DeviceKind::TchCuda | DeviceKind::Cuda | DeviceKind::Vulkan)
    }

    /// The crate feature that builds it (`None`: always built).
    pub fn feature(self) -> Option<&'static str> {
        match self {
            DeviceKind::Flex => None,
            DeviceKind::Tch | DeviceKind::TchCuda => Some("tch"),
            DeviceKind::Cuda => Some("cuda"),
            DeviceKind::Vulkan => Some("vulkan"),
        }
    }

    /// Whether this binary was built with it.
    pub fn is_built(self) -> bool {
        BUILT.contains(&self)
    }
}

/// The device kinds this binary was built with.
pub const BUILT: &[DeviceKind] = &[
    DeviceKind::Flex,
    #[cfg(feature = "cuda")]
    DeviceKind::Cuda,
    #[cfg(feature = "vulkan")]
    DeviceKind::Vulkan,
    #[cfg(feature = "tch")]
    DeviceKind::Tch,
    #[cfg(feature = "tch")]
    DeviceKind::TchCuda,
];

/// One `--device` value: a kind and, for GPUs, which one (`vulkan:1`; default 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceSpec {
    pub kind: DeviceKind,
    pub index: usize,
}

impl DeviceSpec {
    /// The CPU backend that is always built.
    pub const FLEX: DeviceSpec = DeviceSpec { kind: DeviceKind::Flex, index: 0 };

    /// The Burn device, tried with one tiny tensor: GPU devices come up lazily and panic on first use when the
    /// machine has no such adapter, so a missing GPU is an error naming the device instead of a panic mid-run.
    pub fn open(self) -> Result<Device, TrainError> {
        if self.kind == DeviceKind::Flex {
            return Ok(Device::flex());
        }
        let Some(device) = self.feature_device() else {
            let built: Vec<&str> = BUILT.iter().map(|k| k.as_str()).collect();
            return Err(TrainError::Config(format!(
                "device `{self}` is not built into this binary (built: {}; `{}` needs the crate feature `{}`); see \
                 docs/training.md \"Training backends\"",
                built.join(", "),
                self.kind,
                self.kind.feature().unwrap_or_default()
            )));
        };
        let attempt = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            burn::tensor::Tensor::<1>::ones([1], &device).into_data().try_into_vec_as::<f32>().ok()
        }));
        match attempt {
            Ok(Some(v)) if v == [1.0] => Ok(device),
            _ => Err(TrainError::Config(format!(
                "device `{self}` is not available on this machine (no such GPU or driver; see the log above)"
            ))),
        }
    }

    /// The device of a feature-gated kind, when this binary was built with its feature.
    #[allow(deprecated)] // Burn 0.22 marks its LibTorch devices deprecated; they are still the fastest CNN path.
    fn feature_device(self) -> Option<Device> {
        let DeviceSpec { kind, index } = self;
        #[cfg(feature = "tch")]
        match kind {
            DeviceKind::Tch => return Some(Device::libtorch()),
            DeviceKind::TchCuda => return Some(Device::libtorch_cuda(index)),
            _ => {}
        }
        #[cfg(feature = "cuda")]
        if kind == DeviceKind::Cuda {
            return Some(Device::cuda(index));
        }
        #[cfg(feature = "vulkan")]
        if kind == DeviceKind::Vulkan {
            return Some(Device::vulkan(burn::tensor::DeviceKind::DiscreteGpu(index)));
        }
        let _ = (kind, index);
        None
    }

    /// The PyTorch device that matches it: `cuda:N` for the GPU kinds, else `cpu`.
    pub fn pytorch_device(self) -> String {
        if self.kind.is_gpu() { format!("cuda:{}", self.index) } else { "cpu".to_string() }
    }
}

/// Opens every device of a list (several train data-parallel: burn-train's multi-device strategy sums gradients
/// over devices, so scale `--lr`).
pub fn open_all(specs: &[DeviceSpec]) -> Result<Vec<Device>, TrainError> {
    if specs.is_empty() {
        return Err(TrainError::Config("no --device given".into()));
    }
    specs.iter().map(|spec| spec.open()).collect()
}

impl FromStr for DeviceSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (kind, index) = match s.trim().split_once(':') {
            Some((kind, index)) => {
                (kind, index.parse::<usize>().map_err(|_| format!("bad device index `{index}` in `{s}`"))?)
            }
            None => (s.trim(), 0),
        };
        let kind: DeviceKind = kind.parse().map_err(|e: cxr_core::keywords::UnknownKeyword| e.to_string())?;
        if index > 0 && !kind.is_gpu() {
            return Err(format!("`{kind}` is a CPU device and takes no index (got `{s}`)"));
        }
        Ok(DeviceSpec { kind, index })
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.kind.is_gpu() { write!(f, "{}:{}", self.kind, self.index) } else { f.write_str(self.kind.as_str()) }
    }
}

/// Loader threads when not set: one per CPU.
pub fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_specs_parse_and_print_back() {
        let flex: DeviceSpec = "flex".parse().unwrap();
        assert_eq!(flex, DeviceSpec::FLEX);
        assert_eq!(flex.to_string(), "flex");
        let gpu: DeviceSpec = "vulkan:1".parse().unwrap();
        assert_eq!(gpu, DeviceSpec { kind: DeviceKind::Vulkan, index: 1 });
        assert_eq!(gpu.to_string(), "vulkan:1");
        assert_eq!("tch-cuda".parse::<DeviceSpec>().unwrap().to_string(), "tch-cuda:0");
        assert_eq!(gpu.pytorch_device(), "cuda:1");
        assert_eq!(flex.pytorch_device(), "cpu");
    }

    #[test]
    fn bad_device_specs_say_what_is_wrong() {
        let unknown = "gpu".parse::<DeviceSpec>().unwrap_err();
        assert!(unknown.contains("flex, tch, tch-cuda, cuda, vulkan"), "{unknown}");
        assert!("cuda:x".parse::<DeviceSpec>().unwrap_err().contains("bad device index"));
        assert!("flex:1".parse::<DeviceSpec>().unwrap_err().contains("takes no index"));
    }

    #[test]
    fn a_kind_this_binary_lacks_names_its_feature() {
        let missing = DeviceKind::ALL.into_iter().find(|k| !k.is_built());
        if let Some(kind) = missing {
            let err = DeviceSpec { kind, index: 0 }.open().unwrap_err().to_string();
            assert!(err.contains("not built into this binary") && err.contains(kind.feature().unwrap()), "{err}");
        }
        assert!(DeviceSpec::FLEX.open().is_ok());
    }
}
