//! auth-service's Federation v2 subgraph: it owns `User` (key `id`) and the
//! account operations (`me`, `register`, `login`, `renameUser`).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use agora_platform::errors::Coded;
use agora_platform::idempotency::Keyed;
use agora_platform::query_limits::{QueryLimiter, QueryLimitsExtension};
use agora_platform::receipts::WriteReceipts;
use agora_platform::tokens::Caller;
use agora_platform::trace_context::TraceParent;
use async_graphql::dataloader::{DataLoader, Loader};
use async_graphql::{Context, EmptySubscription, InputObject, Object, Schema, SimpleObject, ID};
use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use crate::domain::{DisplayName, Password, Username};
use crate::error::ApiError;
use crate::keys::SigningKeys;
use crate::rate_limit::{Budgets, Refusal};
use crate::users::{self, UserRow};

pub type AuthSchema = Schema<Query, Mutation, EmptySubscription>;

/// What the resolvers depend on, shared by every request.
pub struct ResolverDependencies {
    pub pool: PgPool,
    pub keys: Arc<SigningKeys>,
    pub budgets: Budgets,
    pub token_ttl: std::time::Duration,
    /// What one query may ask.
    pub query_limiter: QueryLimiter,
}

/// The client's address, as the HTTP layer determined it.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddress(pub IpAddr);

pub fn schema(dependencies: ResolverDependencies) -> AuthSchema {
    let users = DataLoader::new(UserLoader(dependencies.pool.clone()), tokio::spawn);
    Schema::build(Query, Mutation, EmptySubscription)
        .enable_federation()
        .extension(QueryLimitsExtension::new(dependencies.query_limiter.clone()))
        .data(dependencies)
        .data(users)
        .finish()
}

/// An account.
#[derive(SimpleObject, Clone)]
pub struct User {
    pub id: ID,
    pub username: String,
    pub display_name: String,
    pub points: i32,
    pub created_at: DateTime<Utc>,
}

impl From<UserRow> for User {
    fn from(row: UserRow) -> Self {
        User {
            id: ID(row.id.to_string()),
            username: row.username,
            display_name: row.display_name,
            points: row.points,
            created_at: row.created_at,
        }
    }
}

#[derive(SimpleObject)]
pub struct AuthPayload {
    pub token: String,
    pub user: User,
}

#[derive(InputObject)]
pub struct RegisterInput {
    pub username: String,
    pub password: String,
    pub display_name: Option<String>,
}

#[derive(InputObject)]
pub struct LoginInput {
    pub username: String,
    pub password: String,
}

/// Batches user lookups (entity resolution, `users(ids)`) into one query.
pub struct UserLoader(PgPool);

impl Loader<Uuid> for UserLoader {
    type Value = User;
    type Error = Arc<sqlx::Error>;

    async fn load(&self, ids: &[Uuid]) -> Result<HashMap<Uuid, User>, Self::Error> {
        let rows = users::find_many(&self.0, ids).await.map_err(Arc::new)?;
        Ok(rows.into_iter().map(|row| (row.id, User::from(row))).collect())
    }
}

fn loader_error(error: Arc<sqlx::Error>) -> ApiError {
    ApiError::Loading(error)
}

/// Parses an id argument; an id that is not a UUID names no user.
fn parse_id(id: &ID) -> Option<Uuid> {
    id.parse().ok()
}

pub struct Query;

#[Object]
impl Query {
    /// The user behind the bearer token; null without a valid one.
    async fn me(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<User>> {
        let Some(claims) = ctx.data::<Caller>()?.claims() else { return Ok(None) };
        load_user(ctx, claims.sub).await
    }

    async fn user(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Option<User>> {
        match parse_id(&id) {
            Some(id) => load_user(ctx, id).await,
            None => Ok(None),
        }
    }

    async fn user_by_username(&self, ctx: &Context<'_>, username: String) -> async_graphql::Result<Option<User>> {
        let dependencies = ctx.data::<ResolverDependencies>()?;
        // A string that breaks the username rules names nobody (and may hold
        // what PostgreSQL refuses, such as U+0000).
        if Username::parse(&username).is_err() {
            return Ok(None);
        }
        Ok(users::find_by_username(&dependencies.pool, &username).await.map_err(ApiError::from).coded()?.map(User::from))
    }

    /// Users by id, in the order asked, null where there is none (for
    /// gateways that merge in code).
    async fn users(
        &self,
        ctx: &Context<'_>,
        #[graphql(validator(max_items = 1000))] ids: Vec<ID>,
    ) -> async_graphql::Result<Vec<Option<User>>> {
        let wanted: Vec<Option<Uuid>> = ids.iter().map(parse_id).collect();
        let found = ctx
            .data::<DataLoader<UserLoader>>()?
            .load_many(wanted.iter().flatten().copied())
            .await
            .map_err(loader_error)
            .coded()?;
        Ok(wanted.into_iter().map(|id| id.and_then(|id| found.get(&id).cloned())).collect())
    }

    /// Users by points, highest first; ties by earliest registration.
    async fn leaderboard(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 10, validator(minimum = 0, maximum = 100))] first: Option<i32>,
    ) -> async_graphql::Result<Vec<User>> {
        let dependencies = ctx.data::<ResolverDependencies>()?;
        let rows = users::leaderboard(&dependencies.pool, first.unwrap_or(10).into()).await.map_err(ApiError::from).coded()?;
        Ok(rows.into_iter().map(User::from).collect())
    }

