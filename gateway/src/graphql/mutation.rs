//! The public mutations: each is a command sent to the service that owns
//! the data. The gateway then waits (bounded) until its read model reflects
//! the command, so the answer and any later read show it.
//!
//! Inputs are checked first, by the same rules the services apply
//! (`agora_schema::rules`): a value the service would refuse (or one too
//! large for its body limit) is BAD_USER_INPUT here, without a call.

use agora_platform::graphql::{Coded, ErrorCode, InputError};
use agora_schema::rules;
use async_graphql::{Context, InputObject, Object};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use uuid::Uuid;

use super::context::{RequestContext, Shared};
use super::types::{AuthPayload, Post, User};
use crate::read_model::{PostRecord, UserRecord};
use crate::upstream::{Answer, Service};

const USER_FIELDS: &str = "id username displayName points createdAt";

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

#[derive(InputObject)]
pub struct CreatePostInput {
    pub title: String,
    pub body: String,
}

pub struct Mutation;

#[Object]
impl Mutation {
    /// Creates an account and returns a token for it. CONFLICT if the username is taken.
    async fn register(&self, ctx: &Context<'_>, input: RegisterInput) -> async_graphql::Result<AuthPayload> {
        check_credentials(&input.username, &input.password)?;
        if let Some(name) = &input.display_name {
            check(rules::DISPLAY_NAME.check(rules::normalize_display_name(name)))?;
        }
        let query =
            format!("mutation($input: RegisterInput!) {{ register(input: $input) {{ token user {{ {USER_FIELDS} }} }} }}");
        let input = json!({ "username": input.username, "password": input.password, "displayName": input.display_name });
        let answer = command(ctx, Service::Auth, &query, json!({ "input": input })).await?;
        auth_payload(ctx, &answer.data["register"]).await
    }

    /// UNAUTHENTICATED on a wrong username or password (the same error for both).
    async fn login(&self, ctx: &Context<'_>, input: LoginInput) -> async_graphql::Result<AuthPayload> {
        check_credentials(&input.username, &input.password)?;
        let query = format!("mutation($input: LoginInput!) {{ login(input: $input) {{ token user {{ {USER_FIELDS} }} }} }}");
        let input = json!({ "username": input.username, "password": input.password });
        let answer = command(ctx, Service::Auth, &query, json!({ "input": input })).await?;
        auth_payload(ctx, &answer.data["login"]).await
    }

    /// Changes the display name of the user behind the token.
    async fn rename_user(&self, ctx: &Context<'_>, display_name: String) -> async_graphql::Result<User> {
        check(rules::DISPLAY_NAME.check(rules::normalize_display_name(&display_name)))?;
        require_known_caller(ctx).await?;
        let query = format!("mutation($displayName: String!) {{ renameUser(displayName: $displayName) {{ {USER_FIELDS} }} }}");
        let answer = command(ctx, Service::Auth, &query, json!({ "displayName": display_name })).await?;
        user_after_command(ctx, &answer.data["renameUser"]).await
    }

    /// Publishes a post by the user behind the token; the author earns points.
    async fn create_post(&self, ctx: &Context<'_>, input: CreatePostInput) -> async_graphql::Result<Post> {
        check(rules::TITLE.check(&input.title))?;
        check(rules::BODY.check(&input.body))?;
        require_known_caller(ctx).await?;
        let query = "mutation($input: CreatePostInput!) { createPost(input: $input) { id title body createdAt author { id } } }";
        let input = json!({ "title": input.title, "body": input.body });
        let answer = command(ctx, Service::Post, query, json!({ "input": input })).await?;
        let answered = &answer.data["createPost"];
        let id = parse::<Uuid>(&answered["id"])?;
        let request = ctx.data::<RequestContext>()?;
        if let Some(post) = request.loaders.posts.load_one(id).await.coded()? {
            return Ok(Post(post));
        }
        // The read model has not caught up: answer with what the service said.
        Ok(Post(PostRecord {
            id,
            author_id: parse(&answered["author"]["id"])?,
            title: parse(&answered["title"])?,
            body: parse(&answered["body"])?,
            created_at: parse(&answered["createdAt"])?,
            author: None,
        }))
    }
}

fn check(rule: Result<(), rules::RuleError>) -> async_graphql::Result<()> {
    rule.map_err(InputError::from).coded()
}

fn check_credentials(username: &str, password: &str) -> async_graphql::Result<()> {
    check(rules::check_username(username))?;
    check(rules::check_password(password))
}

/// A command on behalf of a token's user runs only while that user exists:
/// a validly signed token for a user that is not there (deleted, or of
/// another installation with the same key) cannot post or earn points.
/// Callers without a valid token are left to the service, which refuses
/// them with the reason.
async fn require_known_caller(ctx: &Context<'_>) -> async_graphql::Result<()> {
    let request = ctx.data::<RequestContext>()?;
    let Some(claims) = request.caller.claims() else { return Ok(()) };
    if request.loaders.users.load_one(claims.sub).await.coded()?.is_some() {
        return Ok(());
    }
    // The read model may not have applied a registration yet: auth-service decides.
    let shared = ctx.data::<Shared>()?;
    let query = "query($id: ID!) { user(id: $id) { id } }";
    let answer = shared
        .upstream
        .query(Service::Auth, query, json!({ "id": claims.sub }), &request.forwarded, &request.calls)
        .await
        .coded()?;
    if answer.data["user"].is_null() {
        return Err(ErrorCode::Unauthenticated.error("the token names a user that does not exist"));
    }
    Ok(())
}

/// Sends a command, records what it wrote, and waits for the read model.
async fn command(ctx: &Context<'_>, service: Service, query: &str, variables: Value) -> async_graphql::Result<Answer> {
    let shared = ctx.data::<Shared>()?;
    let request = ctx.data::<RequestContext>()?;
    let answer = shared.upstream.call(service, query, variables, &request.forwarded, &request.calls).await.coded()?;
    let applied = shared
        .consistency
        .wait(&answer.writes, shared.consistency_timeout)
        .await
        .map_err(|error| agora_platform::graphql::internal(anyhow::anyhow!("waiting for the read model: {error}")))?;
    request.commands.record(&answer.writes, applied);
    Ok(answer)
}

async fn auth_payload(ctx: &Context<'_>, answered: &Value) -> async_graphql::Result<AuthPayload> {
    Ok(AuthPayload { token: parse(&answered["token"])?, user: user_after_command(ctx, &answered["user"]).await? })
}

/// The user a command returned, from the request's source when it has the
/// user, else as the service answered it.
async fn user_after_command(ctx: &Context<'_>, answered: &Value) -> async_graphql::Result<User> {
    let id = parse::<Uuid>(&answered["id"])?;
    let request = ctx.data::<RequestContext>()?;
    if let Some(user) = request.loaders.users.load_one(id).await.coded()? {
        return Ok(User(user));
    }
    Ok(User(UserRecord {
        id,
        username: parse(&answered["username"])?,
        display_name: parse(&answered["displayName"])?,
        points: parse(&answered["points"])?,
        post_count: None,
        created_at: parse::<DateTime<Utc>>(&answered["createdAt"])?,
    }))
}

fn parse<T: serde::de::DeserializeOwned>(value: &Value) -> async_graphql::Result<T> {
    serde_json::from_value(value.clone())
        .map_err(|error| agora_platform::graphql::internal(anyhow::anyhow!("a service answered an unexpected shape: {error}")))
}
