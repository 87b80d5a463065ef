#!/usr/bin/env python3
"""Load benchmark of the GraphQL server over WebSocket, with the standard library only.

It measures a server that is already running (it starts none) and prints a small table
of figures. Subcommands:

flood
    One WebSocket connection sends --count (2000) costly queries at once, each with its
    own id, without waiting for the answers. Meanwhile a separate HTTP client sends the
    PostDetails query every 100 ms and times it. Reports the server's RSS (before, peak
    during the flood, sampled every 100 ms, and --settle seconds after), the CPU time it
    used, how many flood operations got data or errors (by `extensions.code`), how long
    until all were answered, and PostDetails latency and failures during the flood. The
    flood is bounded by --timeout; the WebSocket is then closed.

fanout
    Opens --connections WebSockets with --subscriptions `commentAdded` subscriptions each
    on post-0001, waits 2 s, adds one comment over HTTP (as the user of --token), and
    waits until every subscription has received it (at most 10 s). Reports deliveries and
    their latency, counted from just before the mutation was sent. With --proxy-port, it
    also reports the DynamoDB requests the server made for that one event, by
    X-Amz-Target: from just before the comment is written until 3 s after the last
    delivery, without DynamoDBStreams_* requests (the server polls the streams all the
    time) and without the mutation's own TransactWriteItems. For that, the server must
    talk to DynamoDB through the counting proxy below: start the proxy first, then the
    server with AWS_ENDPOINT_URL_DYNAMODB=http://127.0.0.1:<proxy port>.

proxy
    The counting proxy: forwards HTTP to --dynamodb and counts the requests by their
    X-Amz-Target header (GET /__bench/counts answers the counts so far, as JSON). Runs
    until interrupted.

Against the server of scripts/dev.sh (port 8080, JWT_SECRET dev-secret-change-me, release
build, tables prefixed blog-local):

    scripts/dev.sh &                           # wait for its banner
    PID=$(pgrep -f 'blog-graphql serve')
    python3 scripts/bench_ws.py --url http://127.0.0.1:8080 --pid "$PID" flood

dev.sh points its server straight at DynamoDB Local, so for fanout's request counts run a
second server, behind the proxy, on the same DynamoDB Local and tables:

    python3 scripts/bench_ws.py proxy --proxy-port 8001 --dynamodb http://127.0.0.1:8000 &
    AWS_ENDPOINT_URL_DYNAMODB=http://127.0.0.1:8001 JWT_SECRET=dev-secret-change-me \\
        PORT=8081 target/release/blog-graphql serve &
    PID=$!
    TOKEN=$(JWT_SECRET=dev-secret-change-me target/release/blog-graphql token --user user-1)
    python3 scripts/bench_ws.py --url http://127.0.0.1:8081 --pid "$PID" \\
        fanout --token "$TOKEN" --proxy-port 8001

Each fanout run adds a comment "bench" to post-0001.
"""

import argparse
import asyncio
import base64
import collections
import hashlib
import json
import math
import os
import signal
import struct
import sys
import time
import urllib.parse

# A costly query: every user, each with posts and comments. Its cost is under the default
# MAX_QUERY_COST of 10 000 (with `posts(first: 20)` it would be 14 201, and refused).
FLOOD_QUERY = (
    "{ users(first: 50) { nodes { id username posts(first: 10) { nodes { id title "
    "comments(first: 5) { nodes { id createdAt } } } } } } }"
)

# The canonical PostDetails query, timed while the flood runs.
POST_DETAILS = (
    "query PostDetails($id: ID!) { post(id: $id) { id title content createdAt commentCount "
    "author { id username } comments(first: 20) { nodes { id content createdAt "
    "author { id username } } pageInfo { hasNextPage endCursor } } } }"
)
POST_DETAILS_VARIABLES = {"id": "post-0001"}

COMMENT_ADDED = (
    "subscription CommentAdded($postId: ID!) { commentAdded(postId: $postId) "
    "{ id content author { username } } }"
)
ADD_COMMENT = 'mutation { addComment(input: {postId: "post-0001", content: "bench"}) { id } }'
EVENT_POST = "post-0001"

