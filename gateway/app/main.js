// The demo app: the newest posts with their authors and points, paged by
// cursor; register, log in and out (the token is kept in sessionStorage,
// so each tab is its own session); write a post; rename yourself; and the
// list kept live by the gateway's subscriptions. It shows which strategy
// answered each page and the read-your-writes token at work: the page
// fetched right after a post, with the mutation's consistency token, lists
// that post.

import { QUERIES, request } from './api.js';
import * as errors from './errors.js';
import * as feed from './feed.js';
import * as live from './live.js';

const PAGE_SIZE = 10;
const TOKEN_KEY = 'agora.token';
const CONSISTENCY_KEY = 'agora.consistencyToken';

const $ = (id) => document.getElementById(id);

const session = {
  token: sessionStorage.getItem(TOKEN_KEY),
  /** The latest consistency token a mutation returned: every read waits for it. */
  consistencyToken: sessionStorage.getItem(CONSISTENCY_KEY),
  me: null,
};
const paging = { endCursor: null, hasNextPage: false };

function strategy() {
  return $('strategy').value;
}

function rememberConsistency(extensions) {
  if (!extensions.consistencyToken) return;
  session.consistencyToken = extensions.consistencyToken;
  sessionStorage.setItem(CONSISTENCY_KEY, extensions.consistencyToken);
}

// --- reading ----------------------------------------------------------------

async function fetchPage(after, consistencyToken = session.consistencyToken) {
  const result = await request(QUERIES.posts, { first: PAGE_SIZE, after }, { strategy: strategy(), consistencyToken });
  showAnsweredBy(result.extensions, Boolean(consistencyToken));
  return result.data.posts;
}

function showAnsweredBy(extensions, waited) {
  const parts = [`Answered by the ${extensions.strategy ?? 'unknown'} strategy`];
  if (extensions.upstreamRequests != null) parts.push(`${extensions.upstreamRequests} calls to services`);
  if (extensions.sqlStatements != null) parts.push(`${extensions.sqlStatements} SQL statements`);
  if (extensions.cache) parts.push(`cache ${extensions.cache}`);
  if (waited) parts.push('after your writes (consistency token sent)');
  const line = $('answered-by');
  line.dataset.strategy = extensions.strategy ?? '';
  line.textContent = `${parts.join(' · ')}.`;
}

function showPaging(page) {
  paging.endCursor = page.pageInfo.endCursor;
  paging.hasNextPage = page.pageInfo.hasNextPage;
  $('older').hidden = !paging.hasNextPage;
}

async function reload() {
  try {
    const page = await fetchPage(null);
    feed.reset();
    feed.append(page.edges.map((edge) => edge.node));
    showPaging(page);
    errors.clear('load');
  } catch (error) {
    errors.show(error, 'load');
  }
}

/** The newest page merged in at the top (after a reconnect, or a write). */
function mergeNewest(page) {
  for (const edge of [...page.edges].reverse()) feed.prepend(edge.node);
}

async function older() {
  const button = $('older');
  button.disabled = true;
  try {
    const page = await fetchPage(paging.endCursor);
    feed.append(page.edges.map((edge) => edge.node));
    showPaging(page);
  } catch (error) {
    errors.show(error, 'load');
  } finally {
    button.disabled = false;
  }
}

// --- the account --------------------------------------------------------------

function signedIn(token, user) {
  session.token = token;
  session.me = user;
  sessionStorage.setItem(TOKEN_KEY, token);
  showAccount();
}

function signedOut() {
  session.token = null;
  session.me = null;
  sessionStorage.removeItem(TOKEN_KEY);
  showAccount();
}

function showAccount() {
  const me = session.me;
  $('signed-out').hidden = Boolean(me);
  $('signed-in').hidden = !me;
  $('write').hidden = !me;
  if (me) {
    $('me-name').textContent = me.displayName;
    $('me-username').textContent = `@${me.username}`;
    $('me-points').textContent = String(me.points);
  }
}

