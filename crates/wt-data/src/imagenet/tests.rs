//! Tests of the image folders, transforms and resize.

use super::*;
use std::collections::HashMap;

use burn::data::dataset::Dataset;

use super::transform::random_resized_crop;
use crate::augment::ItemRng;
use crate::split::Split;
use crate::testdata::{TempDir, shared_data};

/// The transform as first written, with `image::imageops::resize`: the reference that
/// `apply` must match byte for byte.
fn apply_with_image_crate(t: &ImageNetTransform, img: &RgbImage, rng: &mut ItemRng) -> Vec<f32> {
    let (w, h) = (img.width as u32, img.height as u32);
    let buf = image::RgbImage::from_raw(w, h, img.pixels.clone())
        .expect("RgbImage holds width*height*3 bytes");
    let filter = image::imageops::FilterType::Triangle;
    let (out, flip) = match *t {
        ImageNetTransform::Train { size, scale, ratio } => {
            let (x, y, cw, ch) = random_resized_crop(w, h, scale, ratio, rng);
            let crop = image::imageops::crop_imm(&buf, x, y, cw, ch).to_image();
            let out = image::imageops::resize(&crop, size as u32, size as u32, filter);
            (out, rng.below(2) == 1)
        }
        ImageNetTransform::Eval { resize, size } => {
            let (rw, rh) = if w <= h {
                (
                    resize as u32,
                    (h as f64 * resize as f64 / w as f64).round() as u32,
                )
            } else {
                (
                    (w as f64 * resize as f64 / h as f64).round() as u32,
                    resize as u32,
                )
            };
            let resized = image::imageops::resize(&buf, rw, rh, filter);
            let s = (size as u32).min(rw).min(rh);
            let (x, y) = ((rw - s) / 2, (rh - s) / 2);
            let crop = image::imageops::crop_imm(&resized, x, y, s, s).to_image();
            let out = if s == size as u32 {
                crop
            } else {
                image::imageops::resize(&crop, size as u32, size as u32, filter)
            };
            (out, false)
        }
    };
    let s = out.width() as usize;
    let mut chw = vec![0f32; 3 * s * s];
    for (x, y, p) in out.enumerate_pixels() {
        let tx = if flip { s - 1 - x as usize } else { x as usize };
        for c in 0..3 {
            chw[c * s * s + y as usize * s + tx] =
                (p.0[c] as f32 / 255.0 - IMAGENET_MEAN[c]) / IMAGENET_STD[c];
        }
    }
    chw
}

fn class_index() -> ClassIndex {
    ClassIndex::from_tsv(shared_data("imagenet-classes").join("imagenet1k_classes.tsv")).unwrap()
}

#[test]
fn imagenette_mini_maps_to_ilsvrc_indices() {
    let index = class_index();
    assert_eq!(index.len(), 1000);
    let root = shared_data("imagenette-mini");
    let train = ImageFolderDataset::new(&root, Split::Train, Some(&index)).unwrap();
    let val = ImageFolderDataset::new(&root, Split::Test, Some(&index)).unwrap();
    assert_eq!((train.len(), val.len()), (400, 100));
    let labels: std::collections::BTreeSet<usize> =
        (0..train.len()).map(|i| train.entry(i).1).collect();
    assert_eq!(labels.len(), 10);
    assert!(labels.contains(&0), "tench is class 0");
    assert!(labels.contains(&701), "parachute is class 701");
    assert_eq!(index.name(701), "parachute");
    let item = train.get(0).unwrap();
    assert_eq!(item.label, 0);
    assert_eq!(
        item.image.pixels.len(),
        item.image.width * item.image.height * 3
    );

    // Without an index: sorted folder names.
    let plain = ImageFolderDataset::new(&root, Split::Test, None).unwrap();
    assert_eq!(plain.classes().len(), 10);
    assert_eq!(plain.classes().wnid(0), "n01440764");
}

