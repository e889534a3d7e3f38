// Composes a Federation v2 supergraph offline with @apollo/composition.
// Usage: node compose.mjs <subgraphs.json> <supergraph.graphql>
// where subgraphs.json is [{ "name": ..., "url": ..., "sdl": ... }, ...].
import { readFileSync, writeFileSync } from 'node:fs';
import { composeServices } from '@apollo/composition';
import { parse } from 'graphql';

const [input, output] = process.argv.slice(2);
if (!input || !output) {
  console.error('usage: node compose.mjs <subgraphs.json> <supergraph.graphql>');
  process.exit(2);
}
const subgraphs = JSON.parse(readFileSync(input, 'utf8'));
const result = composeServices(subgraphs.map(({ name, url, sdl }) => ({ name, url, typeDefs: parse(sdl) })));
if (result.errors && result.errors.length > 0) {
  for (const error of result.errors) console.error(error.toString());
  process.exit(1);
}
for (const hint of result.hints ?? []) console.error(`hint: ${hint.toString()}`);
writeFileSync(output, result.supergraphSdl);
console.log(`composed ${subgraphs.length} subgraphs into ${output}`);
