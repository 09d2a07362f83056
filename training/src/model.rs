//! Inception-V3 (Szegedy et al., "Rethinking the Inception Architecture for Computer Vision", CVPR 2016) in Burn.
//!
//! The layer structure, the channel counts and the order in which branches are concatenated follow torchvision's
//! `torchvision/models/inception.py` with `transform_input=False`, so that weights can be mapped one to one
//! (field names are torchvision's names in snake case: `Conv2d_1a_3x3` → `conv2d_1a_3x3`, `Mixed_5b` →
//! `mixed_5b`, `branch3x3dbl_1` stays `branch3x3dbl_1`; each [`BasicConv2d`] holds `conv` and `bn`, whose Burn
//! parameters `weight` / `gamma` / `beta` / `running_mean` / `running_var` correspond to torchvision's
//! `conv.weight` / `bn.weight` / `bn.bias` / `bn.running_mean` / `bn.running_var`).
//!
//! | stage              | block                                        | output `[C, H, W]` for a 299×299 input |
//! |--------------------|----------------------------------------------|-----------------------------------------|
//! | `conv2d_1a_3x3`    | BasicConv in→32, 3×3, stride 2               | 32 × 149 × 149                          |
//! | `conv2d_2a_3x3`    | BasicConv 32→32, 3×3                         | 32 × 147 × 147                          |
//! | `conv2d_2b_3x3`    | BasicConv 32→64, 3×3, pad 1                  | 64 × 147 × 147                          |
//! | `maxpool1`         | max pool 3×3, stride 2                       | 64 × 73 × 73                            |
//! | `conv2d_3b_1x1`    | BasicConv 64→80, 1×1                         | 80 × 73 × 73                            |
//! | `conv2d_4a_3x3`    | BasicConv 80→192, 3×3                        | 192 × 71 × 71                           |
//! | `maxpool2`         | max pool 3×3, stride 2                       | 192 × 35 × 35                           |
//! | `mixed_5b/5c/5d`   | [`InceptionA`] (pool features 32, 64, 64)    | 256 / 288 / 288 × 35 × 35               |
//! | `mixed_6a`         | [`InceptionB`]                               | 768 × 17 × 17                           |
//! | `mixed_6b..6e`     | [`InceptionC`] (c7 = 128, 160, 160, 192)     | 768 × 17 × 17                           |
//! | `aux_logits`       | optional [`InceptionAux`] on `mixed_6e`      | `[N, num_classes]`                      |
//! | `mixed_7a`         | [`InceptionD`]                               | 1280 × 8 × 8                            |
//! | `mixed_7b/7c`      | [`InceptionE`]                               | 2048 × 8 × 8                            |
//! | `avgpool`          | adaptive average pool to 1×1                 | 2048 × 1 × 1                            |
//! | `dropout`, `fc`    | dropout (p = 0.5), flatten, linear 2048→K    | `[N, num_classes]`                      |
//!
//! The colour and grayscale variants differ only in `in_channels` of `conv2d_1a_3x3` (3 vs 1), i.e. by
//! `32 · 2 · 3 · 3 = 576` trainable parameters.
//!
//! # Training versus inference behaviour
//!
//! Burn 0.22 has no global train/eval switch. [`BatchNorm`] uses batch statistics (and updates its running
//! statistics) and [`Dropout`] drops activations only when the input tensor lives on an autodiff device **and**
//! the layer's training flag is enabled. On a plain device (e.g. `Device::default()`, the ONNX capture device),
//! or after [`Module::valid`], the forward pass is the deterministic inference pass: running statistics,
//! dropout = identity. No explicit "eval mode" call is needed for inference or export.
//!
//! # Initialisation
//!
//! Convolutions use He (Kaiming) uniform initialisation for ReLU networks (`U(-a, a)`,
//! `a = sqrt(6 / fan_in)`, Burn's `KaimingUniform { gain: √2 }`), which keeps activations at unit scale through
//! the whole network even when batch normalisation runs in inference mode with its initial running statistics
//! (mean 0, variance 1). The linear layers use Burn's default (`U(-1/√fan_in, 1/√fan_in)`, as PyTorch).
//! Batch normalisation starts at γ = 1, β = 0, running mean 0, running variance 1.
//!
//! [`init_seeded`] draws the same distributions from a private, portable generator keyed by the seed and each
//! parameter's module path. It does not use Burn's random number generator: in Burn 0.22 `Device::seed` sets a
//! process-global RNG (`burn-flex`: one `static SEED: Mutex<Option<FlexRng>>`) and parameters are initialised
//! lazily on first use, so any other thread drawing random numbers in between (another model initialising,
//! dropout, data shuffling) would silently change the weights.

use core::f64::consts::SQRT_2;

use burn::config::Config;
use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{
    AdaptiveAvgPool2d, AdaptiveAvgPool2dConfig, AvgPool2d, AvgPool2dConfig, MaxPool2d, MaxPool2dConfig,
};
use burn::nn::{
    BatchNorm, BatchNormConfig, Dropout, DropoutConfig, Initializer, Linear, LinearConfig, PaddingConfig2d,
};
use burn::tensor::activation::{relu, sigmoid};
use burn::tensor::{Device, Tensor, TensorData};
use cxr_core::card::ModelVariant;

use crate::hash::{Fnv1a, splitmix64};

/// Number of features entering the classifier (`mixed_7c` output channels).
pub const FEATURES: usize = 2048;
/// Channels of `mixed_6e`'s output, the input of the auxiliary classifier.
pub const AUX_IN_CHANNELS: usize = 768;
/// The input resolution Inception-V3 was designed for (height = width).
pub const INPUT_SIZE: usize = 299;
/// Smallest input side for which the main path is defined (`mixed_7c` becomes 1×1).
pub const MIN_INPUT_SIZE: usize = 75;
/// Batch-normalisation epsilon (torchvision's `BasicConv2d` uses `eps=0.001`).
pub const BN_EPSILON: f64 = 1e-3;

/// Gain of the convolution initialiser (He / Kaiming uniform for ReLU: `a = sqrt(3) · gain / sqrt(fan_in)`).
const CONV_INIT_GAIN: f64 = SQRT_2;
/// Gain of the linear initialiser (Burn's default, `a = 1 / sqrt(fan_in)`).
const LINEAR_INIT_GAIN: f64 = 0.577_350_269_189_625_8; // 1 / sqrt(3)

fn conv_initializer() -> Initializer {
    Initializer::KaimingUniform { gain: CONV_INIT_GAIN, fan_out_only: false }
}

