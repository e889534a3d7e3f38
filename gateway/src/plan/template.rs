//! A query operation read once into the fields it selects, typed by where
//! they are: the template a plan is bound from. Fragments are inlined where
//! they are spread, each field keeps the `@skip`/`@include` conditions of
//! the fragments around it, and arguments stay as they are written
//! (literals or variables), to be resolved per request ([`super::bind`]).
//!
//! Only documents that validated reach here (the schema validated them
//! first); anything outside what the compiler covers (introspection, a
//! directive other than `@skip`/`@include`) makes the whole operation
//! [`Unsupported`], and it runs on the schema's resolvers.

use async_graphql::parser::types::{BaseType, Directive, ExecutableDocument, Field, OperationType, Selection, SelectionSet};
use async_graphql::{Name, Positioned, Value};
use async_graphql_value::Value as InputValue;

use crate::api::document::selected_operation;

/// An argument as written: absent, a literal, or a variable.
#[derive(Debug, Clone)]
pub enum Arg {
    Absent,
    Literal(Value),
    Variable(Name),
}

/// `@include(if: …)` (`include: true`) or `@skip(if: …)`.
#[derive(Debug, Clone)]
pub struct Condition {
    pub include: bool,
    pub value: Arg,
}

/// One occurrence of a field in a selection set: its response key, what it
/// is, and the conditions it and the fragments around it carry.
#[derive(Debug, Clone)]
pub struct Occurrence<F> {
    pub key: Name,
    pub field: F,
    pub conditions: Vec<Condition>,
}

/// A selection set on one type, fragments flattened, in document order.
pub type Set<F> = Vec<Occurrence<F>>;

#[derive(Debug, Clone)]
pub enum QueryField {
    Typename,
    Me(Set<UserField>),
    User { id: Arg, user: Set<UserField> },
    UserByUsername { username: Arg, user: Set<UserField> },
    Post { id: Arg, post: Set<PostField> },
    Posts { first: Arg, after: Arg, author_id: Arg, page: Set<ConnectionField> },
    Leaderboard { first: Arg, user: Set<UserField> },
}

#[derive(Debug, Clone)]
pub enum UserField {
    Typename,
    Id,
    Username,
    DisplayName,
    Points,
    PostCount,
    CreatedAt,
    Posts { first: Arg, after: Arg, page: Set<ConnectionField> },
}

#[derive(Debug, Clone)]
pub enum PostField {
    Typename,
    Id,
    Title,
    Body,
    CreatedAt,
    Author(Set<UserField>),
}

#[derive(Debug, Clone)]
pub enum ConnectionField {
    Typename,
    Edges(Set<EdgeField>),
    Nodes(Set<PostField>),
    PageInfo(Set<PageInfoField>),
}

#[derive(Debug, Clone)]
pub enum EdgeField {
    Typename,
    Cursor,
    Node(Set<PostField>),
}

#[derive(Debug, Clone, Copy)]
pub enum PageInfoField {
    Typename,
    HasPreviousPage,
    HasNextPage,
    StartCursor,
    EndCursor,
}

/// What the compiler does not cover; the resolvers answer instead.
#[derive(Debug)]
pub struct Unsupported;

/// The scalar types a query's variables can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scalar {
    Int,
    String,
    Id,
    Boolean,
}

/// A variable the operation declares.
#[derive(Debug)]
pub struct Variable {
    pub name: Name,
    pub scalar: Scalar,
    pub nullable: bool,
    pub default: Option<Value>,
}

/// The template of one query operation: its variables and its root fields.
#[derive(Debug)]
pub struct Template {
    pub variables: Vec<Variable>,
    pub root: Set<QueryField>,
    /// How many field occurrences it holds (fragments inlined): its weight.
    pub occurrences: usize,
}

