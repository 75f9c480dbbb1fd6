// RippleKV live todo board.
//
// Each day's todos live under one key, `todos-YYYY-MM-DD`, as a JSON array of
// {id, text, priority, status, created}. The API key the user pastes is used once, to
// mint a token scoped to `todos-*`, and then dropped: a browser app must never hold a key
// that can read and write everything. Only the token is kept (it expires, and can reach
// only todos), and when it expires or is refused the page asks for the key again. Then
// it works over a token WebSocket:
//   - it subscribes in-band to the visible days, and after a drop resumes with `since`
//     (the last revision it saw), so changes made while it was away are replayed;
//   - every edit is an atomic JSON Patch. Adding appends to the array; edits and deletes
//     first `test` that the todo is still at the index they target, so two people
//     editing the same day at once never overwrite each other;
//   - a todo being added stays in its form until the server has acknowledged it, and is
//     sent again (once, under the same id) when the connection is back.

const TOKEN_STORE = 'ripplekv.token';
/** Where earlier versions of this page kept the API key itself; erased on sight. */
const LEGACY_KEY_STORE = 'ripplekv.apiKey';
const THEME_STORE = 'ripplekv.theme';
const PRIORITIES = ['low', 'medium', 'high'];
const STATUSES = ['not set', 'in progress', 'done'];
const REQUEST_TIMEOUT_MS = 10_000;
const MAX_PATCH_ATTEMPTS = 6;
/**
 * Failed upgrades in a row, with the server answering plain HTTP, after which the token
 * is taken as refused. More than one, because a server that is just starting or
 * stopping can answer one probe and still refuse or drop the socket.
 */
const REFUSALS_BEFORE_ASKING = 3;
const EXPIRED_MESSAGE = 'Your sign-in has expired. Paste the API key again to reconnect: the page keeps only a short-lived token, never the key.';
const REFUSED_MESSAGE = 'The server no longer accepts this browser\'s sign-in (its token was refused). Paste the API key again to reconnect.';

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
    // For columns too narrow for "Wednesday" and its date on one line.
    const short = i < 3 ? name : date.toLocaleDateString(undefined, { weekday: 'short' });
    const label = date.toLocaleDateString(undefined, { day: 'numeric', month: 'short' });
    return { key: `todos-${iso}`, iso, name, short, label, today: i === 1 };
  });
}

// ---------------------------------------------------------------- state

localStorage.removeItem(LEGACY_KEY_STORE);

const state = {
  /** The only credential the page keeps: scoped to `todos-*`, and it expires. */
  token: localStorage.getItem(TOKEN_STORE),
  /** Bumped on every sign-in and sign-out, so a connection attempt begun before is dropped. */
  session: 0,
  connecting: false,
  /** Failed upgrades in a row while the server answered HTTP: see REFUSALS_BEFORE_ASKING. */
  refusals: 0,
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
  /**
   * day key -> the add form's content and progress, kept here rather than only in the
   * elements so that re-renders caused by others cannot erase it:
   * { text, priority, phase: 'idle' | 'sending' | 'waiting' | 'failed', note,
   *   todo: { id, created } once submitted, maybeSaved: an attempt was sent unanswered,
   *   attempts, slow: the current attempt is taking long enough to say so }.
   */
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

/**
 * When a token stops being accepted, in ms since the epoch, or null if it cannot be
 * read. The server's tokens are base64url(JSON claims || 32-byte MAC), the expiry being
 * the claim `e`; reading it needs no secret (only checking the MAC does).
 */
function tokenExpiry(token) {
  try {
    const binary = atob(token.replace(/-/g, '+').replace(/_/g, '/'));
    const bytes = Uint8Array.from(binary, (char) => char.charCodeAt(0));
    const claims = JSON.parse(new TextDecoder().decode(bytes.subarray(0, bytes.length - 32)));
    return Number.isFinite(claims.e) ? claims.e : null;
  } catch {
    return null;
  }
}

function tokenExpired() {
  const expiry = tokenExpiry(state.token);
  // An unreadable token is not judged here: the server decides when the page connects.
  return expiry !== null && expiry <= Date.now();
}

/** Mints a token that may touch only `todos-*` keys. The key is not kept anywhere. */
async function mintToken(apiKey) {
  let response;
  try {
    response = await fetch('/token/websocket', {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-api-key': apiKey },
      body: JSON.stringify({ accessPattern: '^todos-*$' }),
    });
  } catch {
    throw new Error('Cannot reach the RippleKV server. Is it running? Then press Connect again.');
  }
  if (response.status === 401) throw new KeyRefused('The server refused that API key (401). Use the key printed in the server log when it started.');
  if (!response.ok) throw new Error(`The server could not issue a token (HTTP ${response.status}). Try again in a moment.`);
  const { token } = await response.json();
  if (typeof token !== 'string' || !token) throw new Error('The server sent no token. Try again in a moment.');
  return token;
}

function openSocket() {
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(`${scheme}://${location.host}/ws?token=${encodeURIComponent(state.token)}`);
    socket.onopen = () => resolve(socket);
    socket.onerror = () => reject(new Error('connection failed'));
  });
}