fn linear_initializer() -> Initializer {
    Initializer::KaimingUniform { gain: LINEAR_INIT_GAIN, fan_out_only: false }
}

// ---------------------------------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------------------------------

/// Configuration of an [`InceptionV3`].
#[derive(Config, Debug)]
pub struct InceptionV3Config {
    /// Input channels of the first convolution: 3 for the colour variant, 1 for the grayscale variant.
    pub in_channels: usize,
    /// Number of output logits (14 for the chest X-ray findings, 1000 for ImageNet).
    pub num_classes: usize,
    /// Build the auxiliary classifier on `mixed_6e` (used by [`InceptionV3::forward_train`] only).
    #[config(default = false)]
    pub aux_logits: bool,
    /// Dropout probability before the final linear layer.
    #[config(default = 0.5)]
    pub dropout: f64,
}

impl InceptionV3Config {
    /// The configuration of a [`ModelVariant`]: the variants differ only in `in_channels`
    /// ([`ModelVariant::channels`]); everything else is the default (no auxiliary head, dropout 0.5).
    pub fn for_variant(variant: ModelVariant, num_classes: usize) -> InceptionV3Config {
        InceptionV3Config::new(variant.channels(), num_classes)
    }

    /// Build the model with Burn's lazy initialisation (see the [module docs](self) for the distributions).
    ///
    /// Weights are drawn from Burn's RNG on first use and are not reproducible; use [`init_seeded`] for that.
    ///
    /// # Panics
    ///
    /// If `in_channels` or `num_classes` is zero, or `dropout` is not in `[0, 1)`.
    pub fn init(&self, device: &Device) -> InceptionV3 {
        assert!(self.in_channels > 0, "in_channels must be at least 1");
        assert!(self.num_classes > 0, "num_classes must be at least 1");
        let c = |i, o, k| BasicConv2dConfig::new(i, o, k);

        InceptionV3 {
            conv2d_1a_3x3: c(self.in_channels, 32, [3, 3]).with_stride([2, 2]).init(device),
            conv2d_2a_3x3: c(32, 32, [3, 3]).init(device),
            conv2d_2b_3x3: c(32, 64, [3, 3]).with_padding([1, 1]).init(device),
            maxpool1: max_pool_3x3_s2(),
            conv2d_3b_1x1: c(64, 80, [1, 1]).init(device),
            conv2d_4a_3x3: c(80, 192, [3, 3]).init(device),
            maxpool2: max_pool_3x3_s2(),
            mixed_5b: InceptionA::new(192, 32, device),
            mixed_5c: InceptionA::new(256, 64, device),
            mixed_5d: InceptionA::new(288, 64, device),
            mixed_6a: InceptionB::new(288, device),
            mixed_6b: InceptionC::new(768, 128, device),
            mixed_6c: InceptionC::new(768, 160, device),
            mixed_6d: InceptionC::new(768, 160, device),
            mixed_6e: InceptionC::new(768, 192, device),
            aux_logits: self.aux_logits.then(|| InceptionAux::new(AUX_IN_CHANNELS, self.num_classes, device)),
            mixed_7a: InceptionD::new(768, device),
            mixed_7b: InceptionE::new(1280, device),
            mixed_7c: InceptionE::new(2048, device),
            avgpool: AdaptiveAvgPool2dConfig::new([1, 1]).init(),
            dropout: DropoutConfig::new(self.dropout).init(),
            fc: LinearConfig::new(FEATURES, self.num_classes).with_initializer(linear_initializer()).init(device),
        }
    }

    /// Shorthand for [`init_seeded`]`(self, seed, device)`.
    pub fn init_seeded(&self, seed: u64, device: &Device) -> InceptionV3 {
        init_seeded(self, seed, device)
    }
}

/// Build the model with reproducible weights: the same `config` and `seed` give bit-identical parameters on
/// every run, platform and thread interleaving; different seeds give different weights.
///
/// Every convolution and linear parameter is drawn (same distributions as [`InceptionV3Config::init`]) from a
/// SplitMix64 stream seeded by `seed` and the parameter's module path (e.g. `mixed_5b.branch1x1.conv.weight`),
/// so a parameter's values do not depend on traversal order or on which other parameters exist (the
/// colour and grayscale models share every parameter except `conv2d_1a_3x3.conv.weight`). Batch-norm
/// parameters and statistics take their fixed initial values. Burn's global RNG is neither used nor disturbed.
/// All parameters are materialised (none is left lazy).
pub fn init_seeded(config: &InceptionV3Config, seed: u64, device: &Device) -> InceptionV3 {
    let model = config.init(device);
    let mut mapper = SeededInitializer { seed, path: Vec::new(), linear_fan_in: None };
    model.map(&mut mapper)
}

// ---------------------------------------------------------------------------------------------------------------
// Building blocks
// ---------------------------------------------------------------------------------------------------------------

fn max_pool_3x3_s2() -> MaxPool2d {
    MaxPool2dConfig::new([3, 3]).with_strides([2, 2]).init()
}

/// `F.avg_pool2d(x, kernel_size=3, stride=1, padding=1)` (PyTorch default `count_include_pad=True`).
fn avg_pool_3x3_s1_p1() -> AvgPool2d {
    AvgPool2dConfig::new([3, 3])
        .with_strides([1, 1])
        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
        .with_count_include_pad(true)
        .init()
}

/// Configuration of a [`BasicConv2d`].
#[derive(Config, Debug)]
pub struct BasicConv2dConfig {
    /// Input channels.
    pub in_channels: usize,
    /// Output channels.
    pub out_channels: usize,
    /// Kernel size `[height, width]`.
    pub kernel_size: [usize; 2],
    /// Stride `[height, width]`.
    #[config(default = "[1, 1]")]
    pub stride: [usize; 2],
    /// Symmetric zero padding `[height, width]`.
    #[config(default = "[0, 0]")]
    pub padding: [usize; 2],
}

impl BasicConv2dConfig {
    /// Build the block.
    pub fn init(&self, device: &Device) -> BasicConv2d {
        let [ph, pw] = self.padding;
        BasicConv2d {
            conv: Conv2dConfig::new([self.in_channels, self.out_channels], self.kernel_size)
                .with_stride(self.stride)
                .with_padding(PaddingConfig2d::Explicit(ph, pw, ph, pw))
                .with_bias(false)
                .with_initializer(conv_initializer())
                .init(device),
            bn: BatchNormConfig::new(self.out_channels).with_epsilon(BN_EPSILON).init(device),
        }
    }
}

