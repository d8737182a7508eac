// Test helpers: the real `axme` binary on 127.0.0.1:0 with a fresh database (readiness is its
// "listening on http://..." line, never a sleep), JSON calls to its API, a TCP proxy whose
// connections a test can cut or point at another server, and an EventSource that records what
// it saw and what it sent.

import {mkdtempSync, rmSync} from 'node:fs';
import net from 'node:net';
import {tmpdir} from 'node:os';
import {join} from 'node:path';
import {EventSource} from 'eventsource';
import {spawnServer} from '../axme_server.mjs';

export const KEY = 'axme_node_admin_key_0123456789abcdef';

/** Every event type an intent can have, plus the stream's own control events. */
export const EVENT_TYPES = [
  'intent.created', 'intent.submitted', 'intent.delivered', 'intent.acknowledged',
  'intent.in_progress', 'intent.waiting', 'intent.completed', 'intent.failed', 'intent.canceled',
  'intent.timed_out', 'intent.transfer', 'intent.reminder', 'intent.escalated',
  'intent.delivery_failed', 'reset', 'stream.timeout', 'stream.shutdown',
];

/** A fresh temporary directory, removed when the process exits. */
export function tempDir() {
  const dir = mkdtempSync(join(tmpdir(), 'axme-sse-node-'));
  process.on('exit', () => rmSync(dir, {recursive: true, force: true}));
  return dir;
}

/** Starts `axme serve` on `data` with extra flags; resolves once it is listening. */
export function startServer(data, args = []) {
  return spawnServer({data, key: KEY, args, runner: 'tests/sse_node/run.sh'});
}

/** A JSON call with the admin key; throws unless the answer is 200. */
export async function api(base, method, path, body) {
  const res = await fetch(base + path, {
    method,
    headers: {'x-api-key': KEY, 'content-type': 'application/json'},
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`${method} ${path}: ${res.status} ${text}`);
  return JSON.parse(text);
}

export async function createIntent(base, toAgent) {
  const created = await api(base, 'POST', '/v1/intents', {
    intent_type: 'demo.node.v1',
    correlation_id: crypto.randomUUID(),
    to_agent: toAgent,
    payload: {from: 'node'},
  });
  return created.intent_id;
}

export function progress(base, id, status) {
  const body = status === 'WAITING' ? {status, waiting_reason: 'WAITING_FOR_TOOL'} : {status};
  return api(base, 'POST', `/v1/intents/${id}/progress`, body);
}

export function resolve(base, id) {
  return api(base, 'POST', `/v1/intents/${id}/resolve`, {status: 'COMPLETED', result: {ok: true}});
}

export async function history(base, id) {
  return (await api(base, 'GET', `/v1/intents/${id}/events`)).events;
}

/** A TCP proxy to 127.0.0.1:`target`: `cut()` resets every connection, `target` can change. */
export async function startProxy(target) {
  const pairs = new Set();
  const state = {target};
  const server = net.createServer((client) => {
    const upstream = net.connect(state.target, '127.0.0.1');
    const pair = {client, upstream};
    pairs.add(pair);
    // A refused or failed upstream drops the client; an upstream that ends is ended on the
    // client side by pipe() after everything it sent was passed on.
    upstream.on('error', () => client.destroy()).on('close', () => pairs.delete(pair));
    client.on('error', () => upstream.destroy()).on('close', () => {
      pairs.delete(pair);
      upstream.destroy();
    });
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    base: `http://127.0.0.1:${server.address().port}`,
    set target(port) {
      state.target = port;
    },
    /** Resets every open connection (the client sees ECONNRESET mid-stream). */
    cut() {
      const n = pairs.size;
      for (const {client, upstream} of pairs) {
        client.resetAndDestroy();
        upstream.destroy();
      }
      pairs.clear();
      return n;
    },
    close() {
      this.cut();
      return new Promise((resolve) => server.close(resolve));
    },
  };
}

/**
 * An EventSource on `url` with the API key added to each request through the `fetch` option.
 * It records every event (`seen`), every connection it opened (`opens`), every transport error
 * (`errors`), and the `Last-Event-ID` each request carried (`requests`). `until(pred)` resolves
 * once `pred()` holds, checked after each of those.
 */
export function watch(url) {
  const w = {seen: [], control: [], requests: [], opens: 0, errors: 0, waiters: new Set()};
  const check = () => {
    for (const waiter of w.waiters) {
      if (waiter.pred()) {
        w.waiters.delete(waiter);
        waiter.resolve();
      }
    }
  };
  w.es = new EventSource(url, {
    fetch: (input, init) => {
      w.requests.push({lastEventId: init.headers['Last-Event-ID'] ?? null, seenBefore: w.seen.length});
      return fetch(input, {...init, headers: {...init.headers, 'x-api-key': KEY}});
    },
  });
  w.es.addEventListener('open', () => {
    w.opens += 1;
    check();
  });
  w.es.addEventListener('error', () => {
    w.errors += 1;
    check();
  });
  for (const type of EVENT_TYPES) {
    w.es.addEventListener(type, (ev) => {
      const entry = {id: ev.lastEventId, type: ev.type, data: JSON.parse(ev.data)};
      (type.startsWith('intent.') ? w.seen : w.control).push(entry);
      check();
    });
  }
  w.until = (pred, what, ms = 20_000) =>
    new Promise((resolve, reject) => {
      if (pred()) return resolve();
      const timer = setTimeout(() => {
        w.waiters.delete(waiter);
        reject(new Error(`timed out waiting for ${what}; saw ${JSON.stringify(w.seen.map((e) => e.id))}`));
      }, ms);
      const waiter = {pred, resolve: () => (clearTimeout(timer), resolve())};
      w.waiters.add(waiter);
    });
  w.count = (n) => w.until(() => w.seen.length >= n, `${n} events`);
  w.close = () => w.es.close();
  return w;
}
