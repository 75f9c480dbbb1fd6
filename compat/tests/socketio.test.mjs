// The socket.io face with the real socket.io-client, called the way verb-style apps
// call it: `socket.timeout(ms).emit(VERB, collection, …, cb)`, one value acked on
// success and `(null, error)` on failure. Items are ordinary keys `<collection>/<id>`,
// so HPKV REST reads and writes the same documents.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { io } from 'socket.io-client';
import WebSocket from 'ws';
import { API_KEY, startServer } from './server.mjs';

const TIMEOUT_MS = 5000;

/** Connects and resolves once connected, or rejects with the connect_error. */
function open(url, options = {}) {
  const socket = io(url, { transports: ['websocket'], reconnection: false, ...options });
  return new Promise((resolve, reject) => {
    socket.once('connect', () => resolve(socket));
    socket.once('connect_error', (err) => {
      socket.close();
      reject(err);
    });
  });
}

/** One verb request: the ack's arguments (the client's own timeout error aside). */
async function call(socket, ...args) {
  const [, ...acked] = await new Promise((resolve) =>
    socket.timeout(TIMEOUT_MS).emit(...args, (...reply) => resolve(reply)),
  ).then((reply) => {
    if (reply[0]) throw new Error(`no ack for ${JSON.stringify(args)} within ${TIMEOUT_MS} ms`);
    return reply;
  });
  return acked;
}

/** A request that must fail: its error, after checking the `(null, error)` shape. */
async function failure(socket, ...args) {
  const acked = await call(socket, ...args);
  assert.equal(acked.length, 2, `(null, error) for ${JSON.stringify(args)}: ${JSON.stringify(acked)}`);
  assert.equal(acked[0], null);
  return acked[1];
}

/** A request that must succeed: its one acked value. */
async function success(socket, ...args) {
  const acked = await call(socket, ...args);
  assert.equal(acked.length, 1, `one value for ${JSON.stringify(args)}: ${JSON.stringify(acked)}`);
  return acked[0];
}

function assertError(error, name, code) {
  const classNames = {
    400: 'bad-request',
    403: 'forbidden',
    404: 'not-found',
    405: 'method-not-allowed',
    409: 'conflict',
    422: 'unprocessable',
  };
  assert.deepEqual(
    { name: error?.name, code: error?.code, className: error?.className },
    { name, code, className: classNames[code] },
    JSON.stringify(error),
  );
  assert.equal(typeof error.message, 'string');
}

/** Every event a socket receives, in order, and a way to await the next ones. */
function recorder(socket) {
  const seen = [];
  const waiters = [];
  socket.onAny((name, ...args) => {
    seen.push({ name, args });
    for (const waiter of [...waiters]) waiter();
  });
  return {
    seen,
    /** Resolves with the events once `count` have arrived (fails after 5 s). */
    until(count) {
      return new Promise((resolve, reject) => {
        const check = () => {
          if (seen.length >= count) {
            waiters.splice(waiters.indexOf(check), 1);
            clearTimeout(timer);
            resolve(seen.slice(0, count));
          }
        };
        const timer = setTimeout(() => {
          waiters.splice(waiters.indexOf(check), 1);
          reject(new Error(`only ${seen.length} of ${count} events: ${JSON.stringify(seen)}`));
        }, TIMEOUT_MS);
        waiters.push(check);
        check();
      });
    },
  };
}