/// torchvision's `BasicConv2d`: convolution without bias, batch normalisation (ε = 0.001), ReLU.
#[derive(Module, Debug)]
pub struct BasicConv2d {
    /// The convolution (no bias).
    pub conv: Conv2d,
    /// The batch normalisation.
    pub bn: BatchNorm,
}

impl BasicConv2d {
    /// `[N, C_in, H, W]` → `[N, C_out, H', W']`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        relu(self.bn.forward(self.conv.forward(x)))
    }
}

fn conv(i: usize, o: usize, k: [usize; 2], p: [usize; 2], device: &Device) -> BasicConv2d {
    BasicConv2dConfig::new(i, o, k).with_padding(p).init(device)
}

fn conv_s2(i: usize, o: usize, device: &Device) -> BasicConv2d {
    BasicConv2dConfig::new(i, o, [3, 3]).with_stride([2, 2]).init(device)
}

/// `Mixed_5b/5c/5d`: 1×1 | 1×1→5×5 | 1×1→3×3→3×3 | avg pool→1×1; output `224 + pool_features` channels.
#[derive(Module, Debug)]
pub struct InceptionA {
    pub branch1x1: BasicConv2d,
    pub branch5x5_1: BasicConv2d,
    pub branch5x5_2: BasicConv2d,
    pub branch3x3dbl_1: BasicConv2d,
    pub branch3x3dbl_2: BasicConv2d,
    pub branch3x3dbl_3: BasicConv2d,
    pub avg_pool: AvgPool2d,
    pub branch_pool: BasicConv2d,
}

impl InceptionA {
    /// Build the block for `in_channels` inputs.
    pub fn new(in_channels: usize, pool_features: usize, device: &Device) -> Self {
        Self {
            branch1x1: conv(in_channels, 64, [1, 1], [0, 0], device),
            branch5x5_1: conv(in_channels, 48, [1, 1], [0, 0], device),
            branch5x5_2: conv(48, 64, [5, 5], [2, 2], device),
            branch3x3dbl_1: conv(in_channels, 64, [1, 1], [0, 0], device),
            branch3x3dbl_2: conv(64, 96, [3, 3], [1, 1], device),
            branch3x3dbl_3: conv(96, 96, [3, 3], [1, 1], device),
            avg_pool: avg_pool_3x3_s1_p1(),
            branch_pool: conv(in_channels, pool_features, [1, 1], [0, 0], device),
        }
    }

    /// `[N, C, H, W]` → `[N, 224 + pool_features, H, W]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let branch1x1 = self.branch1x1.forward(x.clone());
        let branch5x5 = self.branch5x5_2.forward(self.branch5x5_1.forward(x.clone()));
        let branch3x3dbl =
            self.branch3x3dbl_3.forward(self.branch3x3dbl_2.forward(self.branch3x3dbl_1.forward(x.clone())));
        let branch_pool = self.branch_pool.forward(self.avg_pool.forward(x));
        Tensor::cat(vec![branch1x1, branch5x5, branch3x3dbl, branch_pool], 1)
    }
}

/// `Mixed_6a` (grid reduction 35→17): 3×3 s2 | 1×1→3×3→3×3 s2 | max pool s2; output `480 + C` channels.
#[derive(Module, Debug)]
pub struct InceptionB {
    pub branch3x3: BasicConv2d,
    pub branch3x3dbl_1: BasicConv2d,
    pub branch3x3dbl_2: BasicConv2d,
    pub branch3x3dbl_3: BasicConv2d,
    pub max_pool: MaxPool2d,
}

impl InceptionB {
    /// Build the block for `in_channels` inputs.
    pub fn new(in_channels: usize, device: &Device) -> Self {
        Self {
            branch3x3: conv_s2(in_channels, 384, device),
            branch3x3dbl_1: conv(in_channels, 64, [1, 1], [0, 0], device),
            branch3x3dbl_2: conv(64, 96, [3, 3], [1, 1], device),
            branch3x3dbl_3: conv_s2(96, 96, device),
            max_pool: max_pool_3x3_s2(),
        }
    }

    /// `[N, C, H, W]` → `[N, 480 + C, (H-3)/2+1, (W-3)/2+1]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let branch3x3 = self.branch3x3.forward(x.clone());
        let branch3x3dbl =
            self.branch3x3dbl_3.forward(self.branch3x3dbl_2.forward(self.branch3x3dbl_1.forward(x.clone())));
        let branch_pool = self.max_pool.forward(x);
        Tensor::cat(vec![branch3x3, branch3x3dbl, branch_pool], 1)
    }
}

/// `Mixed_6b..6e`: 1×1 | 1×1→1×7→7×1 | 1×1→7×1→1×7→7×1→1×7 | avg pool→1×1; output 768 channels.
#[derive(Module, Debug)]
pub struct InceptionC {
    pub branch1x1: BasicConv2d,
    pub branch7x7_1: BasicConv2d,
    pub branch7x7_2: BasicConv2d,
    pub branch7x7_3: BasicConv2d,
    pub branch7x7dbl_1: BasicConv2d,
    pub branch7x7dbl_2: BasicConv2d,
    pub branch7x7dbl_3: BasicConv2d,
    pub branch7x7dbl_4: BasicConv2d,
    pub branch7x7dbl_5: BasicConv2d,
    pub avg_pool: AvgPool2d,
    pub branch_pool: BasicConv2d,
}

impl InceptionC {
    /// Build the block for `in_channels` inputs with `channels_7x7` channels inside the factorised 7×7 branches.
    pub fn new(in_channels: usize, channels_7x7: usize, device: &Device) -> Self {
        let c7 = channels_7x7;
        let (k1x7, p1x7) = ([1, 7], [0, 3]);
        let (k7x1, p7x1) = ([7, 1], [3, 0]);
        Self {
            branch1x1: conv(in_channels, 192, [1, 1], [0, 0], device),
            branch7x7_1: conv(in_channels, c7, [1, 1], [0, 0], device),
            branch7x7_2: conv(c7, c7, k1x7, p1x7, device),
            branch7x7_3: conv(c7, 192, k7x1, p7x1, device),
            branch7x7dbl_1: conv(in_channels, c7, [1, 1], [0, 0], device),
            branch7x7dbl_2: conv(c7, c7, k7x1, p7x1, device),
            branch7x7dbl_3: conv(c7, c7, k1x7, p1x7, device),
            branch7x7dbl_4: conv(c7, c7, k7x1, p7x1, device),
            branch7x7dbl_5: conv(c7, 192, k1x7, p1x7, device),
            avg_pool: avg_pool_3x3_s1_p1(),
            branch_pool: conv(in_channels, 192, [1, 1], [0, 0], device),
        }
    }

