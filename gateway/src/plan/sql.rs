//! A bound operation as one SQL statement over the read model: PostgreSQL
//! gathers the whole answer (every root field, every page and its posts'
//! authors, at any depth) into one JSON array with `json_build_array` and
//! `json_agg`, as Hasura and PostGraphile do; the gateway then writes the
//! response from it ([`super::write`]).
//!
//! The statement carries raw values only, in fixed positions (a user is
//! `[id, username, displayName, points, postCount, createdAt µs, children…]`,
//! a post `[id, title, body, createdAt µs, authorId, children…]`, a page
//! `[rows fetched, [rows shown]]`, one more fetched than asked to tell
//! whether more follow), so
//! the response's formats (timestamps, cursors, escapes) stay the ones the
//! resolvers write. Every value a client gives is a parameter; the text
//! depends only on the shape of the operation, so PostgreSQL's prepared
//! statements are reused across requests.

use agora_schema::paging::PageRequest;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::bind::{
    Authors, Bound, Connection, ConnectionField, EdgeField, Post, PostField, Refused, Root, User, UserField, UserKey,
};

/// A parameter of the statement.
#[derive(Debug, Clone)]
pub enum Param {
    Uuid(Uuid),
    Text(String),
    Time(DateTime<Utc>),
}

#[derive(Debug)]
pub struct Statement {
    pub text: String,
    pub params: Vec<Param>,
}

/// PostgreSQL's limit on a function's arguments (`json_build_array`'s values).
const MAX_VALUES: usize = 100;

/// The statement answering `bound`, or `None` when no root field reads the
/// read model (each is `__typename` or names nothing). `Refused` when a
/// row would carry more values than PostgreSQL takes.
pub fn statement(bound: &Bound) -> Result<Option<Statement>, Refused> {
    let mut builder = Builder::default();
    let mut roots = vec![String::from("null"); bound.slots];
    let mut reads = false;
    for (_, root) in &bound.root {
        let (slot, expression) = match root {
            Root::Typename => continue,
            Root::User { key: None, slot, .. }
            | Root::Post { id: None, slot, .. }
            | Root::Posts { authors: Authors::Nobody, slot, .. } => (*slot, "null".to_owned()),
            Root::User { key: Some(key), user, slot } => (*slot, builder.user(key, user)?),
            Root::Post { id: Some(id), post, children, slot } => (*slot, builder.post(*id, post, *children)?),
            Root::Posts { authors, page, connection, slot } => {
                let author = match authors {
                    Authors::One(id) => Author::Param(*id),
                    _ => Author::Any,
                };
                (*slot, builder.page(author, page, connection)?)
            }
            Root::Leaderboard { first, user, slot } => (*slot, builder.leaderboard(*first, user)?),
        };
        reads |= expression != "null";
        roots[slot] = expression;
    }
    if !reads {
        return Ok(None);
    }
    let text = format!("select {}::text", array(roots)?);
    Ok(Some(Statement { text, params: builder.params }))
}

/// Whose posts a page shows.
enum Author<'a> {
    Any,
    Param(Uuid),
    /// The user of the row around the page (`User.posts`).
    Of(UserColumns<'a>),
}

/// Where a user's columns are: a row of `read_user` (`u.id`, …), or the
/// author's columns carried by a page's row (`r.author_username`, …).
#[derive(Clone, Copy)]
struct UserColumns<'a> {
    alias: &'a str,
    prefix: &'a str,
}

impl UserColumns<'_> {
    fn column(&self, name: &str) -> String {
        format!("{}.{}{name}", self.alias, self.prefix)
    }

    /// The user's id: a page's row carries it as its post's `author_id`.
    fn id(&self) -> String {
        if self.prefix.is_empty() {
            self.column("id")
        } else {
            format!("{}.author_id", self.alias)
        }
    }
}

/// The author's columns a page's inner select carries, by the names
/// [`UserColumns`] with the prefix `author_` reads.
/// (Its id is the post's `author_id`.)
const AUTHOR_COLUMNS: &str = "username as author_username, display_name as author_display_name, \
     points as author_points, post_count as author_post_count, created_at as author_created_at";

#[derive(Default)]
struct Builder {
    params: Vec<Param>,
    aliases: usize,
}

/// `json_build_array(values…)`.
fn array(values: Vec<String>) -> Result<String, Refused> {
    if values.len() > MAX_VALUES {
        return Err(Refused);
    }
    Ok(format!("json_build_array({})", values.join(", ")))
}

/// A timestamp as microseconds since the epoch (exact: `extract` is numeric).
fn micros(column: &str) -> String {
    format!("(extract(epoch from {column}) * 1000000)::int8")
}

impl Builder {
    fn param(&mut self, param: Param) -> String {
        let cast = match param {
            Param::Uuid(_) => "uuid",
            Param::Text(_) => "text",
            Param::Time(_) => "timestamptz",
        };
        self.params.push(param);
        format!("${}::{cast}", self.params.len())
    }

    fn alias(&mut self, prefix: &str) -> String {
        self.aliases += 1;
        format!("{prefix}{}", self.aliases)
    }

    /// The row of the user whose columns are `u`, with its pages.
    fn user_row(&mut self, u: UserColumns<'_>, user: &User) -> Result<String, Refused> {
        let mut values: Vec<String> = [u.id()]
            .into_iter()
            .chain(["username", "display_name", "points", "post_count"].iter().map(|column| u.column(column)))
            .chain([micros(&u.column("created_at"))])
            .collect();
        let mut children = vec![String::new(); user.children];
        for (_, field) in &user.fields {
            if let UserField::Posts { page, connection, slot } = field {
                children[*slot] = self.page(Author::Of(u), page, connection)?;
            }
        }
        values.extend(children);
        array(values)
    }

