// The demo app and GraphiQL in a real browser: headless Chromium (Debian's
// `chromium`, or CHROMIUM_PATH) driven by playwright-core.
//
//   node app.mjs <gateway-url> <screenshot-dir>
//
// Every request to anything but loopback is aborted and recorded, and the
// run fails if there was one: the app and the playground must work without
// internet. Two pages of the app: a writer (desktop width) registers,
// posts by keyboard and renames; a reader (phone width, 375 px) sees the
// post appear, the author's points tick up and the name change, live,
// without a reload, and gets a taken username and a wrong password
// explained. A third page has its requests cut and its socket closed, and
// recovers: it resubscribes with its resume cursors, and the gateway replays
// the post it missed while away. Then GraphiQL runs a query and a subscription, and ten more
// posts page the reader's list by cursor. Every wait is for a condition,
// with a timeout. Prints one JSON line per step; the last is
// {"passed":true,…} or {"failed":"…"} (then the exit status is 1).
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';

const [base, screenshots] = process.argv.slice(2);
const executablePath = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const TIMEOUT = 20_000;
const print = (value) => process.stdout.write(JSON.stringify(value) + '\n');
const step = (name) => print({ step: name });

class Failure extends Error {}
const fail = (message) => {
  throw new Failure(message);
};

if (!base || !screenshots) {
  print({ failed: 'usage: node app.mjs <gateway-url> <screenshot-dir>' });
  process.exit(2);
}
if (!existsSync(executablePath)) {
  print({ failed: `Chromium is not installed at ${executablePath}: install Debian's package (apt-get install chromium; .ci/run does) or set CHROMIUM_PATH` });
  process.exit(1);
}
mkdirSync(screenshots, { recursive: true });

const loopback = new Set(['127.0.0.1', 'localhost', '[::1]']);
const isLocal = (url) => {
  const parsed = new URL(url);
  return ['data:', 'blob:', 'about:'].includes(parsed.protocol) || loopback.has(parsed.hostname);
};
/** What the pages tried to reach beyond loopback (all aborted). */
const attempted = [];
/** Uncaught exceptions, and console errors such as CSP violations. */
const pageProblems = [];
/** The writer's session token (from sessionStorage), for posts the test publishes itself. */
let writerToken = null;

const browser = await chromium.launch({
  executablePath,
  // As root (CI), Chromium's sandbox cannot start.
  args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-background-networking'],
});

let exitCode = 0;
const context = await browser.newContext({ serviceWorkers: 'block' });
try {
  context.setDefaultTimeout(TIMEOUT);
  await context.route(
    (url) => !isLocal(url.href),
    (route) => {
      attempted.push(route.request().url());
      return route.abort('blockedbyclient');
    },
  );
  await context.routeWebSocket(
    (url) => !isLocal(url.href),
    (socket) => {
      attempted.push(socket.url());
      return socket.close();
    },
  );
  const watch = (page, name) => {
    page.on('pageerror', (error) => pageProblems.push(`${name}: ${error.message}`));
    page.on('console', (message) => {
      if (message.type() === 'error') pageProblems.push(`${name}: console: ${message.text()}`);
    });
    return page;
  };

  await guardWorks(context);
  const { reader, firstTitle } = await app(context, watch);
  await serverAway(context, watch);
  await graphiql(context, watch);
  await paging(reader, firstTitle);

  if (attempted.length > 0) fail(`requests beyond loopback were attempted: ${attempted.join(', ')}`);
  print({ passed: true, screenshots });
} catch (error) {
  exitCode = 1;
  print({ failed: error instanceof Failure ? error.message : String(error?.stack ?? error), attempted, pageProblems });
  // What each page showed when it failed.
  for (const [index, page] of context.pages().entries()) {
    await page.screenshot({ path: path.join(screenshots, `failed-page-${index + 1}.png`), fullPage: true }).catch(() => {});
  }
} finally {
  await browser.close();
}
process.exit(exitCode);

