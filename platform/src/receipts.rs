//! The write receipts of one subgraph request: mutations add a receipt as
//! their command commits, and the answer reports them in its `extensions`
//! (the contract is `agora_schema::receipts`), so that the gateway can wait
//! until its read model has applied them.

use std::sync::{Arc, Mutex};

use agora_schema::receipts::{WriteReceipt, WritesExtension};
use async_graphql::Value;

use crate::trace_context::TraceParent;

/// The receipts of one request, filled by mutations as they commit and
/// reported in the answer's `extensions` (`agora_schema::receipts`).
#[derive(Debug, Clone, Default)]
pub struct WriteReceipts(Arc<Mutex<Vec<WriteReceipt>>>);

impl WriteReceipts {
    pub fn push(&self, receipt: WriteReceipt) {
        self.0.lock().expect("receipts lock").push(receipt);
    }

    /// Executes a request and reports the writes it made in
    /// `extensions.writes`; the request's `traceparent` goes with its events.
    pub async fn execute<E: async_graphql::Executor>(
        executor: &E,
        request: async_graphql::Request,
        headers: &axum::http::HeaderMap,
    ) -> async_graphql::Response {
        let receipts = WriteReceipts::default();
        let request = request.data(receipts.clone()).data(TraceParent::from_headers(headers));
        let mut response = executor.execute(request).await;
        let written = WritesExtension { writes: std::mem::take(&mut *receipts.0.lock().expect("receipts lock")) };
        let serde_json::Value::Object(members) = serde_json::to_value(written).expect("receipts serialize") else {
            unreachable!("a struct serializes to an object")
        };
        for (name, value) in members {
            response.extensions.insert(name, Value::from_json(value).expect("valid JSON"));
        }
        response
    }
}
