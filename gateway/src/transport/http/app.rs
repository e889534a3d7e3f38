//! The demo app at `/app`: a small forum client (`gateway/app/`, plain ES
//! modules, no build step) and graphql-ws's browser client from its npm
//! package (copied by `build.rs`), all embedded into the binary, so the app
//! works without internet and needs nothing but the gateway.
//!
//! Every answer carries a strict Content-Security-Policy (only the gateway's
//! own origin, for scripts, styles and connections, WebSockets included),
//! `X-Content-Type-Options: nosniff` and an ETag. The page and its modules
//! are revalidated on every load (`Cache-Control: no-cache`, answered with
//! 304 while the binary is the same); the vendored client's name carries its
//! version, so it is cached for good. The `If-None-Match` check is a few
//! lines here because tower-http's `ServeDir` serves files from disk and
//! sends no ETag.

use std::sync::LazyLock;

use axum::{
    body::Body,
    extract::Path,
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Redirect, Response},
    routing::get,
    Router,
};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::digest;

const JAVASCRIPT: &str = "text/javascript; charset=utf-8";
/// Revalidate on every use: the app's own files keep their names across
/// releases.
const REVALIDATE: &str = "no-cache";
/// For a file whose name changes with its content.
const FOR_GOOD: &str = "public, max-age=31536000, immutable";

/// The vendored graphql-ws browser client, named after its version.
const GRAPHQL_WS: &str = concat!("graphql-ws-", env!("AGORA_GRAPHQL_WS_VERSION"), ".min.js");

/// A file of the app as it is served.
struct File {
    name: String,
    content_type: &'static str,
    cache_control: &'static str,
    body: Vec<u8>,
    etag: HeaderValue,
}

impl File {
    fn new(name: &str, content_type: &'static str, cache_control: &'static str, body: impl Into<Vec<u8>>) -> Self {
        let body = body.into();
        let hash = digest::digest(&digest::SHA256, &body);
        let etag = HeaderValue::try_from(format!("\"{}\"", URL_SAFE_NO_PAD.encode(&hash.as_ref()[..16])))
            .expect("base64url is a valid header value");
        File { name: name.to_owned(), content_type, cache_control, body, etag }
    }
}

/// The page (first) and the files it loads, by the name they are served under.
static FILES: LazyLock<Vec<File>> = LazyLock::new(|| {
    let page = include_str!("../../../app/index.html").replace("{{graphql-ws}}", GRAPHQL_WS);
    vec![
        File::new("index.html", "text/html; charset=utf-8", REVALIDATE, page),
        File::new("style.css", "text/css; charset=utf-8", REVALIDATE, include_str!("../../../app/style.css")),
        File::new("main.js", JAVASCRIPT, REVALIDATE, include_str!("../../../app/main.js")),
        File::new("api.js", JAVASCRIPT, REVALIDATE, include_str!("../../../app/api.js")),
        File::new("errors.js", JAVASCRIPT, REVALIDATE, include_str!("../../../app/errors.js")),
        File::new("feed.js", JAVASCRIPT, REVALIDATE, include_str!("../../../app/feed.js")),
        File::new("live.js", JAVASCRIPT, REVALIDATE, include_str!("../../../app/live.js")),
        File::new(GRAPHQL_WS, JAVASCRIPT, FOR_GOOD, include_bytes!(concat!(env!("OUT_DIR"), "/graphql-ws.min.js")).to_vec()),
    ]
});

/// `GET /app` (the page; `/app/` redirects to it, so that the page's
/// relative URLs, `app/…` and `graphql`, resolve one way) and its files
/// under `/app/`.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/app", get(page))
        .route("/app/", get(|| async { Redirect::permanent("/app") }))
        .route("/app/{name}", get(file))
}

async fn page(headers: HeaderMap) -> Response {
    serve(&FILES[0], &headers)
}

async fn file(Path(name): Path<String>, headers: HeaderMap) -> Response {
    match FILES.iter().skip(1).find(|file| file.name == name) {
        Some(file) => serve(file, &headers),
        None => {
            let message = format!("NOT_FOUND: the demo app has no file named {name:?}\n");
            let mut response =
                (StatusCode::NOT_FOUND, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], message).into_response();
            secure(&mut response, &headers);
            response
        }
    }
}

fn serve(file: &'static File, request: &HeaderMap) -> Response {
    let mut response = if already_has(request, &file.etag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, file.content_type)], Body::from(file.body.as_slice())).into_response()
    };
    let headers = response.headers_mut();
    headers.insert(header::ETAG, file.etag.clone());
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(file.cache_control));
    secure(&mut response, request);
    response
}

/// Whether `If-None-Match` names `etag` (or is `*`): the client's copy is
/// current. Weak comparison, as RFC 9110 asks for `If-None-Match`.
fn already_has(request: &HeaderMap, etag: &HeaderValue) -> bool {
    let etag = etag.to_str().expect("an ETag this module made");
    request.get_all(header::IF_NONE_MATCH).iter().filter_map(|value| value.to_str().ok()).flat_map(|value| value.split(',')).any(
        |candidate| {
            let candidate = candidate.trim();
            candidate == "*" || candidate.strip_prefix("W/").unwrap_or(candidate) == etag
        },
    )
}

/// The headers every answer of the app carries.
fn secure(response: &mut Response, request: &HeaderMap) {
    let policy =
        HeaderValue::try_from(content_security_policy(request.get(header::HOST))).expect("the policy holds only a checked host");
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, policy);
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
}

/// Only the gateway's own origin. `connect-src 'self'` does not cover
/// `ws:`/`wss:` in every browser, so the WebSocket origins of the host the
/// browser asked for are named too: a host of anything but the characters
/// of a host name, an IP address and a port is left out (it could inject
/// directives), leaving `'self'` alone.
fn content_security_policy(host: Option<&HeaderValue>) -> String {
    let host = host.and_then(|host| host.to_str().ok()).filter(|host| {
        !host.is_empty() && host.len() <= 255 && host.bytes().all(|byte| byte.is_ascii_alphanumeric() || b".-:[]".contains(&byte))
    });
    let sockets = host.map(|host| format!(" ws://{host} wss://{host}")).unwrap_or_default();
    format!(
        "default-src 'self'; connect-src 'self'{sockets}; img-src 'self' data:; object-src 'none'; \
         base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_websocket_origins_of_a_plain_host() {
        let policy = content_security_policy(Some(&HeaderValue::from_static("127.0.0.1:8080")));
        assert!(policy.contains("connect-src 'self' ws://127.0.0.1:8080 wss://127.0.0.1:8080;"), "{policy}");
    }

    #[test]
    fn leaves_out_a_host_that_would_add_directives() {
        for host in ["evil.example; script-src *", "a b", ""] {
            let policy = content_security_policy(Some(&HeaderValue::from_str(host).unwrap()));
            assert!(policy.contains("connect-src 'self';") && !policy.contains("evil"), "{host}: {policy}");
        }
        assert!(content_security_policy(None).contains("connect-src 'self';"));
    }

    #[test]
    fn matches_an_etag_in_a_list_strongly_or_weakly() {
        let etag = HeaderValue::from_static("\"abc\"");
        let asking = |value: &'static str| HeaderMap::from_iter([(header::IF_NONE_MATCH, HeaderValue::from_static(value))]);
        assert!(already_has(&asking("\"abc\""), &etag));
        assert!(already_has(&asking("\"x\", W/\"abc\""), &etag));
        assert!(already_has(&asking("*"), &etag));
        assert!(!already_has(&asking("\"abcd\""), &etag));
        assert!(!already_has(&HeaderMap::new(), &etag));
    }
}
