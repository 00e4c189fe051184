//! Greedy coreset subsampling (k-center): keeps the patches that cover all the others best,
//! so a bank of 1 % of the training patches scores almost like the full one at a hundredth
//! of the search cost. Distances are computed on a random projection of the features, as in
//! PatchCore; the projection is seeded, so the same images give the same bank.

use ndarray::{Array2, ArrayView2};
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use rayon::prelude::*;

/// Dimensions distances are measured in while choosing the coreset.
const PROJECTED: usize = 64;
/// Rows one worker updates at a time.
const CHUNK: usize = 4096;

/// Indices of `target` rows of `features` chosen greedily, first one at random.
pub fn greedy_coreset(features: &ArrayView2<'_, f32>, target: usize, seed: u64) -> Vec<usize> {
    let n = features.nrows();
    if target >= n {
        return (0..n).collect();
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let projected = project(features, &mut rng);
    let width = projected.ncols();
    let rows = projected
        .as_slice()
        .expect("a freshly projected array is contiguous");
    let mut nearest = vec![f32::INFINITY; n];
    let mut chosen = Vec::with_capacity(target);
    let mut next = rng.gen_range(0..n);
    while chosen.len() < target {
        chosen.push(next);
        let centre = &rows[next * width..(next + 1) * width];
        next = rows
            .par_chunks(CHUNK * width)
            .zip(nearest.par_chunks_mut(CHUNK))
            .enumerate()
            .map(|(chunk, (rows, nearest))| {
                let mut far = (0, f32::NEG_INFINITY);
                for (i, (row, d)) in rows.chunks_exact(width).zip(nearest).enumerate() {
                    let dist: f32 = row.iter().zip(centre).map(|(a, b)| (a - b) * (a - b)).sum();
                    *d = d.min(dist);
                    if *d > far.1 {
                        far = (chunk * CHUNK + i, *d);
                    }
                }
                far
            })
            .reduce(
                || (0, f32::NEG_INFINITY),
                |a, b| if b.1 > a.1 { b } else { a },
            )
            .0;
    }
    chosen
}

/// Sparse random projection (Achlioptas): entries +-1/sqrt(k), which keeps distances within
/// a small factor without a Gaussian sampler.
fn project(features: &ArrayView2<'_, f32>, rng: &mut StdRng) -> Array2<f32> {
    let d = features.ncols();
    if d <= PROJECTED {
        return features.as_standard_layout().into_owned();
    }
    let scale = 1.0 / (PROJECTED as f32).sqrt();
    let matrix = Array2::from_shape_fn((d, PROJECTED), |_| {
        if rng.gen_bool(0.5) { scale } else { -scale }
    });
    features.dot(&matrix)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn the_coreset_covers_every_cluster() {
        // Three tight clusters: a 3-point coreset must take one point from each.
        let mut rows = Vec::new();
        for centre in [0.0f32, 100.0, 200.0] {
            for j in 0..5 {
                rows.extend([centre + j as f32 * 0.1, 0.0]);
            }
        }
        let features = Array2::from_shape_vec((15, 2), rows).expect("shape");
        let mut clusters: Vec<usize> = greedy_coreset(&features.view(), 3, 7)
            .iter()
            .map(|&i| i / 5)
            .collect();
        clusters.sort_unstable();
        assert_eq!(clusters, vec![0, 1, 2]);
    }

    #[test]
    fn a_target_above_the_count_keeps_everything() {
        let features = array![[1.0f32], [2.0]];
        assert_eq!(greedy_coreset(&features.view(), 5, 0), vec![0, 1]);
    }
}
