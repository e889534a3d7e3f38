//! The public mutations: each is a command sent to the service that owns
//! the data. The gateway then waits (bounded) until its read model reflects
//! the command, so the answer and any later read show it. A command that
//! committed is always answered with its data: when the read model cannot
//! show it yet (the wait timed out or failed), the answer says so
//! (`extensions.consistent: false`, with the consistency token to wait on).
//!
//! A client's `Idempotency-Key` goes to the service with every command that
//! has an effect, one key per mutation field (the client's key and the
//! field's response path), so a retry of the whole request is a retry of
//! each of its commands.
//!
//! Inputs are checked first, by the same rules the services apply
//! (`agora_schema::rules`): a value the service would refuse (or one too
//! large for its body limit) is BAD_USER_INPUT here, without a call.

use agora_platform::errors::Coded;
use agora_platform::errors::ErrorCode;
use agora_platform::idempotency::RequestKey;
use agora_platform::input::InputError;
use agora_schema::rules;
use async_graphql::{Context, InputObject, Object};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use uuid::Uuid;

use super::context::RequestContext;
use super::types::{AuthPayload, Post, User};
use crate::commands::Commands;
use crate::records::{PostRecord, UserRecord};
use crate::sources::SourceError;
use crate::upstream::{Service, ServiceAnswer};

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
        let answer = command(ctx, Service::Auth, &query, json!({ "input": input }), Keyed::Yes).await?;
        auth_payload(ctx, &answer.data["register"]).await
    }

    /// UNAUTHENTICATED on a wrong username or password (the same error for both).
    async fn login(&self, ctx: &Context<'_>, input: LoginInput) -> async_graphql::Result<AuthPayload> {
        check_credentials(&input.username, &input.password)?;
        let query = format!("mutation($input: LoginInput!) {{ login(input: $input) {{ token user {{ {USER_FIELDS} }} }} }}");
        let input = json!({ "username": input.username, "password": input.password });
        // A login has no effect to dedupe: its key, if any, is not forwarded.
        let answer = command(ctx, Service::Auth, &query, json!({ "input": input }), Keyed::No).await?;
        auth_payload(ctx, &answer.data["login"]).await
    }

    /// Changes the display name of the user behind the token.
    async fn rename_user(&self, ctx: &Context<'_>, display_name: String) -> async_graphql::Result<User> {
        check(rules::DISPLAY_NAME.check(rules::normalize_display_name(&display_name)))?;
        require_known_caller(ctx).await?;
        let query = format!("mutation($displayName: String!) {{ renameUser(displayName: $displayName) {{ {USER_FIELDS} }} }}");
        let answer = command(ctx, Service::Auth, &query, json!({ "displayName": display_name }), Keyed::Yes).await?;
        user_after_command(ctx, &answer.data["renameUser"]).await
    }

    /// Publishes a post by the user behind the token; the author earns points.
    async fn create_post(&self, ctx: &Context<'_>, input: CreatePostInput) -> async_graphql::Result<Post> {
        check(rules::TITLE.check(&input.title))?;
        check(rules::BODY.check(&input.body))?;
        require_known_caller(ctx).await?;
        let query = "mutation($input: CreatePostInput!) { createPost(input: $input) { id title body createdAt author { id } } }";
        let input = json!({ "title": input.title, "body": input.body });
        let answer = command(ctx, Service::Post, query, json!({ "input": input }), Keyed::Yes).await?;
        let answered = &answer.data["createPost"];
        let id = parse::<Uuid>(&answered["id"])?;
        let request = ctx.data::<RequestContext>()?;
        let loaded = request.loaders.posts.load_one(id).await;
        let read_model_away = loaded.is_err();
        if let Some(post) = after_command(loaded) {
            return Ok(Post(post));
        }
        // The read model has not caught up: answer with what the service
        // said, and the author as auth-service has it if the read model
        // cannot be asked.
        let author_id = parse(&answered["author"]["id"])?;
        let author = if read_model_away { author_from_service(ctx, author_id).await } else { None };
        Ok(Post(PostRecord {
            id,
            author_id,
            title: parse(&answered["title"])?,
            body: parse(&answered["body"])?,
            created_at: parse(&answered["createdAt"])?,
            author,
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
    if let Ok(Some(_)) = request.loaders.users.load_one(claims.sub).await {
        return Ok(());
    }
    // The read model may not have applied the registration yet, or be away:
    // auth-service, which owns users, decides.
    let commands = ctx.data::<Commands>()?;
    let query = "query($id: ID!) { user(id: $id) { id } }";
    let answer = commands
        .upstream
        .query(Service::Auth, query, json!({ "id": claims.sub }), &request.forwarded, &request.calls)
        .await
        .coded()?;
    if answer.data["user"].is_null() {
        return Err(ErrorCode::Unauthenticated.error("the token names a user that does not exist"));
    }
    Ok(())
}

/// Whether a command takes the client's idempotency key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Keyed {
    Yes,
    No,
}

/// Sends a command (it waits for the read model) and records what it wrote.
/// A command the read model does not show yet leaves the answer marked as
/// not yet consistent.
async fn command(
    ctx: &Context<'_>,
    service: Service,
    query: &str,
    variables: Value,
    keyed: Keyed,
) -> async_graphql::Result<ServiceAnswer> {
    let commands = ctx.data::<Commands>()?;
    let request = ctx.data::<RequestContext>()?;
    let key = match keyed {
        Keyed::Yes => idempotency_key(ctx, request)?,
        Keyed::No => None,
    };
    let committed = commands.send(service, query, variables, &request.forwarded, &request.calls, key.as_deref()).await.coded()?;
    request.commands.record(&committed.answer.writes, committed.visible);
    Ok(committed.answer)
}

/// This field's key, from the client's `Idempotency-Key` (checked: a
/// malformed one is BAD_USER_INPUT) and the field's response path, so that
/// every command of a request has a key of its own.
fn idempotency_key(ctx: &Context<'_>, request: &RequestContext) -> async_graphql::Result<Option<String>> {
    let Some(key) = RequestKey::parse(request.forwarded.idempotency_key.as_deref()).coded()? else { return Ok(None) };
    let path = ctx.path_node.map(|path| path.to_string()).unwrap_or_default();
    Ok(Some(format!("{key}/{path}")))
}

/// What the read model answered after a command; nothing when it cannot
/// answer (the command's own answer is used then).
fn after_command<T>(loaded: Result<Option<T>, SourceError>) -> Option<T> {
    loaded.unwrap_or_else(|error| {
        tracing::warn!(%error, "the read model cannot show a command's result; answering with the service's");
        None
    })
}

async fn auth_payload(ctx: &Context<'_>, answered: &Value) -> async_graphql::Result<AuthPayload> {
    Ok(AuthPayload { token: parse(&answered["token"])?, user: user_after_command(ctx, &answered["user"]).await? })
}

/// The user a command returned, from the request's source when it has the
/// user, else as the service answered it.
async fn user_after_command(ctx: &Context<'_>, answered: &Value) -> async_graphql::Result<User> {
    let id = parse::<Uuid>(&answered["id"])?;
    let request = ctx.data::<RequestContext>()?;
    if let Some(user) = after_command(request.loaders.users.load_one(id).await) {
        return Ok(User(user));
    }
    Ok(User(user_record(id, answered)?))
}

/// A user as a service answered it (`USER_FIELDS`).
fn user_record(id: Uuid, answered: &Value) -> async_graphql::Result<UserRecord> {
    Ok(UserRecord {
        id,
        username: parse(&answered["username"])?,
        display_name: parse(&answered["displayName"])?,
        points: parse(&answered["points"])?,
        post_count: None,
        created_at: parse::<DateTime<Utc>>(&answered["createdAt"])?,
    })
}

/// The user `id` as auth-service has it; nothing if it cannot say.
async fn author_from_service(ctx: &Context<'_>, id: Uuid) -> Option<UserRecord> {
    let (commands, request) = (ctx.data::<Commands>().ok()?, ctx.data::<RequestContext>().ok()?);
    let query = format!("query($id: ID!) {{ user(id: $id) {{ {USER_FIELDS} }} }}");
    let answer = commands.upstream.query(Service::Auth, &query, json!({ "id": id }), &request.forwarded, &request.calls).await;
    match answer {
        Ok(answer) if !answer.data["user"].is_null() => user_record(id, &answer.data["user"]).ok(),
        Ok(_) => None,
        Err(error) => {
            tracing::warn!(%error, "cannot ask auth-service for a new post's author");
            None
        }
    }
}

fn parse<T: serde::de::DeserializeOwned>(value: &Value) -> async_graphql::Result<T> {
    serde_json::from_value(value.clone())
        .map_err(|error| agora_platform::errors::internal(anyhow::anyhow!("a service answered an unexpected shape: {error}")))
}