/**
 * Whether the server answers plain HTTP. A browser is not told why a WebSocket upgrade
 * failed, so this tells "the server is down" (keep the token, retry) from "the server is
 * up but refused the socket" (most likely a 403 for the token).
 */
async function serverAnswers() {
  try {
    const response = await fetch('/health', { cache: 'no-store', signal: AbortSignal.timeout(5000) });
    return response.ok;
  } catch {
    return false;
  }
}

async function connect() {
  if (state.connecting || state.socket) return;
  if (!state.token) return askForKey('');
  if (tokenExpired()) return askForKey(EXPIRED_MESSAGE, 'info');
  const session = state.session;
  state.connecting = true;
  setStatus('connecting', state.everConnected ? 'Reconnecting…' : 'Connecting…');
  let socket;
  try {
    socket = await openSocket();
  } catch {
    const answers = await serverAnswers();
    if (session !== state.session) return; // signed out meanwhile
    state.connecting = false;
    if (!answers) {
      state.refusals = 0;
      showBanner('Cannot reach the RippleKV server. Is it running? Retrying…', 'info');
    } else if (tokenExpired()) {
      return askForKey(EXPIRED_MESSAGE, 'info');
    } else if (++state.refusals >= REFUSALS_BEFORE_ASKING) {
      return askForKey(REFUSED_MESSAGE);
    }
    retryLater();
    return;
  }
  if (session !== state.session) {
    socket.close();
    return;
  }
  state.connecting = false;
  state.socket = socket;
  state.refusals = 0;
  socket.onmessage = (event) => receive(JSON.parse(event.data));
  socket.onclose = () => { if (state.socket === socket) disconnected(); };
  socket.onerror = () => {};
  state.attempt = 0;
  state.everConnected = true;
  showBanner('');
  try {
    await subscribe();
  } catch {
    if (state.socket === socket) {
      showBanner('The server did not answer. Reconnecting…', 'info');
      socket.close(); // starts over through `disconnected`
    }
    return;
  }
  setStatus('live', 'Live');
  retryAdds();
}

/** Forgets the socket; whatever was waiting for an answer on it fails. */
function dropSocket() {
  state.socket = null;
  for (const { reject } of state.pending.values()) reject(new Error('disconnected'));
  state.pending.clear();
}

function disconnected() {
  dropSocket();
  if (!state.token) return;
  setStatus('connecting', 'Reconnecting…');
  retryLater();
}

function retryLater() {
  const delay = Math.min(5000, 250 * 2 ** state.attempt) * (0.75 + Math.random() * 0.5);
  state.attempt = Math.min(state.attempt + 1, 8);
  const session = state.session;
  setTimeout(() => { if (session === state.session && state.token) connect(); }, delay);
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
  if (state.shown.size === 0) {
    // The first read brings what was already there: nothing to highlight as new.
    for (const { items } of state.todos.values()) for (const todo of items) state.shown.add(todo.id);
  }
  render();
}