#[test]
fn flat_validation_folder_takes_labels_from_the_json_map() {
    let index = class_index();
    let json = shared_data("imagenet-classes").join("ilsvrc2012_val_image_to_label.json");
    let tmp = TempDir::new("flat-val");
    // The official validation photos inside imagenette-mini, copied into one flat folder.
    let mut expected = Vec::new();
    let train = shared_data("imagenette-mini").join("train");
    for class in std::fs::read_dir(&train).unwrap() {
        let class = class.unwrap().path();
        let wnid = class.file_name().unwrap().to_str().unwrap().to_string();
        for f in std::fs::read_dir(&class).unwrap() {
            let f = f.unwrap().path();
            let name = f.file_name().unwrap().to_str().unwrap().to_string();
            if name.starts_with("ILSVRC2012_val_") {
                std::fs::copy(&f, tmp.path().join(&name)).unwrap();
                expected.push((name, index.index_of(&wnid).unwrap()));
            }
        }
    }
    expected.sort();
    assert!(expected.len() >= 10, "found {} val photos", expected.len());
    let ds = ImageFolderDataset::flat_with_labels(tmp.path(), &json, &index).unwrap();
    assert_eq!(ds.len(), expected.len());
    for (i, (name, label)) in expected.iter().enumerate() {
        let (path, got) = ds.entry(i);
        assert_eq!(path.file_name().unwrap().to_str().unwrap(), name);
        assert_eq!(got, *label, "{name}");
    }
    // A file the map does not know is an error naming it.
    std::fs::write(tmp.path().join("extra.JPEG"), b"x").unwrap();
    let err = ImageFolderDataset::flat_with_labels(tmp.path(), &json, &index).unwrap_err();
    assert!(err.to_string().contains("extra.JPEG"), "{err}");
}

#[test]
fn transforms_are_seeded_and_sized() {
    let root = shared_data("imagenette-mini");
    let ds = ImageFolderDataset::new(&root, Split::Train, None).unwrap();
    let img = ds.get(3).unwrap().image;
    let t = ImageNetTransform::train();
    let a = t.apply(&img, &mut ItemRng::new(1, 0, 3));
    assert_eq!(a.len(), 3 * 224 * 224);
    assert_eq!(a, t.apply(&img, &mut ItemRng::new(1, 0, 3)));
    assert_ne!(a, t.apply(&img, &mut ItemRng::new(1, 1, 3)));
}

/// `--image-size 64`: RandomResizedCrop 64 and resize 73 / centre crop 64, in ImageNet's
/// 224/256 proportion; the evaluation crop is the centre of the resized image.
#[test]
fn transforms_at_another_side_keep_imagenets_proportions() {
    assert_eq!(
        ImageNetTransform::eval_at(64),
        ImageNetTransform::Eval {
            resize: 73,
            size: 64
        }
    );
    assert_eq!(ImageNetTransform::eval_at(224), ImageNetTransform::eval());
    assert_eq!(ImageNetTransform::train_at(224), ImageNetTransform::train());
    let root = shared_data("imagenette-mini");
    let ds = ImageFolderDataset::new(&root, Split::Train, None).unwrap();
    let img = ds.get(3).unwrap().image;
    let train = ImageNetTransform::train_at(64).apply(&img, &mut ItemRng::new(1, 0, 3));
    assert_eq!(train.len(), 3 * 64 * 64);
    // A left half dark, right half bright image: the centre crop of the 73-pixel resize
    // keeps both halves, 32 columns each.
    let (w, h) = (146, 100);
    let pixels: Vec<u8> = (0..w * h)
        .flat_map(|i| if i % w < w / 2 { [0u8; 3] } else { [255u8; 3] })
        .collect();
    let img = RgbImage {
        width: w,
        height: h,
        pixels,
    };
    let out = ImageNetTransform::eval_at(64).apply(&img, &mut ItemRng::new(0, 0, 0));
    assert_eq!(out.len(), 3 * 64 * 64);
    let row: Vec<f32> = out[10 * 64..11 * 64].to_vec();
    let dark = (0.0 - IMAGENET_MEAN[0]) / IMAGENET_STD[0];
    let bright = (1.0 - IMAGENET_MEAN[0]) / IMAGENET_STD[0];
    assert!(
        (row[0] - dark).abs() < 1e-3 && (row[63] - bright).abs() < 1e-3,
        "{row:?}"
    );
    let darks = row.iter().filter(|v| (*v - dark).abs() < 0.5).count();
    assert!((31..=33).contains(&darks), "{darks} dark columns of 64");
}

