//! A template bound to one request: its `@skip`/`@include` conditions
//! decided, the fields of one response key merged (as CollectFields merges
//! them), the arguments resolved from literals, variables and defaults and
//! checked by the API's rules, and a slot numbered for every value that a
//! row of the statement carries for a child (a post's author, a user's
//! page of posts).
//!
//! The rules are those of the resolvers in `api`, with async-graphql's
//! reading of variables: a variable missing from the request takes its
//! default, `@skip`/`@include` read the request's variables alone (as
//! async-graphql does), and a value the resolvers would refuse (a page size
//! out of range, a cursor this API did not issue, a variable of the wrong
//! type or missing) is [`Refused`]: the resolvers answer it, with the
//! error, its code and its path, the way they always have.

use agora_schema::paging::PageRequest;
use async_graphql::{Name, Value, Variables};
use uuid::Uuid;

use super::template::{self as t, Arg, Condition, Occurrence, Scalar, Set, Template};

/// A request the compiled plan does not answer: the resolvers do.
#[derive(Debug)]
pub struct Refused;

type Bind<T> = Result<T, Refused>;

/// One root field, bound.
#[derive(Debug)]
pub enum Root {
    Typename,
    /// `me`, `user` and `userByUsername`: `None` names nobody (null, no statement).
    User {
        key: Option<UserKey>,
        user: User,
        slot: usize,
    },
    /// `children`: the values the post's row carries (its authors).
    Post {
        id: Option<Uuid>,
        post: Post,
        children: usize,
        slot: usize,
    },
    Posts {
        authors: Authors,
        page: PageRequest,
        connection: Connection,
        slot: usize,
    },
    Leaderboard {
        first: i64,
        user: User,
        slot: usize,
    },
}

#[derive(Debug)]
pub enum UserKey {
    Id(Uuid),
    Username(String),
}

/// Whose posts a list shows.
#[derive(Debug, Clone, Copy)]
pub enum Authors {
    All,
    One(Uuid),
    /// An author id that is not an id: nobody's (an empty page, no statement).
    Nobody,
}

/// The fields of one user object, by response key, and how many children
/// its row carries.
#[derive(Debug)]
pub struct User {
    pub fields: Vec<(Name, UserField)>,
    pub children: usize,
}

#[derive(Debug)]
pub enum UserField {
    Typename,
    Id,
    Username,
    DisplayName,
    Points,
    PostCount,
    CreatedAt,
    Posts { page: PageRequest, connection: Connection, slot: usize },
}

#[derive(Debug)]
pub struct Post {
    pub fields: Vec<(Name, PostField)>,
}

#[derive(Debug)]
pub enum PostField {
    Typename,
    Id,
    Title,
    Body,
    CreatedAt,
    Author { user: User, slot: usize },
}

/// A page's fields; its posts' rows carry `children` values (the authors of
/// every post selection in it, `edges` and `nodes` alike).
#[derive(Debug)]
pub struct Connection {
    pub after_given: bool,
    pub fields: Vec<(Name, ConnectionField)>,
    pub children: usize,
}

#[derive(Debug)]
pub enum ConnectionField {
    Typename,
    Edges(Vec<(Name, EdgeField)>),
    Nodes(Post),
    PageInfo(Vec<(Name, t::PageInfoField)>),
}

#[derive(Debug)]
pub enum EdgeField {
    Typename,
    Cursor,
    Node(Post),
}

/// The bound operation: its root fields and how many of them the statement answers.
#[derive(Debug)]
pub struct Bound {
    pub root: Vec<(Name, Root)>,
    pub slots: usize,
}

/// Binds `template` to a request's `variables`, for `caller` (the user id
/// of a valid token).
pub fn bind(template: &Template, variables: &Variables, caller: Option<Uuid>) -> Bind<Bound> {
    let binder = Binder { template, variables, caller };
    binder.check_variables()?;
    let mut slots = 0;
    let mut root = Vec::new();
    for (key, fields) in binder.merge(&[&template.root])? {
        let bound = binder.root(&fields, &mut slots)?;
        root.push((key, bound));
    }
    Ok(Bound { root, slots })
}

