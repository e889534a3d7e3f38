// Hive Gateway (the GraphQL Hive runtime) on a static supergraph, on a plain
// Node HTTP server in one process. Env: HOST, PORT, SUPERGRAPH_FILE_PATH.
import { createServer } from 'node:http';
import { createGatewayRuntime } from '@graphql-hive/gateway';

const host = process.env.HOST ?? '127.0.0.1';
const port = Number(process.env.PORT ?? 4000);
const gateway = createGatewayRuntime({
  supergraph: process.env.SUPERGRAPH_FILE_PATH,
  graphqlEndpoint: '/graphql',
  landingPage: false,
  graphiql: false,
  logging: 'error',
});
const server = createServer(gateway);
server.listen(port, host, () => console.log(`Hive Gateway ready at http://${host}:${port}/graphql`));
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    server.close();
    gateway.dispose?.();
    process.exit(0);
  });
}
