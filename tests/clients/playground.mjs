// The GraphiQL playground in a real browser (Debian's Chromium, headless, driven by
// playwright-core), with no network but the server's: every request to another origin is
// aborted and fails the run, so the page must work entirely from what the server serves, under
// its own Content-Security-Policy (any violation, and any uncaught page error, fails the run).
//
// Steps, each allowed 30 s: the page renders the IDE; the docs explorer lists Query (the
// page's own introspection went through); the first tab runs as it opens; the settings
// and short keys dialogs open and close; PostDetails runs with an Authorization header and
// variables typed into their editors; a subscription runs over WebSocket and shows a comment
// added over HTTP meanwhile. A screenshot is taken after the subscription's event.
//
//   GRAPHQL_URL     the endpoint, e.g. http://127.0.0.1:8080/graphql (the page is its GET)
//   TOKEN           a valid bearer token of user-1
//   SCREENSHOT      where to save the screenshot (default playground.png)
//   CHROMIUM        the browser (default /usr/bin/chromium)
//   ALLOW_OUTSIDE   1 lets requests to other origins through (recorded, not failed): a
//                   debugging switch for comparing with a page that loads from a CDN
//
// Prints {"requests":N,"blocked":[],"cspViolations":0,"docs":true,"query":true,
//         "subscription":true,"screenshot":"…"}.

import { randomUUID } from 'node:crypto';
import { resolve } from 'node:path';
import { chromium } from 'playwright-core';
import { addComment, env, fail, finish, sleep, within } from './lib.mjs';

const url = env('GRAPHQL_URL');
const token = env('TOKEN');
const screenshot = resolve(env('SCREENSHOT', 'playground.png'));
const allowOutside = process.env.ALLOW_OUTSIDE === '1';
const origin = new URL(url).origin;
const STEP_MS = 30_000;

const POST_DETAILS = `query PostDetails($id: ID!) {
  post(id: $id) {
    id title content createdAt commentCount
    author { id username }
    comments(first: 20) {
      nodes { id content createdAt author { id username } }
      pageInfo { hasNextPage endCursor }
    }
  }
}`;
const COMMENT_ADDED =
  'subscription CommentAdded { commentAdded(postId: "post-0001") { id content author { username } } }';

// GraphiQL 4 editors are CodeMirror 5 instances, reachable from their wrapper element.
const EDITOR = {
  query: '.graphiql-query-editor .CodeMirror',
  variables: '.graphiql-editor-tool > .graphiql-editor:nth-child(1) .CodeMirror',
  headers: '.graphiql-editor-tool > .graphiql-editor:nth-child(2) .CodeMirror',
  response: '.result-window .CodeMirror',
};

const figures = {
  requests: 0,
  blocked: [],
  cspViolations: 0,
  docs: false,
  firstTab: false,
  dialogs: false,
  query: false,
  subscription: false,
  screenshot: null,
};
const outside = [];
const cspViolations = [];
const pageErrors = [];

const args = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
// No name resolves but the server's: nothing can leave the machine.
const hosts = [...new Set(['127.0.0.1', new URL(url).hostname])];
if (!allowOutside) args.push(`--host-resolver-rules=MAP * ~NOTFOUND , ${hosts.map((h) => `EXCLUDE ${h}`).join(' , ')}`);
const browser = await chromium.launch({ executablePath: env('CHROMIUM', '/usr/bin/chromium'), args });
const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });

await context.route('**/*', (route) => {
  const request = route.request();
  figures.requests++;
  if (new URL(request.url()).origin === origin) return route.continue();
  outside.push(request.url());
  if (allowOutside) return route.continue();
  figures.blocked.push(request.url());
  return route.abort('blockedbyclient');
});

