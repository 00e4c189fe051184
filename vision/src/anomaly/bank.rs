//! The memory bank of good patches and its nearest-neighbour search. Distances come from one
//! matrix product per block of the bank (`|q - m|^2 = |q|^2 + |m|^2 - 2 q.m`), which is what
//! makes exhaustive search over thousands of patches affordable per frame on a CPU.

use ndarray::{Array1, Array2, ArrayView2, Axis, Slice};

/// Bank rows compared at once: bounds the scratch matrix to `queries x BLOCK` floats.
const BLOCK: usize = 4096;

#[derive(Debug, Clone, PartialEq)]
pub struct MemoryBank {
    patches: Array2<f32>,
    squared_norms: Array1<f32>,
}

impl MemoryBank {
    pub fn new(patches: Array2<f32>) -> Self {
        let squared_norms = squared_norms(&patches.view());
        Self {
            patches,
            squared_norms,
        }
    }

    pub fn patches(&self) -> ArrayView2<'_, f32> {
        self.patches.view()
    }

    pub fn len(&self) -> usize {
        self.patches.nrows()
    }

    pub fn is_empty(&self) -> bool {
        self.patches.nrows() == 0
    }

    pub fn dim(&self) -> usize {
        self.patches.ncols()
    }

    /// Euclidean distance from each query row to its nearest bank row.
    pub fn nearest(&self, queries: &ArrayView2<'_, f32>) -> Vec<f32> {
        let query_norms = squared_norms(queries);
        let mut best = vec![f32::INFINITY; queries.nrows()];
        for start in (0..self.len()).step_by(BLOCK) {
            let end = (start + BLOCK).min(self.len());
            let block = self.patches.slice_axis(Axis(0), Slice::from(start..end));
            let products = queries.dot(&block.t());
            let norms = self
                .squared_norms
                .slice_axis(Axis(0), Slice::from(start..end));
            for (row, best) in products.axis_iter(Axis(0)).zip(&mut best) {
                for (p, n) in row.iter().zip(norms) {
                    *best = best.min(n - 2.0 * p);
                }
            }
        }
        best.iter()
            .zip(&query_norms)
            .map(|(b, q)| (b + q).max(0.0).sqrt())
            .collect()
    }
}

fn squared_norms(rows: &ArrayView2<'_, f32>) -> Array1<f32> {
    rows.map_axis(Axis(1), |r| r.dot(&r))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn nearest_matches_brute_force() {
        let bank = MemoryBank::new(array![[0.0f32, 0.0], [3.0, 4.0], [10.0, 0.0]]);
        let queries = array![[0.0f32, 0.0], [3.0, 5.0], [7.0, 0.0]];
        let d = bank.nearest(&queries.view());
        assert_eq!(d, vec![0.0, 1.0, 3.0]);
    }
}
