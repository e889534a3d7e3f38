//! One write, one trace: a `createPost` through the gateway is followed,
//! parent to child, through post-service, its outbox, the relay, Kafka,
//! the projector and the points ledger, back to the gateway's wait for the
//! read model, as the spans reach an OTLP/HTTP receiver.

use std::collections::HashMap;

use agora_testkit::{wait_until, DEADLINE};

use crate::helpers::spawn_system;
use crate::otlp::ReceivedSpan;

/// The spans the trace of a post must hold.
const EXPECTED: [&str; 10] = [
    "POST /graphql",
    "call post-service",
    "create post",
    "outbox insert",
    "outbox publish",
    "gateway-projector apply",
    "points-ledger apply",
    "ledger award",
    "read-your-writes wait",
    "graphql_post",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_follows_a_post_from_the_request_to_the_read_model_and_the_ledger() {
    let receiver = crate::setup();
    let system = spawn_system().await;
    let ada = system.gateway.register("ada").await;
    let response = system.gateway.create_post(&ada, "Traced").await;
    assert!(response["errors"].is_null(), "{response}");

    let author = ada.id.to_string();
    // The trace of ada's post: the one whose `create post` span names her.
    let trace = || {
        let spans = receiver.spans();
        let trace_id = spans
            .iter()
            .find(|span| span.name == "create post" && span.attribute("author_id") == Some(author.as_str()))
            .map(|span| span.trace_id.clone())?;
        Some(spans.into_iter().filter(|span| span.trace_id == trace_id).collect::<Vec<_>>())
    };
    let complete = |spans: &[ReceivedSpan]| {
        EXPECTED.iter().all(|name| spans.iter().any(|span| span.name == *name))
            // The ledger's award is published and applied too.
            && spans.iter().filter(|span| span.name == "gateway-projector apply").count() >= 2
    };
    wait_until(DEADLINE, "the spans of the post's trace are exported", || async {
        agora_platform::telemetry::flush();
        trace().is_some_and(|spans| complete(&spans))
    })
    .await;
    let spans = trace().unwrap();
    let chain = Chain::new(&spans);

    // One root: the gateway's request.
    let roots: Vec<&ReceivedSpan> = spans.iter().filter(|span| span.parent_span_id.is_empty()).collect();
    assert_eq!(roots.len(), 1, "one root: {roots:#?}");
    let root = roots[0];
    assert_eq!((root.name.as_str(), root.attribute("service")), ("POST /graphql", Some("gateway")), "{root:#?}");
    for span in &spans {
        assert!(
            span.parent_span_id.is_empty() || chain.by_id.contains_key(span.parent_span_id.as_str()),
            "the parent of {} is in the trace",
            span.name
        );
    }

    // The command: the gateway calls post-service, which writes the post and its event.
    let call = chain.one("call post-service", |_| true);
    assert!(chain.descends_from(call, root));
    let served = chain.one("POST /graphql", |span| span.attribute("service") == Some("post-service"));
    assert_eq!(chain.parent(served).map(|span| span.span_id.as_str()), Some(call.span_id.as_str()));
    let command = chain.one("create post", |_| true);
    assert!(chain.descends_from(command, served));
    let insert = chain.one("outbox insert", |span| span.attribute("event_type") == Some("PostCreated"));
    assert!(chain.is_child(insert, command));
    // The relay publishes it; the projector and the ledger apply it.
    let publish = chain.one("outbox publish", |span| span.attribute("event_type") == Some("PostCreated"));
    assert!(chain.is_child(publish, insert));
    let projected = chain.one("gateway-projector apply", |span| span.attribute("event_type") == Some("PostCreated"));
    assert!(chain.is_child(projected, publish));
    let ledger = chain.one("points-ledger apply", |_| true);
    assert!(chain.is_child(ledger, publish));
    let award = chain.one("ledger award", |_| true);
    assert!(chain.is_child(award, ledger));
    // The award's own event goes the same way, in the same trace.
    let awarded = chain.one("outbox insert", |span| span.attribute("event_type") == Some("PointsAwarded"));
    assert!(chain.is_child(awarded, award));
    let points = chain.one("gateway-projector apply", |span| span.attribute("event_type") == Some("PointsAwarded"));
    assert!(chain.descends_from(points, awarded));
    // And the gateway waited for its read model within the request.
    let wait = chain.one("read-your-writes wait", |_| true);
    assert!(chain.descends_from(wait, root));
}

/// The spans of one trace, by id.
struct Chain<'s> {
    spans: &'s [ReceivedSpan],
    by_id: HashMap<&'s str, &'s ReceivedSpan>,
}

impl<'s> Chain<'s> {
    fn new(spans: &'s [ReceivedSpan]) -> Self {
        Chain { spans, by_id: spans.iter().map(|span| (span.span_id.as_str(), span)).collect() }
    }

    /// The one span named `name` that `matches`.
    fn one(&self, name: &str, matches: impl Fn(&ReceivedSpan) -> bool) -> &'s ReceivedSpan {
        let found: Vec<&ReceivedSpan> = self.spans.iter().filter(|span| span.name == name && matches(span)).collect();
        assert_eq!(found.len(), 1, "one {name} span: {found:#?}");
        found[0]
    }

    fn parent(&self, span: &ReceivedSpan) -> Option<&'s ReceivedSpan> {
        self.by_id.get(span.parent_span_id.as_str()).copied()
    }

    fn is_child(&self, span: &ReceivedSpan, parent: &ReceivedSpan) -> bool {
        span.parent_span_id == parent.span_id
    }

    fn descends_from(&self, span: &ReceivedSpan, ancestor: &ReceivedSpan) -> bool {
        let mut current = self.parent(span);
        while let Some(parent) = current {
            if parent.span_id == ancestor.span_id {
                return true;
            }
            current = self.parent(parent);
        }
        false
    }
}
