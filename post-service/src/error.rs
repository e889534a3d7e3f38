//! post-service's API errors and the codes clients see for them.

use agora_platform::graphql::InputError;
use async_graphql::ErrorExtensions;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Input(#[from] InputError),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

impl ErrorExtensions for ApiError {
    fn extend(&self) -> async_graphql::Error {
        match self {
            ApiError::Input(error) => error.extend(),
            ApiError::Database(error) => agora_platform::graphql::internal(anyhow::anyhow!("database: {error}")),
        }
    }
}
