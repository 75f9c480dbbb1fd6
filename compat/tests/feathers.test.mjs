// The Feathers face with the official client, unmodified: @feathersjs/feathers and
// @feathersjs/socketio-client over socket.io-client. `find` is checked against
// @feathersjs/memory (paginate {default: 10, max: 1000}) on the same data, over a few
// hundred reproducible random queries.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { feathers } from '@feathersjs/feathers';
import socketio from '@feathersjs/socketio-client';
import { MemoryService } from '@feathersjs/memory';
import { io } from 'socket.io-client';
import { API_KEY, startServer } from './server.mjs';

const TIMEOUT_MS = 5000;

function connect(url, options = {}) {
  const socket = io(url, { transports: ['websocket'], reconnection: false, auth: { apiKey: API_KEY } });
  const app = feathers().configure(socketio(socket, options));
  return { socket, app };
}

async function rejectsWith(promise, name, code) {
  await assert.rejects(promise, (err) => {
    assert.equal(err.name, name, JSON.stringify(err));
    assert.equal(err.code, code);
    assert.equal(typeof err.className, 'string');
    return true;
  });
}

const withoutRev = (item) => {
  const { _rev, ...rest } = item;
  return rest;
};

/** A small deterministic random source (mulberry32). */
function random(seed) {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('Feathers client', () => {
  let server;
  let client;

  before(async () => {
    server = await startServer();
    client = connect(server.baseUrl);
  });

  after(async () => {
    client?.socket.close();
    await server?.dispose();
  });

  test('create, get, patch, update and remove, with Feathers errors', async () => {
    const todos = client.app.service('todos');
    const created = await todos.create({ title: 'milk', meta: { a: 1, b: 2 }, done: false });
    assert.match(created.id, /^[0-9A-Z]{26}$/);
    assert.equal(typeof created._rev, 'number');
    assert.deepEqual(await todos.get(created.id), created);
    // patch is a shallow merge: a nested object is replaced, null is stored.
    const patched = await todos.patch(created.id, { meta: { a: 9 }, done: null });
    assert.deepEqual(withoutRev(patched), { id: created.id, title: 'milk', meta: { a: 9 }, done: null });
    const updated = await todos.update(created.id, { title: 'bread' });
    assert.deepEqual(withoutRev(updated), { id: created.id, title: 'bread' });
    const removed = await todos.remove(created.id);
    assert.deepEqual(removed, updated);
    await rejectsWith(todos.get(created.id), 'NotFound', 404);
    await rejectsWith(todos.patch('missing', { a: 1 }), 'NotFound', 404);
    await rejectsWith(todos.update('missing', { a: 1 }), 'NotFound', 404);
    await rejectsWith(todos.remove('missing'), 'NotFound', 404);
    await rejectsWith(todos.create([{ a: 1 }, { a: 2 }]), 'MethodNotAllowed', 405);
    await rejectsWith(todos.patch(null, { a: 1 }), 'MethodNotAllowed', 405);
    await rejectsWith(todos.remove(null), 'MethodNotAllowed', 405);
    await rejectsWith(client.app.service('bad/name').find(), 'NotFound', 404);
    await rejectsWith(todos.find({ query: { $regex: 'x' } }), 'BadRequest', 400);
    await rejectsWith(todos.find({ query: { title: { $like: 'x' } } }), 'BadRequest', 400);
  });

  test('a query must match for calls by id, and $rev makes writes conditional', async () => {
    const notes = client.app.service('notes');
    const note = await notes.create({ id: 'n1', owner: 'ada', text: 'x' });
    assert.equal((await notes.get('n1', { query: { owner: 'ada' } })).text, 'x');
    await rejectsWith(notes.get('n1', { query: { owner: 'bob' } }), 'NotFound', 404);
    await rejectsWith(notes.patch('n1', { text: 'y' }, { query: { owner: 'bob' } }), 'NotFound', 404);
    const stale = notes.patch('n1', { text: 'y' }, { query: { $rev: note._rev - 1 } });
    await assert.rejects(stale, (err) => err.name === 'Conflict' && err.data.revision === note._rev);
    const patched = await notes.patch('n1', { text: 'y' }, { query: { $rev: note._rev } });
    assert.equal(patched.text, 'y');
    assert.deepEqual(Object.keys(await notes.get('n1', { query: { $select: ['text'] } })).sort(), ['_rev', 'id', 'text']);
  });

  test('too many arguments is BadRequest, and the client timeout option works', async () => {
    const error = await new Promise((resolve) =>
      client.socket.timeout(TIMEOUT_MS).emit('find', 'todos', {}, {}, (timeout, err) => resolve(timeout ?? err)),
    );
    assert.equal(error.name, 'BadRequest');
    assert.equal(error.message, "Too many arguments for 'find' method");
    const timed = connect(server.baseUrl, { timeout: TIMEOUT_MS });
    const item = await timed.app.service('timed').create({ v: 1 });
    assert.equal((await timed.app.service('timed').get(item.id)).v, 1);
    await rejectsWith(timed.app.service('timed').get('nope'), 'NotFound', 404);
    timed.socket.close();
  });

  test('service events reach other clients', async () => {
    const other = connect(server.baseUrl);
    const events = [];
    const seen = new Promise((resolve) => {
      for (const name of ['created', 'patched', 'updated', 'removed']) {
        other.app.service('watched').on(name, (item) => {
          events.push([name, withoutRev(item)]);
          if (events.length === 4) resolve();
        });
      }
    });
    await new Promise((resolve) => (other.socket.connected ? resolve() : other.socket.once('connect', resolve)));
    const watched = client.app.service('watched');
    await watched.create({ id: 'w', n: 1 });
    await watched.patch('w', { n: 2 });
    await watched.update('w', { n: 3 });
    await watched.remove('w');
    await Promise.race([seen, new Promise((_, reject) => setTimeout(() => reject(new Error(JSON.stringify(events))), TIMEOUT_MS))]);
    assert.deepEqual(events, [
      ['created', { id: 'w', n: 1 }],
      ['patched', { id: 'w', n: 2 }],
      ['updated', { id: 'w', n: 3 }],
      ['removed', { id: 'w', n: 3 }],
    ]);
    other.socket.close();
  });

  test('find answers exactly as @feathersjs/memory over random queries', async () => {
    const next = random(20261201);
    const pick = (list) => list[Math.floor(next() * list.length)];
    const count = 400;
    const oracle = new MemoryService({ paginate: { default: 10, max: 1000 }, multi: false });
    const service = client.app.service('oracle');
    const words = ['apple', 'banana', 'cherry', 'date'];
    for (let i = 0; i < count; i++) {
      const item = { id: `i${String(i).padStart(4, '0')}`, s: pick(words) };
      // `a` is never missing (it may be null); `b` is never null (it may be missing):
      // Feathers' sort leaves the order of null against missing undefined.
      item.a = pick([0, 1, 2, 3, 5, 8, 13, 2.5, 'x', 'y', 'z', true, false, null]);
      if (next() < 0.7) item.b = pick([1, 2, 3, 'p', 'q']);
      if (next() < 0.6) item.c = Array.from({ length: Math.floor(next() * 4) }, () => Math.floor(next() * 6));
      if (next() < 0.5) item.nested = { x: Math.floor(next() * 4) };
      await oracle.create(item);
      await service.create(item);
    }
    const value = () => pick([0, 1, 2, 3, 5, 8, 'x', 'y', true, false, null]);
    const number = () => pick([0, 1, 2, 3, 5, 8]);
    const filters = [
      () => ({ a: value() }),
      () => ({ a: { $in: [value(), value()] } }),
      () => ({ a: { $nin: [value(), value()] } }),
      () => ({ a: { $gt: number() } }),
      () => ({ a: { $gte: pick([2, 'y']) } }),
      () => ({ a: { $lt: number(), $gte: 1 } }),
      () => ({ a: { $lte: pick(['y', 3]) } }),
      () => ({ a: { $ne: value() } }),
      () => ({ b: pick([1, 'p', null]) }),
      () => ({ b: { $ne: pick([2, 'q']) } }),
      () => ({ b: { $gt: pick([1, 'p']) } }),
      () => ({ c: Math.floor(next() * 6) }),
      () => ({ c: { $in: [Math.floor(next() * 6), 9] } }),
      () => ({ c: { $nin: [Math.floor(next() * 6)] } }),
      () => ({ c: { $gt: Math.floor(next() * 6) } }),
      () => ({ 'nested.x': Math.floor(next() * 4) }),
      () => ({ s: pick(words) }),
      () => ({ s: { $in: [pick(words), pick(words)] } }),
      () => ({ $or: [{ a: value() }, { s: pick(words) }] }),
      () => ({ $and: [{ s: { $ne: pick(words) } }, { b: { $in: [1, 'q'] } }] }),
    ];
    const sortable = ['a', 'b', 's'];
    let compared = 0;
    let nonEmpty = 0;
    for (let round = 0; round < 300; round++) {
      const query = {};
      for (let f = Math.floor(next() * 3); f > 0; f--) Object.assign(query, pick(filters)());
      if (next() < 0.7) {
        query.$sort = {};
        for (let k = 1 + Math.floor(next() * 2); k > 0; k--) query.$sort[pick(sortable)] = pick([1, -1]);
      }
      const limit = pick([undefined, 0, 1, 5, 10, 50, 2000]);
      if (limit !== undefined) query.$limit = limit;
      if (next() < 0.3) query.$skip = pick([0, 3, 20]);
      if (next() < 0.2) query.$select = ['a'];
      const expected = await oracle.find({ query: structuredClone(query) });
      const actual = await service.find({ query: structuredClone(query) });
      assert.deepEqual(
        { ...actual, data: actual.data.map(withoutRev) },
        expected,
        `query ${JSON.stringify(query)}`,
      );
      compared++;
      if (expected.data.length > 1) nonEmpty++;
    }
    assert.equal(compared, 300);
    assert.ok(nonEmpty > 100, `only ${nonEmpty} queries returned more than one item`);
  });
});
