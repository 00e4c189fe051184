//! An owned, tightly packed RGB8 image: what every source produces and every model takes.
//! Sources convert their native formats (strided GStreamer buffers, grey JPEGs...) once,
//! so nothing downstream needs to know where a frame came from.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use image::{ImageReader, Limits};

/// Largest side we accept: beyond any industrial camera.
const MAX_SIDE: u32 = 16_384;
/// Pixels an image may declare unless the caller says otherwise: a 50 MP camera. A 1 MB
/// PNG can declare 16384x16384 (805 MB as RGB8); the header is read before anything is
/// allocated, so such a file costs nothing.
pub const DEFAULT_MAX_PIXELS: u64 = 50_000_000;
/// Bytes the decoder may allocate per pixel allowed: 16-bit RGBA before the RGB8 conversion.
const DECODE_BYTES_PER_PIXEL: u64 = 8;

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot decode image: {0}")]
    Decode(#[from] image::ImageError),
    #[error("image declares {width}x{height} pixels, more than the {max_pixels} allowed")]
    TooLarge {
        width: u32,
        height: u32,
        max_pixels: u64,
    },
    #[error("image is truncated: JPEG data ends before its end-of-image marker")]
    TruncatedJpeg,
    #[error("pixel buffer holds {got} bytes, a {width}x{height} RGB8 frame needs {expected}")]
    BufferSize {
        width: u32,
        height: u32,
        expected: usize,
        got: usize,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    width: u32,
    height: u32,
    rgb: Vec<u8>,
}

impl Frame {
    /// Wraps packed RGB8 pixels (row after row, no padding).
    pub fn from_rgb8(width: u32, height: u32, rgb: Vec<u8>) -> Result<Self, FrameError> {
        let expected = width as usize * height as usize * 3;
        if rgb.len() != expected {
            return Err(FrameError::BufferSize {
                width,
                height,
                expected,
                got: rgb.len(),
            });
        }
        Ok(Self { width, height, rgb })
    }

    /// Decodes an encoded image (JPEG, PNG, BMP, TIFF, WebP), whatever its pixel format,
    /// of at most [`DEFAULT_MAX_PIXELS`].
    pub fn decode(bytes: &[u8]) -> Result<Self, FrameError> {
        Self::decode_limited(bytes, DEFAULT_MAX_PIXELS)
    }

    /// Decodes an image of at most `max_pixels`; one that declares more in its header is
    /// refused before any pixel is decoded.
    pub fn decode_limited(bytes: &[u8], max_pixels: u64) -> Result<Self, FrameError> {
        check_jpeg_complete(bytes)?;
        let reader = || {
            let mut reader = ImageReader::new(Cursor::new(bytes))
                .with_guessed_format()
                .map_err(|e| FrameError::Decode(image::ImageError::IoError(e)))?;
            let mut limits = Limits::default();
            limits.max_image_width = Some(MAX_SIDE);
            limits.max_image_height = Some(MAX_SIDE);
            limits.max_alloc = Some(max_pixels.saturating_mul(DECODE_BYTES_PER_PIXEL));
            reader.limits(limits);
            Ok::<_, FrameError>(reader)
        };
        let (width, height) = reader()?.into_dimensions()?;
        if u64::from(width) * u64::from(height) > max_pixels {
            return Err(FrameError::TooLarge {
                width,
                height,
                max_pixels,
            });
        }
        let rgb = reader()?.decode()?.into_rgb8();
        let (width, height) = rgb.dimensions();
        Ok(Self {
            width,
            height,
            rgb: rgb.into_raw(),
        })
    }

    pub fn open(path: &Path) -> Result<Self, FrameError> {
        let bytes = std::fs::read(path).map_err(|source| FrameError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::decode(&bytes)
    }

    pub fn width(&self) -> u32 {
        self.width
    }

    pub fn height(&self) -> u32 {
        self.height
    }

    /// Packed RGB8 pixels, `width * height * 3` bytes.
    pub fn rgb(&self) -> &[u8] {
        &self.rgb
    }
}

/// JPEG decoders paint the missing part of a cut-off file grey and carry on; a part
/// judged on half an image is worse than no verdict, so a JPEG must end with EOI.
fn check_jpeg_complete(bytes: &[u8]) -> Result<(), FrameError> {
    let is_jpeg = bytes.starts_with(&[0xFF, 0xD8]);
    // Some encoders pad after EOI; look for it near the end rather than at the last byte.
    let tail = &bytes[bytes.len().saturating_sub(64)..];
    if is_jpeg && !tail.windows(2).any(|w| w == [0xFF, 0xD9]) {
        return Err(FrameError::TruncatedJpeg);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(format: image::ImageFormat) -> Vec<u8> {
        let img =
            image::RgbImage::from_fn(32, 24, |x, y| image::Rgb([x as u8 * 8, y as u8 * 10, 128]));
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, format).expect("encode test image");
        out.into_inner()
    }

    #[test]
    fn decodes_png_and_jpeg_to_rgb8() {
        for format in [image::ImageFormat::Png, image::ImageFormat::Jpeg] {
            let frame = Frame::decode(&encode(format)).expect("decodes");
            assert_eq!((frame.width(), frame.height()), (32, 24));
            assert_eq!(frame.rgb().len(), 32 * 24 * 3);
        }
    }

    /// A real decompression bomb (`models/recipe/make_png_bomb.py`): 261 KB that would
    /// decode to 805 MB of RGB8. Its header is enough to refuse it.
    #[test]
    fn a_png_bomb_is_refused_from_its_header() {
        let bomb = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/bomb-16384.png"
        ))
        .expect("the fixture");
        assert!(bomb.len() < 300_000);
        let err = Frame::decode(&bomb).expect_err("too large");
        assert!(
            matches!(
                err,
                FrameError::TooLarge {
                    width: 16_384,
                    height: 16_384,
                    ..
                }
            ),
            "{err}"
        );
        // A tighter limit refuses what the default allows.
        let small = encode(image::ImageFormat::Png);
        assert!(Frame::decode_limited(&small, 32 * 24).is_ok());
        assert!(matches!(
            Frame::decode_limited(&small, 32 * 24 - 1),
            Err(FrameError::TooLarge { .. })
        ));
    }

    #[test]
    fn truncated_jpeg_is_an_error() {
        let jpeg = encode(image::ImageFormat::Jpeg);
        let err = Frame::decode(&jpeg[..jpeg.len() / 2]).expect_err("truncated");
        assert!(matches!(err, FrameError::TruncatedJpeg), "{err}");
    }

    #[test]
    fn truncated_png_is_an_error() {
        let png = encode(image::ImageFormat::Png);
        assert!(Frame::decode(&png[..png.len() / 2]).is_err());
    }

    #[test]
    fn wrong_buffer_size_is_an_error() {
        let err = Frame::from_rgb8(4, 4, vec![0; 10]).expect_err("short buffer");
        assert!(err.to_string().contains("needs 48"), "{err}");
    }
}
