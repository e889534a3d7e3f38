//! How deep a document's brackets nest, read from its text before it is
//! parsed: async-graphql's parser recurses once per level of `{`, `[` and
//! `(` alike, and some thousand levels deep runs out of stack and answers
//! with a syntax error; no document that deep reaches it.

/// The deepest that `{`, `[` and `(` nest in `document`, outside strings
/// and comments. Unbalanced closers count as closing nothing.
pub(super) fn bracket_depth(document: &str) -> usize {
    let bytes = document.as_bytes();
    let (mut depth, mut deepest, mut at) = (0usize, 0usize, 0);
    while at < bytes.len() {
        match bytes[at] {
            b'{' | b'[' | b'(' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b'}' | b']' | b')' => depth = depth.saturating_sub(1),
            b'#' => at = line_end(bytes, at),
            b'"' if bytes[at..].starts_with(br#"""""#) => at = block_string_end(bytes, at + 3),
            b'"' => at = string_end(bytes, at + 1),
            _ => {}
        }
        at += 1;
    }
    deepest
}

/// Where the comment starting at `from` ends: its line's end.
fn line_end(bytes: &[u8], from: usize) -> usize {
    bytes[from..].iter().position(|byte| matches!(byte, b'\n' | b'\r')).map_or(bytes.len(), |offset| from + offset)
}

/// The closing quote of the string whose text starts at `from` (a line end
/// closes it too: the parser refuses such a string, and what follows is
/// counted, as the parser would never reach it).
fn string_end(bytes: &[u8], from: usize) -> usize {
    let mut at = from;
    while at < bytes.len() {
        match bytes[at] {
            b'\\' => at += 1,
            b'"' | b'\n' | b'\r' => return at,
            _ => {}
        }
        at += 1;
    }
    at
}

/// The last quote of the block string whose text starts at `from`.
fn block_string_end(bytes: &[u8], from: usize) -> usize {
    let mut at = from;
    while at < bytes.len() {
        if bytes[at..].starts_with(br#"\""""#) {
            at += 4;
        } else if bytes[at..].starts_with(br#"""""#) {
            return at + 2;
        } else {
            at += 1;
        }
    }
    at
}
