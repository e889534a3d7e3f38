//! Resume cursors: every subscription result carries its position in the
//! log ([`Position`]) as an opaque, signed string in the payload's
//! `extensions.resumeCursor`. A client that subscribes again with it in the
//! subscribe payload's `extensions.resumeFrom` first receives, in order,
//! what it missed, then the live events (`live::LiveFeed::resume`).
//!
//! A cursor is signed with the key of consistency tokens (for its own
//! purpose): one this API did not issue is refused with BAD_CURSOR, so no
//! client makes a replica read the log from wherever it likes.

use async_graphql::{Response, ServerError, Value};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use super::annotate::request_error;
use super::TokenKey;
use crate::api::subscription::LastPosition;
use crate::live::Position;
use agora_platform::errors::ErrorCode;

/// Where a result's cursor goes.
pub const CURSOR_EXTENSION: &str = "resumeCursor";

/// Where a subscribe asks to resume.
pub const RESUME_EXTENSION: &str = "resumeFrom";

const PURPOSE: &str = "subscription resume cursor";

/// The longest cursor read.
const MAX_LENGTH: usize = 64 * 1024;

/// `base64url(position) "." base64url(tag)`.
pub fn encode(position: &Position, key: &TokenKey) -> String {
    let payload = URL_SAFE_NO_PAD.encode(position.to_bytes());
    let tag = key.tag(PURPOSE, payload.as_bytes());
    format!("{payload}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
}

/// The position of a cursor this API issued.
pub fn decode(cursor: &str, key: &TokenKey) -> Option<Position> {
    if cursor.len() > MAX_LENGTH {
        return None;
    }
    let (payload, tag) = cursor.split_once('.')?;
    let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
    key.verify(PURPOSE, payload.as_bytes(), &tag).ok()?;
    Position::from_bytes(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()
}

/// The position a subscribe asks to resume from: `None` if it does not ask,
/// an error if its cursor is not one this API issued.
pub fn requested(request: &async_graphql::Request, key: &TokenKey) -> Option<Result<Position, ServerError>> {
    let cursor = request.extensions.get(RESUME_EXTENSION)?;
    let refused = || {
        request_error(
            ErrorCode::BadCursor,
            format!("extensions.{RESUME_EXTENSION} is not a cursor this API issued: pass a result's extensions.{CURSOR_EXTENSION} as it came"),
        )
    };
    Some(match cursor {
        Value::String(cursor) => decode(cursor, key).ok_or_else(refused),
        _ => Err(refused()),
    })
}

/// Writes the cursor of the result just resolved into `response`.
pub fn annotate(response: &mut Response, last: &LastPosition, key: &TokenKey) {
    if let Some(position) = last.take() {
        response.extensions.insert(CURSOR_EXTENSION.into(), Value::from(encode(&position, key)));
    }
}

#[cfg(test)]
mod tests {
    use secrecy::SecretString;

    use super::*;

    #[test]
    fn a_cursor_is_read_back_only_with_its_key_and_untouched() {
        let key = TokenKey::new(&SecretString::from("one"));
        let position = Position::default();
        let cursor = encode(&position, &key);
        assert_eq!(decode(&cursor, &key), Some(position));
        assert_eq!(decode(&cursor, &TokenKey::new(&SecretString::from("another"))), None);
        let (payload, tag) = cursor.split_once('.').unwrap();
        assert_eq!(decode(&format!("{payload}A.{tag}"), &key), None);
        assert_eq!(decode("garbage", &key), None);
        // A consistency token is not a cursor, though signed with the same key.
        let token = super::super::consistency_token::ConsistencyToken(Vec::new()).encode(&key);
        assert_eq!(decode(&token, &key), None);
    }
}
