// Apollo Client (npm @apollo/client) with its persisted-queries link, as a
// frontend uses it, against the gateway:
//
//   node apq.mjs <http-url> <query> <variables-json> <times>
//
// Runs the query <times> times (no client cache: each run goes to the
// server), hashed queries over GET. Prints one JSON line per HTTP request
// the link sends ({"method", "hasQuery", "status"}), one per result
// ({"data": …}), then {"done": true}.
import { createHash } from 'node:crypto';
import { ApolloClient, HttpLink, InMemoryCache, gql } from '@apollo/client';
import { PersistedQueryLink } from '@apollo/client/link/persisted-queries';

const [url, query, variablesText, timesText] = process.argv.slice(2);
const print = (value) => process.stdout.write(JSON.stringify(value) + '\n');

async function loggingFetch(input, init) {
  const method = init?.method ?? 'GET';
  const target = new URL(typeof input === 'string' ? input : input.url);
  const hasQuery = method === 'GET' ? target.searchParams.has('query') : 'query' in JSON.parse(init.body);
  const response = await fetch(input, init);
  print({ method, hasQuery, status: response.status });
  return response;
}

const client = new ApolloClient({
  cache: new InMemoryCache(),
  link: new PersistedQueryLink({
    sha256: (text) => createHash('sha256').update(text).digest('hex'),
    useGETForHashedQueries: true,
  }).concat(new HttpLink({ uri: url, fetch: loggingFetch })),
});

try {
  for (let run = 0; run < Number(timesText); run++) {
    const result = await client.query({
      query: gql(query),
      variables: JSON.parse(variablesText),
      fetchPolicy: 'network-only',
    });
    print({ data: result.data });
  }
  print({ done: true });
} catch (error) {
  print({ failed: String(error?.message ?? error) });
  process.exit(1);
}
