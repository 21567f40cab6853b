//! ImageNet-style image folders (`<root>/train/<wnid>/*.JPEG`, `<root>/val/<wnid>/*.JPEG`) with
//! the ILSVRC-2012 class index, and the standard train / eval transforms.
//!
//! Class indices come from a class index file (`imagenet1k_classes.tsv`: `index wnid name
//! lemmas`, tab-separated, as in `../shared/data/imagenet-classes/`) when one is given, else
//! from the sorted folder names. JPEG and PNG files are read; grayscale and CMYK images
//! become RGB.
//!
//! By default an image that does not decode is an error naming the file. Wrapping the data set
//! with [`ImageFolderDataset::skip_undecodable`] skips such images instead (the batch is one
//! image smaller) and counts them in a [`SkipLog`].
//!
//! One concept a file: [`class_index`] (the ILSVRC class index), [`folder`] (decoding, the
//! folder readers, skipping undecodable images), [`transform`] (the train and eval
//! transforms) and [`resize`] (the Triangle-filter resize the transforms use).

pub mod class_index;
pub mod folder;
pub mod resize;
pub mod transform;

pub use class_index::ClassIndex;
pub use folder::{
    ImageFolderDataset, ImageItem, RgbImage, SkipLog, SkipUndecodable, decode_rgb, decode_rgb_bytes,
};
pub use resize::resize_triangle;
pub use transform::{IMAGENET_MEAN, IMAGENET_STD, ImageNetTransform};

#[cfg(test)]
mod tests;
