//! The model in charge of a running station, and the hand-over to another one between two
//! frames.

use std::sync::{Arc, Mutex, PoisonError, RwLock};

use inspecta_vision::model::{Model, ModelError, Session};

/// Changes a running station's model between two frames: no restart, no frame lost. Cheap
/// to clone; the API, the panel and plant commands each hold one.
#[derive(Debug, Clone)]
pub struct ModelSwitch {
    current: Arc<RwLock<Arc<Model>>>,
    /// A session built for the next model, taken up by the inspection thread before its
    /// next frame.
    pending: Arc<Mutex<Option<Session>>>,
}

impl ModelSwitch {
    /// A switch in charge of `model`; a station starts one of its own, and takes up what
    /// is switched on it before each frame.
    pub fn new(model: &Arc<Model>) -> Self {
        Self {
            current: Arc::new(RwLock::new(Arc::clone(model))),
            pending: Arc::default(),
        }
    }

    /// The model the station judges with (from the next frame on, right after a switch).
    pub fn current(&self) -> Arc<Model> {
        Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Puts `model` in charge from the next frame on and returns the one it replaces. The
    /// session is built here, on the caller's thread, so the line keeps running meanwhile;
    /// the frame being judged now finishes with the old model.
    pub fn switch(&self, model: &Arc<Model>) -> Result<Arc<Model>, ModelError> {
        let session = model.session()?;
        let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
        *self.pending.lock().unwrap_or_else(PoisonError::into_inner) = Some(session);
        Ok(std::mem::replace(&mut *current, Arc::clone(model)))
    }

    pub(super) fn take_pending(&self) -> Option<Session> {
        self.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }
}