# Where the counting proxy answers its counts (the SDK never asks for this path).
COUNTS_PATH = "/__bench/counts"


# ---------------------------------------------------------------------------------------
# The server process, from /proc
# ---------------------------------------------------------------------------------------


class ServerProcess:
    """Resident memory and CPU time of the server, read from /proc/<pid>."""

    def __init__(self, pid):
        self.pid = pid
        self.ticks = os.sysconf("SC_CLK_TCK")

    def _stat_fields(self):
        """Fields of /proc/<pid>/stat from the third (state) on, or None."""
        if self.pid is None:
            return None
        try:
            with open(f"/proc/{self.pid}/stat") as f:
                stat = f.read()
        except OSError:
            return None
        # The command name (field 2) is in parentheses and may hold spaces.
        return stat[stat.rindex(")") + 2 :].split()

    def alive(self):
        fields = self._stat_fields()
        return fields is not None and fields[0] not in ("Z", "X")

    def rss_mib(self):
        """VmRSS in MiB, or None when unknown (no pid, or the process is gone)."""
        if self.pid is None:
            return None
        try:
            with open(f"/proc/{self.pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1]) / 1024
        except OSError:
            pass
        return None

    def cpu_seconds(self):
        """User plus system CPU time in seconds, or None."""
        fields = self._stat_fields()
        if fields is None:
            return None
        # utime and stime are fields 14 and 15 of the file, 12 and 13 from the state on.
        return (int(fields[11]) + int(fields[12])) / self.ticks


# ---------------------------------------------------------------------------------------
# HTTP client
# ---------------------------------------------------------------------------------------


def split_url(url):
    parts = urllib.parse.urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 80


def dechunk(data):
    """The body of a chunked transfer encoding."""
    out = bytearray()
    pos = 0
    while True:
        end = data.index(b"\r\n", pos)
        size = int(data[pos:end].split(b";")[0], 16)
        if size == 0:
            return bytes(out)
        start = end + 2
        out += data[start : start + size]
        pos = start + size + 2


async def http_request(url, method, path, body=b"", headers=None, timeout=10.0):
    """One HTTP/1.1 request on a fresh connection; returns (status, body bytes).

    Raises asyncio.TimeoutError past `timeout`, OSError when the connection fails.
    """
    host, port = split_url(url)

    async def exchange():
        reader, writer = await asyncio.open_connection(host, port)
        try:
            lines = [
                f"{method} {path} HTTP/1.1",
                f"Host: {host}:{port}",
                "Connection: close",
                f"Content-Length: {len(body)}",
            ]
            lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
            await writer.drain()
            raw = await reader.read()  # until EOF: the server closes after answering
        finally:
            writer.close()
        head, _, rest = raw.partition(b"\r\n\r\n")
        head_lines = head.decode("latin-1").split("\r\n")
        status = int(head_lines[0].split()[1])
        fields = {}
        for line in head_lines[1:]:
            name, _, value = line.partition(":")
            fields[name.strip().lower()] = value.strip()
        if "chunked" in fields.get("transfer-encoding", "").lower():
            rest = dechunk(rest)
        elif "content-length" in fields:
            rest = rest[: int(fields["content-length"])]
        return status, rest

    return await asyncio.wait_for(exchange(), timeout)


async def graphql_http(url, query, variables=None, token=None, timeout=10.0):
    """POSTs a GraphQL request to <url>/graphql; returns (status, decoded JSON or None)."""
    payload = {"query": query}
    if variables is not None:
        payload["variables"] = variables
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    status, body = await http_request(
        url, "POST", "/graphql", json.dumps(payload).encode(), headers, timeout
    )
    try:
        return status, json.loads(body)
    except ValueError:
        return status, None


def error_code(errors):
    """The `extensions.code` of the first of GraphQL `errors`, or a stand-in for none."""
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        first = errors[0]
        code = (first.get("extensions") or {}).get("code")
        if code:
            return str(code)
        return "no code: " + str(first.get("message", ""))[:60]
    return "no errors listed"


# ---------------------------------------------------------------------------------------
# WebSocket client (RFC 6455)
# ---------------------------------------------------------------------------------------

OP_CONTINUATION, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def mask(payload, key):
    """XORs `payload` with the 4-byte `key` repeated (masking and unmasking alike)."""
    n = len(payload)
    if n == 0:
        return b""
    repeated = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "little") ^ int.from_bytes(repeated, "little")).to_bytes(
        n, "little"
    )


