//! ImageNet in the LSVRC2012 layout (`train/<wnid>/*.JPEG`; validation either as class folders or as a flat
//! folder with the devkit's `ILSVRC2012_validation_ground_truth.txt`), and Inception's training augmentation:
//! distorted bounding-box crop, horizontal flip, color distortion, then `--grayscale` (Luma) when training the
//! gray model — converted *after* augmentation, as in the paper.

use std::path::{Path, PathBuf};

use cxr_core::decode::LUMA;
use cxr_core::image::GrayImage;
use cxr_core::preprocess::Preprocessor;
use rand::Rng;
use rand::rngs::StdRng;

use super::{DataError, Sample, Target};

const IMAGE_EXTENSIONS: [&str; 5] = ["jpeg", "jpg", "png", "dcm", "dicom"];

/// A class-folder dataset: sorted class names (the class index is the position) and its samples.
#[derive(Debug, Clone)]
pub struct ImageFolder {
    pub classes: Vec<String>,
    pub samples: Vec<Sample>,
}

fn is_image(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| DataError::io(dir, e))?
        .map(|e| e.map(|e| e.path()).map_err(|err| DataError::io(dir, err)))
        .collect::<Result<_, _>>()?;
    entries.sort();
    Ok(entries)
}

/// Reads `root/<class>/<image>`; classes are the sorted folder names (WordNet ids for ImageNet).
pub fn scan_class_folders(root: &Path) -> Result<ImageFolder, DataError> {
    let mut classes = Vec::new();
    let mut samples = Vec::new();
    for dir in sorted_entries(root)?.into_iter().filter(|p| p.is_dir()) {
        let class = classes.len();
        classes.push(dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default());
        for file in sorted_entries(&dir)?.into_iter().filter(|p| is_image(p)) {
            samples.push(Sample { path: file, target: Target::Class(class) });
        }
    }
    if samples.is_empty() {
        return Err(DataError::Empty { path: root.display().to_string() });
    }
    Ok(ImageFolder { classes, samples })
}

/// The devkit layout for validation: a flat folder of `ILSVRC2012_val_XXXXXXXX.JPEG`, and a ground-truth file
/// with one 1-based ILSVRC2012_ID per line, in file-number order. `id_to_class` maps those ids to the training
/// folders' class indices (the devkit's `meta.mat` order is not the sorted-wnid order, so the caller supplies it);
/// `None` means the ids already are 1-based sorted-wnid indices.
pub fn scan_flat_with_ground_truth(
    dir: &Path,
    ground_truth: &Path,
    id_to_class: Option<&[usize]>,
) -> Result<Vec<Sample>, DataError> {
    let text = super::read_text(ground_truth)?;
    let ids: Vec<usize> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .enumerate()
        .map(|(n, l)| {
            l.parse::<usize>().ok().filter(|&id| id >= 1).ok_or_else(|| DataError::Format {
                path: ground_truth.display().to_string(),
                problem: format!("line {}: `{l}` is not a 1-based class id", n + 1),
            })
        })
        .collect::<Result<_, _>>()?;
    let files: Vec<PathBuf> = sorted_entries(dir)?.into_iter().filter(|p| is_image(p)).collect();
    if files.len() != ids.len() {
        return Err(DataError::Format {
            path: ground_truth.display().to_string(),
            problem: format!("{} labels for {} images in {}", ids.len(), files.len(), dir.display()),
        });
    }
    files
        .into_iter()
        .zip(ids)
        .map(|(path, id)| {
            let class = match id_to_class {
                Some(map) => *map.get(id - 1).ok_or_else(|| DataError::Format {
                    path: ground_truth.display().to_string(),
                    problem: format!("class id {id} has no mapping"),
                })?,
                None => id - 1,
            };
            Ok(Sample { path, target: Target::Class(class) })
        })
        .collect()
}

