// GraphQL over HTTP to the gateway that served this page (POST /graphql),
// with the caller's token, the chosen query strategy and the latest
// consistency token, so that every read after a write sees that write on
// whichever gateway replica answers it.

/** The gateway's endpoint, relative to the page (served at /app). */
export const endpoint = new URL('graphql', window.location.href);
endpoint.search = '';

/** An answer with errors and no data, or no answer at all. */
export class RequestFailed extends Error {
  /**
   * @param {string} code the first error's `extensions.code`, or `NETWORK` when the gateway could not be reached
   * @param {string} message the server's message
   * @param {object} extensions the first error's extensions (`retryAfter`, …)
   */
  constructor(code, message, extensions = {}) {
    super(message);
    this.code = code;
    this.extensions = extensions;
  }
}

/**
 * Sends one operation; resolves with `{ data, errors, extensions }` when
 * there is data, throws RequestFailed otherwise.
 * @param {string} query
 * @param {object} variables
 * @param {{ token?: string, strategy?: string, consistencyToken?: string }} options
 */
export async function request(query, variables = {}, options = {}) {
  const headers = {
    'content-type': 'application/json',
    accept: 'application/graphql-response+json, application/json',
  };
  if (options.token) headers.authorization = `Bearer ${options.token}`;
  if (options.strategy) headers['x-query-strategy'] = options.strategy;
  if (options.consistencyToken) headers['x-consistency-token'] = options.consistencyToken;
  let response;
  try {
    response = await fetch(endpoint, { method: 'POST', headers, body: JSON.stringify({ query, variables }) });
  } catch (error) {
    throw new RequestFailed('NETWORK', String(error?.message ?? error));
  }
  let body;
  try {
    body = await response.json();
  } catch {
    const code = response.status >= 500 ? 'UNAVAILABLE' : 'INTERNAL';
    throw new RequestFailed(code, `the gateway answered HTTP ${response.status} without a GraphQL body`);
  }
  const errors = body.errors ?? [];
  if (body.data == null || errors.length > 0 && isWholeFailure(body.data)) {
    const first = errors[0] ?? { message: `HTTP ${response.status}` };
    const extensions = { ...first.extensions };
    const retryAfter = response.headers.get('retry-after');
    if (extensions.retryAfter == null && retryAfter) extensions.retryAfter = Number(retryAfter);
    throw new RequestFailed(extensions.code ?? 'INTERNAL', first.message, extensions);
  }
  return { data: body.data, errors, extensions: body.extensions ?? {} };
}

/** A mutation's data is all null when its one field failed. */
function isWholeFailure(data) {
  return Object.values(data).every((value) => value == null);
}

/** What a post looks like everywhere in the app. */
export const POST_FIELDS = `id title body createdAt author { id username displayName points }`;

export const QUERIES = {
  posts: `query Posts($first: Int!, $after: String) {
    posts(first: $first, after: $after) {
      edges { cursor node { ${POST_FIELDS} } }
      pageInfo { hasNextPage endCursor }
    }
  }`,
  me: `query Me { me { id username displayName points } }`,
  register: `mutation Register($input: RegisterInput!) {
    register(input: $input) { token user { id username displayName points } }
  }`,
  login: `mutation LogIn($input: LoginInput!) {
    login(input: $input) { token user { id username displayName points } }
  }`,
  rename: `mutation Rename($displayName: String!) { renameUser(displayName: $displayName) { id username displayName points } }`,
  createPost: `mutation Publish($input: CreatePostInput!) { createPost(input: $input) { ${POST_FIELDS} } }`,
};

export const SUBSCRIPTIONS = {
  postCreated: `subscription NewPosts { postCreated { ${POST_FIELDS} } }`,
  userRenamed: `subscription Renames { userRenamed { id displayName } }`,
  pointsChanged: `subscription Points { pointsChanged { user { id } delta total } }`,
};