    /// `[N, C, H, W]` → `[N, 768, H, W]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let branch1x1 = self.branch1x1.forward(x.clone());
        let mut branch7x7 = self.branch7x7_1.forward(x.clone());
        branch7x7 = self.branch7x7_2.forward(branch7x7);
        branch7x7 = self.branch7x7_3.forward(branch7x7);
        let mut branch7x7dbl = self.branch7x7dbl_1.forward(x.clone());
        branch7x7dbl = self.branch7x7dbl_2.forward(branch7x7dbl);
        branch7x7dbl = self.branch7x7dbl_3.forward(branch7x7dbl);
        branch7x7dbl = self.branch7x7dbl_4.forward(branch7x7dbl);
        branch7x7dbl = self.branch7x7dbl_5.forward(branch7x7dbl);
        let branch_pool = self.branch_pool.forward(self.avg_pool.forward(x));
        Tensor::cat(vec![branch1x1, branch7x7, branch7x7dbl, branch_pool], 1)
    }
}

/// `Mixed_7a` (grid reduction 17→8): 1×1→3×3 s2 | 1×1→1×7→7×1→3×3 s2 | max pool s2; output `512 + C` channels.
#[derive(Module, Debug)]
pub struct InceptionD {
    pub branch3x3_1: BasicConv2d,
    pub branch3x3_2: BasicConv2d,
    pub branch7x7x3_1: BasicConv2d,
    pub branch7x7x3_2: BasicConv2d,
    pub branch7x7x3_3: BasicConv2d,
    pub branch7x7x3_4: BasicConv2d,
    pub max_pool: MaxPool2d,
}

impl InceptionD {
    /// Build the block for `in_channels` inputs.
    pub fn new(in_channels: usize, device: &Device) -> Self {
        Self {
            branch3x3_1: conv(in_channels, 192, [1, 1], [0, 0], device),
            branch3x3_2: conv_s2(192, 320, device),
            branch7x7x3_1: conv(in_channels, 192, [1, 1], [0, 0], device),
            branch7x7x3_2: conv(192, 192, [1, 7], [0, 3], device),
            branch7x7x3_3: conv(192, 192, [7, 1], [3, 0], device),
            branch7x7x3_4: conv_s2(192, 192, device),
            max_pool: max_pool_3x3_s2(),
        }
    }

    /// `[N, C, H, W]` → `[N, 512 + C, (H-3)/2+1, (W-3)/2+1]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let branch3x3 = self.branch3x3_2.forward(self.branch3x3_1.forward(x.clone()));
        let mut branch7x7x3 = self.branch7x7x3_1.forward(x.clone());
        branch7x7x3 = self.branch7x7x3_2.forward(branch7x7x3);
        branch7x7x3 = self.branch7x7x3_3.forward(branch7x7x3);
        branch7x7x3 = self.branch7x7x3_4.forward(branch7x7x3);
        let branch_pool = self.max_pool.forward(x);
        Tensor::cat(vec![branch3x3, branch7x7x3, branch_pool], 1)
    }
}

/// `Mixed_7b/7c`: 1×1 | 1×1→(1×3 ‖ 3×1) | 1×1→3×3→(1×3 ‖ 3×1) | avg pool→1×1; output 2048 channels.
#[derive(Module, Debug)]
pub struct InceptionE {
    pub branch1x1: BasicConv2d,
    pub branch3x3_1: BasicConv2d,
    pub branch3x3_2a: BasicConv2d,
    pub branch3x3_2b: BasicConv2d,
    pub branch3x3dbl_1: BasicConv2d,
    pub branch3x3dbl_2: BasicConv2d,
    pub branch3x3dbl_3a: BasicConv2d,
    pub branch3x3dbl_3b: BasicConv2d,
    pub avg_pool: AvgPool2d,
    pub branch_pool: BasicConv2d,
}

impl InceptionE {
    /// Build the block for `in_channels` inputs.
    pub fn new(in_channels: usize, device: &Device) -> Self {
        Self {
            branch1x1: conv(in_channels, 320, [1, 1], [0, 0], device),
            branch3x3_1: conv(in_channels, 384, [1, 1], [0, 0], device),
            branch3x3_2a: conv(384, 384, [1, 3], [0, 1], device),
            branch3x3_2b: conv(384, 384, [3, 1], [1, 0], device),
            branch3x3dbl_1: conv(in_channels, 448, [1, 1], [0, 0], device),
            branch3x3dbl_2: conv(448, 384, [3, 3], [1, 1], device),
            branch3x3dbl_3a: conv(384, 384, [1, 3], [0, 1], device),
            branch3x3dbl_3b: conv(384, 384, [3, 1], [1, 0], device),
            avg_pool: avg_pool_3x3_s1_p1(),
            branch_pool: conv(in_channels, 192, [1, 1], [0, 0], device),
        }
    }

    /// `[N, C, H, W]` → `[N, 2048, H, W]` (320 + 768 + 768 + 192).
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let branch1x1 = self.branch1x1.forward(x.clone());

        let branch3x3 = self.branch3x3_1.forward(x.clone());
        let branch3x3 =
            Tensor::cat(vec![self.branch3x3_2a.forward(branch3x3.clone()), self.branch3x3_2b.forward(branch3x3)], 1);

        let branch3x3dbl = self.branch3x3dbl_2.forward(self.branch3x3dbl_1.forward(x.clone()));
        let branch3x3dbl = Tensor::cat(
            vec![self.branch3x3dbl_3a.forward(branch3x3dbl.clone()), self.branch3x3dbl_3b.forward(branch3x3dbl)],
            1,
        );

        let branch_pool = self.branch_pool.forward(self.avg_pool.forward(x));
        Tensor::cat(vec![branch1x1, branch3x3, branch3x3dbl, branch_pool], 1)
    }
}

/// The auxiliary classifier on `mixed_6e`: avg pool 5×5 s3 → 1×1 conv (128) → 5×5 conv (768) → global average
/// pool → linear.
#[derive(Module, Debug)]
pub struct InceptionAux {
    pub avg_pool: AvgPool2d,
    pub conv0: BasicConv2d,
    pub conv1: BasicConv2d,
    pub global_pool: AdaptiveAvgPool2d,
    pub fc: Linear,
}

