// What every client script shares: settings from the environment, the one-line JSON report
// on stdout, failures on stderr, and the HTTP calls they all make.

/** The value of an environment variable; without one and without a fallback, the script stops. */
export function env(name, fallback) {
  const value = process.env[name];
  if (value !== undefined && value !== '') return value;
  if (fallback !== undefined) return fallback;
  die(`the environment variable ${name} is not set`);
}

/** Stops at once: the message goes to stderr, the exit code is 1. */
export function die(message) {
  console.error(`FAIL: ${message}`);
  process.exit(1);
}

const failures = [];

/** Records a failed expectation (and carries on, so that one run reports every failure). */
export function fail(message) {
  failures.push(message);
  console.error(`FAIL: ${message}`);
}

export function expect(condition, message) {
  if (!condition) fail(message);
  return Boolean(condition);
}

/** Prints the figures as the last line of stdout and exits: 0 when nothing failed, else 1. */
export function finish(figures) {
  console.log(JSON.stringify(figures));
  if (failures.length > 0) {
    console.error(`${failures.length} expectation(s) failed`);
    process.exit(1);
  }
  process.exit(0);
}

/** Rejects with `message` when `promise` takes longer than `ms`. */
export function within(ms, message, promise) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${message} (no answer within ${ms / 1000} s)`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** The WebSocket URL on the same host and path as an http(s) GraphQL URL. */
export function wsUrl(httpUrl) {
  const url = new URL(httpUrl);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  return url.toString();
}

/** POSTs one GraphQL request; resolves to { status, body } (body parsed as JSON). */
export async function post(url, request, token) {
  const headers = { 'content-type': 'application/json', accept: 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  const response = await fetch(url, { method: 'POST', headers, body: JSON.stringify(request) });
  const text = await response.text();
  let body;
  try {
    body = JSON.parse(text);
  } catch {
    throw new Error(`HTTP ${response.status} with a body that is not JSON: ${text.slice(0, 200)}`);
  }
  return { status: response.status, body };
}

/** The canonical AddComment mutation (tests/api/operations.graphql), trimmed to what we read. */
export const ADD_COMMENT = `mutation AddComment($postId: ID!, $content: String!) {
  addComment(input: { postId: $postId, content: $content }) { id content }
}`;

/** Adds a comment as the token's user; resolves to the new comment, or throws with the errors. */
export async function addComment(url, token, postId, content) {
  const { status, body } = await post(url, { query: ADD_COMMENT, variables: { postId, content } }, token);
  if (status !== 200 || body.errors || !body.data?.addComment) {
    throw new Error(`addComment answered HTTP ${status}: ${JSON.stringify(body).slice(0, 500)}`);
  }
  return body.data.addComment;
}
