//! Input that breaks the contract's rules (`agora_schema::rules`),
//! answered as BAD_USER_INPUT naming the field.

use async_graphql::ErrorExtensions;

use crate::errors::ErrorCode;

/// Input that does not meet the contract's rules: answered as
/// BAD_USER_INPUT, naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct InputError {
    pub field: &'static str,
    pub reason: String,
}

impl InputError {
    pub fn new(field: &'static str, reason: impl Into<String>) -> Self {
        InputError { field, reason: reason.into() }
    }
}

impl From<agora_schema::rules::RuleError> for InputError {
    fn from(error: agora_schema::rules::RuleError) -> Self {
        InputError { field: error.field, reason: error.reason }
    }
}

impl ErrorExtensions for InputError {
    fn extend(&self) -> async_graphql::Error {
        let field = self.field;
        ErrorCode::BadUserInput.error(self.to_string()).extend_with(|_, extensions| extensions.set("field", field))
    }
}