impl InceptionAux {
    /// Build the head for `in_channels` inputs and `num_classes` outputs.
    pub fn new(in_channels: usize, num_classes: usize, device: &Device) -> Self {
        Self {
            avg_pool: AvgPool2dConfig::new([5, 5]).with_strides([3, 3]).init(),
            conv0: conv(in_channels, 128, [1, 1], [0, 0], device),
            conv1: conv(128, 768, [5, 5], [0, 0], device),
            global_pool: AdaptiveAvgPool2dConfig::new([1, 1]).init(),
            fc: LinearConfig::new(768, num_classes).with_initializer(linear_initializer()).init(device),
        }
    }

    /// `[N, 768, 17, 17]` → `[N, num_classes]` (needs H, W ≥ 17 so that the 5×5 convolution fits).
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let x = self.avg_pool.forward(x);
        let x = self.conv0.forward(x);
        let x = self.conv1.forward(x);
        let x = self.global_pool.forward(x);
        self.fc.forward(x.flatten(1, 3))
    }
}

// ---------------------------------------------------------------------------------------------------------------
// The network
// ---------------------------------------------------------------------------------------------------------------

/// Inception-V3. Build it with [`InceptionV3Config::init`] or [`init_seeded`].
#[derive(Module, Debug)]
pub struct InceptionV3 {
    pub conv2d_1a_3x3: BasicConv2d,
    pub conv2d_2a_3x3: BasicConv2d,
    pub conv2d_2b_3x3: BasicConv2d,
    pub maxpool1: MaxPool2d,
    pub conv2d_3b_1x1: BasicConv2d,
    pub conv2d_4a_3x3: BasicConv2d,
    pub maxpool2: MaxPool2d,
    pub mixed_5b: InceptionA,
    pub mixed_5c: InceptionA,
    pub mixed_5d: InceptionA,
    pub mixed_6a: InceptionB,
    pub mixed_6b: InceptionC,
    pub mixed_6c: InceptionC,
    pub mixed_6d: InceptionC,
    pub mixed_6e: InceptionC,
    /// The auxiliary classifier, present when the config asked for it.
    pub aux_logits: Option<InceptionAux>,
    pub mixed_7a: InceptionD,
    pub mixed_7b: InceptionE,
    pub mixed_7c: InceptionE,
    pub avgpool: AdaptiveAvgPool2d,
    pub dropout: Dropout,
    pub fc: Linear,
}

impl InceptionV3 {
    /// Logits.
    ///
    /// - input `x`: `[N, C, H, W]` float, `C` = [`in_channels`](Self::in_channels), normally `H = W = 299`
    ///   (any `H, W ≥ 75` works), normalised to `[-1, 1]` (`(x - 0.5) / 0.5`).
    /// - output: `[N, num_classes]` raw logits (apply a sigmoid for the multi-label probabilities).
    ///
    /// Never evaluates the auxiliary head. Inference behaviour (running BN statistics, no dropout) unless the
    /// input is on an autodiff device and the model is in training state; see the [module docs](self).
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        self.classify(self.features(x))
    }

    /// The last feature map before pooling (`mixed_7c`): `[N, C, H, W]` → `[N, 2048, g, g]`, `g` =
    /// [`feature_grid`]`(H)` (8 for 299×299). [`forward`](Self::forward) is its global average, then `fc`.
    pub fn features(&self, x: Tensor<4>) -> Tensor<4> {
        self.features_7c(self.features_6e(x))
    }

    /// The class activation maps (Zhou et al., CVPR 2016) of a [`features`](Self::features) map: `fc` applied at
    /// every position, `[N, 2048, g, g]` → `[N, num_classes, g, g]`, bias included. Because global average pooling
    /// and `fc` are both linear, the spatial mean of map `k` equals logit `k` (dropout is the identity in inference).
    pub fn cam(&self, features: Tensor<4>) -> Tensor<4> {
        self.fc.forward(features.permute([0, 2, 3, 1])).permute([0, 3, 1, 2])
    }

    /// Global average pool, dropout, flatten, `fc`: `[N, 2048, g, g]` → `[N, num_classes]` logits.
    pub fn classify(&self, features: Tensor<4>) -> Tensor<2> {
        let x = self.avgpool.forward(features);
        let x = self.dropout.forward(x);
        self.fc.forward(x.flatten(1, 3))
    }

    /// Training forward: `(logits [N, num_classes], aux logits [N, num_classes])`; the second is `Some` exactly
    /// when the model was built with `aux_logits = true`. Same input contract as [`forward`](Self::forward),
    /// but the auxiliary head needs `H, W ≥ 107` (299 in practice).
    pub fn forward_train(&self, x: Tensor<4>) -> (Tensor<2>, Option<Tensor<2>>) {
        let x = self.features_6e(x);
        let aux = self.aux_logits.as_ref().map(|aux| aux.forward(x.clone()));
        (self.classify(self.features_7c(x)), aux)
    }

    /// Sigmoid probabilities `[N, num_classes]`, each in `(0, 1)`, for input `[N, C, H, W]` (see
    /// [`forward`](Self::forward)).
    pub fn forward_probabilities(&self, x: Tensor<4>) -> Tensor<2> {
        sigmoid(self.forward(x))
    }

    /// Input channels of the first convolution (3 colour, 1 gray).
    pub fn in_channels(&self) -> usize {
        self.conv2d_1a_3x3.conv.weight.lazy_shape()[1]
    }

    /// Number of output logits.
    pub fn num_classes(&self) -> usize {
        self.fc.weight.lazy_shape()[1]
    }

    /// Number of trainable parameters (what torchvision's `sum(p.numel() for p in model.parameters())` counts):
    /// every float parameter except batch-norm running statistics. Includes the auxiliary head when present.
    ///
    /// Burn's [`Module::num_params`] also counts `BatchNorm::running_mean` / `running_var`: they are
    /// `RunningState`s, which Burn 0.22 visits as float parameters.
    pub fn num_trainable_params(&self) -> usize {
        num_trainable_params(self)
    }

    /// Stem and blocks up to `mixed_6e`: `[N, C, H, W]` → `[N, 768, H', W']` (17×17 for 299×299).
    fn features_6e(&self, x: Tensor<4>) -> Tensor<4> {
        let x = self.conv2d_1a_3x3.forward(x);
        let x = self.conv2d_2a_3x3.forward(x);
        let x = self.conv2d_2b_3x3.forward(x);
        let x = self.maxpool1.forward(x);
        let x = self.conv2d_3b_1x1.forward(x);
        let x = self.conv2d_4a_3x3.forward(x);
        let x = self.maxpool2.forward(x);
        let x = self.mixed_5b.forward(x);
        let x = self.mixed_5c.forward(x);
        let x = self.mixed_5d.forward(x);
        let x = self.mixed_6a.forward(x);
        let x = self.mixed_6b.forward(x);
        let x = self.mixed_6c.forward(x);
        let x = self.mixed_6d.forward(x);
        self.mixed_6e.forward(x)
    }

    /// `mixed_7a..7c`: `[N, 768, H, W]` → `[N, 2048, H', W']`.
    fn features_7c(&self, x: Tensor<4>) -> Tensor<4> {
        let x = self.mixed_7a.forward(x);
        let x = self.mixed_7b.forward(x);
        self.mixed_7c.forward(x)
    }
}