/** The guard itself: a blank page (no CSP) asks for a documentation address. */
async function guardWorks(context) {
  step('requests beyond loopback are aborted');
  const probe = 'http://203.0.113.7/probe';
  const page = await context.newPage();
  const outcome = await page.evaluate((url) => fetch(url).then(() => 'answered', () => 'aborted'), probe);
  await page.close();
  if (outcome !== 'aborted' || attempted.length !== 1 || attempted[0] !== probe) {
    fail(`the guard did not abort ${probe}: ${outcome}, recorded ${JSON.stringify(attempted)}`);
  }
  attempted.length = 0;
}

async function waitForText(locator, text, what) {
  try {
    await locator.filter({ hasText: text }).first().waitFor({ state: 'visible' });
  } catch {
    const shown = await locator.allTextContents().catch(() => []);
    fail(`${what}: "${text}" did not show within ${TIMEOUT} ms; shown: ${JSON.stringify(shown)}`);
  }
}

async function openApp(context, watch, name, viewport) {
  const page = watch(await context.newPage(), name);
  await page.setViewportSize(viewport);
  const response = await page.goto(`${base}/app`);
  if (response.status() !== 200) fail(`${name}: /app answered ${response.status()}`);
  await waitForText(page.locator('#connection'), 'Live updates: on', `${name}: the live feed`);
  return page;
}

async function app(context, watch) {
  step('open the app twice');
  const reader = await openApp(context, watch, 'reader', { width: 375, height: 812 });
  const writer = await openApp(context, watch, 'writer', { width: 1024, height: 900 });

  step('register');
  const username = `ada_${Date.now().toString(36)}`;
  const password = 'correct horse battery staple';
  const register = writer.getByRole('group', { name: 'Register' });
  await register.getByLabel('Username').fill(username);
  await register.getByLabel('Password').fill(password);
  await register.getByLabel('Display name').fill('Ada');
  await register.getByRole('button', { name: 'Register' }).click();
  await waitForText(writer.locator('#whoami'), `Signed in as Ada (@${username})`, 'writer: signed in');

  step('a taken username and a wrong password read as such');
  const again = reader.getByRole('group', { name: 'Register' });
  await again.getByLabel('Username').fill(username);
  await again.getByLabel('Password').fill(password);
  await again.getByRole('button', { name: 'Register' }).click();
  await waitForText(reader.getByRole('alert'), 'That username is taken', 'reader: registering a taken name');
  const login = reader.getByRole('group', { name: 'Log in' });
  await login.getByLabel('Username').fill(username);
  await login.getByLabel('Password').fill('not the password');
  await login.getByRole('button', { name: 'Log in' }).click();
  await waitForText(reader.getByRole('alert'), 'Wrong username or password', 'reader: a wrong password');
  await reader.getByRole('alert').getByRole('button', { name: 'Dismiss' }).click();

  step('post, by keyboard');
  const title = `Notes on the engine ${Date.now().toString(36)}`;
  await writer.getByLabel('Title').focus();
  await writer.keyboard.type(title);
  await writer.keyboard.press('Tab');
  await writer.keyboard.type('It weaves algebraic patterns.');
  await writer.keyboard.press('Tab');
  await writer.keyboard.press('Enter');
  await waitForText(writer.locator('#write-receipt'), 'Read your write', 'writer: read-your-writes');
  const receipt = await writer.locator('#write-receipt').getAttribute('data-read-your-writes');
  if (receipt !== 'listed') fail(`writer: the post was not listed right after the mutation (${receipt})`);
  await waitForText(writer.locator('#posts > li').first(), title, 'writer: own post at the top');
  await waitForText(writer.locator('#answered-by'), 'Answered by the read-model strategy', 'writer: the strategy');

  step('the reader sees the post arrive live, then the points tick');
  const readersPost = reader.locator('#posts > li').filter({ hasText: title });
  await waitForText(reader.locator('#posts > li').first(), title, 'reader: the new post at the top');
  await waitForText(readersPost.locator('.points-badge'), '10 points', 'reader: the author earned 10 points');
  await waitForText(writer.locator('#me-points'), '10', 'writer: own points');

  step('rename');
  await writer.getByLabel('New display name').fill('Ada Lovelace');
  await writer.getByRole('button', { name: 'Rename' }).click();
  await waitForText(writer.locator('#me-name'), 'Ada Lovelace', 'writer: renamed');
  await waitForText(readersPost.locator('.author-name'), 'Ada Lovelace', 'reader: the new name on the post');

  step('the composition strategy answers too');
  await writer.getByLabel('Query strategy').selectOption('composition');
  await waitForText(writer.locator('#answered-by'), 'Answered by the composition strategy', 'writer: composition');
  await waitForText(writer.locator('#posts > li').first().locator('.author-name'), 'Ada Lovelace', 'writer: composed page');

  step('every field has a label');
  for (const [name, page] of [['reader', reader], ['writer', writer]]) {
    const unlabelled = await page.evaluate(() =>
      [...document.querySelectorAll('input, select, textarea')].filter((field) => field.labels.length === 0).map((field) => field.id));
    if (unlabelled.length > 0) fail(`${name}: fields without a label: ${unlabelled.join(', ')}`);
  }

  step('phone width');
  const overflow = await reader.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  if (overflow > 0) fail(`reader: the page is ${overflow} px wider than a 375 px phone`);
  await reader.screenshot({ path: path.join(screenshots, 'app-reader-375px.png'), fullPage: true });
  await writer.screenshot({ path: path.join(screenshots, 'app-writer.png'), fullPage: true });

  const problems = pageProblems.filter((problem) => !problem.includes('Failed to load resource'));
  if (problems.length > 0) fail(`the app's pages reported problems: ${problems.join(' | ')}`);
  writerToken = await writer.evaluate(() => sessionStorage.getItem('agora.token'));
  if (!writerToken) fail('writer: the token is not in sessionStorage');
  return { reader, firstTitle: title };
}

