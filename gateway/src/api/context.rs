//! What one request carries through its resolvers.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agora_platform::graphql::WriteReceipt;
use agora_platform::tokens::Caller;

use super::source::Loaders;
use crate::consistency::Consistency;
use crate::upstream::{CallCounter, Forwarded, Upstream};

/// Shared by every request (put in the schema's data).
pub struct Shared {
    pub upstream: Arc<Upstream>,
    pub consistency: Consistency,
    /// How long a mutation waits for the read model to apply its writes.
    pub consistency_timeout: Duration,
}

/// One request's state.
pub struct RequestContext {
    pub caller: Caller,
    pub forwarded: Forwarded,
    pub loaders: Loaders,
    pub calls: Arc<CallCounter>,
    pub commands: Arc<CommandLog>,
}

/// What the commands of one request wrote, read after execution.
#[derive(Debug, Default)]
pub struct CommandLog {
    writes: Mutex<Vec<WriteReceipt>>,
    ran_command: AtomicBool,
    lagging: AtomicBool,
}

impl CommandLog {
    /// Records a command and what it wrote; `applied` says whether the read
    /// model reflected it within the wait.
    pub fn record(&self, writes: &[WriteReceipt], applied: bool) {
        self.ran_command.store(true, Ordering::Relaxed);
        self.writes.lock().expect("writes lock").extend_from_slice(writes);
        if !applied {
            self.lagging.store(true, Ordering::Relaxed);
        }
    }

    /// The writes of the commands this request ran, if it ran any.
    pub fn writes(&self) -> Option<Vec<WriteReceipt>> {
        self.ran_command.load(Ordering::Relaxed).then(|| self.writes.lock().expect("writes lock").clone())
    }

    /// True when a command's writes were not yet in the read model at answer time.
    pub fn lagging(&self) -> bool {
        self.lagging.load(Ordering::Relaxed)
    }
}
