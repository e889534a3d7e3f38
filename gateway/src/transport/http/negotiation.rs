//! Content negotiation by `Accept`: which of the two GraphQL response media
//! types a client gets, and whether a browser is asking for a page.
//!
//! A missing `Accept` and wildcards mean `application/json`, which legacy
//! clients understand; `application/graphql-response+json` is chosen only when
//! the client names it (GraphQL over HTTP, "Accept" and "Legacy watershed").

use axum::http::{header, HeaderMap, HeaderValue};

/// The media type of a GraphQL response body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResponseMediaType {
    /// `application/graphql-response+json`: HTTP status codes follow the
    /// GraphQL outcome (4xx when a request error leaves no `data`).
    GraphQlResponseJson,
    /// `application/json`: 200 for every well-formed GraphQL request.
    Json,
}

impl ResponseMediaType {
    const GRAPHQL_RESPONSE_JSON: &'static str = "application/graphql-response+json";
    const JSON: &'static str = "application/json";

    /// The `Content-Type` to answer with.
    pub fn content_type(self) -> HeaderValue {
        HeaderValue::from_static(match self {
            Self::GraphQlResponseJson => "application/graphql-response+json; charset=utf-8",
            Self::Json => "application/json; charset=utf-8",
        })
    }

    fn essence(self) -> &'static str {
        match self {
            Self::GraphQlResponseJson => Self::GRAPHQL_RESPONSE_JSON,
            Self::Json => Self::JSON,
        }
    }
}

/// The client accepts none of the GraphQL response media types.
#[derive(Debug, PartialEq, Eq)]
pub struct NotAcceptable;

/// Chooses the response media type from the request's `Accept` header(s).
pub fn negotiate(headers: &HeaderMap) -> Result<ResponseMediaType, NotAcceptable> {
    let ranges = media_ranges(headers);
    if ranges.is_empty() {
        return Ok(ResponseMediaType::Json);
    }
    [ResponseMediaType::GraphQlResponseJson, ResponseMediaType::Json]
        .into_iter()
        .filter_map(|candidate| {
            let (quality, specificity) = best_match(&ranges, candidate.essence())?;
            // On a tie, a type the client named beats one it only reached by
            // wildcard; among wildcard matches, application/json wins.
            let preference = match (candidate, specificity) {
                (ResponseMediaType::GraphQlResponseJson, 2) | (ResponseMediaType::Json, 0 | 1) => 1,
                _ => 0,
            };
            Some(((quality, specificity, preference), candidate))
        })
        .filter(|((quality, _, _), _)| *quality > 0)
        .max_by_key(|(rank, _)| *rank)
        .map(|(_, candidate)| candidate)
        .ok_or(NotAcceptable)
}

/// Whether the client names `text/html` (a browser navigating to the URL).
/// Wildcards do not count: `curl` and GraphQL clients send `*/*`.
pub fn accepts_html(headers: &HeaderMap) -> bool {
    media_ranges(headers).iter().any(|range| range.essence == "text/html" && range.quality > 0)
}

struct MediaRange {
    /// `type/subtype`, lowercase.
    essence: String,
    /// The `q` parameter in thousandths (so that it orders as an integer).
    quality: u16,
}

fn media_ranges(headers: &HeaderMap) -> Vec<MediaRange> {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(parse_media_range)
        .collect()
}

fn parse_media_range(text: &str) -> Option<MediaRange> {
    let mut parts = text.split(';');
    let essence = parts.next()?.trim().to_ascii_lowercase();
    if essence.is_empty() || !essence.contains('/') {
        return None;
    }
    let mut quality = 1000;
    for parameter in parts {
        if let Some((name, value)) = parameter.split_once('=') {
            if name.trim().eq_ignore_ascii_case("q") {
                let value: f32 = value.trim().parse().ok()?;
                quality = (value.clamp(0.0, 1.0) * 1000.0).round() as u16;
            }
        }
    }
    Some(MediaRange { essence, quality })
}

/// The quality and specificity (2 exact, 1 `type/*`, 0 `*/*`) of the most
/// specific range that matches `essence`, as RFC 9110 section 12.5.1 orders them.
fn best_match(ranges: &[MediaRange], essence: &str) -> Option<(u16, u8)> {
    let (main_type, _) = essence.split_once('/')?;
    ranges
        .iter()
        .filter_map(|range| {
            let specificity = match range.essence.split_once('/')? {
                _ if range.essence == essence => 2,
                (range_type, "*") if range_type == main_type => 1,
                ("*", "*") => 0,
                _ => return None,
            };
            Some((specificity, range.quality))
        })
        .max_by_key(|(specificity, _)| *specificity)
        .map(|(specificity, quality)| (quality, specificity))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn a_missing_accept_means_json() {
        assert_eq!(negotiate(&HeaderMap::new()), Ok(ResponseMediaType::Json));
    }

    #[test]
    fn wildcards_mean_json() {
        assert_eq!(negotiate(&accept("*/*")), Ok(ResponseMediaType::Json));
        assert_eq!(negotiate(&accept("application/*")), Ok(ResponseMediaType::Json));
    }

    #[test]
    fn graphql_response_json_is_chosen_when_named() {
        assert_eq!(negotiate(&accept("application/graphql-response+json")), Ok(ResponseMediaType::GraphQlResponseJson));
        assert_eq!(
            negotiate(&accept("application/graphql-response+json, application/json;q=0.9")),
            Ok(ResponseMediaType::GraphQlResponseJson)
        );
        assert_eq!(
            negotiate(&accept("application/json, application/graphql-response+json")),
            Ok(ResponseMediaType::GraphQlResponseJson)
        );
        assert_eq!(
            negotiate(&accept("application/graphql-response+json, */*;q=0.1")),
            Ok(ResponseMediaType::GraphQlResponseJson)
        );
    }

    #[test]
    fn quality_values_are_honoured() {
        assert_eq!(negotiate(&accept("application/graphql-response+json;q=0.5, application/json")), Ok(ResponseMediaType::Json));
        assert_eq!(negotiate(&accept("application/json;q=0, */*")), Ok(ResponseMediaType::GraphQlResponseJson));
    }

    #[test]
    fn charset_parameters_do_not_matter() {
        assert_eq!(negotiate(&accept("application/json; charset=utf-8")), Ok(ResponseMediaType::Json));
    }

    #[test]
    fn other_media_types_are_not_acceptable() {
        assert_eq!(negotiate(&accept("text/html")), Err(NotAcceptable));
        assert_eq!(negotiate(&accept("application/xml, text/*")), Err(NotAcceptable));
        assert_eq!(negotiate(&accept("application/json;q=0")), Err(NotAcceptable));
    }

    #[test]
    fn a_browser_navigation_asks_for_html_but_still_accepts_json() {
        let browser = accept("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8");
        assert!(accepts_html(&browser));
        assert_eq!(negotiate(&browser), Ok(ResponseMediaType::Json));
        assert!(!accepts_html(&accept("*/*")));
        assert!(!accepts_html(&HeaderMap::new()));
    }
}
