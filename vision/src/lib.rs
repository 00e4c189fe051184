//! Inspecta's vision engine: a part's image in, a verdict out, and everything a quality
//! engineer does offline around that (evaluation, training on the box).
//! Data flows one way: [`frame::Frame`] -> [`model::Session`] -> [`inspection::Inspection`].
//! Nothing here knows about cameras, stores or the plant: that is `inspecta-pipeline`.

pub mod anomaly;
pub mod decision;
pub mod evaluation;
pub mod frame;
pub mod inspection;
pub mod model;
pub mod overlay;
pub mod training;
