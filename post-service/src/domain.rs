//! The rules of a post's inputs, as types (the contract's rules, from
//! `agora_schema::rules`).

use agora_platform::input::InputError;
use agora_schema::rules;

/// 1-200 characters, not blank or invisible, no control characters or
/// bidirectional overrides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostTitle(String);

impl PostTitle {
    pub fn parse(value: &str) -> Result<Self, InputError> {
        rules::TITLE.check(value)?;
        Ok(PostTitle(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// 1-20000 characters, not blank; line breaks and tabs are allowed, other
/// control characters are not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostBody(String);

impl PostBody {
    pub fn parse(value: &str) -> Result<Self, InputError> {
        rules::BODY.check(value)?;
        Ok(PostBody(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_a_title_of_one_to_two_hundred_characters() {
        assert!(PostTitle::parse("a").is_ok());
        assert!(PostTitle::parse(&"ß".repeat(200)).is_ok());
        assert_eq!(PostTitle::parse(&"a".repeat(201)).unwrap_err().field, "title");
        assert!(PostTitle::parse("").is_err());
    }

    #[test]
    fn rejects_a_blank_title_or_one_with_a_line_break() {
        assert!(PostTitle::parse("   ").is_err());
        assert!(PostTitle::parse("two\nlines").is_err());
    }

    #[test]
    fn rejects_a_title_with_bidirectional_overrides_or_only_invisible_characters() {
        assert_eq!(PostTitle::parse("gnp.\u{202E}exe").unwrap_err().field, "title");
        assert!(PostTitle::parse("\u{200B}\u{FEFF}").is_err());
    }

    #[test]
    fn a_body_may_span_lines_but_not_hold_other_control_characters() {
        assert!(PostBody::parse("line one\nline two\r\n\tindented").is_ok());
        assert_eq!(PostBody::parse("bell\u{7}").unwrap_err().field, "body");
        assert!(PostBody::parse(&"x".repeat(20_000)).is_ok());
        assert!(PostBody::parse(&"x".repeat(20_001)).is_err());
        assert!(PostBody::parse(" \n ").is_err());
    }
}