describe('socket.io verb face', () => {
  let server;
  let socket;
  const rest = (path, init = {}) =>
    fetch(`${server.baseUrl}${path}`, {
      ...init,
      headers: { 'content-type': 'application/json', 'x-api-key': API_KEY, ...init.headers },
    });

  before(async () => {
    server = await startServer();
    socket = await open(server.baseUrl, { auth: { apiKey: API_KEY } });
  });

  after(async () => {
    socket?.close();
    await server?.dispose();
  });

  test('the handshake takes an API key or a token, and refuses anything else with a reason', async () => {
    // The default transports (long-polling, then the upgrade), on one node of a cluster
    // since polling needs every request on the same node.
    const polling = await open(server.nodeUrls[0], {
      transports: undefined,
      auth: (cb) => cb({ apiKey: API_KEY }),
    });
    const created = await success(polling, 'POST', 'handshake', { n: 1 });
    assert.equal(created.n, 1);
    await new Promise((resolve) => (polling.io.engine.transport.name === 'websocket' ? resolve() : polling.io.engine.once('upgrade', resolve)));
    polling.close();

    for (const [auth, message] of [
      [{ apiKey: 'wrong' }, /Invalid API key/],
      [{}, /Missing API key/],
      [{ token: 'forged.token' }, /Invalid or expired token/],
    ]) {
      await assert.rejects(open(server.baseUrl, { auth }), (err) => message.test(err.message));
    }

    const response = await rest('/token/websocket', {
      method: 'POST',
      body: JSON.stringify({ accessPattern: '^notes/*$' }),
    });
    const { token } = await response.json();
    const limited = await open(server.baseUrl, { auth: { token } });
    const note = await success(limited, 'POST', 'notes', { text: 'mine' });
    assert.equal((await success(limited, 'GET', 'notes', note.id)).text, 'mine');
    const hidden = await success(socket, 'POST', 'secrets', { text: 'not yours' });
    assertError(await failure(limited, 'GET', 'secrets', hidden.id), 'Forbidden', 403);
    assertError(await failure(limited, 'POST', 'secrets', { text: 'x' }), 'Forbidden', 403);
    limited.close();
  });

  test('POST creates with a new id, GET reads, a missing item is (null, NotFound)', async () => {
    const first = await success(socket, 'POST', 'items', { title: 'a', tags: ['x'] });
    const second = await success(socket, 'POST', 'items', { title: 'b' });
    assert.match(first.id, /^[0-9A-Z]{26}$/);
    assert.ok(second.id > first.id, 'ids sort in creation order');
    assert.equal(typeof first._rev, 'number');
    assert.ok(second._rev > first._rev);
    assert.deepEqual(await success(socket, 'GET', 'items', first.id), first);
    assertError(await failure(socket, 'GET', 'items', 'nope'), 'NotFound', 404);
    // The plain promise wrapper of verb-style apps resolves null for a missing item.
    const plain = await socket.timeout(TIMEOUT_MS).emitWithAck('GET', 'items', 'nope');
    assert.equal(plain, null);
  });

  test('a numeric id is the key of its decimal string and stays a number', async () => {
    const created = await success(socket, 'POST', 'numbered', { id: 7, n: 1 });
    assert.equal(created.id, 7);
    assert.deepEqual(await success(socket, 'GET', 'numbered', '7'), created);
    const stored = await (await rest(`/record/${encodeURIComponent('numbered/7')}`)).json();
    assert.deepEqual(JSON.parse(stored.value), { id: 7, n: 1 });
  });

  test('creating an existing id: the same document is a safe retry, another is Conflict', async () => {
    const created = await success(socket, 'POST', 'retries', { id: 'r1', v: 1 });
    const retried = await success(socket, 'POST', 'retries', { id: 'r1', v: 1, _rev: 999 });
    assert.deepEqual(retried, created, 'no new revision');
    const conflict = await failure(socket, 'POST', 'retries', { id: 'r1', v: 2 });
    assertError(conflict, 'Conflict', 409);
    assert.equal(conflict.data.revision, created._rev);
    assert.equal((await success(socket, 'GET', 'retries', 'r1')).v, 1);
  });

  test('PUT replaces, is NotFound for a missing item unless upsert, and is conditional on ifRevision', async () => {
    const created = await success(socket, 'POST', 'docs', { id: 'd', a: 1, b: 2 });
    const replaced = await success(socket, 'PUT', 'docs', { id: 'd', c: 3 });
    assert.deepEqual({ ...replaced, _rev: 0 }, { id: 'd', c: 3, _rev: 0 });
    assert.ok(replaced._rev > created._rev);
    assertError(await failure(socket, 'PUT', 'docs', { id: 'missing', c: 1 }), 'NotFound', 404);
    const upserted = await success(socket, 'PUT', 'docs', { id: 'missing', c: 1 }, { upsert: true });
    assert.equal(upserted.c, 1);
    // upsert with ifRevision 0: only while the item does not exist.
    const fresh = await success(socket, 'PUT', 'docs', { id: 'fresh', c: 1 }, { upsert: true, ifRevision: 0 });
    assert.equal(fresh.c, 1);
    const taken = await failure(socket, 'PUT', 'docs', { id: 'fresh', c: 2 }, { upsert: true, ifRevision: 0 });
    assertError(taken, 'Conflict', 409);
    assert.equal(taken.data.revision, fresh._rev);
    const stale = await failure(socket, 'PUT', 'docs', { id: 'd', c: 4 }, { ifRevision: created._rev });
    assertError(stale, 'Conflict', 409);
    assert.equal(stale.data.revision, replaced._rev);
    const current = await success(socket, 'PUT', 'docs', { id: 'd', c: 5 }, { ifRevision: replaced._rev });
    assert.equal(current.c, 5);
    assertError(await failure(socket, 'PUT', 'docs', { c: 1 }), 'BadRequest', 400);
  });

  test('PATCH merges (RFC 7396) or applies a JSON Patch all or nothing', async () => {
    const created = await success(socket, 'POST', 'patches', { id: 'p', a: 1, nested: { x: 1, y: 2 } });
    const merged = await success(socket, 'PATCH', 'patches', 'p', { b: 2, nested: { y: null } });
    assert.deepEqual({ ...merged, _rev: 0 }, { id: 'p', a: 1, nested: { x: 1 }, b: 2, _rev: 0 });
    const byDocument = await success(socket, 'PATCH', 'patches', { id: 'p', c: 3 });
    assert.equal(byDocument.c, 3);
    const operations = [
      { op: 'replace', path: '/a', value: 10 },
      { op: 'add', path: '/list', value: [1] },
    ];
    const patched = await success(socket, 'PATCH', 'patches', 'p', operations);
    assert.equal(patched.a, 10);
    assert.deepEqual(patched.list, [1]);
    const failed = await failure(socket, 'PATCH', 'patches', 'p', [
      { op: 'replace', path: '/a', value: 99 },
      { op: 'test', path: '/a', value: 'not this' },
    ]);
    assertError(failed, 'BadRequest', 400);
    assert.deepEqual(await success(socket, 'GET', 'patches', 'p'), patched, 'a failing test changes nothing');
    assertError(await failure(socket, 'PATCH', 'patches', 'p', [{ op: 'remove', path: '/id' }]), 'BadRequest', 400);
    assertError(await failure(socket, 'PATCH', 'patches', 'missing', { a: 1 }), 'NotFound', 404);
    const stale = await failure(socket, 'PATCH', 'patches', 'p', { a: 0 }, { ifRevision: created._rev });
    assertError(stale, 'Conflict', 409);
    assert.equal(stale.data.revision, patched._rev);
  });

  test('DELETE acks the deleted document', async () => {
    const created = await success(socket, 'POST', 'gone', { id: 'g', v: 1 });
    assert.deepEqual(await success(socket, 'DELETE', 'gone', 'g'), created);
    assertError(await failure(socket, 'GET', 'gone', 'g'), 'NotFound', 404);
    assertError(await failure(socket, 'DELETE', 'gone', 'g'), 'NotFound', 404);
  });

  test('HPKV REST sees and edits the same documents', async () => {
    const created = await success(socket, 'POST', 'shared', { id: 'one', n: 1 });
    const stored = await (await rest(`/record/${encodeURIComponent('shared/one')}`)).json();
    assert.deepEqual(JSON.parse(stored.value), { id: 'one', n: 1 }, 'stored without _rev');
    await rest('/record', { method: 'POST', body: JSON.stringify({ key: 'shared/two', value: '{"n":2}' }) });
    const two = await success(socket, 'GET', 'shared', 'two');
    assert.equal(two.id, 'two', 'the id comes from the key');
    assert.equal(two.n, 2);
    assert.ok(two._rev > created._rev);
    await rest('/record', { method: 'POST', body: JSON.stringify({ key: 'shared/counter', value: '5' }) });
    assertError(await failure(socket, 'GET', 'shared', 'counter'), 'Unprocessable', 422);
  });

  test('every malformed request gets an error ack, never a timeout, and the socket keeps working', async () => {
    const bad = [
      [['GET', 'items'], 'BadRequest', 400],
      [['GET', 'items', 'x', 'extra'], 'BadRequest', 400],
      [['GET', 42, 'x'], 'BadRequest', 400],
      [['GET', 'bad/name', 'x'], 'BadRequest', 400],
      [['GET', 'items', true], 'BadRequest', 400],
      [['POST', 'items', 'not an object'], 'BadRequest', 400],
      [['POST', 'items', { id: 'a/b' }], 'BadRequest', 400],
      [['POST', 'items', {}, { unknownOption: 1 }], 'BadRequest', 400],
      [['PATCH', 'items', 'x', 5], 'BadRequest', 400],
      [['POST', 'items', { big: 'x'.repeat(70_000) }], 'BadRequest', 400],
      [['NOSUCHVERB', 'items'], 'MethodNotAllowed', 405],
    ];
    for (const [args, name, code] of bad) {
      assertError(await failure(socket, ...args), name, code);
    }
    assert.equal((await success(socket, 'POST', 'items', { after: 'errors' })).after, 'errors');
  });

  test('one socket is served in send order, however many requests it pipelines', async () => {
    const count = 300;
    const acks = [];
    const sent = [];
    for (let n = 0; n < count; n++) {
      sent.push(
        call(socket, 'PUT', 'ordered', { id: 'o', n }, { upsert: true }).then((acked) => {
          acks.push(acked[0]);
        }),
      );
    }
    await Promise.all(sent);
    assert.deepEqual(
      acks.map((item) => item.n),
      [...Array(count).keys()],
      'acks arrive in send order',
    );
    assert.ok(acks.every((item, i) => i === 0 || item._rev > acks[i - 1]._rev));
    assert.equal((await success(socket, 'GET', 'ordered', 'o')).n, count - 1);
  });
  test('two clients see each other: every write raises a verb and a Feathers event', async () => {
    const other = await open(server.baseUrl, { auth: { apiKey: API_KEY, collections: ['live'] } });
    const events = recorder(other);
    const created = await success(socket, 'POST', 'live', { id: 'x', n: 1 });
    const patched = await success(socket, 'PATCH', 'live', 'x', { n: 2 });
    const replaced = await success(socket, 'PUT', 'live', { id: 'x', n: 3 });
    const removed = await success(socket, 'DELETE', 'live', 'x');
    const seen = await events.until(8);
    const item = (n, rev) => ({ id: 'x', n, _rev: rev });
    assert.deepEqual(removed, replaced, 'DELETE acks the document as it was');
    const deletedAt = seen[6].args[2].revision;
    assert.ok(deletedAt > replaced._rev);
    assert.deepEqual(seen, [
      { name: 'ADDED', args: ['live', item(1, created._rev), { revision: created._rev, op: 'set' }] },
      { name: 'live created', args: [item(1, created._rev)] },
      { name: 'MODIFIED', args: ['live', item(2, patched._rev), { revision: patched._rev, op: 'patch' }] },
      { name: 'live patched', args: [item(2, patched._rev)] },
      { name: 'MODIFIED', args: ['live', item(3, replaced._rev), { revision: replaced._rev, op: 'set' }] },
      { name: 'live updated', args: [item(3, replaced._rev)] },
      { name: 'DELETED', args: ['live', item(3, deletedAt), { revision: deletedAt, op: 'delete' }] },
      { name: 'live removed', args: [item(3, deletedAt)] },
    ]);
    other.close();
  });

  test("the writer's own event arrives before its ack", async () => {
    const own = await open(server.baseUrl, { auth: { apiKey: API_KEY, collections: ['own'] } });
    const events = recorder(own);
    const created = await success(own, 'POST', 'own', { v: 1 });
    assert.equal(events.seen.length, 2, 'both events were already there');
    assert.equal(events.seen[0].args[1]._rev, created._rev);
    own.close();
  });

  test('HPKV /ws and REST writes and TTL expiry raise events; values that are not objects raise none', async () => {
    const listener = await open(server.baseUrl, {
      auth: { apiKey: API_KEY, collections: ['viahttp'], events: 'verbs' },
    });
    const events = recorder(listener);
    const post = (body) => rest('/record', { method: 'POST', body: JSON.stringify(body) });
    await post({ key: 'viahttp/a', value: '{"n":1}' });
    await post({ key: 'viahttp/number', value: '5' });
    // A SET with a TTL over the HPKV WebSocket.
    const hpkv = new WebSocket(`${server.baseUrl.replace('http', 'ws')}/ws?apiKey=${API_KEY}`);
    await new Promise((resolve, reject) => {
      hpkv.once('error', reject);
      hpkv.once('open', () => {
        hpkv.send(JSON.stringify({ op: 'set', key: 'viahttp/a', value: '{"n":2}', ttl: 0.3, messageId: 1 }));
      });
      hpkv.once('message', (frame) => {
        const reply = JSON.parse(frame.toString());
        if (reply.code === 200) resolve();
        else reject(new Error(frame.toString()));
      });
    });
    hpkv.close();
    let seen = await events.until(2);
    assert.deepEqual(seen.map(({ name, args }) => [name, args[1].id, args[1].n, args[2].op]), [
      ['ADDED', 'a', 1, 'set'],
      ['MODIFIED', 'a', 2, 'set'],
    ]);
    seen = await events.until(3);
    assert.equal(seen[2].name, 'DELETED');
    assert.deepEqual({ ...seen[2].args[1], _rev: 0 }, { id: 'a', n: 2, _rev: 0 }, 'the expired document');
    assert.equal(seen[2].args[2].op, 'expire');
    await rest(`/record/${encodeURIComponent('viahttp/gone')}`, { method: 'DELETE' }); // 404: nothing
    await post({ key: 'viahttp/b', value: '{"n":3}' });
    await rest(`/record/${encodeURIComponent('viahttp/b')}`, { method: 'DELETE' });
    seen = await events.until(5);
    assert.deepEqual(seen.slice(3).map(({ name, args }) => [name, args[1].id, args[1].n]), [
      ['ADDED', 'b', 3],
      ['DELETED', 'b', 3],
    ]);
    assert.ok(seen.every(({ args }) => args[1].id !== 'number'));
    listener.close();
  });

  test('events follow the access pattern of a token and the collections and style asked for', async () => {
    const response = await rest('/token/websocket', {
      method: 'POST',
      body: JSON.stringify({ accessPattern: '^visible/*$' }),
    });
    const { token } = await response.json();
    const limited = await open(server.baseUrl, { auth: { token, events: 'feathers' } });
    const events = recorder(limited);
    await success(socket, 'POST', 'hidden', { id: 'h' });
    await success(socket, 'POST', 'visible', { id: 'v' });
    const [first] = await events.until(1);
    assert.equal(first.name, 'visible created');
    assert.equal(first.args[0].id, 'v');
    limited.close();
    await assert.rejects(
      open(server.baseUrl, { auth: { apiKey: API_KEY, events: 'all of them' } }),
      (err) => /auth.events must be/.test(err.message),
    );
  });
  test('a write on one node raises its events on the sockets of every node, with one revision', async () => {
    const [first, second = first] = server.nodeUrls;
    const writer = await open(first, { auth: { apiKey: API_KEY } });
    const reader = await open(second, { auth: { apiKey: API_KEY, collections: ['nodes'], events: 'verbs' } });
    const events = recorder(reader);
    const created = await success(writer, 'POST', 'nodes', { at: first });
    const [added] = await events.until(1);
    assert.deepEqual(added.args, ['nodes', created, { revision: created._rev, op: 'set' }]);
    writer.close();
    reader.close();
  });
  test('a socket that stops reading is disconnected, and never sees a gap in its events', async () => {
    const url = `${server.nodeUrls[0].replace('http', 'ws')}/socket.io/?EIO=4&transport=websocket`;
    const raw = new WebSocket(url);
    const events = [];
    let disconnected;
    // The server's namespace disconnect ("41"; socket.io-client then closes), or a close.
    const cut = new Promise((resolve) => {
      disconnected = resolve;
      raw.once('close', resolve);
    });
    await new Promise((resolve, reject) => {
      raw.once('error', reject);
      raw.on('message', (data) => {
        const text = data.toString();
        if (text.startsWith('0{')) {
          raw.send(`40${JSON.stringify({ apiKey: API_KEY, collections: ['flood'], events: 'verbs' })}`);
        } else if (text.startsWith('40')) {
          resolve();
        } else if (text === '2') {
          raw.send('3');
        } else if (text.startsWith('42')) {
          events.push(JSON.parse(text.slice(2)));
        } else if (text.startsWith('41')) {
          disconnected();
        }
      });
    });
    raw._socket.pause(); // reads nothing more: the kernel's buffers, then the server's, fill
    const writers = await Promise.all(
      [0, 1, 2, 3].map(() => open(server.nodeUrls[0], { auth: { apiKey: API_KEY, collections: [] } })),
    );
    const total = 3000;
    const big = 'x'.repeat(8192);
    let next = 0;
    await Promise.all(
      writers.map(async (writer) => {
        while (next < total) {
          const n = next++;
          await success(writer, 'PUT', 'flood', { id: `f${n % 50}`, n, big }, { upsert: true });
        }
      }),
    );
    for (const writer of writers) writer.close();
    raw._socket.resume();
    await Promise.race([
      cut,
      new Promise((_, reject) => setTimeout(() => reject(new Error(`the slow socket was not disconnected (${events.length} events, last ${JSON.stringify(events.at(-1)?.[3])})`)), TIMEOUT_MS)),
    ]);
    assert.ok(events.length > 0 && events.length < total, `${events.length} of ${total} events before the cut`);
    const revisions = events.map((event) => event[3].revision);
    assert.ok(
      revisions.every((revision, i) => i === 0 || revision === revisions[i - 1] + 1),
      'the events it got have no gap',
    );
    raw.close();
  });
  test('lists: filters, sort, pages, select, after, and a revision to listen from', async () => {
    const docs = [
      { id: 'l1', n: 3, tag: 'red', tags: ['x', 'y'], deep: { v: 1 } },
      { id: 'l2', n: 1, tag: 'blue' },
      { id: 'l3', n: '2', tag: null },
      { id: 'l4', n: 2.5, tags: ['y'] },
      { id: 'l5', tag: 'reddish' },
    ];
    for (const doc of docs) await success(socket, 'POST', 'listed', doc);
    await rest('/record', { method: 'POST', body: JSON.stringify({ key: 'listed/counter', value: '7' }) });
    const ids = async (query) => (await success(socket, 'LIST', 'listed', query)).data.map((item) => item.id);
    assert.deepEqual(await ids({}), ['l1', 'l2', 'l3', 'l4', 'l5'], 'id order; the counter is no item');
    assert.deepEqual(await ids({ filters: { tag: 'red' } }), ['l1']);
    assert.deepEqual(await ids({ filters: { tag: null } }), ['l3', 'l4']);
    assert.deepEqual(await ids({ filters: { n: { gt: 1 } } }), ['l1', 'l4']);
    assert.deepEqual(await ids({ filters: { n: { $gte: 2, lt: 3 } } }), ['l4']);
    assert.deepEqual(await ids({ filters: { tag: { prefix: 'red' }, tags: { exists: true } } }), ['l1']);
    assert.deepEqual(await ids({ filters: { tags: { contains: 'y' } } }), ['l1', 'l4']);
    assert.deepEqual(await ids({ filters: { 'deep.v': 1 } }), ['l1']);
    assert.deepEqual(await ids({ sort: 'n' }), ['l5', 'l2', 'l4', 'l1', 'l3']);
    assert.deepEqual(await ids({ sort: { tag: 1, n: -1 } }), ['l4', 'l3', 'l2', 'l1', 'l5']);
    assert.deepEqual(await ids({ sort: ['-tag'], pageSize: 2, page: 2 }), ['l2', 'l3']);
    assert.deepEqual(await ids({ after: 'l2', pageSize: 2 }), ['l3', 'l4']);

    const page = await success(socket, 'GET', 'listed', { pageSize: 2, select: ['tag'] });
    assert.equal(page.total, 5);
    assert.equal(page.page, 1);
    assert.equal(page.pageSize, 2);
    assert.deepEqual(Object.keys(page.data[0]).sort(), ['_rev', 'id', 'tag']);
    assert.ok(page.data.every((item) => item._rev <= page.revision));
    const counted = await success(socket, 'LIST', 'listed', { pageSize: 0 });
    assert.deepEqual([counted.total, counted.data], [5, []]);
    const everything = await success(socket, 'LIST', 'listed');
    assert.equal(everything.pageSize, 10);

    // List, then listen: every change after the list's revision is an event.
    const listener = await open(server.baseUrl, { auth: { apiKey: API_KEY, collections: ['listed'] } });
    const events = recorder(listener);
    const before = await success(listener, 'LIST', 'listed', {});
    const added = await success(socket, 'POST', 'listed', { id: 'l6' });
    const [first] = await events.until(1);
    assert.ok(first.args[2].revision > before.revision);
    assert.equal(first.args[2].revision, added._rev);
    listener.close();

    for (const query of [
      { filters: { n: { $regex: 'x' } } },
      { sort: { n: 2 } },
      { page: 0 },
      { pageSize: -1 },
      { after: 'l1', sort: 'n' },
      { unknown: 1 },
      { filters: 'tag' },
    ]) {
      assertError(await failure(socket, 'LIST', 'listed', query), 'BadRequest', 400);
    }
  });

  test('a token socket lists only the items its access pattern allows', async () => {
    await success(socket, 'POST', 'mixed', { id: 'public-1' });
    await success(socket, 'POST', 'mixed', { id: 'private-1' });
    const response = await rest('/token/websocket', {
      method: 'POST',
      body: JSON.stringify({ accessPattern: '^mixed/public-*$' }),
    });
    const { token } = await response.json();
    const limited = await open(server.baseUrl, { auth: { token } });
    const listed = await success(limited, 'LIST', 'mixed', {});
    assert.deepEqual(listed.data.map((item) => item.id), ['public-1']);
    assert.equal(listed.total, 1);
    limited.close();
  });
  test('resuming with since: missed events come once and in order, across a reconnect and a restart', async () => {
    let last = 0;
    const resuming = io(server.baseUrl, {
      transports: ['websocket'],
      reconnectionDelay: 50,
      reconnectionDelayMax: 200,
      // Re-read on every reconnect, so it carries the last revision seen.
      auth: (cb) => cb({ apiKey: API_KEY, collections: ['resumed'], events: 'verbs', since: last || undefined }),
    });
    const revisions = [];
    const arrived = [];
    resuming.on('ADDED', (collection, item, meta) => {
      revisions.push(meta.revision);
      last = meta.revision;
      for (const check of [...arrived]) check();
    });
    const until = (count) =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`${revisions.length} of ${count}`)), 15_000);
        const check = () => {
          if (revisions.length >= count) {
            clearTimeout(timer);
            arrived.splice(arrived.indexOf(check), 1);
            resolve();
          }
        };
        arrived.push(check);
        check();
      });
    await new Promise((resolve) => resuming.once('connect', resolve));
    const writeMany = async (count) => {
      for (let i = 0; i < count; i++) await success(socket, 'POST', 'resumed', { i });
    };
    await writeMany(5);
    await until(5);
    // Cut the connection; write while it is away; it reconnects with since.
    const gone = new Promise((resolve) => resuming.once('disconnect', resolve));
    resuming.io.engine.close();
    await gone;
    await writeMany(40);
    await until(45);
    // The same across a restart of the server.
    const down = new Promise((resolve) => resuming.once('disconnect', resolve));
    await server.stop();
    await down;
    await server.restart();
    socket.close();
    socket = await open(server.baseUrl, { auth: { apiKey: API_KEY } });
    await writeMany(10);
    await until(55);
    assert.equal(revisions.length, 55, 'nothing twice');
    assert.ok(revisions.every((revision, i) => i === 0 || revision > revisions[i - 1]), 'in order');
    resuming.close();

    // A revision this store never reached: RESYNC with the current revision.
    const stale = io(server.baseUrl, {
      transports: ['websocket'],
      reconnection: false,
      auth: { apiKey: API_KEY, since: 10_000_000 },
    });
    const resync = await new Promise((resolve) => stale.once('RESYNC', (error, info) => resolve([error, info])));
    assert.equal(resync[0], null);
    assert.ok(resync[1].revision >= last);
    stale.close();
  });
  test('SUBSCRIBE and UNSUBSCRIBE narrow the events of a socket in-band', async () => {
    const narrowing = await open(server.baseUrl, { auth: { apiKey: API_KEY, events: 'verbs' } });
    const events = recorder(narrowing);
    let ack = await success(narrowing, 'UNSUBSCRIBE', '*');
    assert.deepEqual(ack.collections, []);
    ack = await success(narrowing, 'SUBSCRIBE', 'wanted');
    assert.deepEqual(ack.collections, ['wanted']);
    assert.equal(typeof ack.revision, 'number');
    await success(socket, 'POST', 'unwanted', { id: 'u' });
    const wanted = await success(socket, 'POST', 'wanted', { id: 'w' });
    const [first] = await events.until(1);
    assert.deepEqual([first.name, first.args[0], first.args[2].revision], ['ADDED', 'wanted', wanted._rev]);
    // The Feathers spelling acks (null, result).
    const [error, result] = await new Promise((resolve) =>
      narrowing.timeout(TIMEOUT_MS).emit('subscribe', 'other', (timeout, err, value) => resolve([err, value])),
    );
    assert.equal(error, null);
    assert.deepEqual(result.collections, ['wanted', 'other']);
    assertError(await failure(narrowing, 'SUBSCRIBE', 'bad/name'), 'BadRequest', 400);
    assertError(await failure(narrowing, 'SUBSCRIBE'), 'BadRequest', 400);
    narrowing.close();
  });
  test('resuming from a revision older than the retained log gets RESYNC', async () => {
    const small = await startServer(['--changelog-max-entries', '5']);
    try {
      const writer = await open(small.baseUrl, { auth: { apiKey: API_KEY } });
      const first = await success(writer, 'POST', 'short', { i: 0 });
      let last;
      for (let i = 1; i < 20; i++) last = await success(writer, 'POST', 'short', { i });
      const late = io(small.baseUrl, {
        transports: ['websocket'],
        reconnection: false,
        auth: { apiKey: API_KEY, since: first._rev },
      });
      const [error, info] = await new Promise((resolve) => late.once('RESYNC', (e, i) => resolve([e, i])));
      assert.equal(error, null);
      assert.ok(info.revision >= last._rev);
      late.close();
      writer.close();
    } finally {
      await small.dispose();
    }
  });
});