#[test]
fn eval_transform_of_a_flat_image_is_known() {
    let img = RgbImage {
        width: 300,
        height: 260,
        pixels: [10u8, 128, 250].repeat(300 * 260),
    };
    let out = ImageNetTransform::eval().apply(&img, &mut ItemRng::new(0, 0, 0));
    assert_eq!(out.len(), 3 * 224 * 224);
    for (c, v) in [10f32, 128.0, 250.0].iter().enumerate() {
        let expected = (v / 255.0 - IMAGENET_MEAN[c]) / IMAGENET_STD[c];
        let plane = &out[c * 224 * 224..(c + 1) * 224 * 224];
        assert!(
            plane.iter().all(|x| (x - expected).abs() < 1e-5),
            "channel {c}"
        );
    }
}

#[test]
fn png_grayscale_and_broken_files_in_a_folder_tree() {
    let tmp = TempDir::new("imagefolder");
    let a = tmp.path().join("train/a");
    let b = tmp.path().join("train/b");
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&b).unwrap();
    image::GrayImage::from_pixel(5, 4, image::Luma([77]))
        .save(a.join("gray.jpg"))
        .unwrap();
    image::RgbImage::from_pixel(3, 3, image::Rgb([1, 2, 3]))
        .save(b.join("color.png"))
        .unwrap();
    let ds = ImageFolderDataset::new(tmp.path(), Split::Train, None).unwrap();
    let gray = ds.get(0).unwrap();
    assert_eq!((gray.label, gray.image.width, gray.image.height), (0, 5, 4));
    assert!(
        gray.image
            .pixels
            .chunks(3)
            .all(|p| p[0] == p[1] && p[1] == p[2])
    );
    assert_eq!(ds.get(1).unwrap().image.pixels[..3], [1, 2, 3]);

    // A JPEG of garbage bytes: the error names the file.
    std::fs::write(a.join("broken.JPEG"), b"not a jpeg at all").unwrap();
    let ds = ImageFolderDataset::new(tmp.path(), Split::Train, None).unwrap();
    let err = ds.get(0).unwrap_err().to_string();
    assert!(
        err.contains("broken.JPEG") && err.contains("decode"),
        "{err}"
    );

    // An empty class folder, a missing split, a folder not in the index.
    std::fs::create_dir_all(tmp.path().join("train/c")).unwrap();
    let err = ImageFolderDataset::new(tmp.path(), Split::Train, None).unwrap_err();
    assert!(err.to_string().contains("empty class folder"), "{err}");
    let err = ImageFolderDataset::new(tmp.path(), Split::Test, None).unwrap_err();
    assert!(err.to_string().contains("val"), "{err}");
    std::fs::remove_dir(tmp.path().join("train/c")).unwrap();
    let err = ImageFolderDataset::new(tmp.path(), Split::Train, Some(&class_index())).unwrap_err();
    assert!(err.to_string().contains("not in the class index"), "{err}");
}

/// Canonical Huffman codes `(code, length)` by symbol for a JPEG `bits`/`values` table.
fn huffman_codes(bits: &[u8; 16], values: &[u8]) -> HashMap<u8, (u32, u32)> {
    let (mut codes, mut code, mut k) = (HashMap::new(), 0u32, 0);
    for (len, &count) in bits.iter().enumerate() {
        for _ in 0..count {
            codes.insert(values[k], (code, len as u32 + 1));
            code += 1;
            k += 1;
        }
        code <<= 1;
    }
    codes
}

