// Starts (and restarts) the real `ripplekv` binary on a free port with a fresh data
// directory. Shared by the SDK compatibility tests and the browser tests (e2e/).
// RIPPLEKV_BIN overrides the binary (default: the workspace's debug build).
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

export const API_KEY = 'compat-test-key';
const here = dirname(fileURLToPath(import.meta.url));
const binary = process.env.RIPPLEKV_BIN ?? resolve(here, '../../target/debug/ripplekv');

function launch(dataDir, listen, extraArgs) {
  if (!existsSync(binary)) {
    // Without this, a missing build shows up as `spawn … ENOENT` deep in a test's output.
    throw new Error(
      `the ripplekv binary is missing at ${binary}: build it with \`cargo build --bin ripplekv\` ` +
        '(or run `bash scripts/test.sh`, which builds it), or point RIPPLEKV_BIN at one',
    );
  }
  const child = spawn(
    binary,
    ['serve', '--listen', listen, '--data-dir', dataDir, '--api-key', API_KEY, ...extraArgs],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
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

/**
 * A server on a free port with a fresh data directory. `stop` ends the process and
 * keeps the data, `restart` starts it again on the same address and data, `dispose`
 * stops it and removes the data.
 */
export async function startServer(extraArgs = []) {
  const dataDir = await mkdtemp(join(tmpdir(), 'ripplekv-test-'));
  let { child, address } = launch(dataDir, '127.0.0.1:0', extraArgs);
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
      ({ child, address } = launch(dataDir, listen, extraArgs));
      await address;
    },
    async dispose() {
      await stop();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}
