//! Which kind of operation a request would run, found before execution: GET
//! (a safe method) refuses mutations with 405, only queries are cached, only
//! subscriptions are shared.

use async_graphql::parser::{
    parse_query,
    types::{ExecutableDocument, OperationType},
};

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
    fn leaves_unparsable_documents_to_execution() {
        assert_eq!(selected_operation_type("{", None), None);
    }
}
