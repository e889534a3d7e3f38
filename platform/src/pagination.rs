//! The paging rules of the public contract, the same wherever posts are
//! paged: `first` from 0 to 100 (20 when not given), `after` a cursor this
//! API issued.

use agora_schema::PostCursor;

use crate::graphql::InputError;

/// How many posts a page holds when the client does not say.
pub const DEFAULT_PAGE_SIZE: i32 = 20;

/// How many posts a page may hold.
pub const MAX_PAGE_SIZE: i32 = 100;

/// What page a client asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    pub limit: i64,
    pub after: Option<PostCursor>,
}

impl PageRequest {
    pub fn parse(first: Option<i32>, after: Option<&str>) -> Result<Self, InputError> {
        let first = first.unwrap_or(DEFAULT_PAGE_SIZE);
        if !(0..=MAX_PAGE_SIZE).contains(&first) {
            return Err(InputError::new("first", format!("must be between 0 and {MAX_PAGE_SIZE}")));
        }
        let after = after
            .map(|cursor| PostCursor::decode(cursor).map_err(|_| InputError::new("after", "is not a cursor this API issued")))
            .transpose()?;
        Ok(PageRequest { limit: first.into(), after })
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
        let cursor = PostCursor { created_at: chrono::Utc::now(), id: uuid::Uuid::now_v7() };
        let cursor = PostCursor::decode(&cursor.encode()).unwrap();
        assert_eq!(PageRequest::parse(None, Some(&cursor.encode())).unwrap().after, Some(cursor));
        assert_eq!(PageRequest::parse(None, Some("garbage")).unwrap_err().field, "after");
    }
}
