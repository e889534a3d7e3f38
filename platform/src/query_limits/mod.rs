//! What one GraphQL document may ask, measured on the parsed document before
//! async-graphql validates it, in time and memory bounded by the document's
//! size: every fragment is measured once (its summary memoized), so a
//! document whose fragments spread each other ten times over costs no more
//! to measure than it is long.
//!
//! The measures: brackets nested in the text, before it is parsed
//! ([`brackets`]); field depth; selections nested (fields, fragments, inline
//! fragments) no deeper than async-graphql's own recursion check allows;
//! the fields of the document once its fragments are expanded (what
//! validation walks); aliases; and the **cost**: every field counts 1,
//! times the size of each list above it. A list's size is its slicing
//! argument (`first`, with a default and a maximum) or the length of the
//! list argument it answers item by item (`_entities(representations:)`).
//! A refusal is `QUERY_TOO_COMPLEX` with `extensions.cost` (what was
//! measured), `extensions.limit` and `extensions.reason`; a fragment cycle,
//! which would expand without end, is `QUERY_TOO_COMPLEX` too (the API's
//! codes have no separate one for validation), with the reason
//! `fragmentCycle` and the cycle in the message. The code is set where the
//! refusal is made, never read back from a message. An accepted answer
//! reports its cost in `extensions.cost` ([`extension`]).

mod brackets;
mod extension;
mod measure;

use std::collections::HashMap;

use async_graphql::parser::types::ExecutableDocument;
use async_graphql::{ServerError, Variables};

pub use extension::{Checked, QueryLimitsExtension};

use crate::errors::ErrorCode;
use crate::pagination::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE};

/// How deep selections may nest, fields, fragment spreads and inline
/// fragments alike: async-graphql's own recursion check refuses deeper ones
/// (with no code), so they are refused here first.
pub const MAX_NESTING: usize = 32;

/// How deep `{`, `[` and `(` may nest in a document's text. Selections are
/// refused at [`MAX_NESTING`] anyway; this bounds values as well, and keeps
/// every document away from the parser's own recursion limit (64 levels)
/// and from its stack (which some thousand levels exhaust).
pub const MAX_BRACKET_NESTING: usize = 64;

/// The limits of one service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Fields nested in fields (`{ a { b } }` is 2 deep).
    pub max_depth: usize,
    /// The cost: fields, each multiplied by the sizes of the lists above it.
    pub max_cost: u64,
    /// Aliased fields, with fragments expanded.
    pub max_aliases: u64,
    /// Fields with fragments expanded, and selections as written.
    pub max_fields: u64,
}

/// A subgraph's limits, from flags and the environment (the same variables
/// as the gateway's). A subgraph's cost limit is higher than the gateway's:
/// a gateway composing an accepted query asks a subgraph for more fields per
/// item (keys, cursors) than its client asked for.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct SubgraphLimitArgs {
    #[arg(long = "max-query-depth", env = "MAX_QUERY_DEPTH", default_value_t = 12)]
    pub max_depth: usize,
    /// Fields, each times the size of every list above it.
    #[arg(long = "max-query-complexity", env = "MAX_QUERY_COMPLEXITY", default_value_t = 25_000)]
    pub max_cost: u64,
    #[arg(long = "max-query-aliases", env = "MAX_QUERY_ALIASES", default_value_t = 30)]
    pub max_aliases: u64,
    /// Fields once fragments are expanded (and selections as written).
    #[arg(long = "max-query-fields", env = "MAX_QUERY_FIELDS", default_value_t = 1_000)]
    pub max_fields: u64,
}

impl SubgraphLimitArgs {
    /// The limiter of an Agora subgraph.
    pub fn limiter(&self) -> QueryLimiter {
        let limits = Limits {
            max_depth: self.max_depth,
            max_cost: self.max_cost,
            max_aliases: self.max_aliases,
            max_fields: self.max_fields,
        };
        QueryLimiter::new(limits, CostModel::agora())
    }
}