function request(body) {
  return new Promise((resolve, reject) => {
    if (!state.socket || state.socket.readyState !== WebSocket.OPEN) {
      reject(Object.assign(new Error('Not connected; your change was not saved. Try again in a moment.'), { notSent: true }));
      return;
    }
    const messageId = state.nextMessageId++;
    const timer = setTimeout(() => {
      state.pending.delete(messageId);
      reject(Object.assign(new Error('The server did not answer in time.'), { timedOut: true }));
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

function reportFailure(action, error) {
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

function draftOf(key) {
  if (!state.drafts.has(key)) {
    state.drafts.set(key, { text: '', priority: 'medium', phase: 'idle', note: '', todo: null, maybeSaved: false, attempts: 0, slow: false });
  }
  return state.drafts.get(key);
}

/**
 * Adds the todo in a day's form. Its text stays in the form, which is locked, until the
 * server acknowledges the write; if the connection is down it waits and is sent when the
 * page reconnects. Every attempt appends under the same id, and an attempt after one
 * that went unanswered first checks whether that one was saved, so a todo is added
 * exactly once however often the connection drops.
 */
async function submitAdd(key) {
  const draft = draftOf(key);
  const text = draft.text.trim();
  if (!text || draft.phase === 'sending') return;
  draft.todo ??= { id: crypto.randomUUID(), created: new Date().toISOString() };
  draft.phase = 'sending';
  draft.slow = false;
  const attempt = ++draft.attempts;
  paintAdd(key);
  // Acknowledgements usually arrive at once: say "Saving…" only when one is slow.
  setTimeout(() => {
    if (draft.phase === 'sending' && draft.attempts === attempt) {
      draft.slow = true;
      paintAdd(key);
    }
  }, 400);
  let patchSent = false;
  try {
    if (draft.maybeSaved) {
      const fresh = await request({ op: 'get', key }).catch((error) => {
        if (error.code === 404) return null;
        throw error;
      });
      apply(key, fresh ? fresh.value : null, fresh ? fresh.revision : 0, true);
      render();
      if (state.todos.get(key).items.some((todo) => todo.id === draft.todo.id)) return added(key);
    }
    await ensureDayExists(key);
    const todo = { id: draft.todo.id, text, priority: draft.priority, status: 'not set', created: draft.todo.created };
    const patch = JSON.stringify([{ op: 'add', path: '/-', value: todo }]);
    patchSent = true;
    draft.maybeSaved = true;
    await request({ op: 'jsonpatch', key, value: patch });
    added(key);
  } catch (error) {
    // A patch that never left, or that the server refused, wrote nothing.
    if (patchSent && (error.notSent || error.code !== undefined)) draft.maybeSaved = false;
    if (error.code !== undefined) {
      // Resending as is would be refused again: the user decides.
      draft.phase = 'failed';
      draft.note = `Not saved: ${error.message.replace(/\.$/, '')}. Press Add to try again.`;
    } else {
      draft.phase = 'waiting';
      draft.note = 'Not saved yet: it will be as soon as the server is back.';
      // An unanswered request on a live connection gets no reconnect to retry it.
      if (error.timedOut) setTimeout(() => { if (state.socket) retryAdds(); }, 2000);
    }
    paintAdd(key);
  }
}

function added(key) {
  const draft = draftOf(key);
  Object.assign(draft, { text: '', phase: 'idle', note: '', todo: null, maybeSaved: false });
  paintAdd(key);
}

/** Sends the adds that were waiting for the connection. */
function retryAdds() {
  for (const [key, draft] of state.drafts) {
    if (draft.phase === 'waiting') submitAdd(key);
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
    else if (name === 'role' || name.includes('-')) node.setAttribute(name, value);
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
    ? element('textarea', {
      className: 'text-edit', value: todo.text ?? '', rows: 1, maxLength: 500, dataset: { testid: 'edit-input' },
      onkeydown: (event) => {
        if (event.key === 'Enter') {
          event.preventDefault(); // a todo is one line of text: Enter saves it
          const value = event.target.value.replace(/\s+/g, ' ').trim();
          state.editing = null;
          if (value && value !== todo.text) updateTodo(day.key, todo.id, { text: value }, 'edit the todo');
          render();
        } else if (event.key === 'Escape') {
          state.editing = null;
          render();
        }
      },
      oninput: (event) => fitToText(event.target),
      onblur: () => { if (state.editing === todo.id) { state.editing = null; render(); } },
    })
    // Long texts are clamped to a few lines; the title shows them whole, and so does
    // the editor, which grows to fit.
    : element('div', {
      className: 'text', textContent: todo.text ?? '', title: `${todo.text ?? ''}\n\nClick to edit`, dataset: { testid: 'todo-text' },
      onclick: () => {
        state.editing = todo.id;
        render();
        const edit = $('board').querySelector('[data-testid="edit-input"]');
        edit?.setSelectionRange(edit.value.length, edit.value.length);
      },
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
        element('span', { className: 'state', textContent: status === 'not set' ? '' : status }),
        element('button', {
          className: 'remove', type: 'button', textContent: '×', title: 'Delete', 'aria-label': 'Delete', dataset: { testid: 'todo-delete' },
          onclick: () => deleteTodo(day.key, todo.id),
        }))));
}

function fitToText(textarea) {
  textarea.style.height = 'auto';
  textarea.style.height = `${textarea.scrollHeight + 2}px`;
}

function renderDay(day) {
  const { items } = state.todos.get(day.key);
  return element('section', { className: `day${day.today ? ' today' : ''}`, dataset: { day: day.iso, testid: `day-${day.iso}` } },
    element('header', {},
      element('h2', { title: `${day.name}, ${day.label}` },
        ...(day.short === day.name
          ? [element('span', { className: 'name', textContent: day.name })]
          : [element('span', { className: 'name long', textContent: day.name }), element('span', { className: 'name short', textContent: day.short })]),
        element('span', { className: 'date', textContent: day.label })),
      element('span', { className: 'count', textContent: String(items.length), dataset: { testid: 'count' } })),
    renderAddForm(day),
    renderList(day));
}

function renderAddForm(day) {
  const draft = draftOf(day.key);
  const input = element('input', {
    placeholder: 'Add a todo…', maxLength: 500, value: draft.text, 'aria-label': `New todo for ${day.name}`, dataset: { testid: 'add-input' },
    oninput: () => { draft.text = input.value; if (draft.phase === 'failed') { draft.phase = 'idle'; paintAdd(day.key); } },
  });
  const priority = element('select', {
    title: 'Priority', 'aria-label': 'Priority', dataset: { testid: 'add-priority' },
    onchange: () => { draft.priority = priority.value; },
  }, ...PRIORITIES.map((p) => element('option', { value: p, textContent: p, selected: p === draft.priority })));
  const form = element('form', {
    className: 'add', dataset: { key: day.key },
    onsubmit: (event) => {
      event.preventDefault();
      submitAdd(day.key);
    },
  },
  input,
  element('div', { className: 'row' }, priority, element('button', { type: 'submit', textContent: 'Add', dataset: { testid: 'add-button' } })),
  element('p', { className: 'add-note', role: 'status', dataset: { testid: 'add-note' } }));
  paintAddForm(form, draft);
  return form;
}

function paintAdd(key) {
  const form = $('board').querySelector(`form.add[data-key="${key}"]`);
  if (form) paintAddForm(form, draftOf(key));
}

/** Shows a draft's progress in its form: locked while the todo is on its way. */
function paintAddForm(form, draft) {
  const [input, priority, button, note] = ['input', 'select', 'button', '.add-note'].map((selector) => form.querySelector(selector));
  const locked = draft.phase === 'sending' || draft.phase === 'waiting';
  form.dataset.state = draft.phase;
  form.setAttribute('aria-busy', String(locked));
  input.readOnly = locked;
  priority.disabled = locked;
  button.disabled = locked;
  if (input.value !== draft.text) input.value = draft.text;
  priority.value = draft.priority;
  note.textContent = draft.phase === 'sending' ? (draft.slow ? 'Saving…' : '') : draft.phase === 'idle' ? '' : draft.note;
  note.hidden = !note.textContent;
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
    fitToText(edit);
  }
}

// ---------------------------------------------------------------- key, theme, start

/** Drops the token and shows the sign-in form, with why if `message`. */
function askForKey(message, kind = 'error') {
  state.token = null;
  state.session++;
  state.connecting = false;
  state.refusals = 0;
  localStorage.removeItem(TOKEN_STORE);
  const socket = state.socket;
  if (socket) {
    dropSocket();
    socket.close();
  }
  showBanner('');
  setStatus('offline', 'Offline');
  $('board').hidden = true;
  $('sign-out').hidden = true;
  $('onboarding').hidden = false;
  showKeyMessage(message, kind);
  $('api-key').focus();
}

function showKeyMessage(message, kind = 'error') {
  const box = $('key-error');
  box.dataset.kind = kind;
  box.textContent = message || '';
  box.hidden = !message;
}

function start() {
  $('onboarding').hidden = true;
  $('board').hidden = false;
  $('sign-out').hidden = false;
  render();
  revealToday();
  connect();
}

/** Scrolls the board sideways, if it has to, so today's column is wholly in view. */
function revealToday() {
  const board = $('board');
  const today = board.querySelector('.day.today');
  if (!today) return;
  const view = board.getBoundingClientRect();
  const box = today.getBoundingClientRect();
  if (box.left >= view.left && box.right <= view.right) return;
  board.scrollLeft += (box.left + box.right) / 2 - (view.left + view.right) / 2;
}

function setTheme(theme) {
  document.documentElement.dataset.theme = theme;
  localStorage.setItem(THEME_STORE, theme);
  $('theme').textContent = theme === 'dark' ? 'Light theme' : 'Dark theme';
}

$('theme').addEventListener('click', () => setTheme(document.documentElement.dataset.theme === 'dark' ? 'light' : 'dark'));
$('theme').textContent = document.documentElement.dataset.theme === 'dark' ? 'Light theme' : 'Dark theme';
$('sign-out').addEventListener('click', () => askForKey(''));
$('key-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const input = $('api-key');
  const button = $('connect');
  if (!input.value.trim() || button.disabled) return;
  showKeyMessage('');
  button.disabled = true;
  let token;
  try {
    // Read straight from the field and passed along, so the key lives in no variable
    // that outlasts this request.
    token = await mintToken(input.value.trim());
  } catch (error) {
    showKeyMessage(error.message, error instanceof KeyRefused ? 'error' : 'info');
    input.focus();
    return;
  } finally {
    button.disabled = false;
  }
  input.value = '';
  state.token = token;
  state.session++;
  localStorage.setItem(TOKEN_STORE, token);
  start();
});

if (state.token) start();
else askForKey('');