/// The template of the query `operation_name` selects in `document`.
pub fn compile(document: &ExecutableDocument, operation_name: Option<&str>) -> Result<Template, Unsupported> {
    let (_, ty) = selected_operation(document, operation_name).ok_or(Unsupported)?;
    if ty != OperationType::Query {
        return Err(Unsupported);
    }
    let operation = document
        .operations
        .iter()
        .find(|(name, _)| operation_name.is_none() || name.map(|name| name.as_str()) == operation_name)
        .map(|(_, operation)| operation)
        .ok_or(Unsupported)?;
    let variables = operation
        .node
        .variable_definitions
        .iter()
        .map(|definition| {
            let ty = &definition.node.var_type.node;
            let BaseType::Named(name) = &ty.base else { return Err(Unsupported) };
            let scalar = match name.as_str() {
                "Int" => Scalar::Int,
                "String" => Scalar::String,
                "ID" => Scalar::Id,
                "Boolean" => Scalar::Boolean,
                _ => return Err(Unsupported),
            };
            let default = definition.node.default_value().cloned();
            Ok(Variable { name: definition.node.name.node.clone(), scalar, nullable: ty.nullable, default })
        })
        .collect::<Result<_, _>>()?;
    let reader = Reader { document, occurrences: std::cell::Cell::new(0) };
    let root = reader.set(&operation.node.selection_set.node, &[], &Reader::query_field)?;
    Ok(Template { variables, root, occurrences: reader.occurrences.get() })
}

/// Reads selection sets of one document.
struct Reader<'d> {
    document: &'d ExecutableDocument,
    occurrences: std::cell::Cell<usize>,
}

type FieldOf<'d, F> = dyn Fn(&Reader<'d>, &Field) -> Result<F, Unsupported>;

impl<'d> Reader<'d> {
    /// The occurrences of `set` (on one type), fragments inlined, each with
    /// `outer` conditions and its own.
    fn set<F>(&self, set: &SelectionSet, outer: &[Condition], field_of: &FieldOf<'d, F>) -> Result<Set<F>, Unsupported> {
        let mut occurrences = Vec::new();
        self.collect(set, outer, field_of, &mut occurrences, 0)?;
        Ok(occurrences)
    }

    fn collect<F>(
        &self,
        set: &SelectionSet,
        outer: &[Condition],
        field_of: &FieldOf<'d, F>,
        into: &mut Set<F>,
        depth: usize,
    ) -> Result<(), Unsupported> {
        // Validation refused cycles; this only keeps a bug from recursing forever.
        if depth > 64 {
            return Err(Unsupported);
        }
        for selection in &set.items {
            let mut conditions = outer.to_vec();
            conditions.extend(conditions_of(selection.node.directives())?);
            match &selection.node {
                Selection::Field(field) => {
                    self.occurrences.set(self.occurrences.get() + 1);
                    into.push(Occurrence {
                        key: field.node.response_key().node.clone(),
                        field: field_of(self, &field.node)?,
                        conditions,
                    })
                }
                // Every type condition names the object type itself: the
                // schema has no interfaces or unions, and validation refused
                // any other.
                Selection::InlineFragment(fragment) => {
                    self.collect(&fragment.node.selection_set.node, &conditions, field_of, into, depth + 1)?
                }
                Selection::FragmentSpread(spread) => {
                    let fragment = self.document.fragments.get(&spread.node.fragment_name.node).ok_or(Unsupported)?;
                    if !fragment.node.directives.is_empty() {
                        return Err(Unsupported);
                    }
                    self.collect(&fragment.node.selection_set.node, &conditions, field_of, into, depth + 1)?
                }
            }
        }
        Ok(())
    }

    fn query_field(&self, field: &Field) -> Result<QueryField, Unsupported> {
        let user = |reader: &Self| reader.set(&field.selection_set.node, &[], &Self::user_field);
        Ok(match field.name.node.as_str() {
            "__typename" => QueryField::Typename,
            "me" => QueryField::Me(user(self)?),
            "user" => QueryField::User { id: argument(field, "id"), user: user(self)? },
            "userByUsername" => QueryField::UserByUsername { username: argument(field, "username"), user: user(self)? },
            "post" => {
                QueryField::Post { id: argument(field, "id"), post: self.set(&field.selection_set.node, &[], &Self::post_field)? }
            }
            "posts" => QueryField::Posts {
                first: argument(field, "first"),
                after: argument(field, "after"),
                author_id: argument(field, "authorId"),
                page: self.set(&field.selection_set.node, &[], &Self::connection_field)?,
            },
            "leaderboard" => QueryField::Leaderboard { first: argument(field, "first"), user: user(self)? },
            _ => return Err(Unsupported),
        })
    }

