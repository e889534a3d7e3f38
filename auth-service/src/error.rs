//! auth-service's API errors and the codes clients see for them.

use agora_platform::errors::ErrorCode;
use agora_platform::idempotency::IdempotencyError;
use agora_platform::input::InputError;
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
    /// An Idempotency-Key used again with a different input.
    #[error("{0}")]
    IdempotencyConflict(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    /// A batched lookup failed (the error is shared by every lookup in the batch).
    #[error("loading users: {0}")]
    Loading(std::sync::Arc<sqlx::Error>),
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
            ApiError::IdempotencyConflict(message) => ErrorCode::Conflict.error(message.clone()),
            // UNAVAILABLE (retryable) when the database is away, else INTERNAL.
            ApiError::Database(error) => agora_platform::errors::database_error(error),
            ApiError::Loading(error) => agora_platform::errors::database_error(error),
            ApiError::Unexpected(error) => agora_platform::errors::internal(anyhow::anyhow!("{error:#}")),
        }
    }
}

impl From<IdempotencyError> for ApiError {
    fn from(error: IdempotencyError) -> Self {
        match error {
            IdempotencyError::Conflict(_) => ApiError::IdempotencyConflict(error.to_string()),
            IdempotencyError::Database(error) => ApiError::Database(error),
        }
    }
}

/// True when the error is the violation of a unique constraint.
pub fn is_unique_violation(error: &sqlx::Error) -> bool {
    error.as_database_error().is_some_and(|error| error.is_unique_violation())
}
