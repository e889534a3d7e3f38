// Apollo Gateway (with Apollo Server) on a static supergraph.
// Env: HOST, PORT, SUPERGRAPH_FILE_PATH. Serves POST /graphql.
import { readFileSync } from 'node:fs';
import { ApolloServer } from '@apollo/server';
import { startStandaloneServer } from '@apollo/server/standalone';
import { ApolloGateway } from '@apollo/gateway';

const host = process.env.HOST ?? '127.0.0.1';
const port = Number(process.env.PORT ?? 4000);
const supergraphSdl = readFileSync(process.env.SUPERGRAPH_FILE_PATH, 'utf8');
const gateway = new ApolloGateway({ supergraphSdl });
const server = new ApolloServer({ gateway, introspection: false });
const { url } = await startStandaloneServer(server, { listen: { host, port } });
console.log(`Apollo Gateway ready at ${url}graphql`);
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, async () => {
    await server.stop();
    process.exit(0);
  });
}
