// RippleKV live todo board.
//
// Each day's todos live under one key, `todos-YYYY-MM-DD`, as a JSON array of
// {id, text, priority, status, created}. The page mints a token scoped to `todos-*`
// with the API key, then works over a token WebSocket:
//   - it subscribes in-band to the visible days, and after a drop resumes with `since`
//     (the last revision it saw), so changes made while it was away are replayed;
//   - every edit is an atomic JSON Patch. Adding appends to the array; edits and deletes
//     first `test` that the todo is still at the index they target, so two people
//     editing the same day at once never overwrite each other.

const KEY_STORE = 'ripplekv.apiKey';
const TOKEN_STORE = 'ripplekv.token';
const THEME_STORE = 'ripplekv.theme';
const PRIORITIES = ['low', 'medium', 'high'];
const STATUSES = ['not set', 'in progress', 'done'];
const REQUEST_TIMEOUT_MS = 10_000;
const MAX_PATCH_ATTEMPTS = 6;

const $ = (id) => document.getElementById(id);

// ---------------------------------------------------------------- days

function isoDate(date) {
  const pad = (n) => String(n).padStart(2, '0');
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`;
}

/** Yesterday, today and the next five days. */
function visibleDays() {
  const today = new Date();
  today.setHours(12, 0, 0, 0);
  return Array.from({ length: 7 }, (_, i) => {
    const date = new Date(today);
    date.setDate(today.getDate() + i - 1);
    const iso = isoDate(date);
    const name = i === 0 ? 'Yesterday' : i === 1 ? 'Today' : i === 2 ? 'Tomorrow'
      : date.toLocaleDateString(undefined, { weekday: 'long' });
    const label = date.toLocaleDateString(undefined, { day: 'numeric', month: 'short' });
    return { key: `todos-${iso}`, iso, name, label, today: i === 1 };
  });
}

// ---------------------------------------------------------------- state

const state = {
  apiKey: localStorage.getItem(KEY_STORE),
  token: localStorage.getItem(TOKEN_STORE),
  days: visibleDays(),
  /** key -> { items: [], revision } ; revision 0 means the key does not exist. */
  todos: new Map(),
  /** Highest revision applied; resuming subscribes with `since` this. */
  lastRevision: 0,
  socket: null,
  pending: new Map(),
  nextMessageId: 1,
  attempt: 0,
  everConnected: false,
  editing: null,
  /** Todo ids already shown, so only new arrivals are highlighted. */
  shown: new Set(),
  /** day key -> { text, priority } not yet added: survives re-renders caused by others. */
  drafts: new Map(),
};
for (const day of state.days) state.todos.set(day.key, { items: [], revision: 0 });

// ---------------------------------------------------------------- connection

function setStatus(kind, text) {
  const status = $('status');
  status.dataset.state = kind;
  status.querySelector('b').textContent = text;
}

function showBanner(text, kind = 'error') {
  const banner = $('banner');
  banner.textContent = text;
  banner.dataset.kind = kind;
  banner.hidden = !text;
}

class KeyRefused extends Error {}

/** Mints a token that may touch only `todos-*` keys. */
async function mintToken() {
  let response;
  try {
    response = await fetch('/token/websocket', {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-api-key': state.apiKey },
      body: JSON.stringify({ accessPattern: '^todos-*$' }),
    });
  } catch {
    throw new Error('Cannot reach the RippleKV server. Is it running? Retrying…');
  }
  if (response.status === 401) throw new KeyRefused('The server refused that API key (401). Use the key printed in the server log when it started.');
  if (!response.ok) throw new Error(`The server could not issue a token (HTTP ${response.status}). Retrying…`);
  const { token } = await response.json();
  state.token = token;
  localStorage.setItem(TOKEN_STORE, token);
}

function openSocket() {
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(`${scheme}://${location.host}/ws?token=${state.token}`);
    socket.onopen = () => resolve(socket);
    socket.onerror = () => reject(new Error('connection failed'));
  });
}

async function connect() {
  setStatus('connecting', state.everConnected ? 'Reconnecting…' : 'Connecting…');
  try {
    if (!state.token) await mintToken();
    let socket;
    try {
      socket = await openSocket();
    } catch {
      // A browser cannot see why an upgrade failed: the token may have expired, or the
      // server may be down. Minting a new token tells the two apart.
      await mintToken();
      socket = await openSocket();
    }
    state.socket = socket;
    socket.onmessage = (event) => receive(JSON.parse(event.data));
    socket.onclose = () => disconnected();
    socket.onerror = () => {};
    state.attempt = 0;
    state.everConnected = true;
    showBanner('');
    await subscribe();
    setStatus('live', 'Live');
  } catch (error) {
    if (error instanceof KeyRefused) {
      forgetKey(error.message);
      return;
    }
    showBanner(error.message || 'Connection failed. Retrying…', 'info');
    retryLater();
  }
}