/** A third page whose requests and socket the test cuts: what it says, and that it recovers. */
async function serverAway(context, watch) {
  step('the server away: requests fail, the socket reconnects');
  const page = watch(await context.newPage(), 'away');
  const sockets = [];
  // What the page sends and receives on each socket, by the socket's number.
  const frames = [];
  let framesChanged = () => {};
  let letThrough;
  const held = new Promise((resolve) => {
    letThrough = resolve;
  });
  // The page's socket goes through the test, which can close it, and holds
  // the second one back until the test lets it through.
  await page.routeWebSocket(/\/graphql$/, async (socket) => {
    const number = sockets.push(socket);
    const early = [];
    let server = null;
    socket.onMessage((message) => {
      frames.push({ number, sent: JSON.parse(message) });
      framesChanged();
      if (server) server.send(message);
      else early.push(message);
    });
    if (number > 1) await held;
    server = socket.connectToServer();
    server.onMessage((message) => {
      frames.push({ number, received: JSON.parse(message) });
      framesChanged();
      socket.send(message);
    });
    for (const message of early) server.send(message);
  });
  await page.goto(`${base}/app`);
  await waitForText(page.locator('#connection'), 'Live updates: on', 'away: the live feed');
  const seen = `Seen before the cut ${Date.now()}`;
  await publish(seen);
  await waitForText(page.locator('#posts'), seen, 'away: a post live before the cut');
  // A fresh page: the first Tab stop is the skip link, which leads to the posts.
  await page.keyboard.press('Tab');
  const first = await page.evaluate(() => document.activeElement?.textContent);
  if (first !== 'Skip to the posts') fail(`away: the first Tab stop is "${first}", not the skip link`);
  await page.keyboard.press('Enter');
  await page.waitForFunction(() => document.activeElement?.id === 'posts-heading');
  await page.route('**/graphql', (route) => route.abort('connectionrefused'));
  await page.getByRole('button', { name: 'Reload' }).click();
  await waitForText(page.getByRole('alert'), 'The server cannot be reached', 'away: a request that cannot be sent');
  await page.unroute('**/graphql');
  // 1012 (service restart): graphql-ws retries after a randomised back-off.
  await sockets.at(-1).close({ code: 1012, reason: 'the browser test cuts the socket' });
  await waitForText(page.locator('#connection'), 'reconnecting', 'away: the socket closed');
  await page.screenshot({ path: path.join(screenshots, 'app-reconnecting.png') });
  // A post while the page is away; then its socket gets through.
  const missed = `Missed while away ${Date.now()}`;
  await publish(missed);
  letThrough();
  await waitForText(page.locator('#connection'), 'Live updates: on', 'away: the socket is back');
  if (sockets.length < 2) fail(`away: the page did not open a new socket (${sockets.length})`);
  step('the page resumes its subscriptions and the gateway replays what it missed');
  const resubscribed = frames.filter(
    (frame) => frame.number > 1 && frame.sent?.type === 'subscribe' && frame.sent.payload.query.includes('postCreated'),
  );
  if (!resubscribed.some((frame) => typeof frame.sent.payload.extensions?.resumeFrom === 'string')) {
    fail(`away: the postCreated resubscription carries no resumeFrom: ${JSON.stringify(resubscribed)}`);
  }
  const replayed = () =>
    frames.some(
      (frame) =>
        frame.number > 1 &&
        frame.received?.type === 'next' &&
        frame.received.payload.data?.postCreated?.title === missed &&
        typeof frame.received.payload.extensions?.resumeCursor === 'string',
    );
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      const later = JSON.stringify(frames.filter((frame) => frame.number > 1));
      reject(new Failure(`away: the gateway did not replay the missed post on the new socket within 10 s: ${later}`));
    }, 10_000);
    framesChanged = () => {
      if (!replayed()) return;
      clearTimeout(timer);
      resolve();
    };
    framesChanged();
  });
  await waitForText(page.locator('#posts'), missed, 'away: the missed post shows');
  const shown = await page.locator('#posts').getByText(missed).count();
  if (shown !== 1) fail(`away: the missed post shows ${shown} times`);
  await page.getByRole('button', { name: 'Reload' }).click();
  try {
    await page.locator('#errors p').waitFor({ state: 'detached' });
  } catch {
    fail('away: the error stayed after the page loaded again');
  }

  step('every error code has its sentence');
  const expected = [
    [{ code: 'RATE_LIMITED', extensions: { retryAfter: 30 } }, 'login', 'Too many attempts: try again in 30 seconds.'],
    [{ code: 'RATE_LIMITED' }, 'register', 'Too many attempts: wait a little and try again.'],
    [{ code: 'CONFLICT' }, 'register', 'That username is taken: choose another one.'],
    [{ code: 'UNAUTHENTICATED' }, 'login', 'Wrong username or password.'],
    [{ code: 'UNAUTHENTICATED' }, 'post', 'Your session has ended: log in again.'],
    [{ code: 'UPSTREAM_UNAVAILABLE' }, 'post', 'The server is away for a moment: try again shortly.'],
    [{ code: 'UNAVAILABLE' }, 'load', 'The server is away for a moment: try again shortly.'],
    [{ code: 'TIMEOUT' }, 'rename', 'The server is away for a moment: try again shortly.'],
    [{ code: 'INTERNAL' }, 'load', 'Something went wrong on the server (INTERNAL). Try again later.'],
  ];
  const sentences = await page.evaluate(async (cases) => {
    const { describe } = await import('./app/errors.js');
    return cases.map(([error, action]) => describe({ message: 'the message', ...error }, action));
  }, expected);
  expected.forEach(([error, action, sentence], index) => {
    if (sentences[index] !== sentence) fail(`${error.code} on ${action} reads "${sentences[index]}", not "${sentence}"`);
  });
  await page.close();
}

