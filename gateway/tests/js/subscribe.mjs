// A real GraphQL-over-WebSocket client for the gateway's tests.
//
//   node subscribe.mjs <ws-url> <config-json>
//
// config: { "protocol": "graphql-transport-ws" | "graphql-ws",
//           "authorization": "Bearer …" (optional),
//           "subscriptions": [{ "id": "a", "query": "subscription …", "variables": {},
//                               "extensions": {} (optional, e.g. { "resumeFrom": "…" }) }] }
//
// "graphql-transport-ws" uses the npm `graphql-ws` client; "graphql-ws" (the
// legacy protocol) uses `subscriptions-transport-ws`. Prints one JSON line
// per event: {"ready":true} once every subscription is registered (a query
// sent after them on the same socket has answered), then
// {"id":…,"data":…,"extensions":…} or {"id":…,"errors":…} (also for an
// `error` message), {"id":…,"complete":true}, and
// {"closed":code,"reason":…} when the socket closes. Runs until killed.
import WebSocket from 'ws';

const [url, configText] = process.argv.slice(2);
const config = JSON.parse(configText);
const print = (value) => process.stdout.write(JSON.stringify(value) + '\n');
const connectionParams = config.authorization ? { authorization: config.authorization } : {};

async function transportWs() {
  const { createClient } = await import('graphql-ws');
  const client = createClient({
    url,
    webSocketImpl: WebSocket,
    connectionParams,
    lazy: false,
    retryAttempts: 0,
    on: { closed: (event) => print({ closed: event.code, reason: event.reason }) },
  });
  for (const { id, query, variables, extensions } of config.subscriptions) {
    client.subscribe({ query, variables, extensions }, {
      next: (result) => print({ id, ...result }),
      error: (error) =>
        print(Array.isArray(error) ? { id, errors: error } : { id, error: String(error?.message ?? error?.reason ?? error) }),
      complete: () => print({ id, complete: true }),
    });
  }
  // Messages are handled in order: once this answers, the subscriptions exist.
  await new Promise((resolve, reject) => {
    client.subscribe({ query: '{ __typename }' }, { next: () => {}, error: reject, complete: resolve });
  });
  print({ ready: true });
}

async function legacy() {
  const { SubscriptionClient } = await import('subscriptions-transport-ws');
  const client = new SubscriptionClient(url, { connectionParams, reconnect: false }, WebSocket);
  client.onDisconnected(() => print({ closed: client.client?._closeCode ?? 1000, reason: 'disconnected' }));
  for (const { id, query, variables } of config.subscriptions) {
    client.request({ query, variables }).subscribe({
      next: (result) => print({ id, ...result }),
      error: (error) => print({ id, error: String(error?.message ?? error) }),
      complete: () => print({ id, complete: true }),
    });
  }
  await new Promise((resolve, reject) => {
    client.request({ query: '{ __typename }' }).subscribe({ next: () => {}, error: reject, complete: resolve });
  });
  print({ ready: true });
}

(config.protocol === 'graphql-ws' ? legacy() : transportWs()).catch((error) => {
  print({ failed: String(error?.message ?? error) });
  process.exit(1);
});