class WebSocket:
    """A minimal client: masked frames out; text messages in, pings answered, close
    frames answered. One task reads (`recv`); any task may send."""

    def __init__(self, reader, writer):
        self.reader = reader
        self.writer = writer
        self.write_lock = asyncio.Lock()
        self.close_code = None  # set once the connection is closed, by either side
        self.close_reason = ""
        self.close_sent = False
        self.closed = asyncio.Event()

    @classmethod
    async def connect(cls, url, subprotocol, timeout=10.0):
        parts = urllib.parse.urlsplit(url)
        host, port = parts.hostname, parts.port or 80
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, limit=1 << 20), timeout
        )
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            f"GET {parts.path or '/'} HTTP/1.1\r\n"
            f"Host: {host}:{port}\r\n"
            "Upgrade: websocket\r\n"
            "Connection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n"
            f"Sec-WebSocket-Protocol: {subprotocol}\r\n\r\n"
        )
        writer.write(request.encode())
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
        lines = head.decode("latin-1").split("\r\n")
        if lines[0].split()[1:2] != ["101"]:
            writer.close()
            raise ConnectionError(f"WebSocket handshake refused: {lines[0]}")
        fields = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            fields[name.strip().lower()] = value.strip()
        accept = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
        if fields.get("sec-websocket-accept") != accept:
            writer.close()
            raise ConnectionError("WebSocket handshake: wrong Sec-WebSocket-Accept")
        if fields.get("sec-websocket-protocol") != subprotocol:
            writer.close()
            raise ConnectionError(f"WebSocket handshake: subprotocol {subprotocol} refused")
        return cls(reader, writer)

    @staticmethod
    def frame(opcode, payload):
        """One final client frame, masked as clients must."""
        key = os.urandom(4)
        n = len(payload)
        if n < 126:
            header = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
        elif n < 1 << 16:
            header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
        else:
            header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
        return header + key + mask(payload, key)

    async def send_frames(self, frames):
        """Writes frames back to back, then waits until the socket has taken them."""
        async with self.write_lock:
            for frame in frames:
                self.writer.write(frame)
            await self.writer.drain()

    async def send_json(self, value):
        await self.send_frames([self.frame(OP_TEXT, json.dumps(value).encode())])

    def _closed(self, code, reason=""):
        if self.close_code is None:
            self.close_code, self.close_reason = code, reason
        self.closed.set()
        self.writer.close()

    async def recv(self):
        """The next text (or binary) message, or None once the connection is closed."""
        read = self.reader.readexactly
        fragments = []
        while True:
            try:
                first, second = await read(2)
                length = second & 0x7F
                if length == 126:
                    (length,) = struct.unpack("!H", await read(2))
                elif length == 127:
                    (length,) = struct.unpack("!Q", await read(8))
                key = await read(4) if second & 0x80 else None
                payload = await read(length)
            except (asyncio.IncompleteReadError, ConnectionError):
                self._closed(1006, "connection lost without a close frame")
                return None
            if key:
                payload = mask(payload, key)
            opcode = first & 0x0F
            if opcode == OP_PING:
                try:
                    await self.send_frames([self.frame(OP_PONG, payload)])
                except ConnectionError:
                    pass
            elif opcode == OP_PONG:
                continue
            elif opcode == OP_CLOSE:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                if not self.close_sent:
                    # Answer the server's close, echoing its code.
                    self.close_sent = True
                    try:
                        await self.send_frames([self.frame(OP_CLOSE, payload[:2])])
                    except ConnectionError:
                        pass
                self._closed(code, payload[2:].decode(errors="replace"))
                return None
            else:
                fragments.append(payload)
                if first & 0x80:  # FIN: the message is complete
                    return b"".join(fragments).decode()

    async def close(self, code=1000, wait=2.0):
        """Sends a close frame and waits (up to `wait` s) for the reader to see the
        server's; a reader task must be running for that."""
        if not self.close_sent and not self.closed.is_set():
            self.close_sent = True
            try:
                await self.send_frames([self.frame(OP_CLOSE, struct.pack("!H", code))])
                await asyncio.wait_for(self.closed.wait(), wait)
            except (ConnectionError, asyncio.TimeoutError):
                pass
        self.writer.close()