/// JPEG entropy-coded bits, most significant first, with 0xFF bytes stuffed.
#[derive(Default)]
struct BitWriter {
    acc: u64,
    nbits: u32,
    bytes: Vec<u8>,
}

impl BitWriter {
    fn put(&mut self, code: u32, len: u32) {
        self.acc = (self.acc << len) | code as u64;
        self.nbits += len;
        while self.nbits >= 8 {
            let byte = (self.acc >> (self.nbits - 8)) as u8;
            self.bytes.push(byte);
            if byte == 0xFF {
                self.bytes.push(0);
            }
            self.nbits -= 8;
        }
    }

    /// Pads the last byte with ones.
    fn finish(mut self) -> Vec<u8> {
        if !self.nbits.is_multiple_of(8) {
            let pad = 8 - self.nbits % 8;
            self.put((1 << pad) - 1, pad);
        }
        self.bytes
    }
}

/// A baseline JPEG of 8-pixel-high, 8-pixel-wide blocks, each one flat CMYK colour
/// (`blocks[i]` = ink C, M, Y, K of block i, left to right), written as Photoshop writes
/// CMYK: 4 components, an Adobe APP14 marker with transform 0, samples stored inverted
/// (255 = no ink). The `image` crate cannot encode CMYK, so the bytes are built here: a
/// flat block has only a DC coefficient, 8 × (sample − 128) with a quantiser of 1.
fn cmyk_jpeg(blocks: &[[u8; 4]]) -> Vec<u8> {
    let mut out = vec![0xFF, 0xD8];
    // APP14 "Adobe": version 100, flags 0, 0, transform 0 (CMYK, no colour transform).
    out.extend([0xFF, 0xEE, 0, 14]);
    out.extend(b"Adobe");
    out.extend([0, 100, 0, 0, 0, 0, 0]);
    // DQT: table 0, all ones.
    out.extend([0xFF, 0xDB, 0, 67, 0]);
    out.extend([1u8; 64]);
    // SOF0: 8 bits, height 8, width 8·n, 4 components sampled 1×1 with table 0.
    let width = 8 * blocks.len() as u16;
    out.extend([0xFF, 0xC0, 0, 20, 8, 0, 8]);
    out.extend(width.to_be_bytes());
    out.push(4);
    for id in 1..=4u8 {
        out.extend([id, 0x11, 0]);
    }
    // DHT: the standard luminance DC table (categories 0..=11) and an AC table holding
    // only end-of-block.
    let dc_bits = [0u8, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0];
    let dc_values: Vec<u8> = (0..12).collect();
    let mut ac_bits = [0u8; 16];
    ac_bits[0] = 1;
    out.extend([0xFF, 0xC4, 0, 49, 0x00]);
    out.extend(dc_bits);
    out.extend(&dc_values);
    out.push(0x10);
    out.extend(ac_bits);
    out.push(0x00);
    // SOS: the 4 components with tables 0/0, spectral range 0..=63.
    out.extend([0xFF, 0xDA, 0, 14, 4]);
    for id in 1..=4u8 {
        out.extend([id, 0x00]);
    }
    out.extend([0, 63, 0]);
    // Entropy-coded data: per block, per component, the DC difference then EOB.
    let dc = huffman_codes(&dc_bits, &dc_values);
    let (eob, eob_len) = huffman_codes(&ac_bits, &[0])[&0];
    let mut bits = BitWriter::default();
    let mut pred = [0i32; 4];
    for block in blocks {
        for c in 0..4 {
            let stored = 255 - block[c] as i32;
            let coef = 8 * (stored - 128);
            let diff = coef - pred[c];
            pred[c] = coef;
            let cat = 32 - diff.unsigned_abs().leading_zeros();
            let (code, len) = dc[&(cat as u8)];
            bits.put(code, len);
            if cat > 0 {
                let extra = if diff >= 0 {
                    diff
                } else {
                    diff + (1 << cat) - 1
                };
                bits.put(extra as u32, cat);
            }
            bits.put(eob, eob_len);
        }
    }
    let scan = bits.finish();
    out.extend(scan);
    out.extend([0xFF, 0xD9]);
    out
}