function disconnected() {
  state.socket = null;
  for (const { reject } of state.pending.values()) reject(new Error('disconnected'));
  state.pending.clear();
  if (!state.apiKey) return;
  setStatus('connecting', 'Reconnecting…');
  retryLater();
}

function retryLater() {
  const delay = Math.min(5000, 250 * 2 ** state.attempt) * (0.75 + Math.random() * 0.5);
  state.attempt = Math.min(state.attempt + 1, 8);
  setTimeout(() => { if (!state.socket && state.apiKey) connect(); }, delay);
}

/** Subscribes to the visible days: from scratch the first time, with `since` after. */
async function subscribe() {
  const patterns = state.days.map((day) => day.key);
  const resuming = state.lastRevision > 0;
  const reply = await request({ op: 'subscribe', patterns, ...(resuming ? { since: state.lastRevision } : {}) });
  if (!resuming) {
    state.lastRevision = Math.max(state.lastRevision, reply.revision);
    await reload();
  }
}

/** Reads every visible day in one RANGE. */
async function reload() {
  const first = state.days[0].key;
  const last = state.days[state.days.length - 1].key;
  const page = await request({ op: 'range', key: first, endKey: last, limit: 1000 });
  const found = new Map(page.records.map((record) => [record.key, record]));
  for (const day of state.days) {
    const record = found.get(day.key);
    apply(day.key, record ? record.value : null, record ? record.revision : 0, true);
  }
  render();
}

function request(body) {
  return new Promise((resolve, reject) => {
    if (!state.socket || state.socket.readyState !== WebSocket.OPEN) {
      reject(new Error('Not connected; your change was not saved. Try again in a moment.'));
      return;
    }
    const messageId = state.nextMessageId++;
    const timer = setTimeout(() => {
      state.pending.delete(messageId);
      reject(new Error('The server did not answer in time.'));
    }, REQUEST_TIMEOUT_MS);
    state.pending.set(messageId, {
      resolve: (reply) => { clearTimeout(timer); resolve(reply); },
      reject: (error) => { clearTimeout(timer); reject(error); },
    });
    state.socket.send(JSON.stringify({ ...body, messageId }));
  });
}

function receive(message) {
  if (message.type === 'notification') {
    state.lastRevision = Math.max(state.lastRevision, message.revision ?? 0);
    if (!state.todos.has(message.key)) return;
    if (message.op === 'patch') {
      // Another app merged or appended text: the notification carries only its patch,
      // so read the whole value.
      request({ op: 'get', key: message.key })
        .then((fresh) => apply(message.key, fresh.value, fresh.revision, true))
        .catch(() => apply(message.key, null, 0, true))
        .finally(render);
      return;
    }
    apply(message.key, message.value, message.revision, false);
    render();
    return;
  }
  if (message.type === 'resync') {
    // Away too long for a replay: read everything again.
    state.lastRevision = message.revision;
    reload().catch(() => {});
    return;
  }
  const waiting = state.pending.get(message.messageId);
  if (!waiting) return;
  state.pending.delete(message.messageId);
  if (message.code === 200) waiting.resolve(message);
  else waiting.reject(Object.assign(new Error(message.error || `Error ${message.code}`), { code: message.code }));
}

/** Applies a day's value if it is newer than what the page has. */
function apply(key, value, revision, fromRead) {
  const day = state.todos.get(key);
  if (!fromRead && revision && revision <= day.revision) return;
  if (fromRead && revision < day.revision) return;
  let items = [];
  if (value) {
    try {
      const parsed = JSON.parse(value);
      if (Array.isArray(parsed)) items = parsed.filter((item) => item && typeof item === 'object');
    } catch { /* not a todo list: shown as empty */ }
  }
  day.items = items;
  day.revision = value === null ? 0 : revision;
}

// ---------------------------------------------------------------- edits

async function reportFailure(action, error) {
  showBanner(`Could not ${action}: ${error.message}`);
}

async function ensureDayExists(key) {
  if (state.todos.get(key).revision > 0) return;
  try {
    await request({ op: 'set', key, value: '[]', ifRevision: 0 });
  } catch (error) {
    if (error.code !== 409) throw error; // someone else created it first: fine
  }
}

