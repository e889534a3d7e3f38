//! Trace context: one request followed across services, through the
//! events it causes.

/// The W3C trace context of the request that caused a change, carried to
/// the event's Kafka headers so a trace can follow it across services.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TraceParent(Option<String>);

impl TraceParent {
    pub const HEADER: &'static str = "traceparent";

    /// The `traceparent` header, if it is a well-formed one.
    pub fn from_headers(headers: &axum::http::HeaderMap) -> Self {
        TraceParent::parse(headers.get(Self::HEADER).and_then(|value| value.to_str().ok()))
    }

    /// A well-formed `version-traceid-spanid-flags` value, else nothing.
    pub fn parse(value: Option<&str>) -> Self {
        let valid = |value: &&str| {
            let parts: Vec<&str> = value.split('-').collect();
            let hex = |part: &str, length: usize| {
                part.len() == length && part.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
            };
            parts.len() == 4
                && hex(parts[0], 2)
                && parts[0] != "ff"
                && hex(parts[1], 32)
                && parts[1].bytes().any(|b| b != b'0')
                && hex(parts[2], 16)
                && parts[2].bytes().any(|b| b != b'0')
                && hex(parts[3], 2)
        };
        TraceParent(value.map(str::trim).filter(valid).map(str::to_owned))
    }

    /// The trace context of a request being resolved.
    pub fn of(ctx: &async_graphql::Context<'_>) -> Self {
        ctx.data_opt::<TraceParent>().cloned().unwrap_or_default()
    }

    pub fn as_deref(&self) -> Option<&str> {
        self.0.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::TraceParent;

    #[test]
    fn keeps_a_well_formed_traceparent() {
        let value = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(TraceParent::parse(Some(value)).as_deref(), Some(value));
    }

    #[test]
    fn drops_a_malformed_traceparent() {
        for value in [
            "",
            "garbage",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        ] {
            assert_eq!(TraceParent::parse(Some(value)), TraceParent::default(), "{value}");
        }
    }
}