/// Inception's augmentation of one RGB image into a `channels × size²` tensor (channels 1 = Luma after
/// augmentation, 3 = RGB): distorted bounding-box crop covering 5–100 % of the area with aspect ratio 3/4–4/3
/// (10 attempts, else the whole image), horizontal flip with probability ½, and color distortion (brightness
/// ±32/255, saturation and contrast ×[0.5, 1.5], hue rotated by up to ±0.2π in the YIQ chroma plane, in one of the
/// two TF-slim orderings chosen at random), clipped to [0, 1].
pub fn inception_augment(planes: [GrayImage; 3], pre: &Preprocessor, channels: usize, rng: &mut StdRng) -> Vec<f32> {
    let (w, h) = (planes[0].width() as usize, planes[0].height() as usize);
    let (x0, y0, cw, ch) = distorted_box(w, h, rng);
    let flip = rng.random_bool(0.5);
    let mut rgb: [Vec<f32>; 3] = std::array::from_fn(|c| {
        let src = planes[c].data();
        let mut out = Vec::with_capacity(cw * ch);
        for y in y0..y0 + ch {
            let row = &src[y * w + x0..y * w + x0 + cw];
            if flip {
                out.extend(row.iter().rev());
            } else {
                out.extend_from_slice(row);
            }
        }
        out
    });
    distort_color(&mut rgb, rng);
    let to_image = |data: Vec<f32>| GrayImage::new(cw as u32, ch as u32, data).expect("crop dimensions match");
    if channels == 1 {
        let luma = (0..cw * ch).map(|i| LUMA[0] * rgb[0][i] + LUMA[1] * rgb[1][i] + LUMA[2] * rgb[2][i]).collect();
        pre.plane(&to_image(luma))
    } else {
        let [r, g, b] = rgb;
        [r, g, b].into_iter().flat_map(|p| pre.plane(&to_image(p))).collect()
    }
}

/// A random crop `(x, y, width, height)` with area fraction in [0.05, 1] and aspect ratio in [3/4, 4/3].
fn distorted_box(w: usize, h: usize, rng: &mut StdRng) -> (usize, usize, usize, usize) {
    let area = (w * h) as f64;
    for _ in 0..10 {
        let target = area * rng.random_range(0.05..=1.0);
        let aspect = (rng.random_range((0.75f64).ln()..=(4.0f64 / 3.0).ln())).exp();
        let cw = (target * aspect).sqrt().round() as usize;
        let ch = (target / aspect).sqrt().round() as usize;
        if cw >= 1 && ch >= 1 && cw <= w && ch <= h {
            return (rng.random_range(0..=w - cw), rng.random_range(0..=h - ch), cw, ch);
        }
    }
    (0, 0, w, h)
}

fn distort_color(rgb: &mut [Vec<f32>; 3], rng: &mut StdRng) {
    let brightness = rng.random_range(-32.0 / 255.0..=32.0 / 255.0);
    let saturation = rng.random_range(0.5..=1.5);
    let hue = rng.random_range(-0.2..=0.2) * std::f32::consts::PI;
    let contrast = rng.random_range(0.5..=1.5);
    let n = rgb[0].len();
    let mean_of = |rgb: &[Vec<f32>; 3]| -> [f32; 3] { std::array::from_fn(|c| rgb[c].iter().sum::<f32>() / n as f32) };
    let apply_brightness = |rgb: &mut [Vec<f32>; 3]| rgb.iter_mut().flatten().for_each(|v| *v += brightness);
    let apply_saturation = |rgb: &mut [Vec<f32>; 3]| {
        for i in 0..n {
            let y = LUMA[0] * rgb[0][i] + LUMA[1] * rgb[1][i] + LUMA[2] * rgb[2][i];
            for plane in rgb.iter_mut() {
                plane[i] = y + saturation * (plane[i] - y);
            }
        }
    };
    let apply_hue = |rgb: &mut [Vec<f32>; 3]| {
        let (s, c) = hue.sin_cos();
        let [red, green, blue] = rgb;
        for ((red, green), blue) in red.iter_mut().zip(green.iter_mut()).zip(blue.iter_mut()).take(n) {
            let (r, g, b) = (*red, *green, *blue);
            let y = LUMA[0] * r + LUMA[1] * g + LUMA[2] * b;
            let iq_i = 0.596 * r - 0.274 * g - 0.322 * b;
            let iq_q = 0.211 * r - 0.523 * g + 0.312 * b;
            let (i2, q2) = (iq_i * c - iq_q * s, iq_i * s + iq_q * c);
            *red = y + 0.956 * i2 + 0.621 * q2;
            *green = y - 0.272 * i2 - 0.647 * q2;
            *blue = y - 1.106 * i2 + 1.703 * q2;
        }
    };
    let apply_contrast = |rgb: &mut [Vec<f32>; 3]| {
        let mean = mean_of(rgb);
        for (c, plane) in rgb.iter_mut().enumerate() {
            plane.iter_mut().for_each(|v| *v = mean[c] + contrast * (*v - mean[c]));
        }
    };
    if rng.random_bool(0.5) {
        apply_brightness(rgb);
        apply_saturation(rgb);
        apply_hue(rgb);
        apply_contrast(rgb);
    } else {
        apply_saturation(rgb);
        apply_brightness(rgb);
        apply_contrast(rgb);
        apply_hue(rgb);
    }
    rgb.iter_mut().flatten().for_each(|v| *v = v.clamp(0.0, 1.0));
}

