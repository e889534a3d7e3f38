//! The rules of auth-service's inputs, as types: a value of one of these
//! types has been checked, so the rest of the code does not check again.
//! The rules themselves are the contract's, in `agora_schema::rules`.

use agora_platform::input::InputError;
use agora_schema::rules;

/// 3-32 characters of a-z, 0-9 and _.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    pub fn parse(value: &str) -> Result<Self, InputError> {
        rules::check_username(value)?;
        Ok(Username(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// 8-128 characters, any of them but U+0000.
pub struct Password(String);

impl Password {
    pub fn parse(value: &str) -> Result<Self, InputError> {
        rules::check_password(value)?;
        Ok(Password(value.to_owned()))
    }

    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(…)")
    }
}

/// 1-64 characters, not blank or invisible, no control characters or
/// bidirectional overrides; surrounding spaces are trimmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisplayName(String);

impl DisplayName {
    pub fn parse(value: &str) -> Result<Self, InputError> {
        let trimmed = rules::normalize_display_name(value);
        rules::DISPLAY_NAME.check(trimmed)?;
        Ok(DisplayName(trimmed.to_owned()))
    }

    /// A new user's display name defaults to the username.
    pub fn from_username(username: &Username) -> Self {
        DisplayName(username.0.clone())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_usernames_of_lowercase_letters_digits_and_underscores() {
        for name in ["ada", "ada_lovelace_1815", "___", &"a".repeat(32)] {
            assert_eq!(Username::parse(name).unwrap().as_str(), name);
        }
    }

    #[test]
    fn rejects_a_username_with_spaces_capitals_or_symbols() {
        for name in ["ada lovelace", "Ada", "ada-l", "adä", "ada\n"] {
            assert_eq!(Username::parse(name).unwrap_err().field, "username", "{name:?}");
        }
    }

    #[test]
    fn rejects_a_username_too_short_or_too_long() {
        assert!(Username::parse("ab").is_err());
        assert!(Username::parse(&"a".repeat(33)).is_err());
        assert!(Username::parse("").is_err());
    }

    #[test]
    fn counts_password_length_in_characters() {
        assert!(Password::parse("1234567").is_err());
        assert!(Password::parse("12345678").is_ok());
        assert!(Password::parse(&"é".repeat(128)).is_ok());
        assert!(Password::parse(&"é".repeat(129)).is_err());
    }

    #[test]
    fn a_password_never_shows_in_debug_output() {
        assert_eq!(format!("{:?}", Password::parse("hunter22!").unwrap()), "Password(…)");
    }

    #[test]
    fn trims_a_display_name_and_rejects_a_blank_one() {
        assert_eq!(DisplayName::parse("  Ada L. ").unwrap().as_str(), "Ada L.");
        assert!(DisplayName::parse("   ").is_err());
        assert!(DisplayName::parse("").is_err());
        assert!(DisplayName::parse(&"x".repeat(65)).is_err());
        assert!(DisplayName::parse(&"ü".repeat(64)).is_ok());
    }

    #[test]
    fn rejects_control_characters_in_a_display_name() {
        assert_eq!(DisplayName::parse("Ada\u{0}").unwrap_err().field, "displayName");
        assert!(DisplayName::parse("Ada\nL").is_err());
    }

    #[test]
    fn rejects_a_display_name_that_reads_backwards_or_shows_nothing() {
        assert!(DisplayName::parse("admin\u{202E}nimda").is_err());
        assert!(DisplayName::parse("\u{200B}\u{200B}").is_err());
    }
}