/// How many items a list field answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListSize {
    /// A page: the Int `argument`, `default` when absent or null. A larger
    /// one counts as `max` (the resolver refuses it with BAD_USER_INPUT).
    Slice { argument: &'static str, default: u64, max: u64 },
    /// One item per element of the list `argument`; more than `max` elements
    /// are refused here (nothing else would).
    PerElement { argument: &'static str, max: u64 },
}

/// Which fields are lists and how large, by field name.
#[derive(Debug, Clone)]
pub struct CostModel {
    lists: HashMap<&'static str, ListSize>,
}

impl CostModel {
    pub fn new(lists: impl IntoIterator<Item = (&'static str, ListSize)>) -> Self {
        CostModel { lists: lists.into_iter().collect() }
    }

    /// Agora's lists, by name; in every Agora schema a name means the same
    /// list wherever it appears (`Query.posts` and `User.posts` page alike).
    pub fn agora() -> Self {
        let page = |default: i32| ListSize::Slice { argument: "first", default: default as u64, max: MAX_PAGE_SIZE as u64 };
        CostModel::new([
            ("posts", page(DEFAULT_PAGE_SIZE)),
            ("leaderboard", page(agora_schema::paging::DEFAULT_LEADERBOARD_SIZE)),
            ("_entities", ListSize::PerElement { argument: "representations", max: MAX_ELEMENTS }),
            ("users", ListSize::PerElement { argument: "ids", max: MAX_ELEMENTS }),
        ])
    }

    fn list(&self, field: &str) -> Option<ListSize> {
        self.lists.get(field).copied()
    }
}

/// The most entities one `_entities` (or `users`) call may ask for: a
/// DataLoader batch (async-graphql's default batch size).
pub const MAX_ELEMENTS: u64 = 1000;

/// What the measure found in an accepted document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Measured {
    /// The cost of the operation that runs (the costliest when that is not known).
    pub cost: u64,
}

/// Why a document was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Depth,
    Cost,
    Aliases,
    /// Too many fields once fragments are expanded, or as written.
    Size,
    /// A list argument with more elements than allowed.
    ListSize,
    /// Fragments that spread each other in a cycle: a document without end.
    FragmentCycle,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Depth => "depth",
            Reason::Cost => "cost",
            Reason::Aliases => "aliases",
            Reason::Size => "size",
            Reason::ListSize => "listSize",
            Reason::FragmentCycle => "fragmentCycle",
        }
    }
}

/// A refused document: the GraphQL error a client gets.
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    /// QUERY_TOO_COMPLEX: `measured` (at least) over `limit`.
    TooComplex { reason: Reason, measured: u64, limit: u64, message: String },
    /// QUERY_TOO_COMPLEX: fragments that spread themselves, the path from
    /// the first back to itself (`["A", "B", "A"]`).
    FragmentCycle(Vec<String>),
    /// BAD_USER_INPUT: a document that does not parse.
    Invalid(String),
}

impl Refusal {
    fn too_complex(reason: Reason, measured: u64, limit: u64, message: impl Into<String>) -> Self {
        Refusal::TooComplex { reason, measured, limit, message: message.into() }
    }

    pub fn into_server_error(self) -> ServerError {
        let mut extensions = async_graphql::ErrorExtensionValues::default();
        let message = match self {
            Refusal::TooComplex { reason, measured, limit, message } => {
                extensions.set("code", ErrorCode::QueryTooComplex.as_str());
                extensions.set("reason", reason.as_str());
                extensions.set("cost", measured);
                extensions.set("limit", limit);
                message
            }
            Refusal::FragmentCycle(path) => {
                extensions.set("code", ErrorCode::QueryTooComplex.as_str());
                extensions.set("reason", Reason::FragmentCycle.as_str());
                format!("fragment {} spreads itself: {}", path[0], path.join(" -> "))
            }
            Refusal::Invalid(message) => {
                extensions.set("code", ErrorCode::BadUserInput.as_str());
                message
            }
        };
        let mut error = ServerError::new(message, None);
        error.extensions = Some(extensions);
        error
    }
}

/// The limits and the cost model of one schema: what its requests are checked with.
#[derive(Debug, Clone)]
pub struct QueryLimiter {
    pub limits: Limits,
    pub model: CostModel,
}

impl QueryLimiter {
    pub fn new(limits: Limits, model: CostModel) -> Self {
        QueryLimiter { limits, model }
    }

    /// Parses the request's document (and keeps it in the request, so it is
    /// parsed once) and measures it.
    pub fn check(&self, request: &mut async_graphql::Request) -> Result<Measured, Refusal> {
        let document = self.parse(&request.query)?;
        let measured = self.measure(&document, request.operation_name.as_deref(), &request.variables)?;
        request.set_parsed_query(document);
        Ok(measured)
    }

    /// Parses a document, refusing first one nested deeper than the parser
    /// can take (in time bounded by its size).
    pub fn parse(&self, query: &str) -> Result<ExecutableDocument, Refusal> {
        let nesting = brackets::bracket_depth(query);
        if nesting > MAX_BRACKET_NESTING {
            return Err(Refusal::too_complex(
                Reason::Depth,
                nesting as u64,
                MAX_BRACKET_NESTING as u64,
                format!(
                    "the document nests brackets {nesting} deep ({{, [ and ( alike); at most {MAX_BRACKET_NESTING} are allowed"
                ),
            ));
        }
        async_graphql::parser::parse_query(query).map_err(|error| Refusal::Invalid(error.to_string()))
    }

    /// Measures a parsed document with its variables.
    pub fn measure(
        &self,
        document: &ExecutableDocument,
        operation_name: Option<&str>,
        variables: &Variables,
    ) -> Result<Measured, Refusal> {
        measure::measure(self, document, operation_name, variables)
    }
}

#[cfg(test)]
mod tests;
