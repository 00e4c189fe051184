//! The method interface beside the flag handshake, as OPC UA Machine Vision (OPC 40100)
//! users expect one: `Trigger(PartId) -> (RecordId, Result)` judges one part and returns
//! once it is stored; `GetResultById(RecordId)` reads any stored part's result.

use std::collections::HashMap;
use std::sync::mpsc::{SyncSender, sync_channel};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use opcua::nodes::MethodBuilder;
use opcua::server::node_manager::memory::SimpleNodeManager;
use opcua::types::{Argument, DataTypeId, NodeId, StatusCode, UAString, Variant};

use crate::station::{Triggers, generated_part_id};
use crate::store::{Record, RecordStore, StoreError};

/// Beyond the frame timeout, how long `Trigger` waits for its part's verdict: inference and
/// the store's commit, with room for a slow disk. A PLC's call timeout should exceed both.
const VERDICT_BUDGET: Duration = Duration::from_secs(10);

/// `Trigger` calls waiting for their part's record, by part id.
#[derive(Debug, Default)]
pub struct PendingCalls(Mutex<HashMap<String, SyncSender<Record>>>);

impl PendingCalls {
    /// A stored verdict: hands it to the call waiting for its part, if any.
    pub fn judged(&self, record: &Record) {
        let Some(part_id) = &record.part_id else {
            return;
        };
        if let Some(waiter) = self.lock().remove(part_id) {
            // The call may have timed out and gone; nothing to hand over then.
            let _ = waiter.try_send(record.clone());
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, SyncSender<Record>>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Fires a trigger for `part_id` and waits for its record.
    fn trigger(
        &self,
        triggers: &Triggers,
        part_id: &str,
        wait: Duration,
    ) -> Result<Record, StatusCode> {
        let (sender, receiver) = sync_channel(1);
        {
            let mut pending = self.lock();
            if pending.contains_key(part_id) {
                return Err(StatusCode::BadInvalidState);
            }
            pending.insert(part_id.to_owned(), sender);
        }
        if let Err(e) = triggers.fire(part_id) {
            self.lock().remove(part_id);
            tracing::warn!(%part_id, "OPC UA Trigger call refused: {e}");
            return Err(StatusCode::BadResourceUnavailable);
        }
        tracing::info!(%part_id, "OPC UA Trigger call");
        // The server's other sessions go on while this one waits.
        let record = tokio::task::block_in_place(|| receiver.recv_timeout(wait));
        self.lock().remove(part_id);
        record.map_err(|_| StatusCode::BadTimeout)
    }
}

/// Node ids of the methods, children of the station object.
pub const TRIGGER: &str = "Trigger";
pub const GET_RESULT: &str = "GetResultById";

/// What `Trigger` needs: the station's trigger input and how long a part may take.
#[derive(Debug)]
pub struct TriggerCall {
    pub pending: Arc<PendingCalls>,
    pub triggers: Option<Triggers>,
    pub station: String,
    pub frame_timeout: Duration,
}

/// Adds both methods under `object` with their argument descriptions, and their callbacks.
pub fn install(
    nodes: &SimpleNodeManager,
    id: impl Fn(&str) -> NodeId,
    object: &NodeId,
    call: TriggerCall,
    store: Arc<RecordStore>,
) {
    add_method(
        nodes,
        &id,
        object,
        TRIGGER,
        &[arg("PartId", DataTypeId::String)],
        &[
            arg("RecordId", DataTypeId::Int64),
            arg("Result", DataTypeId::String),
        ],
    );
    add_method(
        nodes,
        &id,
        object,
        GET_RESULT,
        &[arg("RecordId", DataTypeId::Int64)],
        &[
            arg("Result", DataTypeId::String),
            arg("Class", DataTypeId::String),
            arg("Score", DataTypeId::Double),
            arg("PartId", DataTypeId::String),
            arg("Reason", DataTypeId::String),
        ],
    );
    let manager = nodes.inner();
    let wait = call.frame_timeout + VERDICT_BUDGET;
    manager.add_method_callback(id(TRIGGER), move |args| {
        let part_id = match args {
            [Variant::String(s)] if !s.is_empty() => s.as_ref().to_owned(),
            [Variant::String(_)] | [Variant::Empty] | [] => generated_part_id(&call.station),
            [_] => return Err(StatusCode::BadTypeMismatch),
            _ => return Err(StatusCode::BadTooManyArguments),
        };
        let triggers = call.triggers.as_ref().ok_or(StatusCode::BadNotSupported)?;
        let record = call.pending.trigger(triggers, &part_id, wait)?;
        Ok(vec![
            Variant::Int64(record.id),
            UAString::from(record.verdict.as_str()).into(),
        ])
    });
    manager.add_method_callback(id(GET_RESULT), move |args| {
        let [Variant::Int64(record_id)] = args else {
            return Err(StatusCode::BadTypeMismatch);
        };
        let record = store.get(*record_id).map_err(|e| match e {
            StoreError::NotFound(_) => StatusCode::BadNotFound,
            e => {
                tracing::warn!("OPC UA GetResultById({record_id}): {e}");
                StatusCode::BadInternalError
            }
        })?;
        let text = |s: Option<&str>| Variant::from(UAString::from(s.unwrap_or("")));
        Ok(vec![
            text(Some(&record.verdict)),
            text(record.class.as_deref()),
            Variant::Double(record.defect_score),
            text(record.part_id.as_deref()),
            text(record.reason.as_deref()),
        ])
    });
}

/// A method node under `object`, with the argument descriptions clients browse.
fn add_method(
    nodes: &SimpleNodeManager,
    id: &impl Fn(&str) -> NodeId,
    object: &NodeId,
    name: &str,
    inputs: &[Argument],
    outputs: &[Argument],
) {
    let mut space = nodes.address_space().write();
    MethodBuilder::new(&id(name), name, name)
        .component_of(object.clone())
        .executable(true)
        .user_executable(true)
        .input_args(&mut *space, &id(&format!("{name}.InputArguments")), inputs)
        .output_args(
            &mut *space,
            &id(&format!("{name}.OutputArguments")),
            outputs,
        )
        .insert(&mut *space);
}

fn arg(name: &str, data_type: DataTypeId) -> Argument {
    (name, data_type).into()
}