def ws_url(url):
    host, port = split_url(url)
    return f"ws://{host}:{port}/graphql"


async def graphql_ws(url, init_payload, timeout=10.0):
    """A graphql-transport-ws connection to <url>/graphql, once acknowledged."""
    ws = await WebSocket.connect(ws_url(url), "graphql-transport-ws", timeout)
    await ws.send_json({"type": "connection_init", "payload": init_payload})
    while True:
        text = await asyncio.wait_for(ws.recv(), timeout)
        if text is None:
            reason = f"{ws.close_code} {ws.close_reason}".strip()
            raise ConnectionError(f"closed before connection_ack: {reason}")
        if json.loads(text).get("type") == "connection_ack":
            return ws


def subscribe_frame(ws, op_id, query, variables=None):
    payload = {"query": query}
    if variables is not None:
        payload["variables"] = variables
    message = {"id": op_id, "type": "subscribe", "payload": payload}
    return ws.frame(OP_TEXT, json.dumps(message).encode())


# ---------------------------------------------------------------------------------------
# Reporting
# ---------------------------------------------------------------------------------------


def percentile(values, p):
    """Nearest-rank percentile of `values`, or None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def ms(seconds):
    return "n/a" if seconds is None else f"{seconds * 1000:.1f} ms"


def mib(value):
    return "n/a" if value is None else f"{value:.1f} MiB"


def secs(value):
    return "n/a" if value is None else f"{value:.2f} s"


def diff(a, b):
    return None if a is None or b is None else b - a


def print_table(title, rows):
    width = max(len(label) for label, _ in rows)
    print(title)
    print("=" * len(title))
    for label, value in rows:
        print(f"  {label:<{width}}  {value}")
    print()


# ---------------------------------------------------------------------------------------
# flood
# ---------------------------------------------------------------------------------------


async def probe(url, timeout):
    """One PostDetails request: (latency in s, None) or (None, why it failed)."""
    start = time.monotonic()
    try:
        status, body = await graphql_http(
            url, POST_DETAILS, POST_DETAILS_VARIABLES, timeout=timeout
        )
    except asyncio.TimeoutError:
        return None, f"no answer within {timeout:g} s"
    except (OSError, ValueError, IndexError) as err:
        return None, f"connection: {type(err).__name__}"
    latency = time.monotonic() - start
    if not isinstance(body, dict):
        return None, f"HTTP {status}, no JSON"
    if status != 200 or body.get("errors") or not (body.get("data") or {}).get("post"):
        return None, f"HTTP {status}, {error_code(body.get('errors'))}"
    return latency, None


async def wait_or_stop(stop, seconds):
    """Sleeps `seconds`, or less if `stop` is set meanwhile."""
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except asyncio.TimeoutError:
        pass


async def run_flood(args):
    url = args.url.rstrip("/")
    server = ServerProcess(args.pid)
    count = args.count

    # The query alone must return data, or the flood would measure refusals only.
    try:
        status, body = await graphql_http(url, args.query, timeout=args.probe_timeout)
        alone = (
            "data"
            if isinstance(body, dict) and body.get("data") and not body.get("errors")
            else f"HTTP {status}, {error_code((body or {}).get('errors'))}"
        )
    except (asyncio.TimeoutError, OSError) as err:
        alone = f"failed: {type(err).__name__}"

    # PostDetails on an idle server, to compare with the figures under the flood.
    idle = []
    for _ in range(10):
        latency, _why = await probe(url, args.probe_timeout)
        if latency is not None:
            idle.append(latency)

    rss_before, cpu_before = server.rss_mib(), server.cpu_seconds()
    ws = await graphql_ws(url, {})
    frames = [subscribe_frame(ws, f"q{i}", args.query) for i in range(1, count + 1)]

    outcome = {}  # operation id -> "data", or the code of its first error
    last_answer = None  # when the last first answer came
    stop = asyncio.Event()
    peak = rss_before
    probes = []

    async def read_answers():
        # An operation's answer is its first `next` or `error`; its `complete` follows.
        nonlocal last_answer
        while len(outcome) < count:
            text = await ws.recv()
            if text is None:
                return
            message = json.loads(text)
            op_id, kind = message.get("id"), message.get("type")
            if op_id is None or op_id in outcome:
                continue
            if kind == "next":
                payload = message.get("payload") or {}
                if payload.get("data") is not None:
                    errors = payload.get("errors")
                    outcome[op_id] = f"data, with {error_code(errors)}" if errors else "data"
                else:
                    outcome[op_id] = error_code(payload.get("errors"))
            elif kind == "error":
                outcome[op_id] = error_code(message.get("payload"))
            else:
                continue
            last_answer = time.monotonic()

    async def sample_memory():
        nonlocal peak
        while not stop.is_set():
            rss = server.rss_mib()
            if rss is not None:
                peak = rss if peak is None else max(peak, rss)
            await wait_or_stop(stop, 0.1)

    async def send_probes():
        # A new probe every 100 ms, whether or not the previous one has been answered.
        while not stop.is_set():
            probes.append(asyncio.create_task(probe(url, args.probe_timeout)))
            await wait_or_stop(stop, 0.1)

    start = time.monotonic()
    reader = asyncio.create_task(read_answers())
    samplers = [asyncio.create_task(sample_memory()), asyncio.create_task(send_probes())]
    sender = asyncio.create_task(ws.send_frames(frames))
    await asyncio.wait({reader}, timeout=args.timeout)
    end = time.monotonic()
    sent_all = sender.done() and not sender.cancelled() and sender.exception() is None
    if not sender.done():
        sender.cancel()
    stop.set()
    await asyncio.gather(*samplers)
    cpu_end = server.cpu_seconds()
    alive_at_end = server.alive()
    closed_by_server = (ws.close_code, ws.close_reason) if ws.closed.is_set() else None

    probe_results = await asyncio.gather(*probes)
    await ws.close()
    reader.cancel()
    await asyncio.gather(reader, return_exceptions=True)

    await asyncio.sleep(args.settle)
    rss_after, cpu_after = server.rss_mib(), server.cpu_seconds()

    latencies = [latency for latency, _ in probe_results if latency is not None]
    failures = collections.Counter(why for latency, why in probe_results if latency is None)
    outcomes = collections.Counter(outcome.values())
    unanswered = count - len(outcome)

    rows = [
        ("flood query alone (HTTP)", alone),
        ("operations sent", f"{count} on one WebSocket" + ("" if sent_all else ", not all sent")),
        ("RSS before", mib(rss_before)),
        ("RSS peak during flood", mib(peak)),
        (f"RSS {args.settle:g} s after", mib(rss_after)),
        ("CPU during flood", secs(diff(cpu_before, cpu_end))),
        (f"CPU incl. {args.settle:g} s after", secs(diff(cpu_before, cpu_after))),
        ("answered with data", str(outcomes.pop("data", 0))),
    ]
    for label, n in sorted(outcomes.items(), key=lambda item: -item[1]):
        rows.append((f"answered: {label}", str(n)))
    rows.append(("unanswered", str(unanswered)))
    if unanswered == 0:
        rows.append(("all answered after", secs(last_answer - start)))
    else:
        rows.append(("all answered after", f"not within the {args.timeout:g} s bound"))
        if last_answer is not None:
            rows.append(("last answer after", secs(last_answer - start)))
    rows.append(("flood window", secs(end - start)))
    if closed_by_server and closed_by_server[0] is not None:
        code, reason = closed_by_server
        rows.append(("WebSocket closed early", f"{code} {reason}".strip()))
    rows += [
        ("PostDetails idle p50", ms(percentile(idle, 50))),
        ("PostDetails sent during flood", str(len(probe_results))),
        ("PostDetails p50", ms(percentile(latencies, 50))),
        ("PostDetails p95", ms(percentile(latencies, 95))),
        ("PostDetails max", ms(max(latencies, default=None))),
        ("PostDetails failures", str(sum(failures.values()))),
    ]
    for why, n in failures.most_common():
        rows.append((f"  failed: {why}", str(n)))
    if not alive_at_end or not server.alive():
        rows.append(("server", "DIED during the run" if args.pid else "no --pid given"))
    print_table(f"flood: {count} queries on one WebSocket, {url}", rows)


# ---------------------------------------------------------------------------------------
# fanout
# ---------------------------------------------------------------------------------------


async def proxy_counts(port):
    """The counting proxy's counts so far, by X-Amz-Target."""
    status, body = await http_request(f"http://127.0.0.1:{port}", "GET", COUNTS_PATH)
    if status != 200:
        raise ConnectionError(f"counting proxy answered HTTP {status}")
    return collections.Counter(json.loads(body))


