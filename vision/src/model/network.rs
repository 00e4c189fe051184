//! A frozen ONNX network run on frames: the classifier inside [`super::Model`], and the
//! trunk under a trained head and under the trainers.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use tract_onnx::prelude::*;

use super::preprocess::Preprocessor;
use super::{
    ModelError, RunnerOptions, check_input, declared_input_shape, manifest, optimise, read_onnx,
};
use crate::frame::Frame;
use crate::inspection::StageTimings;

/// A frozen ONNX network, optimised once for one input size and the outputs asked for:
/// a whole classifier, or the backbone under a trained head (and under the trainers).
#[derive(Debug)]
pub struct Network {
    pub(super) plan: Arc<TypedSimplePlan>,
    input: manifest::InputSpec,
    input_shape: [usize; 4],
}

impl Network {
    /// Loads `onnx_path` for images described by `input`, keeping only `outputs` (the
    /// first output when empty).
    pub fn load(
        onnx_path: &Path,
        input: &manifest::InputSpec,
        outputs: &[String],
        options: RunnerOptions,
    ) -> Result<Self, ModelError> {
        let (_, graph) = read_onnx(onnx_path)?;
        let declared = declared_input_shape(&graph).map_err(|source| ModelError::Onnx {
            path: onnx_path.to_owned(),
            source: source.into(),
        })?;
        Self::from_graph(graph, onnx_path, input, &declared, outputs, options)
    }

    pub(super) fn from_graph(
        graph: InferenceModel,
        onnx_path: &Path,
        input: &manifest::InputSpec,
        declared: &[Option<usize>],
        outputs: &[String],
        options: RunnerOptions,
    ) -> Result<Self, ModelError> {
        let input_shape =
            check_input(input, declared).map_err(|reason| ModelError::Incompatible {
                path: onnx_path.to_owned(),
                reason,
            })?;
        let plan =
            optimise(graph, outputs, input_shape, options).map_err(|source| ModelError::Onnx {
                path: onnx_path.to_owned(),
                source: source.into(),
            })?;
        Ok(Self {
            plan,
            input: input.clone(),
            input_shape,
        })
    }

    pub fn session(&self) -> Result<NetworkSession, ModelError> {
        let state = self
            .plan
            .spawn()
            .map_err(|e| ModelError::Inference(e.into()))?;
        let input =
            Tensor::zero::<f32>(&self.input_shape).map_err(|e| ModelError::Inference(e.into()))?;
        Ok(NetworkSession {
            preprocessor: Preprocessor::new(&self.input),
            input: Arc::new(input),
            state,
        })
    }
}

#[derive(Debug)]
pub struct NetworkSession {
    preprocessor: Preprocessor,
    pub(super) input: Arc<Tensor>,
    state: TypedSimpleState,
}

impl NetworkSession {
    /// Preprocesses `frame` and runs the network on it.
    pub fn run(&mut self, frame: &Frame) -> Result<(TVec<TValue>, StageTimings), ModelError> {
        let started = Instant::now();
        // tract drops its reference to the input after each run, so this does not copy.
        let input = Arc::make_mut(&mut self.input);
        let mut view = input
            .to_plain_array_view_mut::<f32>()
            .map_err(|e| ModelError::Inference(e.into()))?;
        let values = view
            .as_slice_mut()
            .ok_or_else(|| ModelError::Inference("input tensor is not contiguous".into()))?;
        self.preprocessor.run(frame, values)?;
        let preprocessed = Instant::now();
        let outputs = self
            .state
            .run(tvec![TValue::from_const(Arc::clone(&self.input))])
            .map_err(|e| ModelError::Inference(e.into()))?;
        let timings = StageTimings {
            preprocess: preprocessed - started,
            inference: preprocessed.elapsed(),
        };
        Ok((outputs, timings))
    }
}

/// Network outputs as `[channels, height, width]` maps (batch of one).
pub fn feature_maps(outputs: &[TValue]) -> Result<Vec<ndarray::ArrayView3<'_, f32>>, ModelError> {
    outputs
        .iter()
        .map(|o| {
            let view = o
                .to_plain_array_view::<f32>()
                .map_err(|e| ModelError::Inference(e.into()))?;
            view.into_dimensionality::<ndarray::Ix4>()
                .map(|v| v.index_axis_move(ndarray::Axis(0), 0))
                .map_err(|_| ModelError::Inference("a feature map is not [1, C, H, W]".into()))
        })
        .collect()
}
