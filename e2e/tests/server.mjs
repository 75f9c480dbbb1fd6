// Starts (and restarts) the real `ripplekv` binary for browser tests.
// RIPPLEKV_BIN overrides the binary (default: the workspace's debug build).
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

export const API_KEY = 'e2e-test-key';
const here = dirname(fileURLToPath(import.meta.url));
const binary = process.env.RIPPLEKV_BIN ?? resolve(here, '../../target/debug/ripplekv');

function launch(dataDir, listen) {
  const child = spawn(binary, ['serve', '--listen', listen, '--data-dir', dataDir, '--api-key', API_KEY], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const lines = createInterface({ input: child.stderr });
  const address = new Promise((resolveAddress, reject) => {
    const timer = setTimeout(() => reject(new Error('ripplekv did not start within 30 s')), 30_000);
    child.once('exit', (code) => reject(new Error(`ripplekv exited early with ${code}`)));
    lines.on('line', (line) => {
      const match = line.match(/listening on http:\/\/(\S+)/);
      if (match) {
        clearTimeout(timer);
        resolveAddress(match[1]);
      }
    });
  });
  return { child, address };
}

/** A server on a free port with a fresh data directory; `restart` keeps both. */
export async function startServer() {
  const dataDir = await mkdtemp(join(tmpdir(), 'ripplekv-e2e-'));
  let { child, address } = launch(dataDir, '127.0.0.1:0');
  const listen = await address;
  const stop = async () => {
    if (child.exitCode === null) {
      child.kill('SIGTERM');
      await once(child, 'exit');
    }
  };
  return {
    baseUrl: `http://${listen}`,
    stop,
    async restart() {
      await stop();
      ({ child, address } = launch(dataDir, listen));
      await address;
    },
    async dispose() {
      await stop();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}
