//! Trusted documents: automatic persisted queries, and an allow-list.
//!
//! - **Automatic persisted queries** (APQ), as Apollo clients send them:
//!   `extensions.persistedQuery = {"version": 1, "sha256Hash": "<hex>"}`. A
//!   request with the hash and no query runs the document registered under
//!   it, or gets `PERSISTED_QUERY_NOT_FOUND`; the client then sends the
//!   query with its hash, which registers it (after checking the hash). Over
//!   GET the URL then names the document by its hash, so HTTP caches can
//!   hold the answer (the transport adds an `ETag`).
//! - **Allow-list** (`TRUSTED_DOCUMENTS`, a file or a folder): only the
//!   documents listed run, named by their hash or sent in full; any other
//!   gets `PERSISTED_QUERY_NOT_IN_LIST` (by hash) or `QUERY_NOT_IN_SAFELIST`
//!   (in full), and nothing registers. The list is read at start and again
//!   when it changes ([`TrustedDocuments::watch`]). Formats: an Apollo
//!   persisted-query manifest (`.json`: `{"operations": [{"id", "body"}]}`,
//!   each id the SHA-256 of its body), or `.graphql` files, one document
//!   each.
//!
//! The document is resolved before anything else looks at the request
//! (limits, the response cache's key, the operation type a GET may run),
//! which is why this is not async-graphql's `ApolloPersistedQueries`
//! extension: that one fills the query in inside `execute`, after all of
//! these. The registry is a bounded `moka` cache per process.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use agora_platform::errors::ErrorCode;
use anyhow::Context;
use async_graphql::{ServerError, Value};
use ring::digest;
use tokio_util::sync::CancellationToken;

use super::annotate::request_error;

/// The extension a persisted request carries.
pub const EXTENSION: &str = "persistedQuery";

/// A document's SHA-256.
pub type Hash = [u8; 32];

/// The documents a process runs by hash.
#[derive(Clone)]
pub enum TrustedDocuments {
    /// Any document runs; those sent with their hash are remembered.
    Automatic(moka::sync::Cache<Hash, Arc<str>>),
    /// Only the listed documents run.
    Listed(Arc<Listed>),
}

pub struct Listed {
    source: PathBuf,
    documents: RwLock<Arc<HashMap<Hash, Arc<str>>>>,
}

/// How the documents a request names are found.
impl TrustedDocuments {
    /// Automatic persisted queries, keeping documents up to `bytes` in all.
    pub fn automatic(bytes: u64) -> Self {
        TrustedDocuments::Automatic(
            moka::sync::Cache::builder()
                .weigher(|_, document: &Arc<str>| (document.len() + 64).try_into().unwrap_or(u32::MAX))
                .max_capacity(bytes)
                .build(),
        )
    }

    /// Only the documents at `source` (a manifest, a `.graphql` file, or a
    /// folder of them).
    pub fn listed(source: &Path) -> anyhow::Result<Self> {
        let documents = load(source)?;
        tracing::info!(source = %source.display(), documents = documents.len(), "trusted documents loaded; only they run");
        Ok(TrustedDocuments::Listed(Arc::new(Listed { source: source.to_owned(), documents: RwLock::new(Arc::new(documents)) })))
    }