const page = await context.newPage();
page.on('pageerror', (error) => pageErrors.push(String(error)));
let subscribeSent;
const subscribed = new Promise((resolve) => (subscribeSent = resolve));
page.on('websocket', (ws) => {
  if (new URL(ws.url().replace(/^ws/, 'http')).origin === origin) {
    ws.on('framesent', ({ payload }) => /"type":\s*"(subscribe|start)"/.test(payload) && subscribeSent());
    return;
  }
  // WebSockets bypass routing; the host resolver rules are what stop them.
  outside.push(ws.url());
  if (!allowOutside) figures.blocked.push(ws.url());
});
page.on('console', (message) => {
  if (/Content.Security.Policy/i.test(message.text())) cspViolations.push(`console: ${message.text()}`);
});
await page.exposeFunction('reportCspViolation', (violation) => cspViolations.push(violation));
await page.addInitScript(() => {
  document.addEventListener(
    'securitypolicyviolation',
    (e) => {
      const where = `${e.sourceFile}:${e.lineNumber}`;
      window.reportCspViolation(`${e.violatedDirective} blocked ${e.blockedURI || 'inline'} (${where})`);
    },
    true,
  );
});

/** Runs one step; on failure, reports which one and why, saves a screenshot and exits 1. */
async function step(name, action) {
  try {
    return await action();
  } catch (err) {
    fail(`step "${name}": ${String(err.message).split('\n')[0]}`);
    if (figures.blocked.length > 0) console.error(`requests blocked:\n  ${figures.blocked.join('\n  ')}`);
    if (cspViolations.length > 0) console.error(`CSP violations:\n  ${cspViolations.join('\n  ')}`);
    if (pageErrors.length > 0) console.error(`page errors:\n  ${pageErrors.join('\n  ')}`);
    if (allowOutside && outside.length > 0) console.error(`other origins (allowed):\n  ${outside.join('\n  ')}`);
    const response = await page.evaluate(readEditor, EDITOR.response).catch(() => null);
    if (response) console.error(`response pane:\n${response.slice(0, 1000)}`);
    await page.screenshot({ path: screenshot }).then(
      () => console.error(`screenshot of the failure: ${screenshot}`),
      () => {},
    );
    await browser.close();
    figures.cspViolations = cspViolations.length;
    finish(figures);
  }
}

function readEditor(selector) {
  const editor = document.querySelector(selector)?.CodeMirror;
  if (!editor) throw new Error(`no CodeMirror editor at ${selector}`);
  return editor.getValue();
}

const setEditor = (selector, value) =>
  page.evaluate(
    ([selector, value]) => {
      const editor = document.querySelector(selector)?.CodeMirror;
      if (!editor) throw new Error(`no CodeMirror editor at ${selector}`);
      editor.setValue(value);
    },
    [selector, value],
  );

/**
 * Types `query` into the query editor and waits until GraphiQL has parsed it (it does so
 * after a debounce, and runs whichever operation it last parsed: a click too soon would send
 * the previous one, over the previous transport).
 */
async function setQuery(query, operationName) {
  await setEditor(EDITOR.query, query);
  await page.waitForFunction(
    ([selector, name]) => document.querySelector(selector)?.CodeMirror?.operationName === name,
    [EDITOR.query, operationName],
    { timeout: STEP_MS },
  );
}

/** Waits until the response pane holds every one of `texts`; fails at once on an error. */
async function responseShows(texts) {
  const handle = await page.waitForFunction(
    ([selector, texts]) => {
      const value = document.querySelector(selector)?.CodeMirror?.getValue() ?? '';
      return (texts.every((text) => value.includes(text)) || value.includes('"errors"')) && value;
    },
    [EDITOR.response, texts],
    { timeout: STEP_MS },
  );
  const value = await handle.jsonValue();
  if (!texts.every((text) => value.includes(text))) {
    throw new Error(`the response pane shows ${value.replace(/\s+/g, ' ')}`);
  }
}

await step('page loaded', async () => {
  const response = await page.goto(url, { waitUntil: 'load', timeout: STEP_MS });
  if (response?.status() !== 200) throw new Error(`GET ${url} answered HTTP ${response?.status()}`);
});

await step('IDE rendered', () => page.locator('.graphiql-container').waitFor({ timeout: STEP_MS }));

await step('docs explorer lists Query', async () => {
  const show = page.locator('.graphiql-sidebar button[aria-label="Show Documentation Explorer"]');
  if (await show.count()) await show.click({ timeout: STEP_MS });
  await page
    .locator('.graphiql-doc-explorer .graphiql-doc-explorer-content')
    .getByText('Query', { exact: true })
    .first()
    .waitFor({ timeout: STEP_MS });
  figures.docs = true;
});