async function addTodo(key, text, priority) {
  const todo = { id: crypto.randomUUID(), text, priority, status: 'not set', created: new Date().toISOString() };
  try {
    await ensureDayExists(key);
    await request({ op: 'jsonpatch', key, value: JSON.stringify([{ op: 'add', path: '/-', value: todo }]) });
  } catch (error) {
    reportFailure('add the todo', error);
  }
}

/** Runs a JSON Patch built against the todo's current index; retries if it moved. */
async function patchTodo(key, id, operations, action) {
  for (let attempt = 0; attempt < MAX_PATCH_ATTEMPTS; attempt++) {
    const index = state.todos.get(key).items.findIndex((todo) => todo.id === id);
    if (index < 0) return; // already gone
    const patch = [{ op: 'test', path: `/${index}/id`, value: id }, ...operations(index)];
    try {
      await request({ op: 'jsonpatch', key, value: JSON.stringify(patch) });
      return;
    } catch (error) {
      if (error.code !== 400) return reportFailure(action, error);
      // The list changed under us: read it again and retry at the new index.
      const fresh = await request({ op: 'get', key }).catch(() => null);
      apply(key, fresh ? fresh.value : null, fresh ? fresh.revision : 0, true);
    }
  }
  reportFailure(action, new Error('the list kept changing; please try again'));
}

const updateTodo = (key, id, fields, action) => patchTodo(
  key,
  id,
  (index) => Object.entries(fields).map(([field, value]) => ({ op: 'add', path: `/${index}/${field}`, value })),
  action,
);
const deleteTodo = (key, id) => patchTodo(key, id, (index) => [{ op: 'remove', path: `/${index}` }], 'delete the todo');
const next = (list, value) => list[(list.indexOf(value) + 1) % list.length];

// ---------------------------------------------------------------- rendering

function element(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (name === 'dataset') Object.assign(node.dataset, value);
    else if (name.startsWith('on')) node.addEventListener(name.slice(2), value);
    else if (value !== undefined && value !== null) node[name] = value;
  }
  node.append(...children.filter((child) => child !== null && child !== undefined));
  return node;
}

function renderTodo(day, todo) {
  const priority = PRIORITIES.includes(todo.priority) ? todo.priority : 'medium';
  const status = STATUSES.includes(todo.status) ? todo.status : 'not set';
  const editing = state.editing === todo.id;
  const text = editing
    ? element('input', {
      className: 'text-edit', value: todo.text ?? '', dataset: { testid: 'edit-input' },
      onkeydown: (event) => {
        if (event.key === 'Enter') {
          const value = event.target.value.trim();
          state.editing = null;
          if (value && value !== todo.text) updateTodo(day.key, todo.id, { text: value }, 'edit the todo');
          render();
        } else if (event.key === 'Escape') {
          state.editing = null;
          render();
        }
      },
      onblur: () => { if (state.editing === todo.id) { state.editing = null; render(); } },
    })
    : element('div', {
      className: 'text', textContent: todo.text ?? '', title: 'Click to edit', dataset: { testid: 'todo-text' },
      onclick: () => { state.editing = todo.id; render(); },
    });
  // Highlight todos that just arrived (from anyone), but not on every re-render.
  const arrived = state.shown.size > 0 && !state.shown.has(todo.id);
  state.shown.add(todo.id);
  return element('li', { className: arrived ? 'todo arrived' : 'todo', dataset: { id: todo.id, priority, status, testid: 'todo' } },
    element('button', {
      className: 'check', type: 'button', title: `Status: ${status} (click to advance)`, dataset: { testid: 'todo-status' },
      onclick: () => updateTodo(day.key, todo.id, { status: next(STATUSES, status) }, 'change the status'),
    }),
    element('div', {},
      text,
      element('div', { className: 'meta' },
        element('button', {
          className: 'pill', type: 'button', textContent: priority, title: 'Priority (click to change)', dataset: { testid: 'todo-priority' },
          onclick: () => updateTodo(day.key, todo.id, { priority: next(PRIORITIES, priority) }, 'change the priority'),
        }),
        element('span', { className: 'state', textContent: status === 'not set' ? '' : status }))),
    element('button', {
      className: 'remove', type: 'button', textContent: '×', title: 'Delete', dataset: { testid: 'todo-delete' },
      onclick: () => deleteTodo(day.key, todo.id),
    }));
}

