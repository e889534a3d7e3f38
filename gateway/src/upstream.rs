//! Calls to the services' subgraphs over HTTP: one pooled client with
//! timeouts, the caller's token and address forwarded, errors kept with
//! their codes, and every call counted for `extensions.upstreamRequests`.
//! Identical queries in flight at the same moment (same service, document,
//! variables and token) are sent once and their answer shared, as federation
//! routers do; commands are always sent.
//!
//! Both the composition strategy's queries and the commands go through
//! here. Uses only `records`.

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::{BoxFuture, FutureExt, Shared};

use agora_platform::errors::ErrorCode;
use agora_platform::trace_context::TraceParent;
use agora_schema::receipts::{WriteReceipt, WritesExtension};
use async_graphql::ErrorExtensions;
use serde::Deserialize;
use serde_json::Value;
use tracing::Instrument;

use crate::records::RoundTrips;

/// The services the gateway talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Service {
    Auth,
    Post,
}

impl std::fmt::Display for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Service::Auth => "auth-service",
            Service::Post => "post-service",
        })
    }
}

/// Who the gateway is calling on behalf of.
#[derive(Debug, Clone, Default)]
pub struct Forwarded {
    pub authorization: Option<String>,
    pub client_address: Option<IpAddr>,
    /// The client's W3C trace context, continued by the services' events.
    pub traceparent: Option<String>,
    /// The client's `Idempotency-Key` header, as sent; each command derives
    /// its own key from it.
    pub idempotency_key: Option<String>,
}

