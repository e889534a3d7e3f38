//! The response's `data`, written from the statement's rows as the bound
//! operation selects them: keys in the selection's order, strings escaped
//! by serde_json, timestamps in RFC 3339 and cursors encoded as the
//! resolvers write them, so both executors give the same bytes. What each
//! part read is recorded as the read-model source records it, for the
//! response cache.

use agora_schema::paging::PageRequest;
use agora_schema::PostCursor;
use chrono::DateTime;
use serde_json::Value;
use uuid::Uuid;

use super::bind::{Authors, Bound, Connection, ConnectionField, EdgeField, Post, PostField, Root, User, UserField, UserKey};
use super::template::PageInfoField;
use crate::records::Tag;

/// The rows were not what the statement makes (a bug): the resolvers answer.
#[derive(Debug, thiserror::Error)]
#[error("the compiled statement's rows do not have the expected shape")]
pub struct Malformed;

type Written = Result<(), Malformed>;

/// `data` for `bound` from `roots` (the statement's array, one value per slot).
pub fn data(bound: &Bound, roots: &[Value], tags: &mut Vec<Tag>) -> Result<String, Malformed> {
    let mut writer = Writer { out: Vec::with_capacity(4096), tags };
    writer.root(bound, roots)?;
    // Only whole JSON tokens and serde_json's escaped strings were written.
    String::from_utf8(writer.out).map_err(|_| Malformed)
}

struct Writer<'t> {
    out: Vec<u8>,
    tags: &'t mut Vec<Tag>,
}

fn array(value: &Value) -> Result<&[Value], Malformed> {
    value.as_array().map(Vec::as_slice).ok_or(Malformed)
}

fn text(value: &Value) -> Result<&str, Malformed> {
    value.as_str().ok_or(Malformed)
}

fn uuid(value: &Value) -> Result<Uuid, Malformed> {
    text(value)?.parse().map_err(|_| Malformed)
}

fn instant(value: &Value) -> Result<DateTime<chrono::Utc>, Malformed> {
    value.as_i64().and_then(DateTime::from_timestamp_micros).ok_or(Malformed)
}

fn cursor(row: &[Value]) -> Result<String, Malformed> {
    Ok(PostCursor { created_at: instant(row.get(3).ok_or(Malformed)?)?, id: uuid(&row[0])? }.encode())
}

