// A WHATWG-compliant EventSource (npm `eventsource`) follows one intent's events through the real
// axme server while its connection is taken away — by the server's stream lifetime, by a reset
// TCP connection, and by a server restart — and reconnects on its own with Last-Event-ID. Each
// test asserts that it saw every event exactly once, in order, with the same JSON the events
// endpoint returns. Run with run.sh (it installs the package and sets AXME_BIN).

import assert from 'node:assert/strict';
import {join} from 'node:path';
import {test} from 'node:test';

import {createIntent, history, progress, resolve, startProxy, startServer, tempDir, watch} from './axme.mjs';

/** Every event exactly once, in order, as the events endpoint lists them. */
async function assertSawEverythingOnce(w, base, id) {
  const events = await history(base, id);
  assert.equal(events.at(-1).event_type, 'intent.completed');
  assert.deepEqual(
    w.seen.map((e) => [e.id, e.type]),
    events.map((e) => [String(e.seq), e.event_type]),
  );
  assert.deepEqual(w.seen.map((e) => e.data), events);
  // Each reconnection asked to resume after the last event it had seen.
  assert.equal(w.requests[0].lastEventId, null);
  for (const r of w.requests.slice(1)) {
    assert.equal(r.lastEventId, r.seenBefore ? w.seen[r.seenBefore - 1].id : null, JSON.stringify(w.requests));
  }
}

test('the server ending each connection after its lifetime loses and repeats nothing', async () => {
  const server = await startServer(join(tempDir(), 'axme.db'), ['--stream-max-lifetime-seconds', '1']);
  const id = await createIntent(server.base, 'agent://node/lifetime');
  const w = watch(`${server.base}/v1/intents/${id}/events/stream`);
  try {
    await w.count(2);
    await progress(server.base, id, 'IN_PROGRESS'); // live
    await w.count(3);
    // When the server closed the connection, commit while the client waits to reconnect.
    const errors = w.errors;
    await w.until(() => w.errors > errors, 'the server to end the connection');
    await progress(server.base, id, 'WAITING');
    await progress(server.base, id, 'IN_PROGRESS');
    await w.count(5);
    const again = w.errors;
    await w.until(() => w.errors > again, 'the server to end the connection again');
    await resolve(server.base, id);
    await w.count(6);
    assert.ok(w.opens >= 3, `reconnected at least twice (opened ${w.opens} times)`);
    await assertSawEverythingOnce(w, server.base, id);
  } finally {
    w.close();
    assert.equal(await server.stop(), 0);
  }
});

test('a reset TCP connection loses and repeats nothing', async () => {
  const server = await startServer(join(tempDir(), 'axme.db'));
  const proxy = await startProxy(server.port);
  const id = await createIntent(server.base, 'agent://node/reset');
  const w = watch(`${proxy.base}/v1/intents/${id}/events/stream`);
  try {
    await w.count(2);
    await progress(server.base, id, 'IN_PROGRESS');
    await w.count(3);
    assert.equal(proxy.cut(), 1);
    await progress(server.base, id, 'WAITING'); // committed while the connection is gone
    await progress(server.base, id, 'IN_PROGRESS');
    await w.count(5);
    await progress(server.base, id, 'WAITING'); // live again
    await w.count(6);
    assert.equal(proxy.cut(), 1);
    await resolve(server.base, id);
    await w.count(7);
    assert.equal(w.opens, 3);
    await assertSawEverythingOnce(w, server.base, id);
  } finally {
    w.close();
    await proxy.close();
    assert.equal(await server.stop(), 0);
  }
});

test('a server restart ends the stream with stream.shutdown and the client resumes on the new one', async () => {
  const data = join(tempDir(), 'axme.db');
  const first = await startServer(data);
  const proxy = await startProxy(first.port);
  const id = await createIntent(first.base, 'agent://node/restart');
  const w = watch(`${proxy.base}/v1/intents/${id}/events/stream`);
  try {
    await w.count(2);
    await progress(first.base, id, 'IN_PROGRESS');
    await w.count(3);
    assert.equal(await first.stop(), 0);
    await w.until(() => w.control.some((e) => e.type === 'stream.shutdown'), 'stream.shutdown');
    const second = await startServer(data);
    try {
      proxy.target = second.port;
      await progress(second.base, id, 'WAITING'); // committed before the client is back
      await w.count(4);
      await resolve(second.base, id);
      await w.count(5);
      assert.deepEqual(w.control.map((e) => e.type), ['stream.shutdown']);
      await assertSawEverythingOnce(w, second.base, id);
    } finally {
      w.close();
      assert.equal(await second.stop(), 0);
    }
  } finally {
    w.close();
    await proxy.close();
  }
});