async def run_fanout(args):
    url = args.url.rstrip("/")
    server = ServerProcess(args.pid)
    total = args.connections * args.subscriptions
    if args.proxy_port:
        await proxy_counts(args.proxy_port)  # fail early if the proxy is not there

    connections = await asyncio.gather(
        *(graphql_ws(url, {}) for _ in range(args.connections))
    )
    delivered = {}  # (connection, subscription id) -> latency in s
    with_errors = 0  # deliveries whose payload held errors
    refused = collections.Counter()  # subscriptions answered with `error`, by code
    completed = 0  # subscriptions the server ended
    event_start = None  # monotonic time just before the mutation was sent
    all_delivered = asyncio.Event()

    async def listen(index, ws):
        nonlocal with_errors, completed
        while (text := await ws.recv()) is not None:
            message = json.loads(text)
            key, kind = (index, message.get("id")), message.get("type")
            if kind == "next" and event_start is not None and key not in delivered:
                delivered[key] = time.monotonic() - event_start
                payload = message.get("payload") or {}
                if payload.get("errors") or not (payload.get("data") or {}).get("commentAdded"):
                    with_errors += 1
            elif kind == "error":
                refused[error_code(message.get("payload"))] += 1
            elif kind == "complete":
                completed += 1
            if len(delivered) >= total - sum(refused.values()):
                all_delivered.set()

    listeners = [asyncio.create_task(listen(i, ws)) for i, ws in enumerate(connections)]
    variables = {"postId": EVENT_POST}
    for ws in connections:
        ids = [f"s{j}" for j in range(1, args.subscriptions + 1)]
        await ws.send_frames([subscribe_frame(ws, i, COMMENT_ADDED, variables) for i in ids])
    await asyncio.sleep(args.wait)

    before = await proxy_counts(args.proxy_port) if args.proxy_port else None
    rss_before, cpu_before = server.rss_mib(), server.cpu_seconds()
    all_delivered.clear()
    event_start = time.monotonic()
    try:
        status, body = await graphql_http(url, ADD_COMMENT, token=args.token)
        comment = ((body or {}).get("data") or {}).get("addComment")
        mutation = (
            f"{comment['id']} in {ms(time.monotonic() - event_start)}"
            if comment
            else f"FAILED: HTTP {status}, {error_code((body or {}).get('errors'))}"
        )
    except (asyncio.TimeoutError, OSError) as err:
        mutation = f"FAILED: {type(err).__name__}"
    after_mutation = await proxy_counts(args.proxy_port) if args.proxy_port else None
    try:
        remaining = event_start + args.delivery_timeout - time.monotonic()
        await asyncio.wait_for(all_delivered.wait(), max(0.0, remaining))
    except asyncio.TimeoutError:
        pass
    await asyncio.sleep(args.tail)
    after = await proxy_counts(args.proxy_port) if args.proxy_port else None
    rss_after, cpu_after = server.rss_mib(), server.cpu_seconds()

    closed_early = [ws for ws in connections if ws.closed.is_set()]
    for ws in connections:
        await ws.close()
    for task in listeners:
        task.cancel()
    await asyncio.gather(*listeners, return_exceptions=True)

    latencies = list(delivered.values())
    rows = [
        ("subscriptions", f"{args.connections} connections x {args.subscriptions} = {total}"),
        ("refused", str(sum(refused.values()))),
    ]
    for code, n in refused.most_common():
        rows.append((f"  refused: {code}", str(n)))
    rows += [
        ("mutation", mutation),
        ("delivered", f"{len(delivered)} of {total}"),
        ("deliveries with errors", str(with_errors)),
        ("delivery p50", ms(percentile(latencies, 50))),
        ("delivery max", ms(max(latencies, default=None))),
    ]
    if completed:
        rows.append(("subscriptions ended by server", str(completed)))
    if closed_early:
        codes = collections.Counter(
            f"{ws.close_code} {ws.close_reason}".strip() for ws in closed_early
        )
        rows.append(("connections closed early", ", ".join(f"{n} x {c}" for c, n in codes.items())))
    rows += [
        ("RSS before / after", f"{mib(rss_before)} / {mib(rss_after)}"),
        ("CPU, mutation to end", secs(diff(cpu_before, cpu_after))),
    ]
    if before is not None:
        # Everything from just before the write to `tail` s after the last delivery,
        # less the streams' polling and the mutation's own write.
        window = after - before
        during_mutation = after_mutation - before
        if window.get("DynamoDB_20120810.TransactWriteItems", 0) > 0:
            window["DynamoDB_20120810.TransactWriteItems"] -= 1
            during_mutation["DynamoDB_20120810.TransactWriteItems"] -= 1
        counted = {
            t: n for t, n in window.items() if n > 0 and not t.startswith("DynamoDBStreams_")
        }
        streams = sum(n for t, n in window.items() if t.startswith("DynamoDBStreams_"))
        rows.append(("DynamoDB requests for the event", str(sum(counted.values()))))
        for target, n in sorted(counted.items()):
            extra = during_mutation.get(target, 0)
            note = f" ({extra} while the mutation ran)" if extra > 0 else ""
            rows.append((f"  {target}", f"{n}{note}"))
        rows.append(("DynamoDBStreams_* (not counted)", str(streams)))
    else:
        rows.append(("DynamoDB requests", "not counted (no --proxy-port)"))
    if args.pid and not server.alive():
        rows.append(("server", "DIED during the run"))
    print_table(f"fanout: one comment to {total} subscriptions, {url}", rows)


