// The live feed: the gateway's subscriptions over one graphql-transport-ws
// socket (graphql-ws's browser client, loaded by the page as the global
// `graphqlWs`). The socket reconnects for ever, with graphql-ws's
// randomised back-off, and resubscribes by itself. Each subscription keeps
// the cursor of its last result (`extensions.resumeCursor`) in its own
// subscribe payload, which graphql-ws sends again on every reconnect: the
// gateway then first replays what the page missed while away
// (`extensions.resumeFrom`). A cursor too old to resume from
// (CURSOR_EXPIRED) or no longer accepted (BAD_CURSOR) starts the
// subscription afresh, a replay that cannot run yet (UNAVAILABLE) is tried
// again with the same cursor; the page also fetches its
// newest posts again after a reconnect (`onReconnected`), which shows what
// a replay cannot (and a post already shown is not shown twice).

import { endpoint, SUBSCRIPTIONS } from './api.js';

const socketUrl = new URL(endpoint);
socketUrl.protocol = window.location.protocol === 'https:' ? 'wss:' : 'ws:';

/**
 * Opens the socket and subscribes.
 * @param {{ postCreated(post), userRenamed(user), pointsChanged(change), onReconnected(), onStatus(state, text) }} handlers
 */
export function start(handlers) {
  let connectedBefore = false;
  const client = globalThis.graphqlWs.createClient({
    url: socketUrl.href,
    lazy: false,
    keepAlive: 10_000,
    retryAttempts: Infinity,
    shouldRetry: () => true,
    onNonLazyError: () => {},
    on: {
      connecting: () => handlers.onStatus('connecting', connectedBefore ? 'Live updates: reconnecting…' : 'Live updates: connecting…'),
      connected: () => {
        const reconnected = connectedBefore;
        connectedBefore = true;
        // The server handles a socket's messages in order: once a query sent
        // after the (re)subscriptions has answered, they are registered, and
        // "on" means no event is missed from then on.
        client.subscribe({ query: '{ __typename }' }, {
          next: () => {},
          error: () => {},
          complete: () => {
            handlers.onStatus('connected', 'Live updates: on');
            if (reconnected) handlers.onReconnected();
          },
        });
      },
      closed: () => {
        if (connectedBefore) handlers.onStatus('reconnecting', 'Live updates: the connection was lost, reconnecting…');
      },
      error: () => handlers.onStatus('reconnecting', 'Live updates: the server cannot be reached, retrying…'),
    },
  });
  const follow = (query, field, handle, resumeFrom) => {
    // graphql-ws sends this very object again when it resubscribes.
    const payload = { query, extensions: resumeFrom ? { resumeFrom } : {} };
    client.subscribe(payload, {
      next: (result) => {
        const cursor = result.extensions?.resumeCursor;
        if (cursor) payload.extensions.resumeFrom = cursor;
        if (result.data?.[field]) handle(result.data[field]);
      },
      error: (errors) => {
        const codes = Array.isArray(errors) ? errors.map((error) => error.extensions?.code) : [];
        if (codes.includes('CURSOR_EXPIRED') || codes.includes('BAD_CURSOR')) {
          // Too far behind, or a cursor the server no longer accepts (its
          // key changed): follow afresh, and fetch the newest posts.
          follow(query, field, handle);
          handlers.onReconnected();
          return;
        }
        if (codes.includes('UNAVAILABLE')) {
          // The server could not replay yet: try again with the same cursor.
          setTimeout(() => follow(query, field, handle, payload.extensions.resumeFrom), 2000);
          return;
        }
        handlers.onStatus('failed', `Live updates: the ${field} feed failed; reload the page to try again.`);
      },
      complete: () => {},
    });
  };
  follow(SUBSCRIPTIONS.postCreated, 'postCreated', handlers.postCreated);
  follow(SUBSCRIPTIONS.userRenamed, 'userRenamed', handlers.userRenamed);
  follow(SUBSCRIPTIONS.pointsChanged, 'pointsChanged', handlers.pointsChanged);
  return client;
}