/** Runs `operation`, named `name`, in GraphiQL's editor. */
async function runInGraphiql(page, name, operation) {
  // The editor is CodeMirror 5: set its text as a whole (typing would fight
  // its bracket completion). GraphiQL reads the operation's name from the
  // text after a debounce and stores it: run once it has.
  await page.evaluate((text) => document.querySelector('.graphiql-query-editor .CodeMirror').CodeMirror.setValue(text), operation);
  await page.waitForFunction((expected) => localStorage.getItem('graphiql:operationName') === expected, name);
  await page.locator('.graphiql-execute-button').click();
}

async function graphiql(context, watch) {
  step('GraphiQL: a query');
  const page = watch(await context.newPage(), 'graphiql');
  await page.setViewportSize({ width: 1280, height: 900 });
  await page.goto(`${base}/graphql`);
  await page.locator('.graphiql-query-editor .CodeMirror').waitFor();
  const result = page.locator('.result-window');
  await runInGraphiql(page, 'BrowserTestPosts', 'query BrowserTestPosts { posts(first: 3) { nodes { title author { displayName points } } } }');
  await waitForText(result, 'Ada Lovelace', 'graphiql: the query result');
  await page.screenshot({ path: path.join(screenshots, 'graphiql-query.png') });

  step('GraphiQL: a subscription');
  const subscribed = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Failure(`graphiql: no subscribe message was sent within ${TIMEOUT} ms`)), TIMEOUT);
    page.on('websocket', (socket) =>
      socket.on('framesent', (frame) => {
        if (String(frame.payload).includes('"subscribe"')) {
          clearTimeout(timer);
          resolve();
        }
      }));
  });
  await runInGraphiql(page, 'BrowserTestNewPosts', 'subscription BrowserTestNewPosts { postCreated { title author { displayName } } }');
  await subscribed;
  // GraphiQL does not say when the server has registered the subscription:
  // publish until one of these posts shows (each wait is for a condition).
  const deadline = Date.now() + TIMEOUT;
  for (let attempt = 1; ; attempt += 1) {
    const title = `Seen in GraphiQL ${attempt}`;
    await publish(title);
    try {
      await result.filter({ hasText: 'Seen in GraphiQL' }).waitFor({ timeout: 2_000 });
      break;
    } catch {
      if (Date.now() > deadline) fail(`graphiql: no postCreated event shown within ${TIMEOUT} ms`);
    }
  }
  await page.screenshot({ path: path.join(screenshots, 'graphiql-subscription.png') });
}

