// Signing in: the API key is used once to mint a token scoped to `todos-*` and is then
// kept nowhere; only the token is, and when it is expired or refused the page asks again.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { API_KEY, startServer } from './server.mjs';
import { WAIT, launchBrowser, live, signedIn } from './browser.mjs';

/** Every place a page could have kept the key: web storage, cookies and the document. */
async function everythingStored(page) {
  const inPage = await page.evaluate(() => ({
    local: Object.entries(localStorage),
    session: Object.entries(sessionStorage),
    cookie: document.cookie,
    html: document.documentElement.outerHTML,
    inputs: [...document.querySelectorAll('input, textarea')].map((input) => input.value),
  }));
  return { ...inPage, cookies: await page.context().cookies() };
}

/** The token the page's WebSocket used. */
function tokenOf(socketUrl) {
  return new URL(socketUrl).searchParams.get('token');
}

/** A token with its expiry claim changed (so its signature no longer matches). */
function withExpiry(token, expiresMs) {
  const bytes = Buffer.from(token, 'base64url');
  const claims = JSON.parse(bytes.subarray(0, bytes.length - 32).toString());
  const payload = Buffer.from(JSON.stringify({ ...claims, e: expiresMs }));
  return Buffer.concat([payload, bytes.subarray(bytes.length - 32)]).toString('base64url');
}

describe('signing in', () => {
  let server;
  let browser;

  before(async () => {
    server = await startServer();
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    await server?.dispose();
  });

  test('the key mints one token scoped to todos-*, is stored nowhere, and a reload reconnects with the token alone', async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    const requests = [];
    const sockets = [];
    page.on('request', (request) => requests.push(request));
    page.on('websocket', (socket) => sockets.push(socket.url()));
    await page.goto(server.baseUrl);
    await page.getByTestId('api-key').fill(API_KEY);
    await page.getByTestId('connect').click();
    await live(page);

    const carrying = [];
    for (const request of requests) {
      const text = JSON.stringify([request.url(), await request.allHeaders(), request.postData()]);
      if (text.includes(API_KEY)) carrying.push(request);
    }
    assert.equal(carrying.length, 1, 'the key is sent exactly once');
    assert.equal(carrying[0].method(), 'POST');
    assert.equal(new URL(carrying[0].url()).pathname, '/token/websocket');
    assert.equal(JSON.parse(carrying[0].postData()).accessPattern, '^todos-*$');
    assert.ok(sockets.length >= 1 && sockets.every((url) => !url.includes(API_KEY)));
    const token = tokenOf(sockets.at(-1));
    assert.ok(token, 'the socket signs in with a token');

    const stored = await everythingStored(page);
    assert.ok(!JSON.stringify(stored).includes(API_KEY), 'the API key is in no storage, cookie, field or markup');
    assert.ok(stored.local.some(([, value]) => value === token), 'the token is what is kept');

    // The token really is limited to todos: the page's credential cannot read other keys.
    const outside = await page.evaluate((url) => new Promise((resolve, reject) => {
      const socket = new WebSocket(url);
      socket.onopen = () => socket.send(JSON.stringify({ op: 'get', key: 'config', messageId: 1 }));
      socket.onmessage = (event) => { resolve(JSON.parse(event.data).code); socket.close(); };
      socket.onerror = () => reject(new Error('socket failed'));
    }), sockets.at(-1));
    assert.equal(outside, 403);

    requests.length = 0;
    await page.reload();
    await live(page);
    assert.equal(await page.getByTestId('api-key').isVisible(), false, 'a reload does not ask for the key');
    assert.ok(await page.getByTestId('board').isVisible());
    assert.ok(!requests.some((request) => new URL(request.url()).pathname === '/token/websocket'),
      'no new token is minted on reload');
    for (const request of requests) {
      assert.ok(!JSON.stringify([request.url(), await request.allHeaders()]).includes(API_KEY));
    }
    assert.equal(tokenOf(sockets.at(-1)), token, 'the stored token is reused');
    assert.ok(!JSON.stringify(await everythingStored(page)).includes(API_KEY));

    // Signing out forgets the token too.
    await page.getByTestId('sign-out').click();
    await page.getByTestId('api-key').waitFor();
    assert.equal(await page.getByTestId('connection').getAttribute('data-state'), 'offline');
    assert.ok(!JSON.stringify(await everythingStored(page)).includes(token));
    await context.close();
  });

  test('an expired, forged or unreadable stored token makes the page ask for the key again', async () => {
    const page = await signedIn(browser, server.baseUrl);
    const sockets = [];
    page.on('websocket', (socket) => sockets.push(socket.url()));
    await page.reload();
    await live(page);
    const token = tokenOf(sockets.at(-1));
    const [store] = (await page.evaluate(() => Object.entries(localStorage))).find(([, value]) => value === token);

    const cases = [
      // Past its expiry: the page can tell by itself.
      { token: withExpiry(token, Date.now() - 60_000), message: /sign-in has expired/ },
      // Claims a later expiry, so the signature fails: only the server can tell (403).
      { token: withExpiry(token, Date.now() + 10 * 3600_000), message: /no longer accepts this browser's sign-in/ },
      { token: 'not-a-token', message: /no longer accepts this browser's sign-in/ },
    ];
    for (const bad of cases) {
      await page.evaluate(([name, value]) => localStorage.setItem(name, value), [store, bad.token]);
      await page.reload();
      const message = page.getByTestId('key-error');
      await message.waitFor(WAIT);
      assert.equal(await message.getAttribute('role'), 'alert');
      assert.match(await message.textContent(), bad.message);
      assert.match(await message.textContent(), /Paste the API key again/);
      assert.ok(await page.getByTestId('api-key').isVisible());
      assert.equal(await page.getByTestId('board').isVisible(), false);
      assert.equal(await page.getByTestId('connection').getAttribute('data-state'), 'offline');
      assert.equal(await page.evaluate((name) => localStorage.getItem(name), store), null, 'the bad token is dropped');
    }

    // Pasting the key again gets a fresh token and the board back.
    await page.getByTestId('api-key').fill(API_KEY);
    await page.getByTestId('connect').click();
    await live(page);
    assert.equal(await page.getByTestId('key-error').isVisible(), false);
    const fresh = await page.evaluate((name) => localStorage.getItem(name), store);
    assert.ok(fresh && fresh !== token);
    assert.ok(!JSON.stringify(await everythingStored(page)).includes(API_KEY));
    await page.context().close();
  });
});
