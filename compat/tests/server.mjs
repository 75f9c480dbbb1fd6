// Starts the real `ripplekv` binary on a free port with a fresh data directory.
// RIPPLEKV_BIN overrides the binary (default: the workspace's debug build).
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

export const API_KEY = 'compat-test-key';
const here = dirname(fileURLToPath(import.meta.url));
const binary = process.env.RIPPLEKV_BIN ?? resolve(here, '../../target/debug/ripplekv');

export async function startServer(extraArgs = []) {
  const dataDir = await mkdtemp(join(tmpdir(), 'ripplekv-compat-'));
  const child = spawn(
    binary,
    ['serve', '--listen', '127.0.0.1:0', '--data-dir', dataDir, '--api-key', API_KEY, ...extraArgs],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  const lines = createInterface({ input: child.stderr });
  const address = await new Promise((resolveAddress, reject) => {
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
  return {
    baseUrl: `http://${address}`,
    async stop() {
      if (child.exitCode === null) {
        child.kill('SIGTERM');
        await once(child, 'exit');
      }
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}
