// Introspection as real tools send it. GraphiQL, Apollo, codegen and IDE plugins build their
// introspection query with graphql-js's getIntrospectionQuery(options), and the options they
// pass vary by tool and version. This sends the query of graphql 16 and of graphql 17 for every
// combination of the boolean options (2^6 each, typeDepth at its default of 9) and requires a
// clean answer to each: the limits must not refuse what every client sends. The default
// query's answer of each version must rebuild into exactly the schema of schema.graphql, and
// GET <url>/schema.graphql must serve that file byte for byte.
//
//   GRAPHQL_URL   the endpoint, e.g. http://127.0.0.1:8080/graphql
//   SCHEMA_FILE   absolute path of the repository's schema.graphql
//
// Prints {"combinations":128,"queryBytes":{"16":N,"17":M},"maxQueryBytes":K}.

import { readFileSync } from 'node:fs';
import * as graphql16 from 'graphql';
import * as graphql17 from 'graphql17';
import { env, expect, fail, finish } from './lib.mjs';

const url = env('GRAPHQL_URL');
const schemaFile = env('SCHEMA_FILE');
const sdl = readFileSync(schemaFile);

const OPTIONS = [
  'descriptions',
  'specifiedByUrl',
  'directiveIsRepeatable',
  'schemaDescription',
  'inputValueDeprecation',
  'oneOf',
];
// graphql 17 also has experimentalDirectiveDeprecation; it stays off: it is not in the GraphQL
// spec, and the server does not implement it.

/** Every assignment of true/false to OPTIONS: 64 objects. */
function combinations() {
  return Array.from({ length: 2 ** OPTIONS.length }, (_, bits) =>
    Object.fromEntries(OPTIONS.map((name, i) => [name, Boolean(bits & (1 << i))])),
  );
}

async function introspect(query) {
  const response = await fetch(url, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/graphql-response+json, application/json',
    },
    body: JSON.stringify({ query }),
  });
  const text = await response.text();
  let body = null;
  try {
    body = JSON.parse(text);
  } catch {
    // reported below
  }
  return { status: response.status, text, body };
}

/** A unified-style line diff (longest common subsequence) with two lines of context. */
function diffLines(expected, actual) {
  const a = expected.split('\n');
  const b = actual.split('\n');
  const lcs = Array.from({ length: a.length + 1 }, () => new Uint16Array(b.length + 1));
  for (let i = a.length - 1; i >= 0; i--) {
    for (let j = b.length - 1; j >= 0; j--) {
      lcs[i][j] = a[i] === b[j] ? lcs[i + 1][j + 1] + 1 : Math.max(lcs[i + 1][j], lcs[i][j + 1]);
    }
  }
  const lines = [];
  for (let i = 0, j = 0; i < a.length || j < b.length; ) {
    if (i < a.length && j < b.length && a[i] === b[j]) {
      lines.push(`  ${a[i]}`);
      i++;
      j++;
    } else if (i < a.length && (j === b.length || lcs[i + 1][j] >= lcs[i][j + 1])) {
      lines.push(`- ${a[i++]}`);
    } else {
      lines.push(`+ ${b[j++]}`);
    }
  }
  const near = (k) => lines.slice(Math.max(0, k - 2), k + 3).some((line) => line[0] !== ' ');
  const out = [];
  lines.forEach((line, k) => {
    if (near(k)) out.push(line);
    else if (out.at(-1) !== '…') out.push('…');
  });
  return out;
}

const queryBytes = {};
let maxQueryBytes = 0;
let sent = 0;

for (const [version, lib] of [['16', graphql16], ['17', graphql17]]) {
  const refused = [];
  for (const options of combinations()) {
    const query = lib.getIntrospectionQuery(options);
    const bytes = Buffer.byteLength(query);
    maxQueryBytes = Math.max(maxQueryBytes, bytes);
    sent++;
    const { status, text, body } = await introspect(query);
    if (status !== 200 || !body || body.errors || !body.data?.__schema) {
      refused.push(`${JSON.stringify(options)} (${bytes} bytes): HTTP ${status}, ${text.slice(0, 300)}`);
    }
  }
  if (refused.length > 0) {
    fail(
      `graphql ${version}: ${refused.length} of 64 introspection queries were not answered ` +
        `with HTTP 200, data.__schema and no errors; for example:\n  ${refused.slice(0, 3).join('\n  ')}`,
    );
  }

  // The default query: what most tools send. Its answer must be the whole schema.
  const query = lib.getIntrospectionQuery();
  queryBytes[version] = Buffer.byteLength(query);
  const { body } = await introspect(query);
  if (!body?.data?.__schema) {
    fail(`graphql ${version}: the default introspection query got no schema; cannot compare`);
    continue;
  }
  let served;
  let expected;
  try {
    served = lib.printSchema(lib.lexicographicSortSchema(lib.buildClientSchema(body.data)));
    expected = lib.printSchema(lib.lexicographicSortSchema(lib.buildSchema(sdl.toString('utf8'))));
  } catch (err) {
    fail(`graphql ${version}: could not build a schema: ${err.message}`);
    continue;
  }
  if (served !== expected) {
    const diff = diffLines(expected, served);
    fail(
      `graphql ${version}: the introspected schema differs from ${schemaFile} ` +
        `(- only in the file, + only in the introspection):\n${diff.slice(0, 80).join('\n')}` +
        (diff.length > 80 ? `\n… and ${diff.length - 80} more lines` : ''),
    );
  }
}

// The SDL, as a download: tools that take a schema file (codegen, IDE plugins) fetch it.
const schemaUrl = `${url.replace(/\/$/, '')}/schema.graphql`;
const response = await fetch(schemaUrl);
const served = Buffer.from(await response.arrayBuffer());
if (expect(response.status === 200, `GET ${schemaUrl}: HTTP ${response.status}, expected 200`)) {
  expect(
    served.equals(sdl),
    `GET ${schemaUrl}: ${served.length} bytes that differ from the ${sdl.length} bytes of ${schemaFile}`,
  );
}

finish({ combinations: sent, queryBytes, maxQueryBytes });
