// The real `axme` binary as a child process, for the Node tests (tests/sse_node, tests/ui): on a
// fresh database with an admin key, its environment cleared of AXME_* settings, ready once it
// prints its "listening on http://..." line (never after a sleep). It imports nothing outside
// Node itself, so either test directory can use it with its own node_modules.

import {spawn} from 'node:child_process';
import {createInterface} from 'node:readline';

/**
 * Starts `axme serve` on `data` with `key` and extra `args`; resolves once it is listening to
 * {base, port, stop()}. `stderr` is 'inherit' or 'ignore'; `runner` names the run.sh to use when
 * AXME_BIN is not set.
 */
export async function spawnServer({data, key, args = [], listen = '127.0.0.1:0', stderr = 'ignore', runner}) {
  const bin = process.env.AXME_BIN;
  if (!bin) throw new Error(`AXME_BIN is not set (run ${runner})`);
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('AXME_')));
  const proc = spawn(bin, ['serve', '--data', data, '--listen', listen, '--api-key', key, ...args], {
    env,
    stdio: ['ignore', 'pipe', stderr],
  });
  const exited = new Promise((resolve) => proc.once('exit', (code) => resolve(code)));
  const lines = createInterface({input: proc.stdout});
  const base = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('axme did not print its listening line in 30 s')), 30_000);
    lines.on('line', (line) => {
      const m = line.match(/listening on (http:\/\/\S+)/);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    exited.then((code) => reject(new Error(`axme exited with ${code} before listening`)));
  });
  return {
    base,
    port: Number(new URL(base).port),
    /** SIGTERM, then the exit code once the process is gone. */
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
      return exited;
    },
  };
}
