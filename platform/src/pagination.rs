//! Paging posts over GraphQL, the same in every subgraph and the gateway:
//! the page a client asks for (the rules of `agora_schema::paging`, refused
//! as BAD_USER_INPUT naming the argument) and the Relay cursor connection
//! (`PostConnection`, `PostEdge`, `PageInfo`) a page is answered with.

use agora_schema::paging::{PageRequest, PostPage};
use agora_schema::{InvalidCursor, PostCursor};
use async_graphql::connection::{
    Connection, CursorType, DefaultConnectionName, DefaultEdgeName, Edge, EmptyFields, EnableNodesField,
};
use async_graphql::OutputType;

use crate::errors::Coded;
use crate::input::InputError;

/// The page sizes the query limits count a posts list with.
pub use agora_schema::paging::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE};

/// The page that the `first` and `after` arguments ask for.
pub fn page_request(first: Option<i32>, after: Option<&str>) -> async_graphql::Result<PageRequest> {
    PageRequest::parse(first, after).map_err(InputError::from).coded()
}

/// A page of posts, newest first, whose nodes are `Node` (a part's `Post`
/// object).
pub type PostConnection<Node> =
    Connection<Cursor, Node, EmptyFields, EmptyFields, DefaultConnectionName, DefaultEdgeName, EnableNodesField>;

/// A post's place in its page, encoded only when a client selects it.
pub struct Cursor(pub PostCursor);

impl CursorType for Cursor {
    type Error = InvalidCursor;

    fn decode_cursor(cursor: &str) -> Result<Self, InvalidCursor> {
        PostCursor::decode(cursor).map(Cursor)
    }

    fn encode_cursor(&self) -> String {
        self.0.encode()
    }
}

/// The connection over `page`, each post made into its cursor and node by
/// `edge`; `after_given` says whether the page follows a cursor.
pub fn post_connection<T, Node: OutputType>(
    page: PostPage<T>,
    after_given: bool,
    mut edge: impl FnMut(T) -> (PostCursor, Node),
) -> PostConnection<Node> {
    let mut connection = PostConnection::new(after_given, page.has_next_page);
    connection.edges = page
        .posts
        .into_iter()
        .map(|post| {
            let (cursor, node) = edge(post);
            Edge::new(Cursor(cursor), node)
        })
        .collect();
    connection
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_that_breaks_the_rules_is_bad_user_input_naming_the_argument() {
        let error = page_request(Some(101), None).unwrap_err();
        let extensions = error.extensions.expect("extensions");
        assert_eq!(extensions.get("code"), Some(&async_graphql::Value::from("BAD_USER_INPUT")));
        assert_eq!(extensions.get("field"), Some(&async_graphql::Value::from("first")));
        assert_eq!(page_request(None, None).unwrap(), PageRequest { limit: 20, after: None });
    }
}
