//! What one request carries through its resolvers.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use agora_platform::tokens::Caller;
use agora_schema::receipts::WriteReceipt;

use crate::records::RoundTrips;
use crate::sources::{DataSource, Loaders};
use crate::upstream::Forwarded;

/// One request's state (put in the request's data).
pub struct RequestContext {
    pub caller: Caller,
    pub forwarded: Forwarded,
    pub loaders: Loaders,
    /// Counts the request's calls to services.
    pub calls: Arc<RoundTrips>,
    pub commands: Arc<CommandLog>,
}

impl RequestContext {
    /// The state a request resolves with: its caller, data from `source`,
    /// and its calls to services counted in `calls`.
    pub fn new(caller: Caller, forwarded: Forwarded, source: Arc<dyn DataSource>, calls: Arc<RoundTrips>) -> Self {
        RequestContext { caller, forwarded, loaders: Loaders::new(source), calls, commands: Arc::default() }
    }
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