function renderDay(day) {
  const { items } = state.todos.get(day.key);
  // What was typed or chosen but not added yet lives in state, not only in the
  // elements, so another person's change (which re-renders the board) cannot erase it.
  const draft = state.drafts.get(day.key) ?? { text: '', priority: 'medium' };
  const saveDraft = () => state.drafts.set(day.key, { text: input.value, priority: priority.value });
  const input = element('input', {
    placeholder: 'Add a todo…', maxLength: 500, value: draft.text, dataset: { testid: 'add-input' }, oninput: saveDraft,
  });
  const priority = element('select', { title: 'Priority', dataset: { testid: 'add-priority' }, onchange: saveDraft },
    ...PRIORITIES.map((p) => element('option', { value: p, textContent: p, selected: p === draft.priority })));
  const form = element('form', {
    className: 'add',
    onsubmit: (event) => {
      event.preventDefault();
      const text = input.value.trim();
      if (!text) return;
      input.value = '';
      state.drafts.delete(day.key);
      addTodo(day.key, text, priority.value);
    },
  }, element('div', { className: 'row' }, input, element('button', { type: 'submit', textContent: 'Add', dataset: { testid: 'add-button' } })), priority);
  return element('section', { className: `day${day.today ? ' today' : ''}`, dataset: { day: day.iso, testid: `day-${day.iso}` } },
    element('header', {},
      element('h2', {}, day.name, element('span', { className: 'date', textContent: day.label })),
      element('span', { className: 'count', textContent: String(items.length), dataset: { testid: 'count' } })),
    form,
    renderList(day));
}

/** The todos of a day, or a note that there are none. Always a section's last child. */
function renderList(day) {
  const { items } = state.todos.get(day.key);
  return items.length
    ? element('ul', { className: 'list' }, ...items.map((todo) => renderTodo(day, todo)))
    : element('p', { className: 'empty', textContent: 'Nothing planned yet' });
}

function render() {
  const board = $('board');
  const focused = document.activeElement;
  const editValue = focused && focused.dataset.testid === 'edit-input' ? focused.value : null;
  const sections = [...board.querySelectorAll('section.day')];
  const sameDays = sections.length === state.days.length
    && sections.every((section, i) => section.dataset.day === state.days[i].iso);
  if (sameDays) {
    // Only counts and lists change: the add forms stay the same elements, so someone
    // typing, choosing a priority or pressing Add is not disturbed by others' changes.
    state.days.forEach((day, i) => {
      sections[i].querySelector('[data-testid=count]').textContent = String(state.todos.get(day.key).items.length);
      sections[i].lastElementChild.replaceWith(renderList(day));
    });
  } else {
    board.replaceChildren(...state.days.map(renderDay));
  }
  const edit = board.querySelector('[data-testid="edit-input"]');
  if (edit) {
    if (editValue !== null) edit.value = editValue;
    edit.focus();
  }
}

// ---------------------------------------------------------------- key, theme, start

function forgetKey(message) {
  state.apiKey = null;
  state.token = null;
  localStorage.removeItem(KEY_STORE);
  localStorage.removeItem(TOKEN_STORE);
  if (state.socket) state.socket.close();
  showBanner('');
  setStatus('offline', 'Offline');
  $('board').hidden = true;
  $('change-key').hidden = true;
  $('onboarding').hidden = false;
  $('key-error').hidden = !message;
  $('key-error').textContent = message || '';
  $('api-key').focus();
}

function start() {
  $('onboarding').hidden = true;
  $('board').hidden = false;
  $('change-key').hidden = false;
  render();
  connect();
}

function setTheme(theme) {
  document.documentElement.dataset.theme = theme;
  localStorage.setItem(THEME_STORE, theme);
  $('theme').textContent = theme === 'dark' ? 'Light theme' : 'Dark theme';
}

$('theme').addEventListener('click', () => setTheme(document.documentElement.dataset.theme === 'dark' ? 'light' : 'dark'));
$('theme').textContent = document.documentElement.dataset.theme === 'dark' ? 'Light theme' : 'Dark theme';
$('change-key').addEventListener('click', () => forgetKey(''));
$('key-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const key = $('api-key').value.trim();
  if (!key) return;
  state.apiKey = key;
  state.token = null;
  $('key-error').hidden = true;
  try {
    await mintToken();
  } catch (error) {
    if (error instanceof KeyRefused) return forgetKey(error.message);
    $('key-error').textContent = error.message;
    $('key-error').hidden = false;
    return;
  }
  localStorage.setItem(KEY_STORE, key);
  start();
});

if (state.apiKey) start();
else forgetKey('');
