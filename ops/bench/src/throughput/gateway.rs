//! The gateway's own rows: the read-model strategy with each executor
//! (the compiled plan by default, async-graphql's resolvers with
//! `x-query-executor: resolvers`), each with its response cache and without
//! (`cache-control: no-cache`); composition; and two ways real clients
//! read: logged in (a user's bearer token on every request) and as a
//! persisted query over GET (Apollo's APQ, the document named by its hash).

use anyhow::{bail, Context};
use serde_json::{json, Value};

use super::measure::{check_page, measure, measure_request, validate, Query, Series, Settings, Target};
use crate::load::Request;
use crate::system::System;

/// The header that picks the read model's executor.
pub const EXECUTOR_HEADER: &str = "x-query-executor";

/// One of the gateway's rows: where it sends, and which executor its
/// answers should report (`None`: composition, which has none).
struct Row<'a> {
    target: Target<'a>,
    executor: Option<&'static str>,
}

fn header(name: &str, value: &str) -> (String, String) {
    (name.to_owned(), value.to_owned())
}

/// The read model's answers to every query: the data every other row is
/// compared with.
pub async fn reference(system: &System) -> anyhow::Result<Vec<Value>> {
    let client = crate::gql::client();
    let read_model = Target { key: "read-model", label: "read-model", url: system.gateway_graphql(), headers: vec![] };
    let mut reference = Vec::new();
    for query in Query::ALL {
        reference.push(validate(&client, &read_model, query).await?.0);
    }
    Ok(reference)
}

/// Both executors with and without the response cache, then composition,
/// each for every query.
pub async fn strategies(
    system: &System,
    settings: &Settings,
    reference: &[Value],
    notes: &mut Vec<String>,
) -> anyhow::Result<Vec<Series>> {
    let client = crate::gql::client();
    let url = system.gateway_graphql();
    let no_cache = || header("cache-control", "no-cache");
    let resolvers = || header(EXECUTOR_HEADER, "resolvers");
    // The read model as shipped answers these anonymous queries from its
    // response cache while the read model is unchanged (the load is
    // read-only); `cache-control: no-cache` measures the execution itself.
    let rows = [
        Row {
            target: Target { key: "read-model", label: "read-model", url: url.clone(), headers: vec![] },
            executor: Some("compiled"),
        },
        Row {
            target: Target {
                key: "read-model-no-cache",
                label: "read-model (no response cache)",
                url: url.clone(),
                headers: vec![no_cache()],
            },
            executor: Some("compiled"),
        },
        Row {
            target: Target {
                key: "read-model-resolvers",
                label: "read-model, resolvers executor",
                url: url.clone(),
                headers: vec![resolvers()],
            },
            executor: Some("resolvers"),
        },
        Row {
            target: Target {
                key: "read-model-resolvers-no-cache",
                label: "read-model, resolvers executor (no response cache)",
                url: url.clone(),
                headers: vec![resolvers(), no_cache()],
            },
            executor: Some("resolvers"),
        },
        Row {
            target: Target {
                key: "composition",
                label: "composition",
                url: url.clone(),
                headers: vec![header("x-query-strategy", "composition")],
            },
            executor: None,
        },
    ];
    let mut series = Vec::new();
    let mut executor_absent = false;
    for row in &rows {
        let target = &row.target;
        for query in Query::ALL {
            let (data, extensions, executor) = answered(&client, target, query).await?;
            match (row.executor, executor.as_deref()) {
                (Some(_), None) => executor_absent = true,
                (Some(expected), Some(reported)) if expected != reported => notes.push(format!(
                    "{} ({}) answered with executor \"{reported}\", not \"{expected}\".",
                    target.label,
                    query.key()
                )),
                _ => {}
            }
            let points = measure(settings, target, query, &settings.levels_for(query), system.gateway.as_ref()).await?;
            series.push(series_of(target, query, (&data, &extensions, executor), reference, points));
        }
    }
    if executor_absent {
        notes.push(format!(
            "The gateway's answers carry no extensions.executor and it ignores {EXECUTOR_HEADER}: it has one \
             executor (async-graphql's resolvers), so the rows \"resolvers executor\" measure the same one as the \
             default rows."
        ));
    }
    Ok(series)
}

