// Meta's Relay compiler over the small Relay project in relay/: a @refetchable fragment on
// Post, comments and posts paged both ways with @connection (usePaginationFragment's loadNext
// and loadPrevious), node(id:) and nodes(ids:), totalCount and a subscription. The compiler
// checks every document against the schema and refuses refetchable fragments without
// `interface Node { id: ID! }` and Query.node(id: ID!): Node, so a clean compile is what a
// Relay app needs of the schema. Then the artifacts must say what the runtime relies on: the
// refetch queries go through node(id: $id), and both connections page forward (first/after)
// and backward (last/before).
//
// The project is copied into a temporary directory with a config naming the schema given
// here; the compiler writes its artifacts there, never into the repository.
//
//   node relay.mjs [SCHEMA]   the schema file, e.g. ../../schema.graphql
//   SCHEMA_FILE               the schema file, when no argument is given
//
// Prints the compiler's output on stderr, then
// {"compiler":"Relay Compiler 21.0.1","artifacts":12,"refetchQueries":[…],"bidirectional":[…]}.

import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { die, env, expect, fail, finish } from './lib.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const projectDir = join(here, 'relay');
const schemaFile = resolve(process.argv[2] ?? env('SCHEMA_FILE'));
if (!existsSync(schemaFile)) die(`there is no schema file at ${schemaFile}`);

// The refetch queries the fragments ask for, and the fragments whose connection pages both ways.
const REFETCH_QUERIES = ['PostRefetchQuery', 'PostCommentsPaginationQuery', 'UserPostsPaginationQuery'];
const BIDIRECTIONAL = ['PostComments_post', 'UserPosts_user'];

// The package's own lookup of the binary for this platform (null where there is none).
const binary = createRequire(import.meta.url)('relay-compiler');
if (!binary || !existsSync(binary)) {
  die(`relay-compiler has no binary for ${process.platform} ${process.arch} (${binary})`);
}

function run(args, cwd) {
  const result = spawnSync(binary, args, {
    cwd,
    encoding: 'utf8',
    env: { ...process.env, NO_COLOR: '1' },
    timeout: 120_000,
  });
  if (result.error) die(`${binary} did not run: ${result.error.message}`);
  return result;
}

const version = run(['--version'], here).stdout.trim();

// The project as committed, with the schema and the artifact directory of this run.
const base = JSON.parse(readFileSync(join(projectDir, 'relay.config.json'), 'utf8'));
const workDir = mkdtempSync(join(tmpdir(), 'relay-'));
const artifactDir = join(workDir, '__generated__');
cpSync(join(projectDir, base.src), join(workDir, base.src), { recursive: true });
mkdirSync(artifactDir);
const config = { ...base, schema: schemaFile, artifactDirectory: './__generated__', noSourceControl: true };
writeFileSync(join(workDir, 'relay.config.json'), `${JSON.stringify(config, null, 2)}\n`);

const compiled = run(['--noWatchman', '--output', 'verbose', 'relay.config.json'], workDir);
// The compiler names the files of the copy (relative to a directory of its choosing); name
// the committed ones instead.
const output = `${compiled.stdout}${compiled.stderr}`.replace(
  new RegExp(`[^\\s]*${basename(workDir)}/`, 'g'),
  'tests/clients/relay/',
);
console.error(`$ ${version} over ${schemaFile}\n${output.trimEnd()}`);

if (compiled.status !== 0) {
  rmSync(workDir, { recursive: true, force: true });
  die(
    `relay-compiler ${compiled.signal ? `was killed by ${compiled.signal}` : `exited with ${compiled.status}`}` +
      ` compiling tests/clients/relay/ against ${schemaFile}`,
  );
}

const artifacts = readdirSync(artifactDir).filter((name) => name.endsWith('.graphql.ts'));
const artifact = (name) => {
  const file = join(artifactDir, `${name}.graphql.ts`);
  if (existsSync(file)) return readFileSync(file, 'utf8');
  fail(`the compiler wrote no artifact for ${name}`);
  return null;
};

for (const name of REFETCH_QUERIES) {
  const source = artifact(name);
  if (source === null) continue;
  const literal = source.match(/"text": ("(?:[^"\\]|\\.)*")/);
  const text = literal ? JSON.parse(literal[1]) : '';
  expect(text.includes('node(id: $id)'), `${name} does not fetch through node(id: $id):\n${text}`);
}

for (const name of BIDIRECTIONAL) {
  const source = artifact(name);
  if (source === null) continue;
  expect(
    source.includes('"direction": "bidirectional"'),
    `${name}: the connection does not page both ways (no "direction": "bidirectional")`,
  );
  expect(
    /"forward": \{\s*"count": "first",\s*"cursor": "after"\s*\}/.test(source),
    `${name}: no forward first/after for loadNext`,
  );
  expect(
    /"backward": \{\s*"count": "last",\s*"cursor": "before"\s*\}/.test(source),
    `${name}: no backward last/before for loadPrevious`,
  );
}

rmSync(workDir, { recursive: true, force: true });
finish({ compiler: version, artifacts: artifacts.length, refetchQueries: REFETCH_QUERIES, bidirectional: BIDIRECTIONAL });
