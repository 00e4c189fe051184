//! Backbone feature maps -> one feature vector per patch, PatchCore style: every map is
//! averaged over each 3x3 neighbourhood (a patch then sees a little context, which makes it
//! robust to small shifts), coarser maps are upsampled to the finest grid, and the channels
//! of all maps are concatenated.

use ndarray::{Array2, Array3, ArrayView3, Axis, Slice};

/// `maps`: `[channels, height, width]` each. Returns `[grid * grid, sum of channels]`, rows
/// in row-major patch order; maps of another size are resized to the grid.
pub fn patch_features(maps: &[ArrayView3<'_, f32>], grid: usize) -> Array2<f32> {
    let (h, w) = (grid, grid);
    let channels: usize = maps.iter().map(|m| m.dim().0).sum();
    let mut out = Array2::zeros((h * w, channels));
    let mut first = 0;
    for map in maps {
        let pooled = average_3x3(map);
        let resized = if pooled.dim().1 == h && pooled.dim().2 == w {
            pooled
        } else {
            bilinear(&pooled.view(), h, w)
        };
        let c = resized.dim().0;
        // [c, h, w] -> [h * w, c]
        let flat = resized
            .into_shape_with_order((c, h * w))
            .expect("a freshly built array is contiguous");
        out.slice_axis_mut(Axis(1), Slice::from(first..first + c))
            .assign(&flat.t());
        first += c;
    }
    out
}

/// Mean over each 3x3 neighbourhood that lies inside the map (borders average fewer cells).
fn average_3x3(map: &ArrayView3<'_, f32>) -> Array3<f32> {
    let (c, h, w) = map.dim();
    let mut out = Array3::zeros((c, h, w));
    for (plane, mut target) in map.axis_iter(Axis(0)).zip(out.axis_iter_mut(Axis(0))) {
        for y in 0..h {
            let (y0, y1) = (y.saturating_sub(1), (y + 2).min(h));
            for x in 0..w {
                let (x0, x1) = (x.saturating_sub(1), (x + 2).min(w));
                let window = plane
                    .slice_axis(Axis(0), Slice::from(y0..y1))
                    .slice_axis_move(Axis(1), Slice::from(x0..x1));
                target[[y, x]] = window.sum() / window.len() as f32;
            }
        }
    }
    out
}

/// Bilinear resize with half-pixel centres (PyTorch's `align_corners=False`).
pub fn bilinear(map: &ArrayView3<'_, f32>, height: usize, width: usize) -> Array3<f32> {
    let (c, h, w) = map.dim();
    let ys: Vec<(usize, usize, f32)> = (0..height).map(|y| taps(y, height, h)).collect();
    let xs: Vec<(usize, usize, f32)> = (0..width).map(|x| taps(x, width, w)).collect();
    let mut out = Array3::zeros((c, height, width));
    for (plane, mut target) in map.axis_iter(Axis(0)).zip(out.axis_iter_mut(Axis(0))) {
        for (y, &(y0, y1, fy)) in ys.iter().enumerate() {
            for (x, &(x0, x1, fx)) in xs.iter().enumerate() {
                let top = plane[[y0, x0]] * (1.0 - fx) + plane[[y0, x1]] * fx;
                let bottom = plane[[y1, x0]] * (1.0 - fx) + plane[[y1, x1]] * fx;
                target[[y, x]] = top * (1.0 - fy) + bottom * fy;
            }
        }
    }
    out
}

/// The two source cells around destination cell `i` of `to`, and the weight of the second.
fn taps(i: usize, to: usize, from: usize) -> (usize, usize, f32) {
    let position = ((i as f32 + 0.5) * from as f32 / to as f32 - 0.5).max(0.0);
    let lower = (position.floor() as usize).min(from - 1);
    let upper = (lower + 1).min(from - 1);
    (lower, upper, position - lower as f32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array3;

    #[test]
    fn a_constant_map_stays_constant() {
        let fine = Array3::from_elem((2, 4, 4), 3.0f32);
        let coarse = Array3::from_elem((1, 2, 2), -1.0f32);
        let patches = patch_features(&[fine.view(), coarse.view()], 4);
        assert_eq!(patches.dim(), (16, 3));
        assert!(
            patches
                .rows()
                .into_iter()
                .all(|r| r.to_vec() == [3.0, 3.0, -1.0])
        );
    }

    #[test]
    fn rows_are_patches_in_row_major_order() {
        // One channel whose value is its column: averaging keeps the middle columns exact.
        let map = Array3::from_shape_fn((1, 3, 3), |(_, _, x)| x as f32);
        let patches = patch_features(&[map.view()], 3);
        assert_eq!(patches[[4, 0]], 1.0, "centre patch");
        assert_eq!(patches[[3, 0]], 0.5, "left border averages columns 0 and 1");
    }

    #[test]
    fn bilinear_doubling_interpolates_between_cells() {
        let map = Array3::from_shape_vec((1, 1, 2), vec![0.0f32, 4.0]).expect("shape");
        let up = bilinear(&map.view(), 1, 4);
        assert_eq!(up.iter().copied().collect::<Vec<_>>(), [0.0, 1.0, 3.0, 4.0]);
    }
}