/// A service's successful answer: its data and the writes it reports.
#[derive(Debug)]
pub struct ServiceAnswer {
    pub data: Value,
    pub writes: Vec<WriteReceipt>,
    /// Field errors that came with the data (a partial answer).
    pub errors: Vec<UpstreamGraphqlError>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct UpstreamGraphqlError {
    pub message: String,
    #[serde(default)]
    pub path: Vec<Value>,
    #[serde(default)]
    pub extensions: Option<Value>,
}

impl UpstreamGraphqlError {
    pub fn code(&self) -> Option<&str> {
        self.extensions.as_ref()?.get("code")?.as_str()
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum UpstreamError {
    #[error("{0} is unavailable")]
    Unavailable(Service),
    #[error("{0} did not answer in time")]
    Timeout(Service),
    /// The service refused the operation; its message and code are kept.
    #[error("{}", .0.message)]
    Refused(UpstreamGraphqlError),
}

impl ErrorExtensions for UpstreamError {
    fn extend(&self) -> async_graphql::Error {
        match self {
            UpstreamError::Unavailable(_) => ErrorCode::UpstreamUnavailable.error(self.to_string()),
            UpstreamError::Timeout(_) => ErrorCode::Timeout.error(self.to_string()),
            UpstreamError::Refused(error) => {
                let mut extended = async_graphql::Error::new(error.message.clone());
                let extensions = error.extensions.clone().and_then(|value| async_graphql::Value::from_json(value).ok());
                if let Some(async_graphql::Value::Object(map)) = extensions {
                    extended = extended.extend_with(|_, out| {
                        for (key, value) in map {
                            out.set(key.as_str(), value);
                        }
                    });
                }
                if error.code().is_none() {
                    extended = extended.extend_with(|_, out| out.set("code", ErrorCode::Internal.as_str()));
                }
                extended
            }
        }
    }
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(default)]
    data: Value,
    #[serde(default)]
    errors: Vec<UpstreamGraphqlError>,
    #[serde(default)]
    extensions: Option<WritesExtension>,
}

/// One query in flight, awaited by every request that asked for it.
type SharedCall = Shared<BoxFuture<'static, Result<Arc<ServiceAnswer>, UpstreamError>>>;

/// What makes two queries the same call.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct CallKey {
    service: Service,
    body: Vec<u8>,
    authorization: Option<String>,
}

/// The services' GraphQL endpoints and the client that calls them.
pub struct Upstream {
    http: reqwest::Client,
    auth_url: String,
    post_url: String,
    in_flight: Arc<Mutex<HashMap<CallKey, SharedCall>>>,
}

impl Upstream {
    pub fn new(auth_url: String, post_url: String, timeout: Duration) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(1).min(timeout))
            .timeout(timeout)
            .pool_max_idle_per_host(64)
            .tcp_nodelay(true)
            .build()?;
        Ok(Upstream { http, auth_url, post_url, in_flight: Arc::default() })
    }

    /// Sends one GraphQL command to `service`, with its own idempotency key
    /// if it has one. A request-level failure or an answer without data is
    /// an error; field errors beside data are returned with it.
    pub async fn call(
        &self,
        service: Service,
        query: &str,
        variables: Value,
        forwarded: &Forwarded,
        counter: &RoundTrips,
        idempotency_key: Option<&str>,
    ) -> Result<ServiceAnswer, UpstreamError> {
        counter.increment();
        let forwarded = Forwarded { idempotency_key: idempotency_key.map(str::to_owned), ..forwarded.clone() };
        self.send(service, body(query, variables), &forwarded).await
    }

    /// Sends one GraphQL query to `service`, or joins the same query already
    /// in flight. Errors as for [`Upstream::call`].
    pub async fn query(
        &self,
        service: Service,
        query: &str,
        variables: Value,
        forwarded: &Forwarded,
        counter: &RoundTrips,
    ) -> Result<Arc<ServiceAnswer>, UpstreamError> {
        counter.increment();
        let key = CallKey { service, body: body(query, variables), authorization: forwarded.authorization.clone() };
        let call = {
            let mut in_flight = self.in_flight.lock().expect("in-flight calls lock");
            match in_flight.get(&key) {
                Some(call) => {
                    metrics::counter!("agora_gateway_upstream_requests_shared_total", "service" => service.to_string())
                        .increment(1);
                    call.clone()
                }
                None => {
                    let registry = self.in_flight.clone();
                    // A query has no effect: the client's idempotency key stays with its commands.
                    let forwarded = Forwarded { idempotency_key: None, ..forwarded.clone() };
                    let sending = self.send(service, key.body.clone(), &forwarded);
                    let own_key = key.clone();
                    let call = async move {
                        let answer = sending.await.map(Arc::new);
                        registry.lock().expect("in-flight calls lock").remove(&own_key);
                        answer
                    }
                    .boxed()
                    .shared();
                    in_flight.insert(key, call.clone());
                    // Runs to the end (and leaves the registry) even if every
                    // request that awaits it is cancelled.
                    tokio::spawn(call.clone());
                    call
                }
            }
        };
        call.await
    }

    /// The HTTP request for a call, made now and sent when awaited.
    fn send(
        &self,
        service: Service,
        body: Vec<u8>,
        forwarded: &Forwarded,
    ) -> impl Future<Output = Result<ServiceAnswer, UpstreamError>> + Send + 'static {
        let url = match service {
            Service::Auth => &self.auth_url,
            Service::Post => &self.post_url,
        };
        // The service continues this call's span (or, when traces are not
        // exported, the client's trace context as it came).
        let span = tracing::info_span!("upstream", otel.name = format!("call {service}"), otel.kind = "client", %service);
        let traceparent = TraceParent::of_span(&span).or(&TraceParent::parse(forwarded.traceparent.as_deref()));
        let mut request = self.http.post(url).header(reqwest::header::CONTENT_TYPE, "application/json").body(body);
        if let Some(authorization) = &forwarded.authorization {
            request = request.header(reqwest::header::AUTHORIZATION, authorization);
        }
        if let Some(traceparent) = traceparent.as_deref() {
            request = request.header(TraceParent::HEADER, traceparent);
        }
        if let Some(address) = forwarded.client_address {
            request = request.header("x-forwarded-for", address.to_string());
        }
        if let Some(key) = &forwarded.idempotency_key {
            request = request.header(agora_platform::idempotency::HEADER, key);
        }
        async move {
            metrics::counter!("agora_gateway_upstream_requests_total", "service" => service.to_string()).increment(1);
            let started = std::time::Instant::now();
            let answer = Self::exchange(service, request).await;
            metrics::histogram!("agora_gateway_upstream_duration_seconds", "service" => service.to_string())
                .record(started.elapsed().as_secs_f64());
            answer
        }
        .instrument(span)
    }

    /// Sends `request` and reads the service's answer.
    async fn exchange(service: Service, request: reqwest::RequestBuilder) -> Result<ServiceAnswer, UpstreamError> {
        let classify = |error: reqwest::Error| {
            tracing::warn!(%service, %error, "upstream call failed");
            if error.is_timeout() {
                UpstreamError::Timeout(service)
            } else {
                UpstreamError::Unavailable(service)
            }
        };
        let response = request.send().await.map_err(classify)?;
        let status = response.status();
        if !status.is_success() {
            tracing::warn!(%service, %status, "upstream answered with an HTTP error");
            // A GraphQL error with a code (UNAVAILABLE: its database is
            // away) is the service's own answer: relayed with its code.
            let refusal = response.json::<Envelope>().await.ok().and_then(|envelope| envelope.errors.into_iter().next());
            return Err(match refusal {
                Some(error) if error.code().is_some() => UpstreamError::Refused(error),
                _ => UpstreamError::Unavailable(service),
            });
        }
        let envelope: Envelope = response.json().await.map_err(classify)?;
        if envelope.data.is_null() {
            let error = envelope.errors.into_iter().next().unwrap_or(UpstreamGraphqlError {
                message: format!("{service} answered without data"),
                path: Vec::new(),
                extensions: None,
            });
            return Err(UpstreamError::Refused(error));
        }
        Ok(ServiceAnswer {
            data: envelope.data,
            writes: envelope.extensions.map(|extensions| extensions.writes).unwrap_or_default(),
            errors: envelope.errors,
        })
    }
}

/// The JSON body of a GraphQL request.
fn body(query: &str, variables: Value) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({ "query": query, "variables": variables })).expect("a JSON value serializes")
}