struct Binder<'a> {
    template: &'a Template,
    variables: &'a Variables,
    caller: Option<Uuid>,
}

/// The next slot of a row.
fn next(slots: &mut usize) -> usize {
    *slots += 1;
    *slots - 1
}

impl Binder<'_> {
    /// The occurrences of `sets` that are included, grouped by response key
    /// in the order the keys first appear. Refused when a key would name
    /// different fields or arguments (which async-graphql's validation lets
    /// through across fragments, and its resolvers answer field by field),
    /// or when nothing is left (async-graphql answers null there, not `{}`).
    fn merge<'s, F: Signature>(&self, sets: &[&'s Set<F>]) -> Bind<Vec<(Name, Vec<&'s F>)>> {
        let mut keys: Vec<(Name, Vec<&'s F>)> = Vec::new();
        for occurrence in sets.iter().flat_map(|set| set.iter()) {
            let Occurrence { key, field, conditions } = occurrence;
            if !conditions.iter().all(|condition| self.holds(condition)) {
                continue;
            }
            match keys.iter_mut().find(|(known, _)| known == key) {
                Some((_, fields)) => {
                    let (kind, arguments) = fields[0].signature();
                    let (other_kind, other_arguments) = field.signature();
                    if kind != other_kind || !self.same(arguments, other_arguments)? {
                        return Err(Refused);
                    }
                    fields.push(field)
                }
                None => keys.push((key.clone(), vec![field])),
            }
        }
        if keys.is_empty() {
            return Err(Refused);
        }
        Ok(keys)
    }

    /// Whether two fields' arguments take the same values.
    fn same(&self, arguments: Vec<&Arg>, others: Vec<&Arg>) -> Bind<bool> {
        for (argument, other) in arguments.into_iter().zip(others) {
            if self.value(argument)? != self.value(other)? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// The request's values for the operation's variables, checked against
    /// their types as async-graphql checks them on every request (used or
    /// not, skipped or not): anything else is for the resolvers to refuse.
    fn check_variables(&self) -> Bind<()> {
        for variable in &self.template.variables {
            let fits = match self.variables.get(&variable.name) {
                None => variable.nullable || variable.default.is_some(),
                Some(Value::Null) => variable.nullable,
                Some(value) => match (variable.scalar, value) {
                    (Scalar::Int, Value::Number(number)) => number.as_i64().is_some_and(|n| i32::try_from(n).is_ok()),
                    (Scalar::String | Scalar::Id, Value::String(_)) => true,
                    (Scalar::Boolean, Value::Boolean(_)) => true,
                    _ => false,
                },
            };
            if !fits {
                return Err(Refused);
            }
        }
        Ok(())
    }

    /// As async-graphql decides it: the request's variable (no default), and
    /// anything but `true` is false.
    fn holds(&self, condition: &Condition) -> bool {
        let value = match &condition.value {
            Arg::Absent => return true,
            Arg::Literal(value) => value,
            Arg::Variable(name) => self.variables.get(name).unwrap_or(&Value::Null),
        };
        matches!(value, Value::Boolean(true)) == condition.include
    }

    /// The argument's value: `None` when absent.
    fn value<'v>(&'v self, arg: &'v Arg) -> Bind<Option<&'v Value>> {
        Ok(match arg {
            Arg::Absent => None,
            Arg::Literal(value) => Some(value),
            Arg::Variable(name) => match self.variables.get(name) {
                Some(value) => Some(value),
                // Missing and without a default: the resolvers say so.
                None => Some(self.default(name)?),
            },
        })
    }

    fn default(&self, name: &Name) -> Bind<&Value> {
        let variable = self.template.variables.iter().find(|variable| &variable.name == name);
        variable.and_then(|variable| variable.default.as_ref()).ok_or(Refused)
    }

    fn int(&self, arg: &Arg) -> Bind<Option<i32>> {
        match self.value(arg)? {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(number)) => number.as_i64().and_then(|n| i32::try_from(n).ok()).map(Some).ok_or(Refused),
            Some(_) => Err(Refused),
        }
    }

    /// A String or an ID given as a string.
    fn string(&self, arg: &Arg) -> Bind<Option<String>> {
        match self.value(arg)? {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(text)) => Ok(Some(text.clone())),
            Some(_) => Err(Refused),
        }
    }

    /// A non-null ID: `None` when it is not a UUID (it names nothing).
    fn id(&self, arg: &Arg) -> Bind<Option<Uuid>> {
        Ok(self.string(arg)?.ok_or(Refused)?.parse().ok())
    }

    fn page(&self, first: &Arg, after: &Arg) -> Bind<PageRequest> {
        PageRequest::parse(self.int(first)?, self.string(after)?.as_deref()).map_err(|_| Refused)
    }

    fn root(&self, fields: &[&t::QueryField], slots: &mut usize) -> Bind<Root> {
        use t::QueryField as Q;
        Ok(match fields[0] {
            Q::Typename => Root::Typename,
            Q::Me(_) => {
                let sets = collect(fields, |field| if let Q::Me(user) = field { Some(user) } else { None });
                Root::User { key: self.caller.map(UserKey::Id), user: self.user(&sets)?, slot: next(slots) }
            }
            Q::User { id, .. } => {
                let sets = collect(fields, |field| if let Q::User { user, .. } = field { Some(user) } else { None });
                Root::User { key: self.id(id)?.map(UserKey::Id), user: self.user(&sets)?, slot: next(slots) }
            }
            Q::UserByUsername { username, .. } => {
                let sets = collect(fields, |field| if let Q::UserByUsername { user, .. } = field { Some(user) } else { None });
                let username = self.string(username)?.ok_or(Refused)?;
                // A name that breaks the username rules names nobody.
                let key = agora_schema::rules::check_username(&username).is_ok().then_some(UserKey::Username(username));
                Root::User { key, user: self.user(&sets)?, slot: next(slots) }
            }
            Q::Post { id, .. } => {
                let sets = collect(fields, |field| if let Q::Post { post, .. } = field { Some(post) } else { None });
                let mut children = 0;
                let post = self.post(&sets, &mut children)?;
                Root::Post { id: self.id(id)?, post, children, slot: next(slots) }
            }
            Q::Posts { first, after, author_id, .. } => {
                let sets = collect(fields, |field| if let Q::Posts { page, .. } = field { Some(page) } else { None });
                let page = self.page(first, after)?;
                let authors = match self.string(author_id)? {
                    None => Authors::All,
                    Some(id) => id.parse().map_or(Authors::Nobody, Authors::One),
                };
                Root::Posts { authors, page, connection: self.connection(&sets, page.after.is_some())?, slot: next(slots) }
            }
            Q::Leaderboard { first, .. } => {
                let sets = collect(fields, |field| if let Q::Leaderboard { user, .. } = field { Some(user) } else { None });
                let first = agora_schema::paging::leaderboard_size(self.int(first)?).map_err(|_| Refused)?;
                Root::Leaderboard { first, user: self.user(&sets)?, slot: next(slots) }
            }
        })
    }

    fn user(&self, sets: &[&Set<t::UserField>]) -> Bind<User> {
        use t::UserField as U;
        let mut children = 0;
        let mut fields = Vec::new();
        for (key, group) in self.merge(sets)? {
            let field = match group[0] {
                U::Typename => UserField::Typename,
                U::Id => UserField::Id,
                U::Username => UserField::Username,
                U::DisplayName => UserField::DisplayName,
                U::Points => UserField::Points,
                U::PostCount => UserField::PostCount,
                U::CreatedAt => UserField::CreatedAt,
                U::Posts { first, after, .. } => {
                    let sets = collect(&group, |field| if let U::Posts { page, .. } = field { Some(page) } else { None });
                    let page = self.page(first, after)?;
                    UserField::Posts {
                        page,
                        connection: self.connection(&sets, page.after.is_some())?,
                        slot: next(&mut children),
                    }
                }
            };
            fields.push((key, field));
        }
        Ok(User { fields, children })
    }

    /// A post selection, whose authors take the next slots of `children`
    /// (the row of the post is shared by every selection of its page).
    fn post(&self, sets: &[&Set<t::PostField>], children: &mut usize) -> Bind<Post> {
        use t::PostField as P;
        let mut fields = Vec::new();
        for (key, group) in self.merge(sets)? {
            let field = match group[0] {
                P::Typename => PostField::Typename,
                P::Id => PostField::Id,
                P::Title => PostField::Title,
                P::Body => PostField::Body,
                P::CreatedAt => PostField::CreatedAt,
                P::Author(_) => {
                    let sets = collect(&group, |field| if let P::Author(user) = field { Some(user) } else { None });
                    PostField::Author { user: self.user(&sets)?, slot: next(children) }
                }
            };
            fields.push((key, field));
        }
        Ok(Post { fields })
    }

    fn connection(&self, sets: &[&Set<t::ConnectionField>], after_given: bool) -> Bind<Connection> {
        use t::ConnectionField as C;
        let mut children = 0;
        let mut fields = Vec::new();
        for (key, group) in self.merge(sets)? {
            let field = match group[0] {
                C::Typename => ConnectionField::Typename,
                C::Edges(_) => {
                    let sets = collect(&group, |field| if let C::Edges(edges) = field { Some(edges) } else { None });
                    ConnectionField::Edges(self.edges(&sets, &mut children)?)
                }
                C::Nodes(_) => {
                    let sets = collect(&group, |field| if let C::Nodes(post) = field { Some(post) } else { None });
                    ConnectionField::Nodes(self.post(&sets, &mut children)?)
                }
                C::PageInfo(_) => {
                    let sets = collect(&group, |field| if let C::PageInfo(info) = field { Some(info) } else { None });
                    ConnectionField::PageInfo(self.merge(&sets)?.into_iter().map(|(key, group)| (key, *group[0])).collect())
                }
            };
            fields.push((key, field));
        }
        Ok(Connection { after_given, fields, children })
    }

    fn edges(&self, sets: &[&Set<t::EdgeField>], children: &mut usize) -> Bind<Vec<(Name, EdgeField)>> {
        use t::EdgeField as E;
        let mut fields = Vec::new();
        for (key, group) in self.merge(sets)? {
            let field = match group[0] {
                E::Typename => EdgeField::Typename,
                E::Cursor => EdgeField::Cursor,
                E::Node(_) => {
                    let sets = collect(&group, |field| if let E::Node(post) = field { Some(post) } else { None });
                    EdgeField::Node(self.post(&sets, children)?)
                }
            };
            fields.push((key, field));
        }
        Ok(fields)
    }
}

