//! A failed call to a service, as the client sees it on the affected fields.

use agora_platform::errors::ErrorCode;

use crate::sources::SourceError;
use crate::upstream::UpstreamError;

impl From<UpstreamError> for SourceError {
    fn from(error: UpstreamError) -> Self {
        let code = match &error {
            UpstreamError::Unavailable(_) => ErrorCode::UpstreamUnavailable,
            UpstreamError::Timeout(_) => ErrorCode::Timeout,
            UpstreamError::Refused(refused) => match refused.code().and_then(passed_through) {
                Some(code) => code,
                None => {
                    return SourceError::internal(format!(
                        "a service refused a query of the gateway's: {error} ({:?})",
                        refused.code()
                    ))
                }
            },
        };
        SourceError { code, message: error.to_string() }
    }
}

/// The codes of a service's refusal that still mean the same to the
/// client. The gateway wrote the query itself, so any other refusal (a bad
/// input, a query too complex, an internal error) is the gateway's fault or
/// the service's, never the client's: INTERNAL.
fn passed_through(code: &str) -> Option<ErrorCode> {
    match code {
        "UPSTREAM_UNAVAILABLE" => Some(ErrorCode::UpstreamUnavailable),
        // The service's database is away: retryable, as for the service itself.
        "UNAVAILABLE" => Some(ErrorCode::Unavailable),
        "TIMEOUT" => Some(ErrorCode::Timeout),
        "RATE_LIMITED" => Some(ErrorCode::RateLimited),
        "UNAUTHENTICATED" => Some(ErrorCode::Unauthenticated),
        "FORBIDDEN" => Some(ErrorCode::Forbidden),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::{Service, UpstreamGraphqlError};

    fn refusal(code: &str) -> UpstreamError {
        UpstreamError::Refused(UpstreamGraphqlError {
            message: "no".into(),
            path: Vec::new(),
            extensions: Some(serde_json::json!({ "code": code })),
        })
    }

    #[test]
    fn a_service_that_is_down_or_slow_keeps_its_code() {
        assert_eq!(SourceError::from(UpstreamError::Unavailable(Service::Auth)).code, ErrorCode::UpstreamUnavailable);
        assert_eq!(SourceError::from(UpstreamError::Timeout(Service::Post)).code, ErrorCode::Timeout);
        assert_eq!(SourceError::from(refusal("RATE_LIMITED")).code, ErrorCode::RateLimited);
        assert_eq!(SourceError::from(refusal("UNAVAILABLE")).code, ErrorCode::Unavailable);
    }

    #[test]
    fn a_refusal_of_the_gateways_own_query_is_internal() {
        assert_eq!(SourceError::from(refusal("BAD_USER_INPUT")).code, ErrorCode::Internal);
        assert_eq!(SourceError::from(refusal("INTERNAL")).code, ErrorCode::Internal);
    }
}
