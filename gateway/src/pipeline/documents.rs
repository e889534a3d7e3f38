//! Parsed documents, kept by their text: an app sends the same few
//! documents again and again, and parsing one (async-graphql's pest parser)
//! cost more than answering it from its compiled plan. A document is kept
//! only once it parsed within the limits; its measure is taken again on
//! every request (it depends on the request's variables).

use std::sync::Arc;

use agora_platform::query_limits::{QueryLimiter, Refusal};
use async_graphql::parser::types::ExecutableDocument;
use moka::sync::Cache;

/// Parsed documents by text, bounded in bytes.
pub struct ParsedDocuments(Option<Cache<Arc<str>, Arc<ExecutableDocument>>>);

impl ParsedDocuments {
    /// At most `max_bytes` of documents (their text, and about eight times
    /// as much for what they parse into); 0 keeps none.
    pub fn new(max_bytes: u64) -> Self {
        ParsedDocuments((max_bytes > 0).then(|| {
            Cache::builder()
                .max_capacity(max_bytes)
                .weigher(|text: &Arc<str>, _: &Arc<ExecutableDocument>| u32::try_from(9 * text.len() + 256).unwrap_or(u32::MAX))
                .build()
        }))
    }

    /// `query` parsed, from the ones kept or by `limiter` (which refuses
    /// what the parser cannot take).
    pub fn parse(&self, limiter: &QueryLimiter, query: &str) -> Result<Arc<ExecutableDocument>, Refusal> {
        let Some(documents) = &self.0 else { return Ok(Arc::new(limiter.parse(query)?)) };
        if let Some(document) = documents.get(query) {
            return Ok(document);
        }
        let document = Arc::new(limiter.parse(query)?);
        documents.insert(Arc::from(query), document.clone());
        Ok(document)
    }
}
