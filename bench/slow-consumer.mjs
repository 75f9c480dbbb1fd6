// Server memory while one subscriber stops reading and a writer floods its keys.
//
//   cargo build --release --bin ripplekv && node bench/slow-consumer.mjs
//
// Runs the same write flood twice against fresh release-binary servers, sampling the
// server's RSS from /proc: first with no subscriber (the baseline: store, page cache and
// connection costs), then with a subscriber to `flood:*` whose socket is paused. Without
// a bound the server would queue every notification for the paused subscriber
// (WRITES x VALUE_BYTES bytes); with it, the subscriber is closed with 1008 "slow
// consumer" and the peak RSS stays close to the baseline's.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

const require = createRequire(new URL('../compat/package.json', import.meta.url));
const { WebSocket } = require('ws');

const WRITES = Number(process.env.WRITES ?? 20000);
const VALUE_BYTES = Number(process.env.VALUE_BYTES ?? 4096);
const IN_FLIGHT = 64;
const KEY = 'bench-key';
const binary = process.env.RIPPLEKV_BIN ?? new URL('../target/release/ripplekv', import.meta.url).pathname;

const open = (url) => new Promise((resolve, reject) => {
  const ws = new WebSocket(url);
  ws.once('open', () => resolve(ws));
  ws.once('error', reject);
});

async function scenario(pausedSubscriber) {
  const dataDir = mkdtempSync(join(tmpdir(), 'ripplekv-slow-'));
  const server = spawn(
    binary,
    ['--listen', '127.0.0.1:0', '--data-dir', dataDir, '--api-key', KEY, '--durability', 'relaxed'],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  const address = await new Promise((resolve) => {
    createInterface({ input: server.stderr }).on('line', (line) => {
      const match = line.match(/listening on http:\/\/(\S+)/);
      if (match) resolve(match[1]);
    });
  });
  const rssKiB = () => Number(readFileSync(`/proc/${server.pid}/status`, 'utf8').match(/VmRSS:\s+(\d+)/)[1]);
  const url = `ws://${address}/ws?apiKey=${KEY}`;

  let subscriber = null;
  let closed = Promise.resolve(null);
  if (pausedSubscriber) {
    subscriber = await open(url);
    await new Promise((resolve) => {
      subscriber.once('message', resolve);
      subscriber.send(JSON.stringify({ op: 'subscribe', patterns: ['flood:*'] }));
    });
    closed = new Promise((resolve) => subscriber.once('close', (code, reason) => resolve(`${code} ${reason}`)));
    subscriber._socket.pause(); // stop reading: kernel buffers fill, then the server's outbox
  }

  const baseline = rssKiB();
  let peak = baseline;
  const sampler = setInterval(() => { peak = Math.max(peak, rssKiB()); }, 50);
  const writer = await open(url);
  const value = 'x'.repeat(VALUE_BYTES);
  let sent = 0;
  let acknowledged = 0;
  const started = Date.now();
  await new Promise((resolve) => {
    const next = () => {
      while (sent < WRITES && sent - acknowledged < IN_FLIGHT) {
        writer.send(JSON.stringify({ op: 'set', key: `flood:${sent}`, value }));
        sent++;
      }
    };
    writer.on('message', () => {
      acknowledged++;
      if (acknowledged === WRITES) resolve();
      else next();
    });
    next();
  });
  const seconds = (Date.now() - started) / 1000;
  peak = Math.max(peak, rssKiB());
  clearInterval(sampler);
  let closedWith = null;
  if (subscriber) {
    subscriber._socket.resume(); // let the close frame through
    closedWith = await Promise.race([closed, new Promise((resolve) => setTimeout(() => resolve('not closed'), 10_000))]);
  }
  writer.close();
  server.kill('SIGTERM');
  await new Promise((resolve) => server.once('exit', resolve));
  rmSync(dataDir, { recursive: true, force: true });
  return { baseline, peak, seconds, closedWith };
}

const mib = (kib) => (kib / 1024).toFixed(1);
const plain = await scenario(false);
const paused = await scenario(true);
console.log(`writes per run: ${WRITES} x ${VALUE_BYTES} B (${mib((WRITES * VALUE_BYTES) / 1024)} MiB of notifications aimed at the paused subscriber)`);
console.log(`baseline, no subscriber:   RSS ${mib(plain.baseline)} -> peak ${mib(plain.peak)} MiB (${plain.seconds.toFixed(1)} s)`);
console.log(`paused subscriber:         RSS ${mib(paused.baseline)} -> peak ${mib(paused.peak)} MiB (${paused.seconds.toFixed(1)} s)`);
console.log(`extra peak RSS due to the paused subscriber: ${mib(paused.peak - plain.peak)} MiB; ratio of peaks ${(paused.peak / plain.peak).toFixed(2)}`);
console.log(`paused subscriber closed with: ${paused.closedWith}`);
if (!String(paused.closedWith).startsWith('1008')) process.exit(1);