/// Side of the last feature map ([`InceptionV3::features`]) for a `size × size` input: 8 at 299, 1 at 75.
///
/// Follows the stride-2 "valid" stages (`conv2d_1a_3x3`, `conv2d_2a_3x3`, `conv2d_4a_3x3`, both max pools,
/// `mixed_6a`, `mixed_7a`); every other stage keeps the size.
pub const fn feature_grid(size: usize) -> usize {
    const fn valid(n: usize, stride: usize) -> usize {
        (n - 3) / stride + 1
    }
    let n = valid(size, 2); // conv2d_1a_3x3
    let n = valid(n, 1); // conv2d_2a_3x3
    let n = valid(n, 2); // maxpool1
    let n = valid(n, 1); // conv2d_4a_3x3
    let n = valid(n, 2); // maxpool2
    let n = valid(n, 2); // mixed_6a
    valid(n, 2) // mixed_7a
}

// ---------------------------------------------------------------------------------------------------------------
// Parameter counting
// ---------------------------------------------------------------------------------------------------------------

/// Trainable parameters of any module: all float parameters except the batch-norm running statistics.
///
/// Running statistics are recognised as the `running_mean` / `running_var` fields of a `BatchNorm`
/// (the only `RunningState`s in Burn's layers). Frozen parameters (`require_grad = false`) are still counted:
/// Burn keeps that setting private on non-autodiff devices.
pub fn num_trainable_params<M: Module>(module: &M) -> usize {
    let mut counter = TrainableCounter::default();
    module.visit(&mut counter);
    counter.count
}

#[derive(Default)]
struct TrainableCounter {
    /// `(field name, container type)` of every module entered.
    path: Vec<(String, String)>,
    count: usize,
}

