//! Opaque cursors over posts, ordered newest first by (created_at, id).
//!
//! Both query strategies and post-service encode cursors the same way, so a
//! cursor from one answer can be passed to the other and pages agree.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use uuid::Uuid;

/// A position in the newest-first list of posts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PostCursor {
    pub created_at: DateTime<Utc>,
    pub id: Uuid,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("the cursor is not one this API issued")]
pub struct InvalidCursor;

impl PostCursor {
    const PREFIX: &'static str = "post:";
    /// From 1970-01-01 to the end of 9999, in microseconds since 1970.
    const RANGE_MICROS: std::ops::RangeInclusive<i64> = 0..=253_402_300_799_999_999;

    pub fn encode(&self) -> String {
        let raw = format!("{}{}:{}", Self::PREFIX, self.created_at.timestamp_micros(), self.id);
        URL_SAFE_NO_PAD.encode(raw)
    }

    pub fn decode(cursor: &str) -> Result<Self, InvalidCursor> {
        let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| InvalidCursor)?;
        let raw = String::from_utf8(bytes).map_err(|_| InvalidCursor)?;
        let rest = raw.strip_prefix(Self::PREFIX).ok_or(InvalidCursor)?;
        let (micros, id) = rest.split_once(':').ok_or(InvalidCursor)?;
        let micros: i64 = micros.parse().map_err(|_| InvalidCursor)?;
        // Only instants PostgreSQL stores and compares (and every post has):
        // chrono reaches years PostgreSQL refuses, which would fail the query.
        if !Self::RANGE_MICROS.contains(&micros) {
            return Err(InvalidCursor);
        }
        Ok(PostCursor {
            created_at: DateTime::from_timestamp_micros(micros).ok_or(InvalidCursor)?,
            id: id.parse().map_err(|_| InvalidCursor)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_decodes_to_the_position_it_encodes() {
        let cursor =
            PostCursor { created_at: DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap(), id: Uuid::now_v7() };
        assert_eq!(PostCursor::decode(&cursor.encode()), Ok(cursor));
    }

    #[test]
    fn rejects_a_cursor_it_did_not_issue() {
        for bad in ["", "!!!", "cG9zdDo", &URL_SAFE_NO_PAD.encode("user:1:x"), &URL_SAFE_NO_PAD.encode("post:abc:x")] {
            assert_eq!(PostCursor::decode(bad), Err(InvalidCursor), "{bad}");
        }
    }

    #[test]
    fn rejects_a_cursor_at_an_instant_postgresql_cannot_store() {
        let id = Uuid::now_v7();
        for micros in [i64::MIN, -8_210_298_412_800_000_000, -1, 253_402_300_800_000_000, 8_210_266_876_799_999_999, i64::MAX] {
            let raw = URL_SAFE_NO_PAD.encode(format!("post:{micros}:{id}"));
            assert_eq!(PostCursor::decode(&raw), Err(InvalidCursor), "{micros}");
        }
        let last = URL_SAFE_NO_PAD.encode(format!("post:253402300799999999:{id}"));
        assert!(PostCursor::decode(&last).is_ok());
    }
}
