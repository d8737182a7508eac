// Helpers of the browser test: the real `axme` binary on 127.0.0.1:0 with a fresh database
// (readiness is its "listening on http://..." line, never a sleep), JSON calls to its API, a
// local port with nothing listening on it, and waiting for a condition of the API.

import net from 'node:net';
import {spawnServer} from '../axme_server.mjs';

export const KEY = 'axme_ui_admin_key_0123456789abcdef';

/** Starts `axme serve` on `data` with extra flags; resolves once it is listening. */
export async function startServer(data, args = [], listen = '127.0.0.1:0') {
  const server = await spawnServer({data, key: KEY, args, listen, stderr: 'inherit', runner: 'tests/ui/run.sh'});
  const {base} = server;
  return {
    ...server,
    /** A JSON call with the admin key; resolves to {status, body}. */
    async call(method, path, body, headers = {}) {
      const r = await fetch(base + path, {
        method,
        headers: {'x-api-key': KEY, 'content-type': 'application/json', ...headers},
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const text = await r.text();
      let json = null;
      try { json = JSON.parse(text); } catch { /* not JSON */ }
      return {status: r.status, body: json, text};
    },
    /** Like `call`, but throws unless the answer is 200. */
    async ok(method, path, body, headers) {
      const r = await this.call(method, path, body, headers);
      if (r.status !== 200) throw new Error(`${method} ${path}: ${r.status} ${r.text}`);
      return r.body;
    },
    /** The end of the event log: what a firehose from beyond the end is reset to. */
    async logEnd() {
      const ctl = new AbortController();
      const r = await fetch(`${base}/v1/events/stream?since=${Number.MAX_SAFE_INTEGER}`, {
        headers: {'x-api-key': KEY}, signal: ctl.signal,
      });
      const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
      let text = '';
      try {
        for (;;) {
          const {value, done} = await reader.read();
          if (done) throw new Error(`the firehose ended before its reset: ${text}`);
          text += value;
          const m = text.match(/event: reset\ndata: (.*)\n/);
          if (m) return JSON.parse(m[1]).latest;
        }
      } finally {
        ctl.abort();
      }
    },
  };
}

/** A create-intent body. */
export function intent(toAgent, extra = {}) {
  return {
    intent_type: 'demo.task.v1',
    correlation_id: crypto.randomUUID(),
    to_agent: toAgent,
    payload: {n: 1},
    ...extra,
  };
}

/** A TCP port on 127.0.0.1 that nothing listens on (bound, then released). */
export async function closedPort() {
  const srv = net.createServer();
  await new Promise((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const {port} = srv.address();
  await new Promise((resolve) => srv.close(resolve));
  return port;
}

/** Calls `probe` until it returns a truthy value, giving up (with `what`) after `ms`. */
export async function until(what, probe, ms = 30_000) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v) return v;
    if (Date.now() > end) throw new Error(`gave up waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
