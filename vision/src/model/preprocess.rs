//! Frame -> model input tensor. Owns its resize buffers, so after the first frame of a
//! given size it allocates nothing.

use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};

use super::manifest::{ColorOrder, InputSpec, Layout, ResizeMode};
use crate::frame::Frame;

#[derive(Debug, thiserror::Error)]
pub enum PreprocessError {
    #[error("frame is empty ({width}x{height})")]
    EmptyFrame { width: u32, height: u32 },
    #[error("resize failed: {0}")]
    Resize(#[from] fast_image_resize::ResizeError),
    #[error("frame buffer does not match its size: {0}")]
    Buffer(#[from] fast_image_resize::ImageBufferError),
    #[error("input buffer holds {got} values, the model needs {expected}")]
    BufferSize { expected: usize, got: usize },
}

#[derive(Debug)]
pub struct Preprocessor {
    spec: InputSpec,
    inv_std: [f32; 3],
    resizer: Resizer,
    resized: Image<'static>,
}

impl Preprocessor {
    pub fn new(spec: &InputSpec) -> Self {
        Self {
            spec: spec.clone(),
            inv_std: spec.std.map(|s| 1.0 / s),
            resizer: Resizer::new(),
            resized: Image::new(spec.width, spec.height, PixelType::U8x3),
        }
    }

    /// Number of `f32` values [`Self::run`] writes.
    pub fn input_len(&self) -> usize {
        self.spec.width as usize * self.spec.height as usize * self.spec.color.channels()
    }

    /// Resizes `frame` and writes normalised values into `out` in the model's layout and
    /// channel order.
    pub fn run(&mut self, frame: &Frame, out: &mut [f32]) -> Result<(), PreprocessError> {
        if out.len() != self.input_len() {
            return Err(PreprocessError::BufferSize {
                expected: self.input_len(),
                got: out.len(),
            });
        }
        let (width, height) = (frame.width(), frame.height());
        if width == 0 || height == 0 {
            return Err(PreprocessError::EmptyFrame { width, height });
        }
        let src = ImageRef::new(width, height, frame.rgb(), PixelType::U8x3)?;
        let mut options =
            ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Bilinear));
        if self.spec.resize == ResizeMode::CenterCrop {
            options = options.fit_into_destination(Some((0.5, 0.5)));
        }
        self.resizer.resize(&src, &mut self.resized, &options)?;
        self.normalise(out);
        Ok(())
    }

    fn normalise(&self, out: &mut [f32]) {
        let pixels = self.resized.buffer().chunks_exact(3);
        let plane = self.spec.width as usize * self.spec.height as usize;
        let (mean, inv_std) = (self.spec.mean, self.inv_std);
        let channels = self.spec.color.channels();
        for (i, px) in pixels.enumerate() {
            let values = match self.spec.color {
                ColorOrder::Rgb => [px[0], px[1], px[2]],
                ColorOrder::Bgr => [px[2], px[1], px[0]],
                ColorOrder::Gray => [luma(px), 0, 0],
            };
            for (c, v) in values.iter().take(channels).enumerate() {
                let index = match self.spec.layout {
                    Layout::Nchw => c * plane + i,
                    Layout::Nhwc => i * channels + c,
                };
                out[index] = (f32::from(*v) - mean[c]) * inv_std[c];
            }
        }
    }
}

/// ITU-R BT.601 luma, the weighting image libraries use for RGB -> grey.
fn luma(px: &[u8]) -> u8 {
    let y = 299 * u32::from(px[0]) + 587 * u32::from(px[1]) + 114 * u32::from(px[2]);
    ((y + 500) / 1000) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(color: ColorOrder, layout: Layout) -> InputSpec {
        InputSpec {
            width: 2,
            height: 2,
            layout,
            color,
            resize: ResizeMode::Stretch,
            mean: [10.0, 20.0, 30.0],
            std: [2.0, 4.0, 5.0],
        }
    }

    fn solid(r: u8, g: u8, b: u8) -> Frame {
        Frame::from_rgb8(4, 4, [r, g, b].repeat(16)).expect("frame")
    }

    #[test]
    fn nchw_rgb_is_planar_and_normalised() {
        let mut p = Preprocessor::new(&spec(ColorOrder::Rgb, Layout::Nchw));
        let mut out = vec![0.0; 12];
        p.run(&solid(30, 60, 80), &mut out).expect("preprocess");
        assert_eq!(&out[..4], &[10.0; 4]);
        assert_eq!(&out[4..8], &[10.0; 4]);
        assert_eq!(&out[8..], &[10.0; 4]);
    }

    #[test]
    fn nhwc_bgr_swaps_channels_and_interleaves() {
        let mut p = Preprocessor::new(&spec(ColorOrder::Bgr, Layout::Nhwc));
        let mut out = vec![0.0; 12];
        p.run(&solid(80, 60, 30), &mut out).expect("preprocess");
        assert_eq!(
            &out[..3],
            &[
                (30.0 - 10.0) / 2.0,
                (60.0 - 20.0) / 4.0,
                (80.0 - 30.0) / 5.0
            ]
        );
    }

    #[test]
    fn gray_uses_luma() {
        let mut p = Preprocessor::new(&spec(ColorOrder::Gray, Layout::Nchw));
        let mut out = vec![0.0; 4];
        p.run(&solid(100, 100, 100), &mut out).expect("preprocess");
        assert_eq!(out, vec![45.0; 4]);
    }

    #[test]
    fn wrong_buffer_is_rejected() {
        let mut p = Preprocessor::new(&spec(ColorOrder::Rgb, Layout::Nchw));
        let err = p
            .run(&solid(0, 0, 0), &mut [0.0; 3])
            .expect_err("short buffer");
        assert!(err.to_string().contains("needs 12"), "{err}");
    }
}