    fn user_field(&self, field: &Field) -> Result<UserField, Unsupported> {
        Ok(match field.name.node.as_str() {
            "__typename" => UserField::Typename,
            "id" => UserField::Id,
            "username" => UserField::Username,
            "displayName" => UserField::DisplayName,
            "points" => UserField::Points,
            "postCount" => UserField::PostCount,
            "createdAt" => UserField::CreatedAt,
            "posts" => UserField::Posts {
                first: argument(field, "first"),
                after: argument(field, "after"),
                page: self.set(&field.selection_set.node, &[], &Self::connection_field)?,
            },
            _ => return Err(Unsupported),
        })
    }

    fn post_field(&self, field: &Field) -> Result<PostField, Unsupported> {
        Ok(match field.name.node.as_str() {
            "__typename" => PostField::Typename,
            "id" => PostField::Id,
            "title" => PostField::Title,
            "body" => PostField::Body,
            "createdAt" => PostField::CreatedAt,
            "author" => PostField::Author(self.set(&field.selection_set.node, &[], &Self::user_field)?),
            _ => return Err(Unsupported),
        })
    }

    fn connection_field(&self, field: &Field) -> Result<ConnectionField, Unsupported> {
        let set = &field.selection_set.node;
        Ok(match field.name.node.as_str() {
            "__typename" => ConnectionField::Typename,
            "edges" => ConnectionField::Edges(self.set(set, &[], &Self::edge_field)?),
            "nodes" => ConnectionField::Nodes(self.set(set, &[], &Self::post_field)?),
            "pageInfo" => ConnectionField::PageInfo(self.set(set, &[], &Self::page_info_field)?),
            _ => return Err(Unsupported),
        })
    }

    fn edge_field(&self, field: &Field) -> Result<EdgeField, Unsupported> {
        Ok(match field.name.node.as_str() {
            "__typename" => EdgeField::Typename,
            "cursor" => EdgeField::Cursor,
            "node" => EdgeField::Node(self.set(&field.selection_set.node, &[], &Self::post_field)?),
            _ => return Err(Unsupported),
        })
    }

    fn page_info_field(&self, field: &Field) -> Result<PageInfoField, Unsupported> {
        Ok(match field.name.node.as_str() {
            "__typename" => PageInfoField::Typename,
            "hasPreviousPage" => PageInfoField::HasPreviousPage,
            "hasNextPage" => PageInfoField::HasNextPage,
            "startCursor" => PageInfoField::StartCursor,
            "endCursor" => PageInfoField::EndCursor,
            _ => return Err(Unsupported),
        })
    }
}

fn argument(field: &Field, name: &str) -> Arg {
    arg(field.get_argument(name).map(|value| &value.node))
}

/// An argument's value as written (a scalar: the schema's arguments are).
fn arg(value: Option<&InputValue>) -> Arg {
    match value {
        None => Arg::Absent,
        Some(InputValue::Variable(variable)) => Arg::Variable(variable.clone()),
        // A list or object holding variables: no argument here takes one.
        Some(literal) => literal.clone().into_const().map_or(Arg::Absent, Arg::Literal),
    }
}

/// The `@skip`/`@include` conditions of a selection; any other directive is unsupported.
fn conditions_of(directives: &[Positioned<Directive>]) -> Result<Vec<Condition>, Unsupported> {
    directives
        .iter()
        .map(|directive| {
            let include = match directive.node.name.node.as_str() {
                "include" => true,
                "skip" => false,
                _ => return Err(Unsupported),
            };
            Ok(Condition { include, value: arg(directive.node.get_argument("if").map(|value| &value.node)) })
        })
        .collect()
}