    #[graphql(entity)]
    async fn find_user_by_id(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Option<User>> {
        self.user(ctx, id).await
    }
}

async fn load_user(ctx: &Context<'_>, id: Uuid) -> async_graphql::Result<Option<User>> {
    ctx.data::<DataLoader<UserLoader>>()?.load_one(id).await.map_err(loader_error).coded()
}

/// A spent budget, as RATE_LIMITED with `retryAfter`.
fn refused(refusal: Refusal) -> async_graphql::Error {
    agora_platform::budget::rate_limited(refusal.message(), refusal.retry_after())
}

pub struct Mutation;

#[Object]
impl Mutation {
    /// Creates an account and returns a token for it. CONFLICT if the username is taken.
    async fn register(&self, ctx: &Context<'_>, input: RegisterInput) -> async_graphql::Result<AuthPayload> {
        let dependencies = ctx.data::<ResolverDependencies>()?;
        let username = Username::parse(&input.username).coded()?;
        let password = Password::parse(&input.password).coded()?;
        let display_name = match &input.display_name {
            Some(name) => DisplayName::parse(name).coded()?,
            None => DisplayName::from_username(&username),
        };
        // The cheap checks first (the budget, then whether the name is free),
        // argon2 only after them and a few at a time. A retry with an
        // idempotency key is answered from what the first attempt stored
        // (in `users::register`), so the name is not checked before it.
        dependencies.budgets.registration(ctx.data::<ClientAddress>()?.0).map_err(refused)?;
        let caller = ctx.data::<Caller>()?.claims().map(|claims| claims.sub);
        let input_parts = [Some(input.username.as_str()), input.display_name.as_deref()];
        let keyed = Keyed::of(ctx, caller, "register", &input_parts).coded()?;
        if keyed.is_none()
            && users::find_by_username(&dependencies.pool, username.as_str()).await.map_err(ApiError::from).coded()?.is_some()
        {
            return Err(ApiError::UsernameTaken).coded();
        }
        let _slot = dependencies.budgets.hashing_slot().await.map_err(refused)?;
        let (user, writes) =
            users::register(&dependencies.pool, username, password, display_name, &TraceParent::of(ctx), keyed.as_ref())
                .await
                .coded()?;
        let receipts = ctx.data::<WriteReceipts>()?;
        writes.into_iter().for_each(|receipt| receipts.push(receipt));
        let token = dependencies.keys.issue(user.id, &user.username, dependencies.token_ttl).map_err(ApiError::from).coded()?;
        Ok(AuthPayload { token, user: user.into() })
    }

    /// UNAUTHENTICATED on a wrong username or password (the same error for both).
    /// An Idempotency-Key is ignored: a login changes nothing to dedupe.
    async fn login(&self, ctx: &Context<'_>, input: LoginInput) -> async_graphql::Result<AuthPayload> {
        let dependencies = ctx.data::<ResolverDependencies>()?;
        let address = ctx.data::<ClientAddress>()?.0;
        let username = Username::parse(&input.username).coded()?;
        let password = Password::parse(&input.password).coded()?;
        dependencies.budgets.login_attempt(username.as_str(), address).map_err(refused)?;
        let slot = dependencies.budgets.hashing_slot().await.map_err(refused)?;
        let authenticated = users::authenticate(&dependencies.pool, username.as_str(), &input.password).await;
        drop((slot, password));
        let user = match authenticated {
            Err(ApiError::WrongCredentials) => {
                dependencies.budgets.login_failed(username.as_str()).map_err(refused)?;
                return Err(ApiError::WrongCredentials).coded();
            }
            other => other.coded()?,
        };
        let token = dependencies.keys.issue(user.id, &user.username, dependencies.token_ttl).map_err(ApiError::from).coded()?;
        Ok(AuthPayload { token, user: user.into() })
    }

    /// Changes the display name of the user behind the token.
    async fn rename_user(&self, ctx: &Context<'_>, display_name: String) -> async_graphql::Result<User> {
        let dependencies = ctx.data::<ResolverDependencies>()?;
        let caller = ctx.data::<Caller>()?.require()?;
        let display_name = DisplayName::parse(&display_name).coded()?;
        let keyed = Keyed::of(ctx, Some(caller.sub), "renameUser", &[Some(display_name.as_str())]).coded()?;
        let (user, writes) =
            users::rename(&dependencies.pool, caller.sub, display_name, &TraceParent::of(ctx), keyed.as_ref()).await.coded()?;
        let receipts = ctx.data::<WriteReceipts>()?;
        writes.into_iter().for_each(|receipt| receipts.push(receipt));
        Ok(user.into())
    }
}