async function restoreSession() {
  if (!session.token) return showAccount();
  try {
    const { data } = await request(QUERIES.me, {}, { token: session.token });
    if (data.me) signedIn(session.token, data.me);
    else signedOut();
  } catch (error) {
    if (error.code === 'UNAUTHENTICATED') signedOut();
    else errors.show(error, 'load');
  }
}

/** Runs a form's action with its button disabled; shows its error. */
function onSubmit(formId, action, run) {
  const form = $(formId);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    if (!form.reportValidity()) return;
    const button = form.querySelector('button[type="submit"]');
    button.disabled = true;
    form.setAttribute('aria-busy', 'true');
    try {
      await run(new FormData(form), form);
      errors.clear();
    } catch (error) {
      if (error.code === 'UNAUTHENTICATED' && action !== 'login') signedOut();
      errors.show(error, action);
    } finally {
      button.disabled = false;
      form.removeAttribute('aria-busy');
    }
  });
}

onSubmit('register-form', 'register', async (fields, form) => {
  const input = { username: fields.get('username').trim(), password: fields.get('password') };
  const displayName = fields.get('displayName').trim();
  if (displayName) input.displayName = displayName;
  const { data, extensions } = await request(QUERIES.register, { input });
  rememberConsistency(extensions);
  signedIn(data.register.token, data.register.user);
  form.reset();
  $('account-heading').focus();
});

onSubmit('login-form', 'login', async (fields, form) => {
  const input = { username: fields.get('username').trim(), password: fields.get('password') };
  const { data } = await request(QUERIES.login, { input });
  signedIn(data.login.token, data.login.user);
  form.reset();
  $('account-heading').focus();
});

onSubmit('rename-form', 'rename', async (fields, form) => {
  const { data, extensions } = await request(QUERIES.rename, { displayName: fields.get('displayName').trim() }, { token: session.token });
  rememberConsistency(extensions);
  session.me = { ...session.me, ...data.renameUser };
  showAccount();
  feed.renamed(session.me.id, session.me.displayName);
  form.reset();
});

onSubmit('post-form', 'post', async (fields, form) => {
  const input = { title: fields.get('title').trim(), body: fields.get('body').trim() };
  const { data, extensions } = await request(QUERIES.createPost, { input }, { token: session.token });
  const post = data.createPost;
  rememberConsistency(extensions);
  form.reset();
  // Read your write: the first page, asked for right now with the
  // mutation's consistency token, must list the post (on any replica).
  const page = await fetchPage(null, extensions.consistencyToken);
  const listed = page.edges.some((edge) => edge.node.id === post.id);
  mergeNewest(page);
  feed.prepend(post);
  const receipt = $('write-receipt');
  receipt.dataset.readYourWrites = listed ? 'listed' : 'pending';
  const token = extensions.consistencyToken ? ` (consistency token ${extensions.consistencyToken.slice(0, 10)}…)` : '';
  receipt.textContent = listed
    ? `Published “${post.title}”. Read your write: the page fetched right after, with the consistency token${token}, lists it.`
    : `Published “${post.title}”; the read model has not caught up yet${token}: the next read waits for it.`;
});

$('logout').addEventListener('click', () => {
  signedOut();
  errors.clear();
  $('account-heading').focus();
});

$('strategy-form').addEventListener('submit', (event) => {
  event.preventDefault();
  reload();
});
$('strategy').addEventListener('change', () => reload());
$('older').addEventListener('click', older);

// --- live -------------------------------------------------------------------

live.start({
  postCreated: (post) => feed.prepend(post),
  userRenamed: (user) => {
    feed.renamed(user.id, user.displayName);
    if (session.me?.id === user.id) {
      session.me.displayName = user.displayName;
      showAccount();
    }
  },
  pointsChanged: (change) => {
    feed.pointsChanged(change.user.id, change.total);
    if (session.me?.id === change.user.id) {
      session.me.points = Math.max(session.me.points, change.total);
      showAccount();
    }
  },
  onReconnected: async () => {
    try {
      mergeNewest(await fetchPage(null));
    } catch (error) {
      errors.show(error, 'load');
    }
  },
  onStatus: (state, text) => {
    const line = $('connection');
    line.dataset.state = state;
    line.textContent = text;
  },
});

await restoreSession();
await reload();
