// The list of posts, newest first: pages fetched over HTTP, and the live
// events merged in (a new post at the top, a rename changing every post of
// its author, points ticking up). Everything is written with textContent,
// so no post can inject markup.

const list = () => document.getElementById('posts');

/** id → the author's { displayName, points }, shared by all their posts. */
const authors = new Map();
/** The ids of the posts shown, newest first. */
const shown = new Set();

const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });

/** Forgets every post shown (a reload of the first page). */
export function reset() {
  shown.clear();
  authors.clear();
  list().replaceChildren();
  updateEmpty();
}

/** Appends a page of older posts. */
export function append(posts) {
  for (const post of posts) {
    if (shown.has(post.id)) continue;
    list().append(render(post));
  }
  updateEmpty();
}

/** Puts a post at the top unless it is shown already; true if it was new. */
export function prepend(post) {
  if (shown.has(post.id)) return false;
  list().prepend(render(post));
  updateEmpty();
  return true;
}

export function has(postId) {
  return shown.has(postId);
}

/** Every post of `userId` shows `displayName`. */
export function renamed(userId, displayName) {
  const author = authors.get(userId);
  if (author) author.displayName = displayName;
  for (const element of byAuthor(userId, '.author-name')) element.textContent = displayName;
}

/** Every post of `userId` shows `total` points, briefly highlighted. */
export function pointsChanged(userId, total) {
  const author = authors.get(userId);
  if (author) author.points = total;
  for (const element of byAuthor(userId, '.points')) {
    element.textContent = String(total);
    const badge = element.closest('.points-badge');
    badge.classList.remove('ticked');
    // Restarts the highlight's animation on the next frame.
    requestAnimationFrame(() => badge.classList.add('ticked'));
  }
}

function byAuthor(userId, selector) {
  return list().querySelectorAll(`li[data-author-id="${CSS.escape(userId)}"] ${selector}`);
}

function remember(author) {
  const known = authors.get(author.id);
  // Points only grow (each post earns 10), and events may overtake a page:
  // keep the highest total seen.
  if (known) {
    known.points = Math.max(known.points, author.points);
    return known;
  }
  const fresh = { displayName: author.displayName, points: author.points };
  authors.set(author.id, fresh);
  return fresh;
}

function render(post) {
  shown.add(post.id);
  const author = remember(post.author);
  const item = element('li', 'post');
  item.dataset.postId = post.id;
  item.dataset.authorId = post.author.id;
  const article = element('article');
  const titleId = `post-${post.id}`;
  article.setAttribute('aria-labelledby', titleId);
  const title = element('h3', 'post-title', post.title);
  title.id = titleId;
  const meta = element('p', 'post-meta');
  const name = element('span', 'author-name', author.displayName);
  const badge = element('span', 'points-badge');
  badge.append(element('span', 'points', String(author.points)), ' points');
  const time = element('time', '', dateFormat.format(new Date(post.createdAt)));
  time.dateTime = post.createdAt;
  meta.append('by ', name, ' · ', badge, ' · ', time);
  const body = element('p', 'post-body', post.body);
  article.append(title, meta, body);
  item.append(article);
  return item;
}

function element(tag, className = '', text = null) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text != null) node.textContent = text;
  return node;
}

function updateEmpty() {
  document.getElementById('no-posts').hidden = shown.size > 0;
}