    /// Reads the list again whenever its files change, until `shutdown`; a
    /// list that no longer loads is logged and the last good one kept.
    pub async fn watch(self, every: Duration, shutdown: CancellationToken) {
        let TrustedDocuments::Listed(listed) = self else { return };
        let mut seen = modified(&listed.source);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(every) => {}
            }
            let now = modified(&listed.source);
            if now == seen {
                continue;
            }
            seen = now;
            match load(&listed.source) {
                Ok(documents) => {
                    tracing::info!(source = %listed.source.display(), documents = documents.len(), "trusted documents reloaded");
                    metrics::counter!("agora_trusted_documents_reloads_total", "outcome" => "loaded").increment(1);
                    *listed.documents.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(documents);
                }
                Err(error) => {
                    tracing::error!(
                        error = format!("{error:#}"),
                        "the trusted documents no longer load; keeping the last good list"
                    );
                    metrics::counter!("agora_trusted_documents_reloads_total", "outcome" => "failed").increment(1);
                }
            }
        }
    }

    /// The documents listed now (`None` for automatic persisted queries); a
    /// new list is a new `Arc`.
    pub fn listed_now(&self) -> Option<Arc<HashMap<Hash, Arc<str>>>> {
        match self {
            TrustedDocuments::Automatic(_) => None,
            TrustedDocuments::Listed(listed) => {
                Some(listed.documents.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone())
            }
        }
    }

    /// Puts the document `request` names into its query, or says why it
    /// cannot run.
    pub fn resolve(&self, request: &mut async_graphql::Request) -> Result<(), ServerError> {
        let hash = match request.extensions.get(EXTENSION) {
            None => None,
            Some(persisted) => Some(persisted_hash(persisted)?),
        };
        match self {
            TrustedDocuments::Automatic(registry) => match (hash, request.query.is_empty()) {
                (None, _) => Ok(()),
                (Some(hash), true) => match registry.get(&hash) {
                    Some(document) => {
                        request.query = document.to_string();
                        metrics::counter!("agora_persisted_queries_total", "outcome" => "hit").increment(1);
                        Ok(())
                    }
                    None => {
                        metrics::counter!("agora_persisted_queries_total", "outcome" => "not_found").increment(1);
                        Err(error("PersistedQueryNotFound", "PERSISTED_QUERY_NOT_FOUND"))
                    }
                },
                (Some(hash), false) => {
                    if sha256(&request.query) != hash {
                        return Err(request_error(
                            ErrorCode::BadUserInput,
                            "extensions.persistedQuery.sha256Hash is not the SHA-256 of the query",
                        ));
                    }
                    registry.insert(hash, Arc::from(request.query.as_str()));
                    metrics::counter!("agora_persisted_queries_total", "outcome" => "registered").increment(1);
                    Ok(())
                }
            },
            TrustedDocuments::Listed(listed) => {
                let documents = listed.documents.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone();
                if request.query.is_empty() {
                    let Some(hash) = hash else {
                        return Err(request_error(ErrorCode::BadUserInput, "the request has no query"));
                    };
                    let Some(document) = documents.get(&hash) else {
                        return Err(error(
                            "the document is not in this API's list of trusted documents",
                            "PERSISTED_QUERY_NOT_IN_LIST",
                        ));
                    };
                    request.query = document.to_string();
                    return Ok(());
                }
                let own = sha256(&request.query);
                if hash.is_some_and(|hash| hash != own) {
                    return Err(request_error(
                        ErrorCode::BadUserInput,
                        "extensions.persistedQuery.sha256Hash is not the SHA-256 of the query",
                    ));
                }
                if !documents.contains_key(&own) {
                    return Err(error(
                        "only this API's trusted documents run: the query is not one of them",
                        "QUERY_NOT_IN_SAFELIST",
                    ));
                }
                Ok(())
            }
        }
    }
}

/// The hash of an `extensions.persistedQuery`.
fn persisted_hash(persisted: &Value) -> Result<Hash, ServerError> {
    let invalid = |what: &str| request_error(ErrorCode::BadUserInput, format!("extensions.persistedQuery {what}"));
    let Value::Object(persisted) = persisted else { return Err(invalid("must be an object")) };
    match persisted.get("version") {
        Some(Value::Number(version)) if version.as_u64() == Some(1) => {}
        _ => return Err(invalid("version must be 1")),
    }
    match persisted.get("sha256Hash") {
        Some(Value::String(hex)) => parse_hash(hex).ok_or_else(|| invalid("sha256Hash must be 64 hexadecimal digits")),
        _ => Err(invalid("needs a sha256Hash")),
    }
}

fn parse_hash(hex: &str) -> Option<Hash> {
    if hex.len() != 64 || !hex.bytes().all(|byte| byte.is_ascii_hexdigit()) {
        return None;
    }
    let mut hash = [0; 32];
    for (index, byte) in hash.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * index..2 * index + 2], 16).ok()?;
    }
    Some(hash)
}

fn sha256(document: &str) -> Hash {
    digest::digest(&digest::SHA256, document.as_bytes()).as_ref().try_into().expect("32 bytes")
}

/// A request error with Apollo's code for it (clients look for it).
fn error(message: &str, code: &str) -> ServerError {
    let mut error = ServerError::new(message, None);
    let mut extensions = async_graphql::ErrorExtensionValues::default();
    extensions.set("code", code);
    error.extensions = Some(extensions);
    error
}

/// The documents at `source`, by hash.
fn load(source: &Path) -> anyhow::Result<HashMap<Hash, Arc<str>>> {
    let mut documents = HashMap::new();
    let metadata = std::fs::metadata(source).with_context(|| format!("cannot read {}", source.display()))?;
    let files: Vec<PathBuf> = if metadata.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(source)
            .with_context(|| format!("cannot list {}", source.display()))?
            .filter_map(|entry| entry.ok().map(|entry| entry.path()))
            .filter(|path| matches!(path.extension().and_then(|extension| extension.to_str()), Some("json" | "graphql" | "gql")))
            .collect();
        files.sort();
        files
    } else {
        vec![source.to_owned()]
    };
    for file in files {
        let text = std::fs::read_to_string(&file).with_context(|| format!("cannot read {}", file.display()))?;
        if file.extension().is_some_and(|extension| extension == "json") {
            for (hash, body) in
                manifest(&text).with_context(|| format!("{} is not a persisted-query manifest", file.display()))?
            {
                documents.insert(hash, body);
            }
        } else {
            async_graphql::parser::parse_query(&text).with_context(|| format!("{} is not a GraphQL document", file.display()))?;
            documents.insert(sha256(&text), Arc::from(text.as_str()));
        }
    }
    Ok(documents)
}