#[test]
fn cmyk_jpeg_in_a_folder_tree_becomes_rgb() {
    // Ink (C, M, Y, K) of each 8×8 block and the RGB it should give:
    // R = (255 − C)(255 − K)/255, G from M, B from Y.
    let inks = [
        [255, 0, 0, 0],     // cyan
        [0, 255, 255, 0],   // magenta + yellow = red
        [0, 0, 0, 128],     // half black = grey
        [64, 128, 192, 32], // a mixture
        [0, 0, 0, 0],       // paper white
    ];
    let expected = |ink: [u8; 4]| -> [f64; 3] {
        let k = 255.0 - ink[3] as f64;
        [0, 1, 2].map(|c| (255.0 - ink[c] as f64) * k / 255.0)
    };
    assert_eq!(expected(inks[0]), [0.0, 255.0, 255.0]);
    let tmp = TempDir::new("cmyk");
    let class = tmp.path().join("train/cmyk");
    std::fs::create_dir_all(&class).unwrap();
    let bytes = cmyk_jpeg(&inks);
    assert_eq!(bytes[bytes.len() - 2..], [0xFF, 0xD9]);
    std::fs::write(class.join("photoshop.jpg"), &bytes).unwrap();
    let ds = ImageFolderDataset::new(tmp.path(), Split::Train, None).unwrap();
    let img = ds.get(0).unwrap().image;
    assert_eq!((img.width, img.height), (8 * inks.len(), 8));
    assert_eq!(img.pixels.len(), 8 * inks.len() * 8 * 3);
    for y in 0..8 {
        for x in 0..img.width {
            let want = expected(inks[x / 8]);
            let got = &img.pixels[(y * img.width + x) * 3..][..3];
            for c in 0..3 {
                assert!(
                    (got[c] as f64 - want[c]).abs() <= 3.0,
                    "pixel ({x}, {y}) of block {}: got {got:?}, expected about {want:?}",
                    x / 8
                );
            }
        }
    }
}

