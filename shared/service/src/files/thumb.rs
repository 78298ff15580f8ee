//! Thumbnails: decode within limits, scale to fit a square, encode as JPEG.

use std::io::Cursor;

use image::{ImageReader, Limits};

use super::error::FileError;

/// The longest side of a thumbnail.
const SIDE: u32 = 320;
/// Images larger than this in either dimension are refused (decompression bombs).
const MAX_DIMENSION: u32 = 12_000;
/// What one decode may allocate.
const MAX_ALLOC: u64 = 256 * 1024 * 1024;

/// A JPEG thumbnail of an image, or why it could not be decoded.
pub(super) fn make(bytes: &[u8]) -> Result<Vec<u8>, FileError> {
    let bad = |e: &dyn std::fmt::Display| FileError::BadImage(e.to_string());
    let mut reader = ImageReader::new(Cursor::new(bytes)).with_guessed_format().map_err(|e| bad(&e))?;
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_DIMENSION);
    limits.max_image_height = Some(MAX_DIMENSION);
    limits.max_alloc = Some(MAX_ALLOC);
    reader.limits(limits);
    let img = reader.decode().map_err(|e| bad(&e))?;
    let small = img.thumbnail(SIDE, SIDE).into_rgb8();
    let mut out = Cursor::new(Vec::new());
    small.write_to(&mut out, image::ImageFormat::Jpeg).map_err(|e| FileError::Storage(e.into()))?;
    Ok(out.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(w: u32, h: u32) -> Vec<u8> {
        let img = image::RgbImage::from_pixel(w, h, image::Rgb([200, 30, 30]));
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, image::ImageFormat::Png).expect("encode");
        out.into_inner()
    }

    #[test]
    fn scales_down_to_fit() {
        let jpeg = make(&png(1000, 500)).expect("thumbnail");
        let t = image::load_from_memory(&jpeg).expect("decodes");
        assert_eq!((t.width(), t.height()), (320, 160));
    }

    #[test]
    fn refuses_truncated_and_oversized_images() {
        let mut p = png(64, 64);
        p.truncate(60);
        assert!(matches!(make(&p), Err(FileError::BadImage(_))));
        // A real, tiny PNG wider than the limit: refused from its header.
        let wide = png(MAX_DIMENSION + 1, 1);
        assert!(wide.len() < 10_000);
        assert!(matches!(make(&wide), Err(FileError::BadImage(_))));
    }
}