impl Writer<'_> {
    /// `text` as a JSON string, escaped as serde_json escapes (as the
    /// resolvers' answers are written).
    fn string(&mut self, text: &str) {
        // Writing into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut self.out, text);
    }

    fn push(&mut self, token: &str) {
        self.out.extend_from_slice(token.as_bytes());
    }

    /// A key of the response: a GraphQL name, which needs no escaping.
    fn key(&mut self, first: bool, key: &str) {
        if !first {
            self.out.push(b',');
        }
        self.out.push(b'"');
        self.push(key);
        self.push("\":");
    }

    fn value_text(&mut self, value: &Value) -> Written {
        self.string(text(value)?);
        Ok(())
    }

    fn number(&mut self, value: &Value) -> Written {
        let number = value.as_i64().ok_or(Malformed)?;
        let _ = serde_json::to_writer(&mut self.out, &number);
        Ok(())
    }

    fn instant(&mut self, value: &Value) -> Written {
        let instant = instant(value)?.to_rfc3339();
        self.string(&instant);
        Ok(())
    }

    fn list<T>(&mut self, items: &[T], mut each: impl FnMut(&mut Self, &T) -> Written) -> Written {
        self.out.push(b'[');
        for (n, item) in items.iter().enumerate() {
            if n > 0 {
                self.out.push(b',');
            }
            each(self, item)?;
        }
        self.out.push(b']');
        Ok(())
    }

    fn root(&mut self, bound: &Bound, roots: &[Value]) -> Written {
        self.out.push(b'{');
        for (n, (key, root)) in bound.root.iter().enumerate() {
            self.key(n == 0, key);
            match root {
                Root::Typename => self.push("\"Query\""),
                Root::User { key, user, slot } => {
                    match key {
                        Some(UserKey::Id(id)) => self.tags.push(Tag::User(*id)),
                        Some(UserKey::Username(username)) => self.tags.push(Tag::Username(username.clone())),
                        None => {}
                    }
                    match roots.get(*slot).ok_or(Malformed)? {
                        Value::Null => self.push("null"),
                        row => self.user(array(row)?, user)?,
                    }
                }
                Root::Post { id, post, slot, .. } => {
                    if let Some(id) = id {
                        // A post not found may be one whose author is not known yet.
                        self.tags.extend([Tag::Post(*id), Tag::Registrations]);
                    }
                    match roots.get(*slot).ok_or(Malformed)? {
                        Value::Null => self.push("null"),
                        row => {
                            let row = array(row)?;
                            self.tags.push(Tag::User(uuid(row.get(4).ok_or(Malformed)?)?));
                            self.post(row, post)?
                        }
                    }
                }
                Root::Posts { authors, page, connection, slot } => {
                    let empty = Value::Array(vec![Value::from(0), Value::Array(Vec::new())]);
                    let page_value = match authors {
                        Authors::Nobody => &empty,
                        Authors::All => {
                            self.tags.extend([Tag::Posts, Tag::Registrations]);
                            roots.get(*slot).ok_or(Malformed)?
                        }
                        Authors::One(author) => {
                            self.tags.extend([Tag::PostsBy(*author), Tag::Registrations]);
                            roots.get(*slot).ok_or(Malformed)?
                        }
                    };
                    self.page(page_value, page, connection)?
                }
                Root::Leaderboard { user, slot, .. } => {
                    self.tags.push(Tag::Leaderboard);
                    let rows = array(roots.get(*slot).ok_or(Malformed)?)?;
                    self.list(rows, |writer, row| writer.user(array(row)?, user))?
                }
            }
        }
        self.out.push(b'}');
        Ok(())
    }

    fn user(&mut self, row: &[Value], user: &User) -> Written {
        if row.len() < 6 + user.children {
            return Err(Malformed);
        }
        let id = uuid(&row[0])?;
        self.tags.push(Tag::User(id));
        self.out.push(b'{');
        for (n, (key, field)) in user.fields.iter().enumerate() {
            self.key(n == 0, key);
            match field {
                UserField::Typename => self.push("\"User\""),
                UserField::Id => self.value_text(&row[0])?,
                UserField::Username => self.value_text(&row[1])?,
                UserField::DisplayName => self.value_text(&row[2])?,
                UserField::Points => self.number(&row[3])?,
                UserField::PostCount => self.number(&row[4])?,
                UserField::CreatedAt => self.instant(&row[5])?,
                UserField::Posts { page, connection, slot } => {
                    self.tags.extend([Tag::PostsBy(id), Tag::User(id)]);
                    self.page(&row[6 + slot], page, connection)?
                }
            }
        }
        self.out.push(b'}');
        Ok(())
    }

    fn post(&mut self, row: &[Value], post: &Post) -> Written {
        if row.len() < 5 {
            return Err(Malformed);
        }
        self.out.push(b'{');
        for (n, (key, field)) in post.fields.iter().enumerate() {
            self.key(n == 0, key);
            match field {
                PostField::Typename => self.push("\"Post\""),
                PostField::Id => self.value_text(&row[0])?,
                PostField::Title => self.value_text(&row[1])?,
                PostField::Body => self.value_text(&row[2])?,
                PostField::CreatedAt => self.instant(&row[3])?,
                PostField::Author { user, slot } => self.user(array(row.get(5 + slot).ok_or(Malformed)?)?, user)?,
            }
        }
        self.out.push(b'}');
        Ok(())
    }

    /// A page from `[rows fetched, [rows shown]]`.
    fn page(&mut self, page_value: &Value, page: &PageRequest, connection: &Connection) -> Written {
        let (fetched, rows) = match array(page_value)? {
            [fetched, rows] => (fetched.as_i64().ok_or(Malformed)?, array(rows)?),
            _ => return Err(Malformed),
        };
        let has_next_page = fetched > page.limit;
        let mut shown = Vec::with_capacity(rows.len());
        for row in rows {
            let row = array(row)?;
            self.tags.push(Tag::User(uuid(row.get(4).ok_or(Malformed)?)?));
            shown.push(row);
        }
        self.out.push(b'{');
        for (n, (key, field)) in connection.fields.iter().enumerate() {
            self.key(n == 0, key);
            match field {
                ConnectionField::Typename => self.push("\"PostConnection\""),
                ConnectionField::Edges(edge) => self.list(&shown, |writer, row| {
                    writer.out.push(b'{');
                    for (n, (key, field)) in edge.iter().enumerate() {
                        writer.key(n == 0, key);
                        match field {
                            EdgeField::Typename => writer.push("\"PostEdge\""),
                            EdgeField::Cursor => writer.string(&cursor(row)?),
                            EdgeField::Node(post) => writer.post(row, post)?,
                        }
                    }
                    writer.out.push(b'}');
                    Ok(())
                })?,
                ConnectionField::Nodes(post) => self.list(&shown, |writer, row| writer.post(row, post))?,
                ConnectionField::PageInfo(info) => {
                    self.out.push(b'{');
                    for (n, (key, field)) in info.iter().enumerate() {
                        self.key(n == 0, key);
                        match field {
                            PageInfoField::Typename => self.push("\"PageInfo\""),
                            PageInfoField::HasPreviousPage => self.push(bool_text(connection.after_given)),
                            PageInfoField::HasNextPage => self.push(bool_text(has_next_page)),
                            PageInfoField::StartCursor => self.optional_cursor(shown.first())?,
                            PageInfoField::EndCursor => self.optional_cursor(shown.last())?,
                        }
                    }
                    self.out.push(b'}');
                }
            }
        }
        self.out.push(b'}');
        Ok(())
    }

    fn optional_cursor(&mut self, row: Option<&&[Value]>) -> Written {
        match row {
            Some(row) => self.string(&cursor(row)?),
            None => self.push("null"),
        }
        Ok(())
    }
}

fn bool_text(value: bool) -> &'static str {
    if value {
        "true"
    } else {
        "false"
    }
}