/** More posts than a page: the first post is on the second page. */
async function paging(reader, firstTitle) {
  step('paging by cursor');
  const fillers = Array.from({ length: 10 }, (_, index) => `Filler ${index + 1}`);
  for (const filler of fillers) await publish(filler);
  // Every one has arrived live (so none arrives after the reload) …
  const titles = () => reader.locator('#posts .post-title').allTextContents();
  try {
    await reader.waitForFunction(
      (expected) => expected.every((title) => [...document.querySelectorAll('#posts .post-title')].some((node) => node.textContent === title)),
      fillers,
    );
  } catch {
    fail(`reader: not every new post arrived live: ${JSON.stringify(await titles())}`);
  }
  // … and the reload shows only the newest page.
  await reader.getByRole('button', { name: 'Reload' }).click();
  try {
    await reader.waitForFunction(() => document.querySelectorAll('#posts > li').length === 10);
  } catch {
    fail(`reader: the reload did not show a page of 10: ${JSON.stringify(await titles())}`);
  }
  const firstPost = reader.locator('#posts > li').filter({ hasText: firstTitle });
  if ((await firstPost.count()) !== 0) fail(`reader: the first page is not the 10 newest: ${JSON.stringify(await titles())}`);
  await reader.getByRole('button', { name: 'Older posts' }).click();
  await waitForText(firstPost, firstTitle, 'reader: the second page');
  await waitForText(firstPost.locator('.author-name'), 'Ada Lovelace', 'reader: the second page\'s author');
}

async function publish(title) {
  const response = await fetch(`${base}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${writerToken}` },
    body: JSON.stringify({
      query: 'mutation($input: CreatePostInput!) { createPost(input: $input) { id } }',
      variables: { input: { title, body: 'Published by the browser test.' } },
    }),
  });
  const body = await response.json();
  if (!body.data?.createPost) fail(`publishing "${title}" failed: ${JSON.stringify(body)}`);
}