# ---------------------------------------------------------------------------------------
# proxy
# ---------------------------------------------------------------------------------------


class CountingProxy:
    """Forwards HTTP/1.1 to DynamoDB and counts the requests by X-Amz-Target.

    Each client connection gets its own upstream connection. Requests are parsed only as
    far as needed to count them and find their end; responses are piped back as they come.
    """

    def __init__(self, upstream):
        self.upstream = split_url(upstream)
        self.counts = collections.Counter()

    async def handle(self, reader, writer):
        upstream = None
        pipe = None
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except asyncio.IncompleteReadError:
                    return
                lines = head.decode("latin-1").split("\r\n")
                path = lines[0].split(" ")[1] if " " in lines[0] else ""
                headers = {}
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
                if path.startswith(COUNTS_PATH):
                    body = json.dumps(self.counts).encode()
                    writer.write(
                        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                        b"Connection: close\r\nContent-Length: %d\r\n\r\n" % len(body) + body
                    )
                    await writer.drain()
                    return
                self.counts[headers.get("x-amz-target", "(no X-Amz-Target)")] += 1
                if upstream is None:
                    up_reader, upstream = await asyncio.open_connection(*self.upstream)
                    pipe = asyncio.create_task(self.pipe(up_reader, writer))
                upstream.write(head)
                if "chunked" in headers.get("transfer-encoding", "").lower():
                    await self.forward_chunked(reader, upstream)
                else:
                    length = int(headers.get("content-length") or 0)
                    if length:
                        upstream.write(await reader.readexactly(length))
                await upstream.drain()
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            pass
        finally:
            if upstream is not None:
                upstream.close()
            if pipe is not None:
                await asyncio.gather(pipe, return_exceptions=True)
            writer.close()

    @staticmethod
    async def forward_chunked(reader, upstream):
        while True:
            line = await reader.readuntil(b"\r\n")
            upstream.write(line)
            if int(line.split(b";")[0], 16) == 0:
                while (trailer := await reader.readuntil(b"\r\n")) != b"\r\n":
                    upstream.write(trailer)
                upstream.write(b"\r\n")
                return
            upstream.write(await reader.readexactly(int(line.split(b";")[0], 16) + 2))

    @staticmethod
    async def pipe(source, sink):
        """Copies upstream's bytes to the client; closes the client when upstream ends."""
        try:
            while data := await source.read(65536):
                sink.write(data)
                await sink.drain()
        except ConnectionError:
            pass
        finally:
            sink.close()