    /// The row of the post `p` whose author's columns are `u`, with the
    /// authors of `posts` (the selections sharing the row) in their slots.
    fn post_row(&mut self, p: &str, u: UserColumns<'_>, posts: &[&Post], children: usize) -> Result<String, Refused> {
        let mut values: Vec<String> = ["id", "title", "body"]
            .iter()
            .map(|column| format!("{p}.{column}"))
            .chain([micros(&format!("{p}.created_at")), format!("{p}.author_id")])
            .collect();
        let mut authors = vec![String::new(); children];
        for post in posts {
            for (_, field) in &post.fields {
                if let PostField::Author { user, slot } = field {
                    authors[*slot] = self.user_row(u, user)?;
                }
            }
        }
        values.extend(authors);
        array(values)
    }

    fn user(&mut self, key: &UserKey, user: &User) -> Result<String, Refused> {
        let u = self.alias("u");
        let condition = match key {
            UserKey::Id(id) => format!("{u}.id = {} and {u}.username is not null", self.param(Param::Uuid(*id))),
            UserKey::Username(username) => format!("{u}.username = {}", self.param(Param::Text(username.clone()))),
        };
        let row = self.user_row(UserColumns { alias: &u, prefix: "" }, user)?;
        Ok(format!("(select {row} from read_user {u} where {condition})"))
    }

    fn post(&mut self, id: Uuid, post: &Post, children: usize) -> Result<String, Refused> {
        let (p, u) = (self.alias("p"), self.alias("u"));
        let id = self.param(Param::Uuid(id));
        let row = self.post_row(&p, UserColumns { alias: &u, prefix: "" }, &[post], children)?;
        Ok(format!(
            "(select {row} from read_post {p} join read_user {u} on {u}.id = {p}.author_id and {u}.username is not null \
             where {p}.id = {id})"
        ))
    }

    fn leaderboard(&mut self, first: i64, user: &User) -> Result<String, Refused> {
        let (u, r) = (self.alias("u"), self.alias("r"));
        // Limits are written out (they are small numbers the rules bound):
        // PostgreSQL's generic plan of a parameter limit expects a tenth of
        // the table, and scans it in parallel.
        let limit = first;
        let row = self.user_row(UserColumns { alias: &u, prefix: "" }, user)?;
        Ok(format!(
            "(select coalesce(json_agg({r}.j order by {r}.points desc, {r}.created_at, {r}.id), '[]') \
             from (select {u}.points, {u}.created_at, {u}.id, {row} as j from read_user {u} \
             where {u}.username is not null order by {u}.points desc, {u}.created_at, {u}.id limit {limit}) {r})"
        ))
    }

    /// A page of posts, newest first: `[rows fetched, [rows shown]]`. One
    /// row more than asked is fetched, to tell whether more follow, and
    /// only the rows shown are built (with their children): a page of none
    /// costs one row, whatever it selects.
    fn page(&mut self, author: Author<'_>, page: &PageRequest, connection: &Connection) -> Result<String, Refused> {
        let (p, r) = (self.alias("p"), self.alias("r"));
        let mut conditions = Vec::new();
        // Only posts whose author is known show: the author is joined, and
        // its columns carried in the row; or it is the user the page
        // belongs to.
        let (join, columns, u) = match author {
            Author::Of(u) => {
                conditions.push(format!("{p}.author_id = {}", u.id()));
                (String::new(), String::new(), u)
            }
            Author::Any | Author::Param(_) => {
                let k = self.alias("k");
                if let Author::Param(id) = author {
                    let id = self.param(Param::Uuid(id));
                    conditions.push(format!("{p}.author_id = {id}"));
                }
                let join = format!(" join read_user {k} on {k}.id = {p}.author_id and {k}.username is not null");
                let columns = format!(
                    ", {}",
                    AUTHOR_COLUMNS.split(", ").map(|column| format!("{k}.{column}")).collect::<Vec<_>>().join(", ")
                );
                (join, columns, UserColumns { alias: &r, prefix: "author_" })
            }
        };
        if let Some(after) = page.after {
            let (created_at, id) = (self.param(Param::Time(after.created_at)), self.param(Param::Uuid(after.id)));
            conditions.push(format!("({p}.created_at, {p}.id) < ({created_at}, {id})"));
        }
        // Written out, as the leaderboard's.
        let (fetched, shown) = (page.rows_to_fetch(), page.limit);
        let posts = posts_of(connection);
        let row = self.post_row(&r, u, &posts, connection.children)?;
        let filter = if conditions.is_empty() { String::new() } else { format!(" where {}", conditions.join(" and ")) };
        Ok(format!(
            "(select json_build_array(count(*), coalesce(json_agg({row} order by {r}.n) filter (where {r}.n <= {shown}), '[]')) \
             from (select {p}.id, {p}.title, {p}.body, {p}.created_at, {p}.author_id{columns}, \
             row_number() over (order by {p}.created_at desc, {p}.id desc) as n from read_post {p}{join}{filter} \
             order by {p}.created_at desc, {p}.id desc limit {fetched}) {r})"
        ))
    }
}

/// Every post selection of a page (its edges' nodes and its nodes): they share the rows.
fn posts_of(connection: &Connection) -> Vec<&Post> {
    let mut posts = Vec::new();
    for (_, field) in &connection.fields {
        match field {
            ConnectionField::Edges(edges) => posts.extend(edges.iter().filter_map(|(_, edge)| match edge {
                EdgeField::Node(post) => Some(post),
                _ => None,
            })),
            ConnectionField::Nodes(post) => posts.push(post),
            ConnectionField::Typename | ConnectionField::PageInfo(_) => {}
        }
    }
    posts
}
