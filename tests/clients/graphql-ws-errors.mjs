// Subscriptions through the graphql-ws client, as browsers and Node programs use it. An
// operation refused before it runs (it does not parse, does not validate, its variables do
// not coerce, or it is over the limits) must come back as the protocol's `error` message,
// which the client hands to the sink's `error` callback as an array of GraphQL errors; a
// `next` carrying errors, or a closed connection, would break clients that follow the
// protocol. Then a valid subscription must receive the comment a mutation adds.
//
//   GRAPHQL_URL   the HTTP endpoint, e.g. http://127.0.0.1:8080/graphql (ws:// is derived)
//   TOKEN         a valid bearer token of user-1
//
// Prints {"errors":{"<case>":"<code>",…},"event":true}.

import { randomUUID } from 'node:crypto';
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';
import { addComment, env, expect, fail, finish, sleep, within, wsUrl } from './lib.mjs';

const url = env('GRAPHQL_URL');
const token = env('TOKEN');
const POST = 'post-0001';

const client = createClient({
  url: wsUrl(url),
  webSocketImpl: WebSocket,
  connectionParams: { Authorization: `Bearer ${token}` },
  retryAttempts: 0,
  lazy: true,
});

/** Subscribes and resolves when the operation ends: { nexts, error } or { nexts, completed }. */
function run(payload, onNext = () => {}) {
  return new Promise((resolve) => {
    const nexts = [];
    client.subscribe(payload, {
      next: (value) => {
        nexts.push(value);
        onNext(value);
      },
      error: (error) => resolve({ nexts, error }),
      complete: () => resolve({ nexts, completed: true }),
    });
  });
}

const describe = (error) =>
  Array.isArray(error)
    ? JSON.stringify(error)
    : error && 'code' in error && 'reason' in error
      ? `the connection closed (${error.code} ${error.reason})`
      : String(error?.message ?? error);

// [name, operation, the code expected (null: whatever the server says, but one)]
const refused = [
  ['validation', { query: `subscription { commentAdded(postId: "${POST}") { nope } }` }, 'GRAPHQL_VALIDATION_FAILED'],
  ['syntax', { query: 'subscription {' }, 'GRAPHQL_PARSE_FAILED'],
  ['variables', { query: 'subscription ($p: ID!) { commentAdded(postId: $p) { id } }' }, null],
  [
    'cost',
    // 100 comments of a post per event: past MAX_SUBSCRIPTION_COST (100).
    { query: `subscription { commentAdded(postId: "${POST}") { post { comments(first: 100) { nodes { id } } } } }` },
    'QUERY_TOO_COMPLEX',
  ],
];

const codes = {};
for (const [name, payload, expected] of refused) {
  const { nexts, error } = await within(15_000, `${name}: the operation did not end`, run(payload));
  const code = Array.isArray(error) ? error[0]?.extensions?.code : undefined;
  codes[name] = code ?? null;
  expect(nexts.length === 0, `${name}: got ${nexts.length} next message(s): ${JSON.stringify(nexts)}`);
  if (!expect(Array.isArray(error), `${name}: expected an error message, got ${error ? describe(error) : 'complete'}`)) continue;
  if (expected) {
    expect(code === expected, `${name}: expected ${expected}, got ${JSON.stringify(error)}`);
  } else {
    expect(typeof code === 'string', `${name}: the error has no extensions.code: ${JSON.stringify(error)}`);
    console.error(`${name}: ${code}: ${error[0].message}`);
  }
}

// A valid subscription receives the comment added over HTTP. A subscription is live once
// the server has read its `subscribe`, which the protocol does not acknowledge: a comment is
// added after a second, and again (up to three times) while none has arrived.
let event = false;
const contents = [];
let arrived;
const seen = new Promise((resolve) => (arrived = resolve));
const subscription = run(
  { query: `subscription { commentAdded(postId: "${POST}") { id content } }` },
  ({ data }) => contents.includes(data?.commentAdded?.content) && arrived(data.commentAdded),
);
subscription.then((end) => arrived(end));
try {
  await sleep(1000);
  for (let attempt = 0; attempt < 3 && !event; attempt++) {
    const content = `from graphql-ws ${randomUUID()}`;
    contents.push(content);
    await addComment(url, token, POST, content);
    const got = await Promise.race([seen, sleep(5000).then(() => null)]);
    if (got && 'nexts' in got) {
      fail(`the subscription ended before any event: ${got.error ? describe(got.error) : 'complete'}`);
      break;
    }
    event = Boolean(got);
  }
  expect(event, `no event for the ${contents.length} comment(s) added to ${POST} within 5 s each`);
} catch (err) {
  fail(`adding a comment: ${err.message}`);
}

await client.dispose();
finish({ errors: codes, event });