#[cfg(test)]
mod tests {
    use super::*;
    use cxr_core::card::Normalization;
    use rand::SeedableRng;

    #[test]
    fn both_validation_layouts_give_the_same_targets() {
        let root = std::env::temp_dir().join(format!("cxr-imagefolder-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        for (class, files) in [("n01440764", ["a.JPEG", "b.JPEG"]), ("n01443537", ["c.JPEG", "d.JPEG"])] {
            std::fs::create_dir_all(root.join("train").join(class)).unwrap();
            for f in files {
                std::fs::write(root.join("train").join(class).join(f), b"x").unwrap();
            }
        }
        std::fs::write(root.join("train/n01440764/notes.txt"), b"not an image").unwrap();
        let train = scan_class_folders(&root.join("train")).unwrap();
        assert_eq!(train.classes, ["n01440764", "n01443537"]);
        assert_eq!(train.samples.len(), 4);
        assert_eq!(train.samples[2].target, Target::Class(1));
        // Devkit layout: flat files in number order, one 1-based id per line.
        std::fs::create_dir_all(root.join("val")).unwrap();
        for n in 1..=3 {
            std::fs::write(root.join("val").join(format!("ILSVRC2012_val_{n:08}.JPEG")), b"x").unwrap();
        }
        std::fs::write(root.join("gt.txt"), "2\n1\n2\n").unwrap();
        let val = scan_flat_with_ground_truth(&root.join("val"), &root.join("gt.txt"), None).unwrap();
        let targets: Vec<_> = val.iter().map(|s| s.target.clone()).collect();
        assert_eq!(targets, [Target::Class(1), Target::Class(0), Target::Class(1)]);
        // A mapping from devkit ids to folder indices, and the errors.
        let mapped = scan_flat_with_ground_truth(&root.join("val"), &root.join("gt.txt"), Some(&[1, 0])).unwrap();
        assert_eq!(mapped[0].target, Target::Class(0));
        std::fs::write(root.join("short.txt"), "1\n").unwrap();
        assert!(scan_flat_with_ground_truth(&root.join("val"), &root.join("short.txt"), None).is_err());
        std::fs::write(root.join("zero.txt"), "0\n1\n1\n").unwrap();
        let err = scan_flat_with_ground_truth(&root.join("val"), &root.join("zero.txt"), None).unwrap_err();
        assert!(err.to_string().contains("line 1"), "{err}");
        std::fs::remove_dir_all(&root).ok();
    }

    #[test]
    fn boxes_respect_area_and_aspect() {
        let mut rng = StdRng::seed_from_u64(1);
        for _ in 0..1000 {
            let (x, y, w, h) = distorted_box(200, 150, &mut rng);
            assert!(x + w <= 200 && y + h <= 150 && w >= 1 && h >= 1);
            let area = (w * h) as f64 / (200.0 * 150.0);
            assert!((0.04..=1.0).contains(&area), "area {area}");
        }
    }

    #[test]
    fn gray_output_is_luma_of_augmented_rgb_and_deterministic() {
        let plane = |v: f32| GrayImage::new(8, 8, vec![v; 64]).unwrap();
        let pre = Preprocessor::new(8, Normalization { mean: 0.0, std: 1.0 });
        let a = inception_augment([plane(0.2), plane(0.5), plane(0.8)], &pre, 1, &mut StdRng::seed_from_u64(3));
        let b = inception_augment([plane(0.2), plane(0.5), plane(0.8)], &pre, 1, &mut StdRng::seed_from_u64(3));
        assert_eq!(a, b);
        assert_eq!(a.len(), 64);
        let rgb = inception_augment([plane(0.2), plane(0.5), plane(0.8)], &pre, 3, &mut StdRng::seed_from_u64(3));
        assert_eq!(rgb.len(), 3 * 64);
        // The same draws give the same RGB; its Luma is the gray output.
        for i in 0..64 {
            let y = LUMA[0] * rgb[i] + LUMA[1] * rgb[64 + i] + LUMA[2] * rgb[128 + i];
            assert!((y - a[i]).abs() < 1e-5, "pixel {i}: {y} vs {}", a[i]);
        }
    }
}
