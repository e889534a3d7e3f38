//! Response fields in the order the selection set asks them, as the GraphQL
//! spec orders a response (CollectFields keeps the document's order).
//!
//! async-graphql 7 resolves a query's fields concurrently and inserts each
//! into its object as it completes (`FuturesUnordered` in
//! `resolver_utils::container::do_resolve_container`), so a field that
//! waits on a DataLoader (composition's `postCount`, a page's `edges`)
//! lands after siblings that were ready at once. This extension puts every
//! object's keys back in the selection's order once execution finished:
//! one walk over the answer, with the operation's fields (fragments and
//! inline fragments flattened in place, skipped selections left out, as
//! CollectFields does).

use std::sync::{Arc, Mutex};

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextExecute, NextParseQuery};
use async_graphql::parser::types::{Directive, ExecutableDocument, Selection, SelectionSet};
use async_graphql::{Name, Positioned, Response, ServerResult, Value, Variables};

/// Orders every query's and mutation's `data` as its selection sets do.
pub struct ResponseOrder;

impl ExtensionFactory for ResponseOrder {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(OneRequest::default())
    }
}

/// One request's document and variables, kept from parsing until its answer is ordered.
#[derive(Default)]
struct OneRequest {
    document: Mutex<Option<(ExecutableDocument, Variables)>>,
}

#[async_trait::async_trait]
impl Extension for OneRequest {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let document = next.run(ctx, query, variables).await?;
        *self.document.lock().expect("not poisoned") = Some((document.clone(), variables.clone()));
        Ok(document)
    }

    async fn execute(&self, ctx: &ExtensionContext<'_>, operation_name: Option<&str>, next: NextExecute<'_>) -> Response {
        let mut response = next.run(ctx, operation_name).await;
        let document = self.document.lock().expect("not poisoned").take();
        if let Some((document, variables)) = document {
            let operation = match operation_name {
                Some(name) => document.operations.iter().find(|(found, _)| found.map(|found| found.as_str()) == Some(name)),
                None => document.operations.iter().next(),
            };
            if let Some((_, operation)) = operation {
                order(
                    &mut response.data,
                    &[&operation.node.selection_set.node],
                    &Request { document: &document, variables: &variables },
                );
            }
        }
        response
    }
}

/// What ordering a response needs of its request.
struct Request<'a> {
    document: &'a ExecutableDocument,
    /// For `@skip` and `@include`: a key asked for first where it is skipped
    /// comes where it is next asked for.
    variables: &'a Variables,
}

/// The response keys `sets` select, in order, each with the selection sets
/// of its fields (a key asked twice merges its sub-selections).
fn collect<'a>(sets: &[&'a SelectionSet], request: &Request<'a>) -> Vec<(&'a Name, Vec<&'a SelectionSet>)> {
    fn walk<'a>(set: &'a SelectionSet, request: &Request<'a>, keys: &mut Vec<(&'a Name, Vec<&'a SelectionSet>)>) {
        for selection in &set.items {
            if skipped(selection.node.directives(), request.variables) {
                continue;
            }
            match &selection.node {
                Selection::Field(field) => {
                    let key = &field.node.response_key().node;
                    let subset = &field.node.selection_set.node;
                    match keys.iter_mut().find(|(known, _)| *known == key) {
                        Some((_, subsets)) => subsets.push(subset),
                        None => keys.push((key, vec![subset])),
                    }
                }
                Selection::InlineFragment(fragment) => walk(&fragment.node.selection_set.node, request, keys),
                // Only executed documents get here: validation refused cyclic spreads.
                Selection::FragmentSpread(spread) => {
                    if let Some(fragment) = request.document.fragments.get(&spread.node.fragment_name.node) {
                        walk(&fragment.node.selection_set.node, request, keys);
                    }
                }
            }
        }
    }
    let mut keys = Vec::new();
    for set in sets {
        walk(set, request, &mut keys);
    }
    keys
}

/// Whether async-graphql skips a selection with these directives: an `if`
/// that is not `true` (a literal, or the request's variable: no default) is
/// false.
fn skipped(directives: &[Positioned<Directive>], variables: &Variables) -> bool {
    directives.iter().any(|directive| {
        let include = match directive.node.name.node.as_str() {
            "include" => true,
            "skip" => false,
            _ => return false,
        };
        let Some(condition) = directive.node.get_argument("if") else { return false };
        let value = condition.node.clone().into_const_with(|name| variables.get(&name).cloned().ok_or(())).unwrap_or_default();
        matches!(value, Value::Boolean(true)) != include
    })
}

/// Puts `value`'s objects (at any depth) in the order of `sets`.
fn order(value: &mut Value, sets: &[&SelectionSet], request: &Request<'_>) {
    match value {
        Value::List(items) => {
            for item in items {
                order(item, sets, request);
            }
        }
        Value::Object(fields) => {
            let keys = collect(sets, request);
            let mut answered = std::mem::take(fields);
            for (key, subsets) in keys {
                if let Some((name, mut child)) = answered.swap_remove_entry(key) {
                    order(&mut child, &subsets, request);
                    fields.insert(name, child);
                }
            }
            // Nothing should be left; if anything is, it stays in the answer.
            fields.extend(answered);
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ordered(query: &str, data: serde_json::Value) -> String {
        let document = async_graphql::parser::parse_query(query).unwrap();
        let (_, operation) = document.operations.iter().next().unwrap();
        let mut value = Value::from_json(data).unwrap();
        let variables = Variables::default();
        order(&mut value, &[&operation.node.selection_set.node], &Request { document: &document, variables: &variables });
        serde_json::to_string(&value).unwrap()
    }

    #[test]
    fn puts_fields_back_in_the_order_of_the_selection_through_fragments_and_lists() {
        let query = "{ posts { pageInfo { hasNextPage } edges { node { ...Author title } } } } fragment Author on Post { author { postCount createdAt } }";
        let answered = serde_json::json!({ "posts": { "edges": [ { "node": { "title": "t", "author": { "createdAt": "c", "postCount": 1 } } } ], "pageInfo": { "hasNextPage": false } } });
        assert_eq!(
            ordered(query, answered),
            r#"{"posts":{"pageInfo":{"hasNextPage":false},"edges":[{"node":{"author":{"postCount":1,"createdAt":"c"},"title":"t"}}]}}"#
        );
    }

    #[test]
    fn a_key_skipped_where_it_is_first_asked_comes_where_it_is_next_asked() {
        let answered = serde_json::json!({ "a": 1, "b": 2 });
        let query = "{ a: leaderboard @skip(if: true) { id } b: __typename a: leaderboard { id } }";
        assert_eq!(ordered(query, answered), r#"{"b":2,"a":1}"#);
    }

    #[test]
    fn orders_aliases_by_their_response_key() {
        let answered = serde_json::json!({ "b": 2, "a": 1 });
        assert_eq!(ordered("{ a: leaderboard { id } b: leaderboard { id } }", answered), r#"{"a":1,"b":2}"#);
    }
}
