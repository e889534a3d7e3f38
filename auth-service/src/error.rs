//! auth-service's API errors and the codes clients see for them.

use agora_platform::graphql::{ErrorCode, InputError};
use agora_platform::tokens::TokenError;
use async_graphql::ErrorExtensions;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Input(#[from] InputError),
    #[error("the username is taken")]
    UsernameTaken,
    /// The same answer for an unknown username and a wrong password.
    #[error("wrong username or password")]
    WrongCredentials,
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error("too many login attempts; try again in {retry_after_seconds} s")]
    RateLimited { retry_after_seconds: u64 },
    #[error("no such user")]
    UserNotFound,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl ErrorExtensions for ApiError {
    fn extend(&self) -> async_graphql::Error {
        match self {
            ApiError::Input(error) => error.extend(),
            ApiError::UsernameTaken => ErrorCode::Conflict.error(self.to_string()),
            ApiError::WrongCredentials | ApiError::Token(_) => ErrorCode::Unauthenticated.error(self.to_string()),
            ApiError::RateLimited { retry_after_seconds } => {
                let seconds = *retry_after_seconds;
                ErrorCode::RateLimited.error(self.to_string()).extend_with(|_, extensions| extensions.set("retryAfter", seconds))
            }
            ApiError::UserNotFound => ErrorCode::NotFound.error(self.to_string()),
            ApiError::Database(error) => agora_platform::graphql::internal(anyhow::anyhow!("database: {error}")),
            ApiError::Unexpected(error) => agora_platform::graphql::internal(anyhow::anyhow!("{error:#}")),
        }
    }
}

/// True when the error is the violation of a unique constraint.
pub fn is_unique_violation(error: &sqlx::Error) -> bool {
    error.as_database_error().is_some_and(|error| error.is_unique_violation())
}