async def run_proxy(args):
    proxy = CountingProxy(args.dynamodb)
    server = await asyncio.start_server(proxy.handle, "127.0.0.1", args.proxy_port, limit=1 << 20)
    print(f"counting proxy on http://127.0.0.1:{args.proxy_port} -> {args.dynamodb}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()
    counts = sorted(proxy.counts.items()) or [("none", "")]
    print_table("requests forwarded, by X-Amz-Target", counts)


# ---------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--url", default="http://127.0.0.1:8080",
        help="the server (default %(default)s)",
    )
    parser.add_argument(
        "--pid", type=int,
        help="the server's pid, for its RSS and CPU time from /proc",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    flood = commands.add_parser("flood", help="many costly queries on one WebSocket at once")
    flood.add_argument("--count", type=int, default=2000, help="queries sent (default %(default)s)")
    flood.add_argument("--query", default=FLOOD_QUERY, help="the query sent COUNT times")
    flood.add_argument(
        "--timeout", type=float, default=60,
        help="bound of the flood, in s (default %(default)s)",
    )
    flood.add_argument(
        "--settle", type=float, default=5,
        help="wait before the last RSS sample, in s (default %(default)s)",
    )
    flood.add_argument(
        "--probe-timeout", type=float, default=10,
        help="PostDetails timeout, in s (default %(default)s)",
    )

    fanout = commands.add_parser(
        "fanout",
        help="one comment delivered to many subscriptions",
        description="One comment delivered to many commentAdded subscriptions. To count the "
        "server's DynamoDB requests, run `bench_ws.py proxy` first and start the server with "
        "AWS_ENDPOINT_URL_DYNAMODB=http://127.0.0.1:<proxy port>, then pass --proxy-port.",
    )
    fanout.add_argument(
        "--token", required=True,
        help="bearer token of user-1, who writes the comment",
    )
    fanout.add_argument(
        "--connections", type=int, default=10,
        help="WebSockets (default %(default)s)",
    )
    fanout.add_argument(
        "--subscriptions", type=int, default=20,
        help="subscriptions per WebSocket (default %(default)s)",
    )
    fanout.add_argument(
        "--proxy-port", type=int,
        help="port of a running `bench_ws.py proxy`, which the server must be using as "
        "AWS_ENDPOINT_URL_DYNAMODB; without it, DynamoDB requests are not counted",
    )
    fanout.add_argument(
        "--wait", type=float, default=2,
        help="wait before the comment, in s (default %(default)s)",
    )
    fanout.add_argument(
        "--delivery-timeout", type=float, default=10,
        help="bound of the delivery, in s (default %(default)s)",
    )
    fanout.add_argument(
        "--tail", type=float, default=3,
        help="requests still counted after the last delivery, in s (default %(default)s)",
    )

    proxy = commands.add_parser(
        "proxy",
        help="counting HTTP proxy in front of DynamoDB, for fanout",
        description="Forwards to --dynamodb and counts requests by X-Amz-Target. Start the "
        "server with AWS_ENDPOINT_URL_DYNAMODB=http://127.0.0.1:<--proxy-port>.",
    )
    proxy.add_argument(
        "--proxy-port", type=int, default=8001,
        help="port to listen on, 127.0.0.1 (default %(default)s)",
    )
    proxy.add_argument(
        "--dynamodb", default="http://127.0.0.1:8000",
        help="DynamoDB endpoint (default %(default)s)",
    )
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    runner = {"flood": run_flood, "fanout": run_fanout, "proxy": run_proxy}[args.command]
    try:
        asyncio.run(runner(args))
    except (ConnectionError, OSError, asyncio.TimeoutError) as err:
        print(f"bench_ws: {type(err).__name__}: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
