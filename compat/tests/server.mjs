// Starts (and restarts) the real `ripplekv` binary on a free port with a fresh data
// directory. Shared by the SDK compatibility tests and the browser tests (e2e/).
// RIPPLEKV_BIN overrides the binary (default: the workspace's debug build).
//
// With RIPPLEKV_CLUSTER=N, a "server" is N nodes on a fresh PostgreSQL database (on the
// server at RIPPLEKV_TEST_POSTGRES, default postgres://postgres@127.0.0.1:5432/postgres)
// behind a round-robin TCP proxy: each connection a test opens, WebSocket or REST, goes
// to the next node, so a test's writer, subscriber and REST calls land on different
// nodes. RIPPLEKV_CLUSTER_BUS=redis://… connects the nodes through Redis instead of
// LISTEN/NOTIFY.
import { execFileSync, spawn } from 'node:child_process';
import { createServer, connect } from 'node:net';
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

const clusterSize = Number(process.env.RIPPLEKV_CLUSTER ?? 1);
const adminUrl =
  process.env.RIPPLEKV_TEST_POSTGRES ?? 'postgres://postgres@127.0.0.1:5432/postgres';
let databases = 0;

function psql(sql) {
  execFileSync('psql', ['-q', '-v', 'ON_ERROR_STOP=1', '-d', adminUrl, '-c', sql], {
    stdio: ['ignore', 'ignore', 'inherit'],
  });
}

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
 * A server on a free port with a fresh data directory (or, with RIPPLEKV_CLUSTER, a
 * cluster behind one address); `nodeUrls` are its nodes' own addresses. `stop` ends the
 * process and keeps the data, `restart` starts it again on the same address and data,
 * `dispose` stops it and removes the data.
 */
export async function startServer(extraArgs = []) {
  return clusterSize > 1 ? startCluster(clusterSize, extraArgs) : startNode(extraArgs);
}

async function startNode(extraArgs) {
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
    nodeUrls: [`http://${listen}`],
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

async function startCluster(size, extraArgs) {
  const database = `ripplekv_compat_${process.pid}_${databases++}_${Date.now()}`;
  psql(`CREATE DATABASE ${database}`);
  const store = `${adminUrl.replace(/\/[^/]*$/, '')}/${database}`;
  const nodes = [];
  for (let i = 0; i < size; i++) {
    const bus = process.env.RIPPLEKV_CLUSTER_BUS ? ['--bus', process.env.RIPPLEKV_CLUSTER_BUS] : [];
    nodes.push(await startNode(['--store', store, ...bus, ...extraArgs]));
  }
  const addresses = nodes.map((node) => new URL(node.baseUrl));
  let next = 0;
  const sockets = new Set();
  const proxy = createServer((client) => {
    const { hostname, port } = addresses[next++ % addresses.length];
    const upstream = connect(Number(port), hostname);
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      socket.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream);
    upstream.pipe(client);
  });
  proxy.listen(0, '127.0.0.1');
  await once(proxy, 'listening');
  const stop = async () => {
    for (const socket of sockets) socket.destroy();
    await Promise.all(nodes.map((node) => node.stop()));
  };
  return {
    baseUrl: `http://127.0.0.1:${proxy.address().port}`,
    nodeUrls: nodes.map((node) => node.baseUrl),
    stop,
    async restart() {
      await stop();
      await Promise.all(nodes.map((node) => node.restart()));
    },
    async dispose() {
      await stop();
      proxy.close();
      await Promise.all(nodes.map((node) => node.dispose()));
      psql(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
    },
  };
}
