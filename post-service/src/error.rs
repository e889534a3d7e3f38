//! post-service's API errors and the codes clients see for them.

use agora_platform::errors::ErrorCode;
use agora_platform::idempotency::IdempotencyError;
use agora_platform::input::InputError;
use async_graphql::ErrorExtensions;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Input(#[from] InputError),
    /// An Idempotency-Key used again with a different input.
    #[error("{0}")]
    IdempotencyConflict(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    /// A batched lookup failed (the error is shared by every lookup in the batch).
    #[error("loading posts: {0}")]
    Loading(std::sync::Arc<sqlx::Error>),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<IdempotencyError> for ApiError {
    fn from(error: IdempotencyError) -> Self {
        match error {
            IdempotencyError::Conflict(_) => ApiError::IdempotencyConflict(error.to_string()),
            IdempotencyError::Database(error) => ApiError::Database(error),
        }
    }
}

impl ErrorExtensions for ApiError {
    fn extend(&self) -> async_graphql::Error {
        match self {
            ApiError::Input(error) => error.extend(),
            ApiError::IdempotencyConflict(message) => ErrorCode::Conflict.error(message.clone()),
            // UNAVAILABLE (retryable) when the database is away, else INTERNAL.
            ApiError::Database(error) => agora_platform::errors::database_error(error),
            ApiError::Loading(error) => agora_platform::errors::database_error(error),
            ApiError::Unexpected(error) => agora_platform::errors::internal(anyhow::anyhow!("{error:#}")),
        }
    }
}
