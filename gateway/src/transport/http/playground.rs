//! The GraphiQL playground, served entirely by the gateway: the page and its
//! scripts and styles (from the npm packages pinned in `package-lock.json`,
//! embedded at build time by `build.rs`), so it works without internet.

use std::sync::LazyLock;

use axum::{
    extract::Path,
    http::{header, HeaderValue, StatusCode},
    response::{Html, IntoResponse, Response},
    routing::get,
    Router,
};

/// A file the page loads. Its name carries the package version, so a
/// browser may cache it for good.
struct Asset {
    /// Where `playground.html` refers to it.
    placeholder: &'static str,
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

const JAVASCRIPT: &str = "text/javascript; charset=utf-8";

static ASSETS: [Asset; 4] = [
    Asset {
        placeholder: "{{react}}",
        name: concat!("react-", env!("AGORA_REACT_VERSION"), ".production.min.js"),
        content_type: JAVASCRIPT,
        bytes: include_bytes!(concat!(env!("OUT_DIR"), "/react.production.min.js")),
    },
    Asset {
        placeholder: "{{react-dom}}",
        name: concat!("react-dom-", env!("AGORA_REACT_DOM_VERSION"), ".production.min.js"),
        content_type: JAVASCRIPT,
        bytes: include_bytes!(concat!(env!("OUT_DIR"), "/react-dom.production.min.js")),
    },
    Asset {
        placeholder: "{{graphiql.js}}",
        name: concat!("graphiql-", env!("AGORA_GRAPHIQL_VERSION"), ".min.js"),
        content_type: JAVASCRIPT,
        bytes: include_bytes!(concat!(env!("OUT_DIR"), "/graphiql.min.js")),
    },
    Asset {
        placeholder: "{{graphiql.css}}",
        name: concat!("graphiql-", env!("AGORA_GRAPHIQL_VERSION"), ".min.css"),
        content_type: "text/css; charset=utf-8",
        bytes: include_bytes!(concat!(env!("OUT_DIR"), "/graphiql.min.css")),
    },
];

const PAGE_TEMPLATE: &str = include_str!("playground.html");

/// The page, with asset URLs relative to it: it is served at `/` and at
/// `/graphql`, and both resolve `playground/…` and `graphql` the same way.
static PAGE: LazyLock<String> = LazyLock::new(|| {
    ASSETS
        .iter()
        .fold(PAGE_TEMPLATE.to_owned(), |page, asset| page.replace(asset.placeholder, &format!("playground/{}", asset.name)))
});

/// `GET /` and the playground's assets under `/playground/`.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new().route("/", get(serve_page)).route("/playground/{name}", get(asset))
}

/// The GraphiQL page.
pub fn page() -> Response {
    ([(header::CACHE_CONTROL, "no-cache")], Html(PAGE.as_str())).into_response()
}

async fn serve_page() -> Response {
    page()
}

async fn asset(Path(name): Path<String>) -> Response {
    match ASSETS.iter().find(|asset| asset.name == name) {
        Some(asset) => (
            [
                (header::CONTENT_TYPE, HeaderValue::from_static(asset.content_type)),
                (header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=31536000, immutable")),
                (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
            ],
            asset.bytes,
        )
            .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}
