#!/usr/bin/env node
// Runs the GraphQL-over-HTTP server audits of the `graphql-http` package
// against a running endpoint and exits non-zero unless every audit passes:
// MUST, SHOULD and MAY alike (a failed SHOULD or MAY is a failure here too).
//
//   node gateway/tests/js/audit.mjs http://127.0.0.1:8080/graphql
//
// The audited schema needs a `Query` type (the audits run `{ __typename }`
// and `__type` introspection) and a `Mutation` type for the GET-mutation check.

import { serverAudits } from 'graphql-http';

const url = process.argv[2];
if (!url) {
  console.error('usage: node audit.mjs <graphql endpoint URL>');
  process.exit(2);
}

const results = [];
for (const audit of serverAudits({ url })) {
  // One at a time, so the output reads in the spec's order.
  results.push(await audit.fn());
}

for (const result of results) {
  if (result.status === 'ok') {
    console.log(`ok    ${result.id} ${result.name}`);
  } else {
    let body = '';
    try {
      body = await result.response.text();
    } catch {
      // the body was read by the audit already
    }
    console.log(`FAIL  ${result.id} ${result.name} [${result.status}]`);
    console.log(`        ${result.reason}; status ${result.response.status}, ` +
      `content-type ${result.response.headers.get('content-type')}, body ${body.slice(0, 300)}`);
  }
}

const passed = results.filter((result) => result.status === 'ok').length;
const failed = results.length - passed;
console.log(`audits: ${passed} passed, ${failed} failed`);
process.exit(failed === 0 && passed > 0 ? 0 : 1);
