//! A GraphQL-over-HTTP call that treats a 200 with errors as the failure it is.

use std::time::Duration;

use anyhow::{bail, Context};
use serde_json::{json, Value};

pub fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(30)).pool_max_idle_per_host(1024).build().expect("an HTTP client")
}

/// POSTs `query` with `variables` and returns the whole response body
/// (`data` and `extensions`); any GraphQL error or non-200 is an error.
pub async fn call(
    client: &reqwest::Client,
    url: &str,
    query: &str,
    variables: Value,
    headers: &[(String, String)],
) -> anyhow::Result<Value> {
    let mut request =
        client.post(url).header("content-type", "application/json").json(&json!({ "query": query, "variables": variables }));
    for (name, value) in headers {
        request = request.header(name, value);
    }
    let response = request.send().await.with_context(|| format!("POST {url}"))?;
    let status = response.status();
    let text = response.text().await?;
    if !status.is_success() {
        bail!("{url} answered {status}: {}", truncate(&text));
    }
    let body: Value = serde_json::from_str(&text).with_context(|| format!("{url} answered no JSON: {}", truncate(&text)))?;
    if let Some(errors) = body.get("errors").filter(|errors| !errors.is_null()) {
        bail!("{url} answered 200 with GraphQL errors: {}", truncate(&errors.to_string()));
    }
    if body.get("data").is_none_or(Value::is_null) {
        bail!("{url} answered without data: {}", truncate(&text));
    }
    Ok(body)
}

pub fn truncate(text: &str) -> String {
    if text.len() > 400 {
        format!("{}…", &text[..text.char_indices().take_while(|(i, _)| *i < 400).last().map_or(0, |(i, _)| i)])
    } else {
        text.to_owned()
    }
}