/// The operations of an Apollo persisted-query manifest, each checked
/// against its id.
fn manifest(text: &str) -> anyhow::Result<Vec<(Hash, Arc<str>)>> {
    #[derive(serde::Deserialize)]
    struct Manifest {
        operations: Vec<Operation>,
    }
    #[derive(serde::Deserialize)]
    struct Operation {
        id: String,
        body: String,
    }
    let manifest: Manifest = serde_json::from_str(text)?;
    manifest
        .operations
        .into_iter()
        .map(|operation| {
            let hash = parse_hash(&operation.id).with_context(|| format!("the id {:?} is not a SHA-256", operation.id))?;
            anyhow::ensure!(sha256(&operation.body) == hash, "the id {} is not the SHA-256 of its body", operation.id);
            async_graphql::parser::parse_query(&operation.body)
                .with_context(|| format!("the body of {} is not a GraphQL document", operation.id))?;
            Ok((hash, Arc::from(operation.body.as_str())))
        })
        .collect()
}

/// When anything at `source` last changed (the newest of a folder's files).
fn modified(source: &Path) -> Option<SystemTime> {
    let own = std::fs::metadata(source).and_then(|metadata| metadata.modified()).ok();
    let entries =
        std::fs::read_dir(source).into_iter().flatten().filter_map(|entry| entry.ok()?.metadata().ok()?.modified().ok());
    own.into_iter().chain(entries).max()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(hash: Hash) -> String {
        hash.iter().map(|byte| format!("{byte:02x}")).collect()
    }

    fn persisted(query: &str, hash: &str) -> async_graphql::Request {
        let mut request = async_graphql::Request::new(query);
        request
            .extensions
            .insert(EXTENSION.into(), Value::from_json(serde_json::json!({ "version": 1, "sha256Hash": hash })).unwrap());
        request
    }

    fn code(error: &ServerError) -> String {
        match error.extensions.as_ref().and_then(|extensions| extensions.get("code")) {
            Some(Value::String(code)) => code.clone(),
            other => panic!("no code: {other:?}"),
        }
    }

    #[test]
    fn a_hash_runs_its_document_once_registered_with_it() {
        let documents = TrustedDocuments::automatic(1 << 20);
        let query = "{ posts(first: 1) { edges { node { id } } } }";
        let hash = hex(sha256(query));
        let unknown = documents.resolve(&mut persisted("", &hash)).unwrap_err();
        assert_eq!((unknown.message.as_str(), code(&unknown).as_str()), ("PersistedQueryNotFound", "PERSISTED_QUERY_NOT_FOUND"));
        let wrong = documents.resolve(&mut persisted(query, &hex(sha256("{ me { id } }")))).unwrap_err();
        assert_eq!(code(&wrong), "BAD_USER_INPUT");
        documents.resolve(&mut persisted(query, &hash)).unwrap();
        let mut by_hash = persisted("", &hash);
        documents.resolve(&mut by_hash).unwrap();
        assert_eq!(by_hash.query, query);
        let mut plain = async_graphql::Request::new(query);
        documents.resolve(&mut plain).unwrap();
        for bad in ["nothex", &"g".repeat(64)] {
            assert_eq!(code(&documents.resolve(&mut persisted("", bad)).unwrap_err()), "BAD_USER_INPUT");
        }
    }

    #[test]
    fn a_listed_document_runs_and_any_other_is_refused() {
        let folder = std::env::temp_dir().join(format!("agora-trusted-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&folder).unwrap();
        let listed = "{ posts(first: 1) { edges { node { id } } } }";
        std::fs::write(folder.join("posts.graphql"), listed).unwrap();
        let other = "query Me { me { id } }";
        let manifest = serde_json::json!({ "format": "apollo-persisted-query-manifest", "version": 1,
            "operations": [{ "id": hex(sha256(other)), "name": "Me", "type": "query", "body": other }] });
        std::fs::write(folder.join("manifest.json"), manifest.to_string()).unwrap();
        let documents = TrustedDocuments::listed(&folder).unwrap();
        let mut by_hash = persisted("", &hex(sha256(listed)));
        documents.resolve(&mut by_hash).unwrap();
        assert_eq!(by_hash.query, listed);
        documents.resolve(&mut async_graphql::Request::new(other)).unwrap();
        let unlisted = documents.resolve(&mut async_graphql::Request::new("{ __typename }")).unwrap_err();
        assert_eq!(code(&unlisted), "QUERY_NOT_IN_SAFELIST");
        let unknown = documents.resolve(&mut persisted("", &hex(sha256("{ __typename }")))).unwrap_err();
        assert_eq!(code(&unknown), "PERSISTED_QUERY_NOT_IN_LIST");
        // Registering is not a way in.
        let registering = documents.resolve(&mut persisted("{ __typename }", &hex(sha256("{ __typename }")))).unwrap_err();
        assert_eq!(code(&registering), "QUERY_NOT_IN_SAFELIST");
        // A manifest whose id is not its body's hash does not load.
        std::fs::write(folder.join("bad.json"), r#"{"operations": [{"id": "00", "body": "{ me { id } }"}]}"#).unwrap();
        assert!(TrustedDocuments::listed(&folder).is_err());
        std::fs::remove_dir_all(&folder).unwrap();
    }
}
