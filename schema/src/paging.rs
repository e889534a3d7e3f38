//! The paging rules of posts, defined once for every part that pages them
//! (post-service, and both of the gateway's strategies): what a client may
//! ask (`first` from 0 to 100, 20 when not given; `after` a cursor this API
//! issued), how a page is read (one row more than it holds: the extra one
//! only says that a next page exists), and the key of one author's page in
//! a batched lookup.

use std::collections::HashMap;

use uuid::Uuid;

use crate::cursor::PostCursor;
use crate::rules::RuleError;

/// How many posts a page holds when the client does not say.
pub const DEFAULT_PAGE_SIZE: i32 = 20;

/// How many posts a page may hold.
pub const MAX_PAGE_SIZE: i32 = 100;

/// How many users the leaderboard shows when the client does not say.
pub const DEFAULT_LEADERBOARD_SIZE: i32 = 10;

/// How many users the leaderboard shows for `first`, or the rule it breaks.
pub fn leaderboard_size(first: Option<i32>) -> Result<i64, RuleError> {
    let first = first.unwrap_or(DEFAULT_LEADERBOARD_SIZE);
    if !(0..=MAX_PAGE_SIZE).contains(&first) {
        return Err(RuleError { field: "first", reason: format!("must be between 0 and {MAX_PAGE_SIZE}") });
    }
    Ok(first.into())
}

/// The page a client asks for: up to `limit` posts after `after`, newest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PageRequest {
    pub limit: i64,
    pub after: Option<PostCursor>,
}

impl PageRequest {
    /// The page that `first` and `after` ask for, or the argument that
    /// breaks the rules.
    pub fn parse(first: Option<i32>, after: Option<&str>) -> Result<Self, RuleError> {
        let first = first.unwrap_or(DEFAULT_PAGE_SIZE);
        if !(0..=MAX_PAGE_SIZE).contains(&first) {
            return Err(RuleError { field: "first", reason: format!("must be between 0 and {MAX_PAGE_SIZE}") });
        }
        let after = after
            .map(|cursor| {
                PostCursor::decode(cursor)
                    .map_err(|_| RuleError { field: "after", reason: "is not a cursor this API issued".into() })
            })
            .transpose()?;
        Ok(PageRequest { limit: first.into(), after })
    }

    /// How many rows to read for this page: one more than it holds, which
    /// only tells whether more follow.
    pub fn rows_to_fetch(&self) -> i64 {
        self.limit + 1
    }

    /// The page from rows read with [`PageRequest::rows_to_fetch`].
    pub fn page_of<T>(&self, mut rows: Vec<T>) -> PostPage<T> {
        let has_next_page = rows.len() as i64 > self.limit;
        rows.truncate(self.limit.max(0) as usize);
        PostPage { posts: rows, has_next_page }
    }

    /// Each author's page from the rows of one batched read (up to
    /// [`PageRequest::rows_to_fetch`] per author); an author without rows
    /// is left out.
    pub fn pages_by_author<T>(&self, rows: Vec<T>, author_of: impl Fn(&T) -> Uuid) -> HashMap<Uuid, PostPage<T>> {
        let mut by_author: HashMap<Uuid, Vec<T>> = HashMap::new();
        for row in rows {
            by_author.entry(author_of(&row)).or_default().push(row);
        }
        by_author.into_iter().map(|(author, rows)| (author, self.page_of(rows))).collect()
    }
}

/// A page of posts (`T`: a post as the part holds it), newest first, and
/// whether more follow it. Whoever reads the page says so: a service that
/// caps its page size cannot be asked for one row more than the largest page.
#[derive(Debug, Clone, PartialEq)]
pub struct PostPage<T> {
    pub posts: Vec<T>,
    pub has_next_page: bool,
}

impl<T> Default for PostPage<T> {
    /// No posts, and none after them.
    fn default() -> Self {
        PostPage { posts: Vec::new(), has_next_page: false }
    }
}

/// One author's page of posts: the key of a batched lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AuthorPage {
    pub author_id: Uuid,
    pub page: PageRequest,
}

