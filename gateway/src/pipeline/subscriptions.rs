//! Shared executions: the subscribers of one operation (the same document,
//! operation name and variables) share one execution of it.
//!
//! Each event is then resolved and serialized once per distinct operation,
//! not once per subscriber, and the serialized result goes to the
//! operation's subscribers through a bounded buffer of its own: one that
//! falls behind is told so and dropped, as with the feed itself. A shared
//! execution lives as long as it has subscribers; one who joins it receives
//! every result from then on (and maybe that of an event the execution was
//! still resolving when it joined).
//!
//! Subscription results do not depend on who asks, and a shared execution
//! runs as an anonymous caller, so nothing meant for one caller can reach
//! another.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use agora_platform::query_limits::{Checked, QueryLimiter};
use async_graphql::parser::types::OperationType;
use async_graphql::{ServerError, Variables};
use futures::stream::BoxStream;
use futures::{FutureExt, StreamExt};
use serde_json::value::RawValue;
use tokio::sync::broadcast;

use super::{resume, TokenKey};
use crate::api::document::operation_type;
use crate::api::subscription::LastPosition;
use crate::api::{GatewaySchema, RequestContext};
use crate::live::SlowSubscriber;

/// One result of an operation, serialized once for all who receive it.
#[derive(Debug)]
pub enum Outcome {
    /// A result (`data`, maybe with field errors), as JSON.
    Next(Box<RawValue>),
    /// The operation failed as a whole: these errors end it.
    Failed(Vec<ServerError>),
    /// The shared execution fell this many events behind the feed: its
    /// subscribers missed them.
    FellBehind(u64),
}

impl Outcome {
    pub fn of(response: &async_graphql::Response) -> Self {
        if response.data == async_graphql::Value::Null && !response.errors.is_empty() {
            Outcome::Failed(response.errors.clone())
        } else {
            Outcome::Next(serde_json::value::to_raw_value(response).expect("a GraphQL response serializes"))
        }
    }
}

/// What makes two subscriptions the same operation.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OperationKey {
    query: String,
    operation_name: Option<String>,
    /// The variables as JSON (their names in order).
    variables: String,
}

impl OperationKey {
    /// The key of `request` if it is a subscription, which can be shared;
    /// queries, mutations and documents that do not parse are not.
    pub fn of_subscription(request: &async_graphql::Request) -> Option<Self> {
        let document = async_graphql::parser::parse_query(&request.query).ok()?;
        if operation_type(&document, request.operation_name.as_deref()) != Some(OperationType::Subscription) {
            return None;
        }
        Some(OperationKey {
            query: request.query.clone(),
            operation_name: request.operation_name.clone(),
            variables: serde_json::to_string(&request.variables).ok()?,
        })
    }

    /// The request that stands for every subscriber of the operation.
    fn request(&self) -> async_graphql::Request {
        let variables = serde_json::from_str(&self.variables).unwrap_or_else(|_| Variables::default());
        let mut request = async_graphql::Request::new(self.query.as_str()).variables(variables);
        request.operation_name = self.operation_name.clone();
        request
    }
}

type Results = broadcast::Sender<Arc<Outcome>>;

/// The most results an operation buffers for its slowest subscriber. The
/// buffer is allocated whole (about 40 bytes a result) for every running
/// operation, and there may be one per subscriber (filters by user id): it
/// absorbs a burst, a subscriber further behind is dropped.
const MAX_OPERATION_BUFFER: usize = 128;

/// The shared executions of one gateway process, by operation.
#[derive(Clone)]
pub struct SharedOperations {
    running: Arc<Mutex<HashMap<OperationKey, Results>>>,
    /// How many results a subscriber may fall behind before it is dropped.
    capacity: usize,
    /// Signs the results' resume cursors.
    key: TokenKey,
}

impl SharedOperations {
    /// Operations whose subscribers may fall `capacity` results behind (at
    /// most [`MAX_OPERATION_BUFFER`]).
    /// Their results' resume cursors are signed with `key`.
    pub fn new(capacity: usize, key: TokenKey) -> Self {
        SharedOperations { running: Arc::default(), capacity: capacity.clamp(1, MAX_OPERATION_BUFFER), key }
    }