#[test]
fn undecodable_images_error_by_default_and_are_counted_when_skipped() {
    use crate::{ImageNetBatcher, Indexed};
    use burn::data::dataloader::DataLoaderBuilder;
    use burn::tensor::Device;

    let tmp = TempDir::new("skip-bad");
    for (class, n) in [("a", 5), ("b", 4)] {
        let dir = tmp.path().join(class);
        std::fs::create_dir_all(&dir).unwrap();
        for i in 0..n {
            image::RgbImage::from_pixel(12, 10, image::Rgb([i * 40, 9, 200]))
                .save(dir.join(format!("{i}.jpg")))
                .unwrap();
        }
    }
    // A JPEG of garbage bytes, and a real JPEG cut short inside its header.
    std::fs::write(tmp.path().join("a/2.jpg"), b"\xFF\xD8 garbage, not a JPEG").unwrap();
    let good = std::fs::read(tmp.path().join("b/0.jpg")).unwrap();
    std::fs::write(tmp.path().join("b/3.jpg"), &good[..20]).unwrap();

    let ds = ImageFolderDataset::from_dir(tmp.path(), None).unwrap();
    let transform = ImageNetTransform::Eval {
        resize: 16,
        size: 8,
    };
    fn loader<I: Send + Sync + Clone + std::fmt::Debug + 'static>(
        transform: &ImageNetTransform,
        workers: usize,
    ) -> DataLoaderBuilder<(usize, I), crate::ImageBatch>
    where
        ImageNetBatcher: burn::data::dataloader::batcher::Batcher<(usize, I), crate::ImageBatch>,
    {
        DataLoaderBuilder::new(ImageNetBatcher::new(transform.clone(), 0))
            .batch_size(3)
            .num_workers(workers)
            .set_device(Device::flex())
    }

    // Default: the batch holding the first bad image is an error naming it.
    let strict = loader(&transform, 2).build(Indexed(ds.clone()));
    let mut errors: Vec<String> = strict
        .iter()
        .filter_map(|b| b.err().map(|e| e.to_string()))
        .collect();
    errors.sort(); // worker threads deliver batches in any order
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors[0].contains("2.jpg") && errors[0].contains("cannot decode"),
        "{errors:?}"
    );
    assert!(errors[1].contains("3.jpg"), "{errors:?}");

    // Skipping: the 7 good images load, both bad ones are counted, twice over two passes.
    let skipping = ds.clone().skip_undecodable();
    let log = skipping.log().clone();
    let lenient = loader(&transform, 2).build(Indexed(skipping));
    let mut labels = Vec::new();
    for pass in 1..=2 {
        for batch in lenient.iter() {
            let batch = batch.expect("skipped images are no error");
            assert_eq!(batch.images.dims()[1..], [3, 8, 8]);
            labels.extend(batch.targets.into_data().iter::<i64>());
        }
        assert_eq!(log.count(), 2 * pass);
    }
    labels.sort();
    assert_eq!(labels, [vec![0; 8], vec![1; 6]].concat());
    let files = log.files();
    assert_eq!(files.len(), 2);
    assert!(files[0].0.ends_with("a/2.jpg"), "{files:?}");
    assert!(files[1].0.ends_with("b/3.jpg"), "{files:?}");
    assert!(!files[0].1.is_empty());

    // One garbage JPEG alone in a tree: the count is 1 and the rest load.
    std::fs::write(tmp.path().join("b/3.jpg"), &good).unwrap();
    let skipping = ImageFolderDataset::from_dir(tmp.path(), None)
        .unwrap()
        .skip_undecodable();
    let log = skipping.log().clone();
    let mut n = 0;
    for batch in loader(&transform, 1).build(Indexed(skipping)).iter() {
        n += batch.unwrap().targets.dims()[0];
    }
    assert_eq!((n, log.count()), (8, 1));

    // A batch of only skipped images is an empty batch, not a failure.
    let batch = <ImageNetBatcher as burn::data::dataloader::batcher::Batcher<
        (usize, Option<ImageItem>),
        crate::ImageBatch,
    >>::batch(
        &ImageNetBatcher::new(transform.clone(), 0),
        vec![(0, None)],
        &Device::flex(),
    );
    assert_eq!(batch.images.dims(), [0, 3, 8, 8]);
    assert_eq!(batch.targets.dims(), [0]);
}

#[test]
fn fast_resize_gives_the_image_crate_bytes() {
    let noise = |w: usize, h: usize, seed: u64| {
        let mut rng = ItemRng::new(seed, 0, 0);
        RgbImage {
            width: w,
            height: h,
            pixels: (0..w * h * 3).map(|_| rng.next_u64() as u8).collect(),
        }
    };
    let mut images: Vec<RgbImage> = [(1, 1), (3, 500), (37, 23), (500, 375), (224, 224)]
        .iter()
        .enumerate()
        .map(|(i, &(w, h))| noise(w, h, i as u64))
        .collect();
    let ds = ImageFolderDataset::new(shared_data("imagenette-mini"), Split::Train, None).unwrap();
    images.extend((0..ds.len()).step_by(40).map(|i| ds.get(i).unwrap().image));
    let transforms = [
        ImageNetTransform::train(),
        ImageNetTransform::eval(),
        ImageNetTransform::Train {
            size: 32,
            scale: (0.5, 1.0),
            ratio: (0.5, 2.0),
        },
        ImageNetTransform::Eval {
            resize: 16,
            size: 24,
        },
    ];
    for (i, img) in images.iter().enumerate() {
        for t in &transforms {
            for seed in 0..4 {
                let mut a = ItemRng::new(seed, 1, i as u64);
                let mut b = a.clone();
                assert!(
                    t.apply(img, &mut a) == apply_with_image_crate(t, img, &mut b),
                    "image {i} ({}x{}), {t:?}, seed {seed}",
                    img.width,
                    img.height
                );
            }
        }
    }
}
