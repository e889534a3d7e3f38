//! `agora-local --seed`: a few users and their posts, created through the
//! gateway's public GraphQL mutations over HTTP, as any client would, so
//! every event flows (the points follow from the posts through the
//! ledger). Idempotent: a username already taken is logged in instead, and
//! a post whose title its author already has (asked of the services
//! themselves, `x-query-strategy: composition`, which a read model still
//! catching up cannot fool) is not published again.

use std::time::Duration;

use anyhow::{bail, Context};
use serde_json::{json, Value};

/// The seed's password for every user (a demo, not a secret).
pub const PASSWORD: &str = "agora demo password";

struct SeedUser {
    username: &'static str,
    display_name: &'static str,
    /// Titles and bodies.
    posts: &'static [(&'static str, &'static str)],
}

const USERS: [SeedUser; 3] = [
    SeedUser {
        username: "ada",
        display_name: "Ada Lovelace",
        posts: &[
            ("Notes on the Analytical Engine", "It might act upon other things besides number."),
            ("On Bernoulli numbers", "A table of the operations, step by step."),
        ],
    },
    SeedUser {
        username: "grace",
        display_name: "Grace Hopper",
        posts: &[
            ("The first bug", "A moth, found in relay 70 of panel F."),
            ("Nanoseconds", "About a foot of wire: what light travels in one."),
            ("It is easier to ask forgiveness", "than it is to get permission."),
        ],
    },
    SeedUser {
        username: "edsger",
        display_name: "Edsger Dijkstra",
        posts: &[("Go to statement considered harmful", "A letter to the editor.")],
    },
];

/// What a seed run found and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seeded {
    pub users_registered: usize,
    pub users_existing: usize,
    pub posts_created: usize,
    pub posts_existing: usize,
}

/// Seeds through the gateway at `graphql_url`.
pub async fn seed(graphql_url: &str) -> anyhow::Result<Seeded> {
    let client = Client {
        http: reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(30)).build()?,
        url: graphql_url.to_owned(),
    };
    let mut seeded = Seeded { users_registered: 0, users_existing: 0, posts_created: 0, posts_existing: 0 };
    for user in &USERS {
        let (token, id, registered) = client.register_or_log_in(user).await?;
        if registered {
            seeded.users_registered += 1;
        } else {
            seeded.users_existing += 1;
        }
        let existing = client.titles_of(&id).await?;
        for (index, (title, body)) in user.posts.iter().enumerate() {
            if existing.iter().any(|existing| existing == title) {
                seeded.posts_existing += 1;
                continue;
            }
            client.create_post(&token, user.username, index, title, body).await?;
            seeded.posts_created += 1;
        }
    }
    Ok(seeded)
}

struct Client {
    http: reqwest::Client,
    url: String,
}

impl Client {
    /// Runs one operation; the whole response (data and errors).
    async fn execute(&self, query: &str, variables: Value, headers: &[(&str, String)]) -> anyhow::Result<Value> {
        let mut request = self.http.post(&self.url).json(&json!({ "query": query, "variables": variables }));
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let response = request.send().await.with_context(|| format!("cannot reach the gateway at {}", self.url))?;
        response.json().await.context("the gateway's answer is not JSON")
    }

    /// The user's token and id, and whether it was registered now.
    async fn register_or_log_in(&self, user: &SeedUser) -> anyhow::Result<(String, String, bool)> {
        let input = json!({ "username": user.username, "password": PASSWORD, "displayName": user.display_name });
        let response = self
            .execute(
                "mutation($input: RegisterInput!) { register(input: $input) { token user { id } } }",
                json!({ "input": input }),
                &[],
            )
            .await?;
        if code(&response) == Some("CONFLICT") {
            let response = self
                .execute(
                    "mutation($input: LoginInput!) { login(input: $input) { token user { id } } }",
                    json!({ "input": { "username": user.username, "password": PASSWORD } }),
                    &[],
                )
                .await?;
            let (token, id) = payload(&response, "login", user.username)?;
            return Ok((token, id, false));
        }
        let (token, id) = payload(&response, "register", user.username)?;
        Ok((token, id, true))
    }

    /// The titles of the user's posts, as post-service has them.
    async fn titles_of(&self, user_id: &str) -> anyhow::Result<Vec<String>> {
        let response = self
            .execute(
                "query($id: ID!) { user(id: $id) { posts(first: 100) { nodes { title } } } }",
                json!({ "id": user_id }),
                &[("x-query-strategy", "composition".to_owned())],
            )
            .await?;
        fail_on_errors(&response, "listing the posts of a seed user")?;
        let nodes = response["data"]["user"]["posts"]["nodes"].as_array().cloned().unwrap_or_default();
        Ok(nodes.iter().filter_map(|node| node["title"].as_str().map(str::to_owned)).collect())
    }

    async fn create_post(&self, token: &str, username: &str, index: usize, title: &str, body: &str) -> anyhow::Result<()> {
        let response = self
            .execute(
                "mutation($input: CreatePostInput!) { createPost(input: $input) { id } }",
                json!({ "input": { "title": title, "body": body } }),
                &[
                    ("authorization", format!("Bearer {token}")),
                    // A retry of this run's request has one effect.
                    ("idempotency-key", format!("agora-seed/{username}/{index}")),
                ],
            )
            .await?;
        fail_on_errors(&response, &format!("publishing {username}'s post {title:?}"))
    }
}

/// The code of the response's first error.
fn code(response: &Value) -> Option<&str> {
    response["errors"][0]["extensions"]["code"].as_str()
}

fn fail_on_errors(response: &Value, doing: &str) -> anyhow::Result<()> {
    if let Some(error) = response["errors"].get(0) {
        bail!(
            "{doing} failed: {} ({})",
            error["message"].as_str().unwrap_or("no message"),
            error["extensions"]["code"].as_str().unwrap_or("no code")
        );
    }
    Ok(())
}

/// The token and user id of a `register` or `login` answer.
fn payload(response: &Value, field: &str, username: &str) -> anyhow::Result<(String, String)> {
    fail_on_errors(response, &format!("{field} of {username}"))?;
    let payload = &response["data"][field];
    match (payload["token"].as_str(), payload["user"]["id"].as_str()) {
        (Some(token), Some(id)) => Ok((token.to_owned(), id.to_owned())),
        _ => bail!("{field} of {username} answered without a token: {response}"),
    }
}
