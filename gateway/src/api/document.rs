//! Which kind of operation a request would run, found before execution: GET
//! (a safe method) refuses mutations with 405, only queries are cached, only
//! subscriptions are shared; and whether its answer depends on who asks.

use async_graphql::parser::{
    parse_query,
    types::{ExecutableDocument, OperationType, Selection, SelectionSet},
};

/// The one field whose answer depends on the caller.
const CALLER_FIELD: &str = "me";

/// Whether `document` asks for anything whose answer depends on who asks
/// (`me`); the answer to any other is the same for every caller, token or
/// not (a field that needs a caller is a mutation's).
pub fn reads_caller(document: &ExecutableDocument) -> bool {
    fn reads(selection_set: &SelectionSet) -> bool {
        selection_set.items.iter().any(|item| match &item.node {
            Selection::Field(field) => field.node.name.node == CALLER_FIELD || reads(&field.node.selection_set.node),
            // A fragment is looked at once, below.
            Selection::FragmentSpread(_) => false,
            Selection::InlineFragment(fragment) => reads(&fragment.node.selection_set.node),
        })
    }
    document.operations.iter().any(|(_, operation)| reads(&operation.node.selection_set.node))
        || document.fragments.values().any(|fragment| reads(&fragment.node.selection_set.node))
}

/// The type of the operation that `operation_name` selects in `query`, the
/// way execution will select it. `None` when the document does not parse or
/// selects nothing: execution then reports the error itself.
pub fn selected_operation_type(query: &str, operation_name: Option<&str>) -> Option<OperationType> {
    operation_type(&parse_query(query).ok()?, operation_name)
}

/// The type of the operation that `operation_name` selects in `document`;
/// `None` when it selects nothing.
pub fn operation_type(document: &ExecutableDocument, operation_name: Option<&str>) -> Option<OperationType> {
    selected_operation(document, operation_name).map(|(_, ty)| ty)
}

/// The name (`None`: anonymous) and type of the operation that
/// `operation_name` selects in `document`; `None` when it selects nothing.
pub fn selected_operation<'d>(
    document: &'d ExecutableDocument,
    operation_name: Option<&str>,
) -> Option<(Option<&'d str>, OperationType)> {
    let mut operations = document.operations.iter();
    let (name, operation) = match operation_name {
        Some(wanted) => operations.find(|(name, _)| name.is_some_and(|name| name.as_str() == wanted))?,
        None => {
            let first = operations.next()?;
            if operations.next().is_some() {
                return None;
            }
            first
        }
    };
    Some((name.map(|name| name.as_str()), operation.node.ty))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_an_anonymous_mutation() {
        assert_eq!(selected_operation_type("mutation { bump }", None), Some(OperationType::Mutation));
        assert_eq!(selected_operation_type("{ hello }", None), Some(OperationType::Query));
    }

    #[test]
    fn honours_the_operation_name() {
        let document = "query Read { hello } mutation Write { bump }";
        assert_eq!(selected_operation_type(document, Some("Write")), Some(OperationType::Mutation));
        assert_eq!(selected_operation_type(document, Some("Read")), Some(OperationType::Query));
        assert_eq!(selected_operation_type(document, None), None);
        assert_eq!(selected_operation_type(document, Some("Missing")), None);
    }

    #[test]
    fn finds_the_caller_wherever_it_is_asked_for() {
        let reads = |query: &str| reads_caller(&parse_query(query).unwrap());
        assert!(reads("{ me { id } }"));
        assert!(reads("{ who: me { id } }"));
        assert!(reads("{ ... on Query { me { id } } }"));
        assert!(reads("query { ...Mine } fragment Mine on Query { me { id } }"));
        assert!(!reads("{ posts(first: 1) { edges { node { id author { username } } } } }"));
        assert!(!reads("{ user(id: \"x\") { name: displayName } }"));
    }

    #[test]
    fn leaves_unparsable_documents_to_execution() {
        assert_eq!(selected_operation_type("{", None), None);
    }
}
