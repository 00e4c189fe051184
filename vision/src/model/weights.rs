//! Trained weights beside the ONNX backbone: named f32 tensors in one safetensors file, a
//! format any ML tool reads (numpy, PyTorch), so a quality engineer can inspect a bank.

use std::path::Path;

use ndarray::{Array1, Array2, ArrayD, Ix1, Ix2, IxDyn};
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors, View as _};

/// Writes `tensors` (name, array) to `path`.
pub fn save(path: &Path, tensors: &[(&str, ArrayD<f32>)]) -> Result<(), String> {
    let bytes: Vec<(String, Vec<u8>, Vec<usize>)> = tensors
        .iter()
        .map(|(name, a)| {
            let data = a.iter().flat_map(|v| v.to_le_bytes()).collect();
            ((*name).to_owned(), data, a.shape().to_vec())
        })
        .collect();
    let views = bytes
        .iter()
        .map(|(name, data, shape)| {
            TensorView::new(Dtype::F32, shape.clone(), data)
                .map(|v| (name.clone(), v))
                .map_err(|e| e.to_string())
        })
        .collect::<Result<Vec<_>, _>>()?;
    safetensors::serialize_to_file(views, None, path).map_err(|e| e.to_string())
}

/// The tensors of a weights file, read whole.
#[derive(Debug)]
pub struct Weights {
    bytes: Vec<u8>,
}

impl Weights {
    pub fn read(path: &Path) -> std::io::Result<Self> {
        Ok(Self {
            bytes: std::fs::read(path)?,
        })
    }

    /// Tensor `name` as f32, with its shape.
    pub fn tensor(&self, name: &str) -> Result<ArrayD<f32>, String> {
        let file = SafeTensors::deserialize(&self.bytes)
            .map_err(|e| format!("not a complete safetensors file ({e})"))?;
        let view = file
            .tensor(name)
            .map_err(|_| format!("it has no tensor {name:?}"))?;
        if view.dtype() != Dtype::F32 {
            return Err(format!("tensor {name:?} is {:?}, not F32", view.dtype()));
        }
        let values: Vec<f32> = view
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        debug_assert_eq!(view.data_len(), values.len() * 4);
        ArrayD::from_shape_vec(IxDyn(view.shape()), values).map_err(|e| e.to_string())
    }

    /// Whether the file holds tensor `name` (for tensors a model may or may not have).
    pub fn has(&self, name: &str) -> bool {
        SafeTensors::deserialize(&self.bytes).is_ok_and(|file| file.tensor(name).is_ok())
    }

    /// Tensor `name`, which must be a vector.
    pub fn vector(&self, name: &str) -> Result<Array1<f32>, String> {
        self.tensor(name)?
            .into_dimensionality::<Ix1>()
            .map_err(|_| format!("tensor {name:?} is not a vector"))
    }

    /// Tensor `name`, which must be a matrix.
    pub fn matrix(&self, name: &str) -> Result<Array2<f32>, String> {
        self.tensor(name)?
            .into_dimensionality::<Ix2>()
            .map_err(|_| format!("tensor {name:?} is not a matrix"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn tensors_round_trip() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("w.safetensors");
        let bank = array![[1.0f32, 2.0], [3.0, -4.5]].into_dyn();
        save(&path, &[("bank", bank.clone())]).expect("save");
        let read = Weights::read(&path).expect("read");
        assert_eq!(read.tensor("bank").expect("bank"), bank);
        let err = read.tensor("mean").expect_err("absent");
        assert!(err.contains("\"mean\""), "{err}");
    }
}
