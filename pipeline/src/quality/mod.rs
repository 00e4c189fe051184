//! Watching the process, not single parts: statistical process control over the defect
//! rate, so a drifting line raises an alarm before the scrap bin fills up.

pub mod spc;
pub mod watch;