impl ModuleVisitor for TrainableCounter {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.path.push((name.to_string(), container_type.to_string()));
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let running_stat = matches!(
            self.path.last(),
            Some((name, container))
                if container == "Struct:BatchNorm" && (name == "running_mean" || name == "running_var")
        );
        if !running_stat {
            self.count += param.lazy_shape().num_elements();
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Seeded initialisation
// ---------------------------------------------------------------------------------------------------------------

/// Replaces every `Conv2d` / `Linear` parameter by values from a per-parameter SplitMix64 stream.
struct SeededInitializer {
    seed: u64,
    /// `(field name, container type)` of every module entered.
    path: Vec<(String, String)>,
    /// `fan_in` of the `Linear` whose weight was visited last (a `Linear`'s bias follows its weight).
    linear_fan_in: Option<usize>,
}

impl ModuleMapper for SeededInitializer {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.path.push((name.to_string(), container_type.to_string()));
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let Some((name, container)) = self.path.last() else {
            return param;
        };
        let shape = param.lazy_shape();
        let (gain, fan_in) = match (container.as_str(), name.as_str()) {
            // Conv2d weight: [out, in / groups, kh, kw].
            ("Struct:Conv2d", "weight") => (CONV_INIT_GAIN, shape[1] * shape[2] * shape[3]),
            // Linear weight (row layout): [d_input, d_output].
            ("Struct:Linear", "weight") => {
                self.linear_fan_in = Some(shape[0]);
                (LINEAR_INIT_GAIN, shape[0])
            }
            ("Struct:Linear", "bias") => {
                (LINEAR_INIT_GAIN, self.linear_fan_in.take().expect("a Linear's weight is visited before its bias"))
            }
            // Batch-norm gamma/beta/statistics keep their fixed initial values. (Conv biases do not exist here.)
            _ => return param,
        };
        let bound = 3f64.sqrt() * gain / (fan_in as f64).sqrt();
        let key = self.path.iter().map(|(name, _)| name.as_str()).collect::<Vec<_>>().join(".");
        let values = uniform_values(self.seed, &key, shape.num_elements(), bound as f32);
        let device = param.lazy_device();
        let tensor = Tensor::<D>::from_data(TensorData::new(values, shape), &device);
        Param::initialized(param.id, tensor).set_require_grad(true)
    }
}

/// `n` values uniform in `[-bound, bound)`, determined by `seed` and `key` only.
fn uniform_values(seed: u64, key: &str, n: usize, bound: f32) -> Vec<f32> {
    let mut seed_state = seed;
    let mut state = splitmix64(&mut seed_state) ^ Fnv1a::hash(key.as_bytes());
    (0..n)
        .map(|_| {
            // 24 random mantissa bits → u in [0, 1), exactly representable in f32.
            let u = (splitmix64(&mut state) >> 40) as f32 * (1.0 / (1u32 << 24) as f32);
            (2.0 * u - 1.0) * bound
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: u64 = 20_240_601;

    /// A deterministic, non-constant input in [-1, 1] (no RNG involved).
    fn test_input(shape: [usize; 4], phase: f32, device: &Device) -> Tensor<4> {
        let n = shape.iter().product::<usize>();
        let values =
            (0..n).map(|i| ((i as f32) * 0.0137 + phase).sin() * ((i as f32) * 0.000_71).cos()).collect::<Vec<f32>>();
        Tensor::from_data(TensorData::new(values, shape), device)
    }

    fn to_vec<const D: usize>(tensor: Tensor<D>) -> Vec<f32> {
        tensor.into_data().try_into_vec::<f32>().expect("f32 tensor")
    }

    /// `(path, shape)` of every float parameter, running statistics included.
    #[derive(Default)]
    struct ShapeCollector {
        path: Vec<String>,
        shapes: Vec<(String, Vec<usize>)>,
    }

    impl ModuleVisitor for ShapeCollector {
        fn enter_module(&mut self, name: &str, _container_type: &str) {
            self.path.push(name.to_string());
        }
        fn exit_module(&mut self, _name: &str, _container_type: &str) {
            self.path.pop();
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            self.shapes.push((self.path.join("."), param.lazy_shape().to_vec()));
        }
    }

    fn shapes(model: &InceptionV3) -> Vec<(String, Vec<usize>)> {
        let mut collector = ShapeCollector::default();
        model.visit(&mut collector);
        collector.shapes
    }

    #[test]
    fn feature_grid_follows_the_strided_stages() {
        assert_eq!([feature_grid(299), feature_grid(75), feature_grid(139), feature_grid(171)], [8, 1, 3, 4]);
    }

    #[test]
    fn the_spatial_mean_of_each_class_activation_map_is_its_logit() {
        let device = Device::default();
        let model = InceptionV3Config::for_variant(ModelVariant::Gray, 14).init_seeded(SEED, &device);
        // 107 × 107 gives a 2 × 2 map, so the mean is over more than one position.
        let x = test_input([2, 1, 107, 107], 0.3, &device);
        let features = model.features(x.clone());
        assert_eq!(features.dims(), [2, 2048, feature_grid(107), feature_grid(107)]);
        let cam = model.cam(features);
        assert_eq!(cam.dims(), [2, 14, 2, 2]);
        let means = to_vec(cam.mean_dim(3).mean_dim(2).reshape([2, 14]));
        let logits = to_vec(model.forward(x));
        let spread = logits.iter().fold(0f32, |m, v| m.max(v.abs()));
        assert!(spread > 1e-3, "logits are not all ~0: {logits:?}");
        for (k, (m, l)) in means.iter().zip(&logits).enumerate() {
            assert!((m - l).abs() <= 1e-4 * l.abs().max(1.0), "output {k}: mean of the map {m} vs logit {l}");
        }
    }

    #[test]
    fn uniform_values_respect_bound_and_key() {
        let a = uniform_values(7, "fc.weight", 10_000, 0.25);
        assert!(a.iter().all(|v| (-0.25..0.25).contains(v)));
        let mean = a.iter().sum::<f32>() / a.len() as f32;
        assert!(mean.abs() < 0.01, "mean {mean}");
        assert_eq!(a, uniform_values(7, "fc.weight", 10_000, 0.25));
        assert_ne!(a, uniform_values(8, "fc.weight", 10_000, 0.25));
        assert_ne!(a, uniform_values(7, "fc.bias", 10_000, 0.25));
    }

    #[test]
    fn for_variant_differs_only_in_channels() {
        let color = InceptionV3Config::for_variant(ModelVariant::Color, 14);
        let gray = InceptionV3Config::for_variant(ModelVariant::Gray, 14);
        assert_eq!(color.in_channels, 3);
        assert_eq!(gray.in_channels, 1);
        assert_eq!(color.num_classes, gray.num_classes);
        assert_eq!(color.aux_logits, gray.aux_logits);
        assert_eq!(color.dropout, gray.dropout);
        assert!(!color.aux_logits);
        assert_eq!(color.dropout, 0.5);
    }

    #[test]
    fn parameter_counts_match_torchvision() {
        let device = Device::default();
        let imagenet = InceptionV3Config::new(3, 1000).init(&device);
        let trainable = imagenet.num_trainable_params();
        let all = imagenet.num_params();
        println!("inception_v3 3-ch/1000 classes, no aux: {trainable} trainable ({all} incl. BN running stats)");
        assert_eq!(trainable, 23_834_568, "torchvision inception_v3(aux_logits=False)");

        // Module::num_params also counts the BN running mean/var: 2 values per BN channel.
        let bn_channels = shapes(&imagenet)
            .iter()
            .filter(|(path, _)| path.ends_with("bn.running_mean"))
            .map(|(_, shape)| shape[0])
            .sum::<usize>();
        assert_eq!(all - trainable, 2 * bn_channels);

        let with_aux = InceptionV3Config::new(3, 1000).with_aux_logits(true).init(&device).num_trainable_params();
        println!("inception_v3 3-ch/1000 classes, with aux: {with_aux} trainable");
        assert_eq!(with_aux, 27_161_264, "torchvision inception_v3() with AuxLogits");

        let gray = InceptionV3Config::for_variant(ModelVariant::Gray, 14).init(&device);
        let color = InceptionV3Config::for_variant(ModelVariant::Color, 14).init(&device);
        let (gray, color) = (gray.num_trainable_params(), color.num_trainable_params());
        println!("gray 1-ch/14: {gray} trainable; color 3-ch/14: {color} trainable");
        assert_eq!(color - gray, 32 * 2 * 3 * 3);
        assert_eq!(color, 23_834_568 - (1000 - 14) * (FEATURES + 1));
    }

    /// The counter agrees with Burn's own notion of trainable: `require_grad` on an autodiff device.
    #[test]
    fn trainable_count_equals_require_grad_count_on_autodiff() {
        #[derive(Default)]
        struct RequireGradCounter {
            trainable: usize,
            frozen: usize,
        }
        impl ModuleVisitor for RequireGradCounter {
            fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
                let n = param.lazy_shape().num_elements();
                match param.val().is_require_grad() {
                    true => self.trainable += n,
                    false => self.frozen += n,
                }
            }
        }
        let device = Device::default().autodiff();
        for model in [
            InceptionV3Config::for_variant(ModelVariant::Gray, 14).init(&device),
            init_seeded(&InceptionV3Config::for_variant(ModelVariant::Color, 14).with_aux_logits(true), SEED, &device),
        ] {
            let mut counter = RequireGradCounter::default();
            model.visit(&mut counter);
            assert_eq!(counter.trainable, model.num_trainable_params());
            assert_eq!(counter.trainable + counter.frozen, model.num_params());
        }
    }

    #[test]
    fn gray_and_color_differ_only_in_first_conv() {
        let device = Device::default();
        let gray = shapes(&InceptionV3Config::for_variant(ModelVariant::Gray, 14).init(&device));
        let color = shapes(&InceptionV3Config::for_variant(ModelVariant::Color, 14).init(&device));
        assert_eq!(gray.len(), color.len());
        let differing = gray
            .iter()
            .zip(&color)
            .filter(|(g, c)| {
                assert_eq!(g.0, c.0, "same parameter order and names");
                g.1 != c.1
            })
            .collect::<Vec<_>>();
        assert_eq!(differing.len(), 1, "{differing:?}");
        let (g, c) = differing[0];
        assert_eq!(g.0, "conv2d_1a_3x3.conv.weight");
        assert_eq!(g.1, [32, 1, 3, 3]);
        assert_eq!(c.1, [32, 3, 3, 3]);
        // 94 BasicConv2d (conv weight + 4 BN tensors) + fc weight and bias.
        assert_eq!(gray.len(), 94 * 5 + 2);
    }

    #[test]
    fn forward_shapes_and_probabilities_both_variants() {
        let device = Device::default();
        for variant in ModelVariant::ALL {
            let config = InceptionV3Config::for_variant(variant, 14);
            let model = init_seeded(&config, SEED, &device);
            assert_eq!(model.in_channels(), variant.channels());
            assert_eq!(model.num_classes(), 14);
            let input = test_input([2, variant.channels(), INPUT_SIZE, INPUT_SIZE], 0.3, &device);
            let logits = model.forward(input.clone());
            assert_eq!(logits.dims(), [2, 14]);
            let logits = to_vec(logits);
            let probabilities = to_vec(model.forward_probabilities(input));
            assert_eq!(probabilities.len(), 28);
            assert!(logits.iter().all(|v| v.is_finite()), "{logits:?}");
            assert!(probabilities.iter().all(|p| p.is_finite() && *p > 0.0 && *p < 1.0), "{probabilities:?}");
            // Sane activations: the two images get clearly different outputs, the logits are O(1).
            let difference = logits[..14].iter().zip(&logits[14..]).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            let rms = (logits.iter().map(|v| v * v).sum::<f32>() / 28.0).sqrt();
            println!(
                "{variant}: logits rms {rms:.4}, max |image0 - image1| {difference:.4}, p[0] = {:?}",
                &probabilities[..4]
            );
            assert!(difference > 1e-3, "output barely depends on the input: {difference}");
            assert!(rms > 1e-2 && rms < 1e2, "logit scale {rms}");
        }
    }

    #[test]
    fn lazy_default_init_runs() {
        let device = Device::default();
        let model = InceptionV3Config::for_variant(ModelVariant::Gray, 3).init(&device);
        let probabilities = to_vec(model.forward_probabilities(test_input([1, 1, 75, 75], 0.0, &device)));
        assert_eq!(probabilities.len(), 3);
        assert!(probabilities.iter().all(|p| *p > 0.0 && *p < 1.0), "{probabilities:?}");
    }

    #[test]
    fn seeded_init_is_reproducible() {
        let device = Device::default();
        let config = InceptionV3Config::for_variant(ModelVariant::Gray, 14);
        let input = || test_input([1, 1, MIN_INPUT_SIZE, MIN_INPUT_SIZE], 1.0, &device);
        let a = to_vec(init_seeded(&config, SEED, &device).forward(input()));
        let b = to_vec(config.init_seeded(SEED, &device).forward(input()));
        let c = to_vec(init_seeded(&config, SEED + 1, &device).forward(input()));
        assert_eq!(a, b, "same seed, same output");
        assert_ne!(a, c, "different seed, different output");

        // Same seed: every shared parameter is identical between the variants (keys are module paths).
        let gray = init_seeded(&config, SEED, &device);
        let color = init_seeded(&InceptionV3Config::for_variant(ModelVariant::Color, 14), SEED, &device);
        assert_eq!(
            to_vec(gray.mixed_7c.branch_pool.conv.weight.val()),
            to_vec(color.mixed_7c.branch_pool.conv.weight.val())
        );
        assert_eq!(to_vec(gray.fc.bias.as_ref().unwrap().val()), to_vec(color.fc.bias.as_ref().unwrap().val()));
        // Distribution: He uniform bound for the conv, 1/sqrt(fan_in) for the linear layer.
        let w = to_vec(gray.conv2d_1a_3x3.conv.weight.val());
        let bound = (6.0f32 / 9.0).sqrt();
        assert!(w.iter().all(|v| v.abs() < bound));
        assert!(w.iter().any(|v| v.abs() > 0.5 * bound));
        let fc = to_vec(gray.fc.weight.val());
        assert!(fc.iter().all(|v| v.abs() < 1.0 / (FEATURES as f32).sqrt()));
        // BN starts at identity.
        assert!(to_vec(gray.mixed_5b.branch1x1.bn.gamma.val()).iter().all(|v| *v == 1.0));
        assert!(to_vec(gray.mixed_5b.branch1x1.bn.running_var.value()).iter().all(|v| *v == 1.0));
    }

    /// Inference does not depend on autodiff: a model on an autodiff device, switched to `valid()`, computes
    /// exactly what the plain-device model computes; dropout and BN batch statistics act only in training.
    #[test]
    fn inference_is_independent_of_autodiff() {
        let plain = Device::default();
        let autodiff = Device::default().autodiff();
        let config = InceptionV3Config::for_variant(ModelVariant::Gray, 14);
        let reference = to_vec(init_seeded(&config, SEED, &plain).forward(test_input([2, 1, 75, 75], 0.5, &plain)));

        let trainable = init_seeded(&config, SEED, &autodiff);
        let valid = to_vec(trainable.valid().forward(test_input([2, 1, 75, 75], 0.5, &plain)));
        assert_eq!(reference, valid);

        // In training state on the autodiff device, BN uses batch statistics: a different function.
        let training = to_vec(trainable.forward(test_input([2, 1, 75, 75], 0.5, &autodiff)));
        assert_ne!(reference, training);
    }

    #[test]
    fn forward_train_returns_aux_logits_when_configured() {
        let device = Device::default();
        let input = || test_input([1, 3, INPUT_SIZE, INPUT_SIZE], 2.0, &device);

        let with_aux = InceptionV3Config::new(3, 14).with_aux_logits(true);
        let model = init_seeded(&with_aux, SEED, &device);
        let (logits, aux) = model.forward_train(input());
        assert_eq!(logits.dims(), [1, 14]);
        let aux = aux.expect("aux head configured");
        assert_eq!(aux.dims(), [1, 14]);
        assert!(to_vec(aux).iter().all(|v| v.is_finite()));
        // The aux head is an extra: the main logits equal those of forward().
        assert_eq!(to_vec(logits), to_vec(model.forward(input())));
        // And the main weights equal those of the model without aux for the same seed.
        let without = init_seeded(&InceptionV3Config::new(3, 14), SEED, &device);
        let (logits, aux) = without.forward_train(input());
        assert!(aux.is_none());
        assert_eq!(to_vec(logits), to_vec(model.forward(input())));
    }
}
