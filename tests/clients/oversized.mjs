// Bodies over the server's limit (MAX_BODY_BYTES, 1 MiB by default), sent by the client most
// programs use: Node's fetch (undici). Every one must get its answer, 413 with a GraphQL error
// (BAD_USER_INPUT), even though the server stops reading long before the client stops
// sending. A server that closes the connection on a client still sending makes the client see
// a reset (EPIPE, ECONNRESET, "other side closed") instead of the 413: those are counted.
//
// 100 bodies with a Content-Length go one after another, then 20 chunked ones (a stream, no
// Content-Length), the other way a body can arrive.
//
//   GRAPHQL_URL      the endpoint, e.g. http://127.0.0.1:8080/graphql
//   OVERSIZE_BYTES   the size of each body (default 2 MiB)
//
// Prints {"sent":100,"status413":N,"other":{…},"resets":{…},"chunked":{"sent":20,…}}.

import { env, expect, finish } from './lib.mjs';

const url = env('GRAPHQL_URL');
const size = Number(env('OVERSIZE_BYTES', String(2 * 1024 * 1024)));

// A well-formed request that is too large only because of its padding.
const head = '{"query":"{ __typename }","padding":"';
const tail = '"}';
const body = head + 'x'.repeat(Math.max(0, size - head.length - tail.length)) + tail;
const bytes = new TextEncoder().encode(body);

/** The same bytes as a stream of 64 KiB chunks: sent with Transfer-Encoding: chunked. */
function chunkedBody() {
  let offset = 0;
  return new ReadableStream({
    pull(controller) {
      if (offset >= bytes.length) return controller.close();
      controller.enqueue(bytes.subarray(offset, offset + 65536));
      offset += 65536;
    },
  });
}

/** Sends `count` oversized bodies, one at a time, and tallies what came back. */
async function send(count, makeBody, extra = {}) {
  const tally = { sent: count, status413: 0, other: {}, resets: {} };
  for (let i = 0; i < count; i++) {
    try {
      const response = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: makeBody(),
        ...extra,
      });
      const text = await response.text();
      let code;
      try {
        code = JSON.parse(text).errors?.[0]?.extensions?.code;
      } catch {
        code = undefined;
      }
      const key = response.status === 413 && code === 'BAD_USER_INPUT' ? null : `${response.status} ${code ?? text.slice(0, 60)}`;
      if (key === null) tally.status413++;
      else tally.other[key] = (tally.other[key] ?? 0) + 1;
    } catch (err) {
      const key = err.cause?.code ?? err.cause?.message ?? err.message;
      tally.resets[key] = (tally.resets[key] ?? 0) + 1;
    }
  }
  return tally;
}

const plain = await send(100, () => body);
const chunked = await send(20, chunkedBody, { duplex: 'half' });

for (const [name, tally] of [['with Content-Length', plain], ['chunked', chunked]]) {
  expect(
    tally.status413 === tally.sent,
    `${name}: ${tally.status413} of ${tally.sent} bodies of ${bytes.length} bytes got 413 BAD_USER_INPUT; ` +
      `other answers ${JSON.stringify(tally.other)}, client errors ${JSON.stringify(tally.resets)}`,
  );
}

finish({ bytes: bytes.length, ...plain, chunked });