    fn running(&self) -> MutexGuard<'_, HashMap<OperationKey, Results>> {
        // Nothing panics while the lock is held with the map half-changed.
        self.running.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The results of `key` for one subscriber, from now on: it joins the
    /// running execution, or starts it with `context`. A falling-behind
    /// subscriber is told through `slow`.
    ///
    /// What the operation asks is checked against `limiter` before the lock
    /// is taken: no document is measured (or refused) while every other
    /// subscribe waits.
    pub fn join(
        &self,
        schema: &GatewaySchema,
        limiter: &QueryLimiter,
        key: OperationKey,
        context: impl FnOnce() -> RequestContext,
        slow: SlowSubscriber,
    ) -> BoxStream<'static, Arc<Outcome>> {
        let mut request = key.request();
        let request = match limiter.check(&mut request) {
            Ok(measured) => request.data(Checked(measured)),
            Err(refusal) => return futures::stream::iter([Arc::new(Outcome::Failed(vec![refusal.into_server_error()]))]).boxed(),
        };
        let mut running = self.running();
        if let Some(results) = running.get(&key) {
            return subscriber(results.subscribe(), slow);
        }
        let execution_slow = SlowSubscriber::default();
        let mut execution = execute_with_cursors(schema, request.data(context()).data(execution_slow.clone()), self.key.clone());
        // The first poll runs the subscription's resolver, which joins the
        // feed. A result right away is an error of this request alone.
        if let Some(first) = execution.next().now_or_never() {
            return futures::stream::iter(first).chain(execution).map(|response| Arc::new(Outcome::of(&response))).boxed();
        }
        let (results, receiver) = broadcast::channel(self.capacity);
        running.insert(key.clone(), results.clone());
        drop(running);
        metrics::gauge!("agora_live_shared_operations").increment(1.0);
        tokio::spawn(self.clone().run(key, execution, results, execution_slow));
        subscriber(receiver, slow)
    }

    /// Executes one operation for its subscribers until it ends or none is left.
    async fn run(
        self,
        key: OperationKey,
        mut execution: BoxStream<'static, async_graphql::Response>,
        results: Results,
        slow: SlowSubscriber,
    ) {
        loop {
            tokio::select! {
                response = execution.next() => match response {
                    Some(response) => {
                        let _ = results.send(Arc::new(Outcome::of(&response)));
                    }
                    None => {
                        self.running().remove(&key);
                        if let Some(missed) = slow.missed() {
                            let _ = results.send(Arc::new(Outcome::FellBehind(missed)));
                        }
                        break; // Dropping `results` completes the subscribers' streams.
                    }
                },
                _ = results.closed() => {
                    // A subscriber may have joined since; joining takes the lock too.
                    let mut running = self.running();
                    if results.receiver_count() == 0 {
                        running.remove(&key);
                        break;
                    }
                }
            }
        }
        metrics::gauge!("agora_live_shared_operations").decrement(1.0);
    }
}

/// The execution of `request`, its results carrying their resume cursors
/// ([`resume::CURSOR_EXTENSION`]) signed with `key`.
pub fn execute_with_cursors(
    schema: &GatewaySchema,
    request: async_graphql::Request,
    key: TokenKey,
) -> BoxStream<'static, async_graphql::Response> {
    let last = LastPosition::default();
    schema
        .execute_stream(request.data(last.clone()))
        .map(move |mut response| {
            resume::annotate(&mut response, &last, &key);
            response
        })
        .boxed()
}

/// One subscriber's view of a shared execution. Falling behind it (or it
/// falling behind the feed) is told through `slow`, and the stream then
/// waits for the connection to close with 1008.
fn subscriber(receiver: broadcast::Receiver<Arc<Outcome>>, slow: SlowSubscriber) -> BoxStream<'static, Arc<Outcome>> {
    futures::stream::unfold((receiver, slow), |(mut receiver, slow)| async move {
        let missed = match receiver.recv().await {
            Ok(outcome) => match *outcome {
                Outcome::FellBehind(missed) => missed,
                _ => return Some((outcome, (receiver, slow))),
            },
            Err(broadcast::error::RecvError::Lagged(missed)) => missed,
            Err(broadcast::error::RecvError::Closed) => return None,
        };
        slow.fell_behind(missed);
        std::future::pending().await
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(query: &str) -> async_graphql::Request {
        async_graphql::Request::new(query)
    }

    #[test]
    fn only_subscriptions_are_shared() {
        assert!(OperationKey::of_subscription(&request("subscription { postCreated { id } }")).is_some());
        assert!(OperationKey::of_subscription(&request("{ posts { nodes { id } } }")).is_none());
        assert!(OperationKey::of_subscription(&request("subscription {")).is_none());
        let two = "query A { posts { nodes { id } } } subscription B { postCreated { id } }";
        assert!(OperationKey::of_subscription(&request(two).operation_name("B")).is_some());
        assert!(OperationKey::of_subscription(&request(two).operation_name("A")).is_none());
        assert!(OperationKey::of_subscription(&request(two)).is_none());
    }

    #[test]
    fn subscriptions_with_other_variables_are_other_operations() {
        let query = "subscription($id: ID) { postCreated(authorId: $id) { id } }";
        let with = |id: &str| {
            let variables = Variables::from_json(serde_json::json!({ "id": id }));
            OperationKey::of_subscription(&request(query).variables(variables)).unwrap()
        };
        assert_eq!(with("a"), with("a"));
        assert_ne!(with("a"), with("b"));
    }

    #[test]
    fn an_operation_is_executed_with_its_variables() {
        let variables = Variables::from_json(serde_json::json!({ "id": "a" }));
        let key = OperationKey::of_subscription(&request("subscription { postCreated { id } }").variables(variables.clone()));
        assert_eq!(key.unwrap().request().variables, variables);
    }

    #[test]
    fn a_failed_operation_keeps_its_errors_and_a_result_becomes_json() {
        let failed = async_graphql::Response::from_errors(vec![ServerError::new("no", None)]);
        assert!(matches!(Outcome::of(&failed), Outcome::Failed(errors) if errors.len() == 1));
        let data = async_graphql::Response::new(async_graphql::Value::from_json(serde_json::json!({ "a": 1 })).unwrap());
        assert!(matches!(Outcome::of(&data), Outcome::Next(json) if json.get() == r#"{"data":{"a":1}}"#));
    }
}