impl AuthorPage {
    /// The authors of `keys` grouped by the page asked of them: each group
    /// is one batched read (in practice, one per request and level).
    pub fn group(keys: &[AuthorPage]) -> HashMap<PageRequest, Vec<Uuid>> {
        let mut groups: HashMap<PageRequest, Vec<Uuid>> = HashMap::new();
        for key in keys {
            groups.entry(key.page).or_default().push(key.author_id);
        }
        groups
    }

    /// The answer to one group: every author's key with its page (an empty
    /// one when `pages` has none for it).
    pub fn answer<T>(
        page: PageRequest,
        authors: &[Uuid],
        mut pages: HashMap<Uuid, PostPage<T>>,
    ) -> Vec<(AuthorPage, PostPage<T>)> {
        authors.iter().map(|&author_id| (AuthorPage { author_id, page }, pages.remove(&author_id).unwrap_or_default())).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_holds_zero_to_a_hundred_posts_and_twenty_by_default() {
        assert_eq!(PageRequest::parse(None, None).unwrap().limit, 20);
        assert_eq!(PageRequest::parse(Some(0), None).unwrap().limit, 0);
        assert_eq!(PageRequest::parse(Some(100), None).unwrap().limit, 100);
        assert_eq!(PageRequest::parse(Some(-1), None).unwrap_err().field, "first");
        assert_eq!(PageRequest::parse(Some(101), None).unwrap_err().field, "first");
    }

    #[test]
    fn a_page_continues_after_a_cursor_this_api_issued() {
        let cursor = PostCursor { created_at: chrono::Utc::now(), id: Uuid::now_v7() };
        let cursor = PostCursor::decode(&cursor.encode()).unwrap();
        assert_eq!(PageRequest::parse(None, Some(&cursor.encode())).unwrap().after, Some(cursor));
        assert_eq!(PageRequest::parse(None, Some("garbage")).unwrap_err().field, "after");
    }

    #[test]
    fn the_row_read_beyond_a_page_only_says_that_more_follow() {
        let page = PageRequest { limit: 2, after: None };
        assert_eq!(page.rows_to_fetch(), 3);
        assert_eq!(page.page_of(vec![1, 2, 3]), PostPage { posts: vec![1, 2], has_next_page: true });
        assert_eq!(page.page_of(vec![1, 2]), PostPage { posts: vec![1, 2], has_next_page: false });
        assert_eq!(PageRequest { limit: 0, after: None }.page_of(vec![1]), PostPage { posts: vec![], has_next_page: true });
    }

    #[test]
    fn each_author_of_a_batch_gets_a_page_of_its_own() {
        let (ada, bob, eve) = (Uuid::from_u128(1), Uuid::from_u128(2), Uuid::from_u128(3));
        let page = PageRequest { limit: 1, after: None };
        let rows = vec![(ada, "a1"), (ada, "a2"), (bob, "b1")];
        let pages = page.pages_by_author(rows, |row| row.0);
        let answer: HashMap<AuthorPage, PostPage<(Uuid, &str)>> =
            AuthorPage::answer(page, &[ada, bob, eve], pages).into_iter().collect();

        assert_eq!(answer[&AuthorPage { author_id: ada, page }], PostPage { posts: vec![(ada, "a1")], has_next_page: true });
        assert_eq!(answer[&AuthorPage { author_id: bob, page }], PostPage { posts: vec![(bob, "b1")], has_next_page: false });
        assert_eq!(answer[&AuthorPage { author_id: eve, page }], PostPage::default());
    }

    #[test]
    fn authors_asked_for_the_same_page_are_read_together() {
        let first = PageRequest { limit: 5, after: None };
        let other = PageRequest { limit: 10, after: None };
        let keys: Vec<AuthorPage> = [(1, first), (2, first), (3, other)]
            .into_iter()
            .map(|(author, page)| AuthorPage { author_id: Uuid::from_u128(author), page })
            .collect();
        let groups = AuthorPage::group(&keys);
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[&first], vec![Uuid::from_u128(1), Uuid::from_u128(2)]);
    }
}