await step('the first tab runs as it opens', async () => {
  // PostDetails with its variables, as a first visit finds it: run without touching it.
  const query = await page.evaluate(readEditor, EDITOR.query);
  if (!query.includes('query PostDetails')) throw new Error(`the first tab holds ${query.slice(0, 200)}`);
  await page.waitForFunction(
    (selector) => document.querySelector(selector)?.CodeMirror?.operationName === 'PostDetails',
    EDITOR.query,
    { timeout: STEP_MS },
  );
  await page.locator('.graphiql-execute-button').click({ timeout: STEP_MS });
  await responseShows(['"post-0001"', '"commentCount"']);
  figures.firstTab = true;
});

await step('dialogs open under the policy', async () => {
  // GraphiQL's dialogs add style elements (allowed by the page's nonce): a violation would
  // be recorded by the listeners above and fail the run.
  for (const label of ['Open settings dialog', 'Open short keys dialog']) {
    await page.locator(`.graphiql-sidebar button[aria-label="${label}"]`).click({ timeout: STEP_MS });
    await page.locator('[role="dialog"]').first().waitFor({ timeout: STEP_MS });
    await page.keyboard.press('Escape');
    await page.locator('[role="dialog"]').first().waitFor({ state: 'detached', timeout: STEP_MS });
  }
  figures.dialogs = true;
});

// The title the query must show, read over HTTP rather than assumed from the demo data.
const title = await step('the post exists', async () => {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ query: '{ post(id: "post-0001") { title } }' }),
  });
  const title = (await response.json()).data?.post?.title;
  if (!title) throw new Error('post-0001 has no title: is the demo data seeded?');
  return title;
});

await step('PostDetails answered', async () => {
  await page.locator('.graphiql-editor-tools button[data-name="headers"]').click({ timeout: STEP_MS });
  await setEditor(EDITOR.headers, JSON.stringify({ Authorization: `Bearer ${token}` }, null, 2));
  await page.locator('.graphiql-editor-tools button[data-name="variables"]').click({ timeout: STEP_MS });
  await setEditor(EDITOR.variables, JSON.stringify({ id: 'post-0001' }, null, 2));
  await setQuery(POST_DETAILS, 'PostDetails');
  const isPostDetails = (r) => r.method() === 'POST' && /PostDetails/.test(r.postData() ?? '');
  const sent = page.waitForRequest(isPostDetails, { timeout: STEP_MS });
  await page.locator('.graphiql-execute-button').click({ timeout: STEP_MS });
  const authorization = (await sent).headers().authorization;
  if (authorization !== `Bearer ${token}`) {
    throw new Error(`the query went without the header typed in (authorization: ${authorization})`);
  }
  await responseShows(['"post-0001"', JSON.stringify(title)]);
  figures.query = true;
});

const content = `from the playground ${randomUUID()}`;
await step('subscription event shown', async () => {
  await setEditor(EDITOR.variables, '{}');
  await setQuery(COMMENT_ADDED, 'CommentAdded');
  await page.locator('.graphiql-execute-button').click({ timeout: STEP_MS });
  await within(STEP_MS, 'the page sent no `subscribe` over its WebSocket', subscribed);
  await sleep(500); // for the server to have read it
  await addComment(url, token, 'post-0001', content);
  await responseShows([content]);
  figures.subscription = true;
});

await step('screenshot', async () => {
  await page.screenshot({ path: screenshot });
  figures.screenshot = screenshot;
});

await browser.close();
figures.cspViolations = cspViolations.length;
if (figures.blocked.length > 0) fail(`requests to other origins:\n  ${figures.blocked.join('\n  ')}`);
if (cspViolations.length > 0) fail(`CSP violations:\n  ${cspViolations.join('\n  ')}`);
if (pageErrors.length > 0) fail(`page errors:\n  ${pageErrors.join('\n  ')}`);
if (allowOutside && outside.length > 0) console.error(`other origins (allowed):\n  ${outside.join('\n  ')}`);
finish(figures);