/// Posts with authors with `token` (a registered user's) on every request:
/// the document does not read the caller, so the answer is the anonymous
/// one, and the response cache serves it.
pub async fn logged_in(system: &System, settings: &Settings, token: &str, reference: &[Value]) -> anyhow::Result<Series> {
    let client = crate::gql::client();
    let query = Query::PostsWithAuthors;
    let target = Target {
        key: "read-model-logged-in",
        label: "read-model, logged in",
        url: system.gateway_graphql(),
        headers: vec![header("authorization", &format!("Bearer {token}"))],
    };
    let (data, extensions, executor) = answered(&client, &target, query).await?;
    let points = measure(settings, &target, query, &[settings.headline], system.gateway.as_ref()).await?;
    Ok(series_of(&target, query, (&data, &extensions, executor), reference, points))
}

/// `target`'s answer to `query` as the timed requests get it: asked twice,
/// the second answer (a cached one for the read model as shipped) gives the
/// data and extensions reported, and the executor is the one either names
/// (a cache hit names none).
async fn answered(client: &reqwest::Client, target: &Target<'_>, query: Query) -> anyhow::Result<(Value, Value, Option<String>)> {
    let (_, first) = validate(client, target, query).await?;
    let (data, extensions) = validate(client, target, query).await?;
    let executor = [&extensions, &first].into_iter().find_map(|e| e["executor"].as_str()).map(str::to_owned);
    Ok((data, extensions, executor))
}

/// The row of `target` for `query`, from its answer and its points.
fn series_of(
    target: &Target<'_>,
    query: Query,
    (data, extensions, executor): (&Value, &Value, Option<String>),
    reference: &[Value],
    points: Vec<crate::load::Point>,
) -> Series {
    Series {
        key: target.key.into(),
        label: target.label.into(),
        query,
        upstream_requests_per_request: extensions["upstreamRequests"].as_f64(),
        sql_statements_per_request: extensions["sqlStatements"].as_f64(),
        same_data_as_read_model: Some(*data == reference[query.index()]),
        executor,
        points,
    }
}

/// Posts with authors as an Apollo client sends a persisted query: the
/// document registered once (POST with its hash), then every request a GET
/// naming it by its SHA-256, the variables in the query string.
pub async fn persisted_get(system: &System, settings: &Settings, reference: &[Value]) -> anyhow::Result<Series> {
    let client = crate::gql::client();
    let query = Query::PostsWithAuthors;
    let graphql = system.gateway_graphql();
    let extensions = json!({ "persistedQuery": { "version": 1, "sha256Hash": sha256_hex(query.document())? } });
    let registration = json!({ "query": query.document(), "variables": {}, "extensions": extensions });
    let registered: Value = client.post(&graphql).json(&registration).send().await?.error_for_status()?.json().await?;
    if !registered["errors"].is_null() {
        bail!("registering the persisted query failed: {}", registered["errors"]);
    }
    let url =
        reqwest::Url::parse_with_params(&graphql, [("extensions", extensions.to_string()), ("variables", "{}".to_owned())])?;
    let target =
        Target { key: "read-model-persisted-get", label: "read-model, persisted query (GET)", url: url.into(), headers: vec![] };
    let mut answers = Vec::new();
    for _ in 0..2 {
        let body: Value = client.get(&target.url).send().await?.error_for_status()?.json().await?;
        if !body["errors"].is_null() {
            bail!("the persisted query's GET failed: {}", body["errors"]);
        }
        check_page(&body, target.label, query)?;
        answers.push(body);
    }
    let answer = &answers[1];
    let points = measure_request(settings, &target, query, &Request::Get, &[settings.headline], system.gateway.as_ref()).await?;
    Ok(Series {
        key: target.key.into(),
        label: target.label.into(),
        query,
        upstream_requests_per_request: answer["extensions"]["upstreamRequests"].as_f64(),
        sql_statements_per_request: answer["extensions"]["sqlStatements"].as_f64(),
        same_data_as_read_model: Some(answer["data"] == reference[query.index()]),
        executor: answer["extensions"]["executor"].as_str().map(str::to_owned),
        points,
    })
}

/// The hex SHA-256 of `text`, by coreutils' `sha256sum` (one hash per run
/// does not earn the benchmark a hashing dependency).
fn sha256_hex(text: &str) -> anyhow::Result<String> {
    use std::io::Write as _;
    let mut child = std::process::Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("cannot run sha256sum")?;
    child.stdin.take().context("sha256sum has no stdin")?.write_all(text.as_bytes())?;
    let output = child.wait_with_output()?;
    let stdout = String::from_utf8(output.stdout)?;
    let hex = stdout.split_whitespace().next().unwrap_or_default();
    if !output.status.success() || hex.len() != 64 {
        bail!("sha256sum printed {stdout:?}");
    }
    Ok(hex.to_owned())
}