/// The sub-selections of the fields merged under one response key (the
/// first field's arguments stand for all: validation made them equal).
fn collect<'s, F, S>(fields: &[&'s F], sub: impl Fn(&'s F) -> Option<&'s S>) -> Vec<&'s S> {
    fields.iter().filter_map(|field| sub(field)).collect()
}

/// What must agree for two fields to merge under one response key: the
/// field, and its arguments as written (compared once resolved).
trait Signature {
    fn signature(&self) -> (std::mem::Discriminant<Self>, Vec<&Arg>)
    where
        Self: Sized;
}

impl Signature for t::QueryField {
    fn signature(&self) -> (std::mem::Discriminant<Self>, Vec<&Arg>) {
        use t::QueryField as Q;
        let arguments = match self {
            Q::Typename | Q::Me(_) => vec![],
            Q::User { id, .. } | Q::Post { id, .. } => vec![id],
            Q::UserByUsername { username, .. } => vec![username],
            Q::Posts { first, after, author_id, .. } => vec![first, after, author_id],
            Q::Leaderboard { first, .. } => vec![first],
        };
        (std::mem::discriminant(self), arguments)
    }
}

impl Signature for t::UserField {
    fn signature(&self) -> (std::mem::Discriminant<Self>, Vec<&Arg>) {
        let arguments = match self {
            t::UserField::Posts { first, after, .. } => vec![first, after],
            _ => vec![],
        };
        (std::mem::discriminant(self), arguments)
    }
}

/// Fields without arguments.
macro_rules! no_arguments {
    ($($field:ty),*) => {$(
        impl Signature for $field {
            fn signature(&self) -> (std::mem::Discriminant<Self>, Vec<&Arg>) {
                (std::mem::discriminant(self), vec![])
            }
        }
    )*};
}

no_arguments!(t::PostField, t::ConnectionField, t::EdgeField, t::PageInfoField);
