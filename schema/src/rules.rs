//! The rules of the public contract's text inputs (`../shared/api.graphql`),
//! defined once: auth-service and post-service parse their inputs with them,
//! and the gateway checks the same rules before it sends a command, so a
//! value is refused the same way (BAD_USER_INPUT naming the field) wherever
//! it arrives.
//!
//! Besides lengths, the rules keep out what PostgreSQL cannot store in
//! `text` (U+0000), control characters (line breaks only in a post body),
//! bidirectional overrides and isolates (U+202A-202E, U+2066-2069, which can
//! make a name read backwards), and text that is only whitespace or
//! invisible characters (zero-width spaces and joiners).

/// A value that breaks a rule: the field and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct RuleError {
    pub field: &'static str,
    pub reason: String,
}

impl RuleError {
    fn new(field: &'static str, reason: impl Into<String>) -> Self {
        RuleError { field, reason: reason.into() }
    }
}

/// The rule of one free-text field.
#[derive(Debug, Clone, Copy)]
pub struct TextRule {
    pub field: &'static str,
    /// Lengths in characters (Unicode scalar values).
    pub min: usize,
    pub max: usize,
    /// Line breaks and tabs allowed (a post body).
    pub multiline: bool,
    /// Refuses bidirectional overrides (names and titles shown in lists).
    pub no_bidi_overrides: bool,
}

pub const DISPLAY_NAME: TextRule = TextRule { field: "displayName", min: 1, max: 64, multiline: false, no_bidi_overrides: true };
pub const TITLE: TextRule = TextRule { field: "title", min: 1, max: 200, multiline: false, no_bidi_overrides: true };
pub const BODY: TextRule = TextRule { field: "body", min: 1, max: 20_000, multiline: true, no_bidi_overrides: false };

pub const USERNAME_LENGTH: std::ops::RangeInclusive<usize> = 3..=32;
pub const PASSWORD_LENGTH: std::ops::RangeInclusive<usize> = 8..=128;

impl TextRule {
    /// Checks `value` as it will be stored (callers trim first where the
    /// contract trims).
    pub fn check(&self, value: &str) -> Result<(), RuleError> {
        let field = self.field;
        let length = value.chars().count();
        if length < self.min || length > self.max {
            return Err(RuleError::new(field, format!("must be {} to {} characters long (got {length})", self.min, self.max)));
        }
        let allowed_control = |c: char| self.multiline && matches!(c, '\n' | '\r' | '\t');
        if value.chars().any(|c| c.is_control() && !allowed_control(c)) {
            return Err(RuleError::new(field, "must not contain control characters"));
        }
        if self.no_bidi_overrides && value.chars().any(is_bidi_override) {
            return Err(RuleError::new(field, "must not contain bidirectional overrides (U+202A-202E, U+2066-2069)"));
        }
        if value.chars().all(|c| c.is_whitespace() || is_invisible(c)) {
            return Err(RuleError::new(field, "must not be blank or invisible"));
        }
        Ok(())
    }
}

/// 3-32 characters of a-z, 0-9 and _.
pub fn check_username(value: &str) -> Result<(), RuleError> {
    let length = value.chars().count();
    if !USERNAME_LENGTH.contains(&length) {
        return Err(RuleError::new("username", format!("must be 3 to 32 characters long (got {length})")));
    }
    if !value.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') {
        return Err(RuleError::new("username", "may contain only a-z, 0-9 and _"));
    }
    Ok(())
}

/// 8-128 characters, any of them except U+0000 (a password is hashed, never
/// stored, but a NUL in it is a client's mistake, not a secret).
pub fn check_password(value: &str) -> Result<(), RuleError> {
    let length = value.chars().count();
    if !PASSWORD_LENGTH.contains(&length) {
        return Err(RuleError::new("password", format!("must be 8 to 128 characters long (got {length})")));
    }
    if value.contains('\0') {
        return Err(RuleError::new("password", "must not contain U+0000"));
    }
    Ok(())
}

/// A display name as stored: surrounding whitespace trimmed.
pub fn normalize_display_name(value: &str) -> &str {
    value.trim()
}

/// Whether PostgreSQL can hold `value` in a `text` column and compare it:
/// everything but U+0000 (Rust strings hold no lone surrogates).
pub fn storable(value: &str) -> bool {
    !value.contains('\0')
}

fn is_bidi_override(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Characters that show nothing: zero-width spaces and joiners, format
/// marks, fillers, variation selectors and tags.
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{034F}'
            | '\u{061C}'
            | '\u{115F}'
            | '\u{1160}'
            | '\u{17B4}'
            | '\u{17B5}'
            | '\u{180B}'..='\u{180F}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{206F}'
            | '\u{3164}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{FEFF}'
            | '\u{FFA0}'
            | '\u{1D173}'..='\u{1D17A}'
            | '\u{E0000}'..='\u{E0FFF}'
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_display_name_is_one_to_sixty_four_characters() {
        assert!(DISPLAY_NAME.check("Ada").is_ok());
        assert!(DISPLAY_NAME.check(&"ü".repeat(64)).is_ok());
        assert_eq!(DISPLAY_NAME.check(&"x".repeat(65)).unwrap_err().field, "displayName");
        assert!(DISPLAY_NAME.check("").is_err());
    }

    #[test]
    fn refuses_nul_and_control_characters_outside_a_body() {
        for bad in ["Ada\0", "two\nlines", "bell\u{7}"] {
            assert!(DISPLAY_NAME.check(bad).is_err(), "{bad:?}");
            assert!(TITLE.check(bad).is_err(), "{bad:?}");
        }
        assert!(BODY.check("line\nline\r\n\tindented").is_ok());
        assert!(BODY.check("nul\0").is_err());
    }

    #[test]
    fn refuses_bidirectional_overrides_in_names_and_titles() {
        for bad in ["abc\u{202E}fed", "\u{2066}x\u{2069}", "a\u{202A}b"] {
            assert!(DISPLAY_NAME.check(bad).is_err(), "{bad:?}");
            assert!(TITLE.check(bad).is_err(), "{bad:?}");
        }
        assert!(DISPLAY_NAME.check("עִבְרִית and English").is_ok());
    }

    #[test]
    fn refuses_text_that_is_blank_or_invisible_only() {
        for bad in ["   ", "\u{200B}", "\u{200B}\u{200D}\u{FEFF}", " \u{2060} ", "\u{3164}"] {
            assert!(DISPLAY_NAME.check(bad).is_err(), "{bad:?}");
            assert!(TITLE.check(bad).is_err(), "{bad:?}");
            assert!(BODY.check(bad).is_err(), "{bad:?}");
        }
        assert!(TITLE.check("a\u{200D}b").is_ok(), "a joiner between visible characters is fine (emoji sequences)");
    }

    #[test]
    fn usernames_are_lowercase_letters_digits_and_underscores() {
        assert!(check_username("ada_1815").is_ok());
        for bad in ["ab", &"a".repeat(33), "Ada", "ada lovelace", "ada\0", "adä"] {
            assert_eq!(check_username(bad).unwrap_err().field, "username", "{bad:?}");
        }
    }

    #[test]
    fn passwords_are_counted_in_characters_and_refuse_nul() {
        assert!(check_password("1234567").is_err());
        assert!(check_password(&"é".repeat(128)).is_ok());
        assert!(check_password(&"é".repeat(129)).is_err());
        assert!(check_password("12345678\0").is_err());
    }
}
