// The axme dashboard: plain JavaScript, no framework, no build step, served from the binary.
//
// One API key, kept in sessionStorage, goes with every call as `x-api-key`; a 401 anywhere
// forgets it and returns to the sign-in form. One Server-Sent Events connection to the firehose
// (`GET /v1/events/stream`) keeps every view live. EventSource cannot send headers, so the stream
// is read with fetch() and parsed here; it resumes from the last event id it saw. Data from the
// server is only ever put into the page as text (textContent), never as HTML.
'use strict';

const KEY_ITEM = 'axme.apiKey';
const OWNER_ITEM = 'axme.owner';
const PAGE = 50;

const $ = (sel, root = document) => root.querySelector(sel);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

let apiKey = sessionStorage.getItem(KEY_ITEM);

// --- API calls -------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** Calls the API with the key; resolves to the JSON body, rejects with an ApiError. */
async function api(path, {method = 'GET', body, headers = {}} = {}) {
  const h = {'x-api-key': apiKey || '', accept: 'application/json', ...headers};
  if (body !== undefined) h['content-type'] = 'application/json';
  let r;
  try {
    r = await fetch(path, {method, headers: h, cache: 'no-store',
      body: body === undefined ? undefined : JSON.stringify(body)});
  } catch (e) {
    throw new ApiError(0, 'network', `The server could not be reached (${e.message}).`);
  }
  let json = null;
  try { json = await r.json(); } catch { /* not JSON: the status says enough */ }
  const message = (json && json.error && json.error.message) || `${r.status} ${r.statusText}`;
  if (r.status === 401) {
    signOut(`The server refused the API key (401): ${message}`);
  }
  if (!r.ok) throw new ApiError(r.status, json && json.error && json.error.code, message);
  return json;
}

/** Puts a message in a message line; `kind` is 'error' or 'ok' (styles only), '' clears it. */
function say(msgEl, text, kind = 'error') {
  msgEl.textContent = text;
  msgEl.dataset.kind = kind;
}

/** Shows an error in a view's message line (401s already went back to the sign-in form). */
function fail(msgEl, what, e) {
  if (e instanceof ApiError && e.status === 401) return;
  if (msgEl) say(msgEl, `${what} failed: ${e.message}`);
}

/** Runs `fn` at most once at a time; calls made meanwhile fold into one more run after it,
 * at least `gap` ms later. */
function coalesce(fn, gap = 0) {
  let running = null;
  let again = false;
  return function run() {
    if (running) { again = true; return running; }
    running = (async () => {
      try {
        do {
          again = false;
          await fn();
          if (again && gap) await sleep(gap);
        } while (again);
      } finally { running = null; }
    })();
    return running;
  };
}

// --- Small DOM helpers --------------------------------------------------------------------------

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(c);
  return e;
}

function fromTemplate(id) {
  return document.getElementById(id).content.cloneNode(true);
}

// Ids are time-ordered (UUIDv7, msg_<v7>): their heads look alike, their tails tell them apart.
const short = (id) => (id ? `…${String(id).slice(-8)}` : '');

function time(iso) {
  if (!iso) return el('span', {text: '—'});
  const d = new Date(iso);
  return el('time', {datetime: iso, title: iso, text: isNaN(d) ? iso : d.toLocaleString()});
}

function statusBadge(status, reason) {
  const text = reason ? `${status} (${reason})` : status;
  return el('span', {class: `st st-${String(status).toLowerCase()}`, text});
}

function intentLink(id) {
  return el('a', {href: `#/intents/${encodeURIComponent(id)}`, title: id, class: 'mono',
    'aria-label': `Intent ${id}`, text: short(id)});
}

function json(v) {
  return JSON.stringify(v, null, 2);
}

function fill(root, obj) {
  for (const node of root.querySelectorAll('[data-f]')) {
    const k = node.dataset.f;
    if (!(k in obj)) continue;
    const v = obj[k];
    node.replaceChildren(v instanceof Node ? v : document.createTextNode(v == null ? '—' : String(v)));
  }
}

/** Normalizes an address the way the server does: a bare `team/worker` means `agent://team/worker`. */
const address = (s) => (s && !s.includes('://') ? `agent://${s}` : s);

// --- Announcements for screen readers -----------------------------------------------------------

const announcements = [];
let announceTimer = null;

/** Queues a short sentence for the polite live region; bursts are summed up in one message. */
function announce(text) {
  announcements.push(text);
  if (announceTimer) return;
  announceTimer = setTimeout(() => {
    const n = announcements.length;
    const msg = n > 3 ? `${announcements.slice(0, 2).join('. ')}. And ${n - 2} more changes.`
      : announcements.join('. ');
    announcements.length = 0;
    announceTimer = null;
    $('#announce').textContent = msg;
  }, 400);
}

// --- The firehose -------------------------------------------------------------------------------

const stream = {generation: 0, abort: null, cursor: null, retryMs: 2000, failures: 0};

function setConn(state, text) {
  const c = $('#conn');
  c.hidden = false;
  c.dataset.state = state;
  $('#conn-text').textContent = text;
}

function stopStream() {
  stream.generation++;
  if (stream.abort) stream.abort.abort();
  stream.abort = null;
}

function startStream() {
  stopStream();
  stream.cursor = null;
  stream.failures = 0;
  runStream(stream.generation);
}

/** Keeps one firehose connection open while `generation` is current, resuming from the cursor. */
async function runStream(generation) {
  while (generation === stream.generation) {
    const ctl = new AbortController();
    stream.abort = ctl;
    let problem = null;
    try {
      setConn('connecting', 'Connecting…');
      // Without a cursor yet, ask from beyond the end of the log: the server answers with
      // `event: reset` carrying the current end, and goes on live from there.
      const since = stream.cursor === null ? Number.MAX_SAFE_INTEGER : stream.cursor;
      const r = await fetch(`/v1/events/stream?since=${since}`, {
        headers: {'x-api-key': apiKey || '', accept: 'text/event-stream'},
        cache: 'no-store', signal: ctl.signal,
      });
      if (r.status === 401) {
        signOut('The server refused the API key (401) for the live stream.');
        return;
      }
      if (!r.ok || !r.body) throw new Error(`the stream answered ${r.status}`);
      stream.failures = 0;
      setConn('live', 'Live');
      await readEvents(r.body, (frame) => {
        if (generation === stream.generation) onFrame(frame);
      });
    } catch (e) {
      if (generation !== stream.generation) return;
      stream.failures++;
      problem = e.message;
    }
    if (generation !== stream.generation) return;
    const delay = stream.failures
      ? Math.min(30000, stream.retryMs * 2 ** Math.min(stream.failures - 1, 5))
      : stream.retryMs;
    setConn('down', `${problem ? `Disconnected (${problem})` : 'Disconnected'}; retrying in ${Math.round(delay / 1000)} s`);
    await sleep(delay);
  }
}

/** Reads an SSE body to its end, calling `dispatch({id, event, data})` for each message. */
async function readEvents(body, dispatch) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = '';
  let data = [];
  let event = '';
  let id = null;
  for (;;) {
    const {value, done} = await reader.read();
    if (done) return;
    buf += value;
    // A trailing CR may be the first half of a CRLF: keep it for the next chunk.
    const held = buf.endsWith('\r') ? '\r' : '';
    const lines = (held ? buf.slice(0, -1) : buf).split(/\r\n|\r|\n/);
    buf = lines.pop() + held;
    for (const line of lines) {
      if (line === '') {
        if (data.length) dispatch({id, event: event || 'message', data: data.join('\n')});
        data = [];
        event = '';
        id = null;
        continue;
      }
      if (line.startsWith(':')) continue;
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      let val = colon < 0 ? '' : line.slice(colon + 1);
      if (val.startsWith(' ')) val = val.slice(1);
      if (field === 'data') data.push(val);
      else if (field === 'event') event = val;
      else if (field === 'id' && !val.includes('\0')) id = val;
      else if (field === 'retry' && /^\d+$/.test(val)) stream.retryMs = Number(val);
    }
  }
}

function onFrame(frame) {
  let data;
  try { data = JSON.parse(frame.data); } catch { return; }
  if (frame.event === 'reset') {
    // The cursor is ours from now on; what the views show may predate it, so they reload.
    stream.cursor = data.latest;
    if (view) view.reload();
    return;
  }
  if (frame.event === 'error') {
    setConn('down', `Stream error: ${data.message || data.code}`);
    return;
  }
  if (!frame.event.startsWith('intent.')) return;
  if (frame.id !== null && /^\d+$/.test(frame.id)) stream.cursor = Number(frame.id);
  if (view && view.onEvent) view.onEvent(data);
}

// --- Views ---------------------------------------------------------------------------------------

/** The view on screen: {reload(), onEvent?(event)}; replaced on every navigation. */
let view = null;

function mount(templateId) {
  const root = $('#view');
  root.replaceChildren(fromTemplate(templateId));
  return root;
}

function rows(root, name = 'rows') {
  return root.querySelector(`[data-r="${name}"]`);
}

// Intents: the newest first, kept live.
function intentsView() {
  const root = mount('t-intents');
  const form = rows(root, 'filters');
  const body = rows(root);
  const msg = rows(root, 'msg');
  const more = rows(root, 'more');
  const filter = {...intentsView.filter};
  const fields = form.elements;
  fields.status.value = filter.status;
  fields.agent.value = filter.agent;
  fields.role.value = filter.role;
  const items = new Map();
  const fetching = new Set();
  let next = null;

  const matches = (it) => (!filter.status || it.status === filter.status)
    && (!filter.agent || it[filter.role] === address(filter.agent));

  function row(it) {
    return el('tr', {'data-intent-id': it.intent_id, 'data-status': it.status},
      el('td', {}, intentLink(it.intent_id)),
      el('td', {text: it.intent_type}),
      el('td', {class: 'route'}, el('span', {text: it.from_agent}), ' → ', el('span', {text: it.to_agent})),
      el('td', {}, statusBadge(it.status, it.waiting_reason)),
      el('td', {}, time(it.updated_at)));
  }

  function put(it, where) {
    const prev = items.get(it.intent_id);
    const prevRow = prev && prev.row;
    items.set(it.intent_id, it);
    const tr = row(it);
    it.row = tr;
    if (prevRow && prevRow.isConnected) prevRow.replaceWith(tr);
    else if (where === 'end') body.append(tr);
    else {
      // Newest first: before the first row not created after this one.
      const before = [...body.rows].find((r) => {
        const o = items.get(r.dataset.intentId);
        return o && o.created_at <= it.created_at;
      });
      body.insertBefore(tr, before || null);
    }
    rows(root, 'empty').hidden = true;
    return tr;
  }

  function drop(id) {
    const it = items.get(id);
    if (it && it.row) it.row.remove();
    items.delete(id);
    rows(root, 'empty').hidden = items.size > 0;
  }

  async function load(append) {
    const q = new URLSearchParams({limit: String(PAGE)});
    if (filter.status) q.set('status', filter.status);
    if (filter.agent) q.set(filter.role, filter.agent);
    if (append && next) q.set('cursor', next);
    try {
      const r = await api(`/v1/intents?${q}`);
      if (view !== self) return;
      say(msg, '');
      if (!append) {
        items.clear();
        body.replaceChildren();
      }
      for (const it of r.intents) put(it, 'end');
      next = r.next_cursor;
      more.hidden = !next;
      rows(root, 'empty').hidden = items.size > 0;
    } catch (e) { fail(msg, 'Loading intents', e); }
  }

  async function fetchNew(id) {
    if (fetching.has(id)) return;
    fetching.add(id);
    try {
      const r = await api(`/v1/intents/${encodeURIComponent(id)}`);
      if (view !== self || items.has(id) || !matches(r.intent)) return;
      put(r.intent).classList.add('fresh');
      announce(`New intent ${short(id)}, ${r.intent.intent_type}, ${r.intent.status}`);
    } catch (e) { fail(msg, 'Loading a new intent', e); } finally { fetching.delete(id); }
  }

  form.addEventListener('submit', (e) => {
    e.preventDefault();
    filter.status = fields.status.value;
    filter.agent = fields.agent.value.trim();
    filter.role = fields.role.value;
    intentsView.filter = {...filter};
    load(false);
  });
  form.addEventListener('reset', () => {
    setTimeout(() => form.requestSubmit(), 0);
  });
  more.addEventListener('click', () => load(true));

  const self = {
    reload: () => load(false),
    onEvent(e) {
      const it = items.get(e.intent_id);
      if (it) {
        if (e.seq <= it.last_seq) return;
        Object.assign(it, {status: e.status, waiting_reason: e.waiting_reason || undefined,
          updated_at: e.at, last_seq: e.seq});
        if (!matches(it)) return drop(it.intent_id);
        put(it).classList.add('fresh');
        if (e.event_type !== 'intent.created') announce(`Intent ${short(it.intent_id)} is ${e.status}`);
      } else if (filter.status ? e.status === filter.status : e.event_type === 'intent.created') {
        // Not on screen: a new intent, or one that just entered the filtered status.
        if (fetching.size < 20) fetchNew(e.intent_id);
        else coalescedReload();
      }
    },
  };
  const coalescedReload = coalesce(() => load(false), 1000);
  load(false);
  return self;
}
intentsView.filter = {status: '', agent: '', role: 'to_agent'};

/** Every event of an intent, following pages until one comes back empty. */
async function allEvents(id, since = 0) {
  const out = [];
  for (;;) {
    const r = await api(`/v1/intents/${encodeURIComponent(id)}/events?since=${since}`);
    if (!r.events.length) return out;
    out.push(...r.events);
    since = r.events[r.events.length - 1].seq;
  }
}

// One intent: its facts and its timeline, kept live.
function timelineView(id) {
  const root = mount('t-timeline');
  const msg = rows(root, 'msg');
  const list = rows(root, 'events');
  const deliveries = deliveryTable(rows(root, 'deliveries'), msg, {
    refresh: () => view === self && refreshDeliveries(),
  });
  let lastSeq = 0;

  function showIntent(it) {
    fill(root, {
      intent_id: it.intent_id, status: statusBadge(it.status, it.waiting_reason),
      intent_type: it.intent_type, from_agent: it.from_agent, to_agent: it.to_agent,
      created_at: time(it.created_at), updated_at: time(it.updated_at),
      correlation_id: it.correlation_id, deadline_at: it.deadline_at ? time(it.deadline_at) : null,
      payload: json(it.payload), human_task: json(it.human_task), result: json(it.result),
      error: json(it.error),
    });
    showAttachments(rows(root, 'attachments'), it);
    rows(root, 'human').hidden = !it.human_task;
    rows(root, 'result').hidden = it.result === undefined;
    rows(root, 'error').hidden = it.error === undefined;
    if (it.to_agent === WORKFLOW) refreshWorkflow();
    document.title = `Intent ${short(it.intent_id)} · axme`;
  }

  function eventItem(e) {
    const details = e.details && Object.keys(e.details).length
      ? el('details', {}, el('summary', {text: 'Details'}), el('pre', {text: json(e.details)})) : null;
    return el('li', {'data-seq': e.seq},
      el('span', {class: 'seq', text: `#${e.seq}`}), ' ',
      el('strong', {text: e.event_type}), ' ', statusBadge(e.status, e.waiting_reason), ' ',
      time(e.at),
      el('span', {class: 'actor', text: ` by ${e.actor}${e.handler ? ` via ${e.handler}` : ''}`}),
      details);
  }

  function append(events) {
    for (const e of events) {
      if (e.seq <= lastSeq) continue;
      list.append(eventItem(e));
      lastSeq = e.seq;
    }
  }

  const refreshIntent = coalesce(async () => {
    try {
      const r = await api(`/v1/intents/${encodeURIComponent(id)}`);
      if (view === self) showIntent(r.intent);
    } catch (e) { fail(msg, 'Loading the intent', e); }
  });
  const catchUp = coalesce(async () => {
    try {
      const events = await allEvents(id, lastSeq);
      if (view === self) append(events);
    } catch (e) { fail(msg, 'Loading events', e); }
  });
  // A scenario's intent: its steps, who holds each, their results and deadlines.
  const WORKFLOW = 'agent://internal/workflow';
  function stepRow(w, s) {
    const run = [...w.runs].reverse().find((r) => r.step_id === s.step_id);
    const running = run && run.status === 'running';
    const due = running && s.step_deadline_seconds
      ? time(new Date(Date.parse(run.started_at) + s.step_deadline_seconds * 1000).toISOString())
      : '—';
    const result = run && run.result !== null && run.result !== undefined
      ? el('details', {}, el('summary', {text: 'Result'}), el('pre', {text: json(run.result)})) : '—';
    const cell = (v) => el('td', {}, v);
    return el('tr', {'data-step-id': s.step_id, class: running ? 'current' : null,
      'aria-current': running ? 'step' : null},
      el('th', {scope: 'row', text: s.step_id}), cell(s.tool_id), cell(s.address),
      cell(statusBadge(run ? run.status : 'pending')), cell(due),
      cell(run && run.step_intent_id ? intentLink(run.step_intent_id) : '—'), cell(result));
  }
  const refreshWorkflow = coalesce(async () => {
    try {
      const r = await api(`/v1/intents/${encodeURIComponent(id)}/workflow`);
      if (view !== self) return;
      const section = rows(root, 'workflow');
      fill(section, {scenario_id: r.workflow.scenario_id, compile_id: r.workflow.compile_id});
      rows(root, 'steps').replaceChildren(...r.workflow.steps.map((s) => stepRow(r.workflow, s)));
      section.hidden = false;
    } catch (e) { fail(msg, 'Loading the workflow', e); }
  }, 300);

  const refreshDeliveries = coalesce(async () => {
    try {
      const r = await api(`/v1/deliveries?intent_id=${encodeURIComponent(id)}&limit=200`);
      if (view === self) deliveries.show(r.deliveries);
    } catch (e) { fail(msg, 'Loading deliveries', e); }
  }, 1000);

  async function load() {
    try {
      const [r, events] = await Promise.all([api(`/v1/intents/${encodeURIComponent(id)}`), allEvents(id)]);
      if (view !== self) return;
      say(msg, '');
      showIntent(r.intent);
      list.replaceChildren();
      lastSeq = 0;
      append(events);
      refreshDeliveries();
    } catch (e) { fail(msg, 'Loading the intent', e); }
  }

  const self = {
    reload: load,
    onEvent(e) {
      if (e.intent_id !== id || e.seq <= lastSeq) return;
      if (e.seq === lastSeq + 1) {
        append([e]);
        announce(`${e.event_type}: ${e.status}`);
      } else {
        catchUp();
      }
      refreshIntent();
      refreshDeliveries();
    },
  };
  load();
  return self;
}

// Human tasks of one owner, with approve / reject.
function tasksView() {
  const root = mount('t-tasks');
  const form = rows(root, 'owner');
  const msg = rows(root, 'msg');
  const list = rows(root, 'tasks');
  let owner = sessionStorage.getItem(OWNER_ITEM) || '';
  form.elements.owner.value = owner;
  let shown = new Set();

  function card(t) {
    const frag = fromTemplate('t-task');
    const ht = t.human_task || {};
    const link = intentLink(t.intent_id);
    link.textContent = t.intent_id;
    fill(frag, {
      title: ht.title || t.intent_type, description: ht.description || '', link,
      intent_type: t.intent_type, from_agent: t.from_agent, assigned_at: time(t.assigned_at),
      due_at: t.due_at ? time(t.due_at) : null, task_type: ht.task_type || 'approval',
      required: ht.required_comment ? '(required)' : '(optional)',
    });
    const li = frag.firstElementChild;
    li.dataset.intentId = t.intent_id;
    const f = $('form', li);
    const titleId = `task-${t.intent_id}`;
    $('h2', li).id = titleId;
    $('article', li).setAttribute('aria-labelledby', titleId);
    // Only the outcomes the task allows (AXME spells them approve / approved, reject / rejected).
    const allowed = ht.allowed_outcomes;
    for (const b of f.querySelectorAll('button[name="decision"]')) {
      b.hidden = Array.isArray(allowed) && !allowed.some((o) => o.startsWith(b.value));
    }
    f.addEventListener('submit', (e) => {
      e.preventDefault();
      if (e.submitter && e.submitter.name === 'decision') decide(t, f, e.submitter.value);
    });
    api(`/v1/intents/${encodeURIComponent(t.intent_id)}`)
      .then((r) => showAttachments(rows(li, 'attachments'), r.intent), () => {});
    return li;
  }

  async function decide(t, f, decision) {
    const out = $('[data-r="msg"]', f);
    const comment = f.elements.comment.value.trim();
    if (t.human_task && t.human_task.required_comment && !comment) {
      say(out, 'This task needs a comment.');
      f.elements.comment.focus();
      return;
    }
    for (const b of f.querySelectorAll('button')) b.disabled = true;
    try {
      await api(`/v1/inbox/${encodeURIComponent(t.intent_id)}/${decision}`, {
        method: 'POST', headers: scope(), body: comment ? {comment} : {},
      });
      say(msg, `${decision === 'approve' ? 'Approved' : 'Rejected'}: ${t.human_task.title || t.intent_id}.`, 'ok');
      announce(msg.textContent);
      await reloadNow();
    } catch (e) {
      fail(out, decision === 'approve' ? 'Approving' : 'Rejecting', e);
      for (const b of f.querySelectorAll('button')) b.disabled = false;
    }
  }

  /** The owner scope: one agent's tasks, or with none (admin key) every owner's. */
  const scope = () => (owner ? {'x-owner-agent': owner} : {});

  async function load() {
    try {
      const r = await api('/v1/me/tasks', {headers: scope()});
      if (view !== self) return;
      say(msg, owner ? '' : "Every owner's tasks (the admin key sees them all).", owner ? '' : 'info');
      // Keep cards the user may be typing in; add new ones, drop decided ones.
      const now = new Set(r.tasks.map((t) => t.intent_id));
      for (const li of [...list.children]) if (!now.has(li.dataset.intentId)) li.remove();
      for (const t of r.tasks) if (!shown.has(t.intent_id)) list.append(card(t));
      shown = now;
      rows(root, 'empty').hidden = r.tasks.length > 0;
    } catch (e) { fail(msg, 'Loading tasks', e); }
  }
  const reloadNow = coalesce(load, 500);

  form.addEventListener('submit', (e) => {
    e.preventDefault();
    owner = address(form.elements.owner.value.trim()) || '';
    form.elements.owner.value = owner;
    sessionStorage.setItem(OWNER_ITEM, owner);
    list.replaceChildren();
    shown = new Set();
    load();
  });

  const self = {
    reload: reloadNow,
    onEvent(e) {
      if (e.status === 'WAITING' || shown.has(e.intent_id)) reloadNow();
    },
  };
  load();
  return self;
}

// Registered agents and their bindings.
function agentsView() {
  const root = mount('t-agents');
  const msg = rows(root, 'msg');
  const body = rows(root);
  async function load() {
    try {
      const r = await api('/v1/agents');
      if (view !== self) return;
      say(msg, '');
      fillAgentList(r.agents);
      body.replaceChildren(...r.agents.map((a) => el('tr', {'data-address': a.address},
        el('th', {scope: 'row', class: 'mono', text: a.address}),
        el('td', {text: a.display_name || '—'}),
        el('td', {}, el('span', {class: 'mode', text: a.delivery_mode}),
          a.webhook_disabled_at ? el('span', {class: 'st st-failed', text: ' disabled (410)'}) : null),
        el('td', {class: 'mono', text: a.webhook_url || '—'}),
        el('td', {class: 'mono', text: a.secret_hint ? `…${a.secret_hint}` : '—'}),
        el('td', {text: a.lease_seconds ? `${a.lease_seconds} s` : '—'}),
        el('td', {text: a.max_delivery_attempts || '—'}),
        el('td', {}, time(a.updated_at)))));
      rows(root, 'empty').hidden = r.agents.length > 0;
    } catch (e) { fail(msg, 'Loading agents', e); }
  }
  const self = {reload: load};
  load();
  return self;
}

function fillAgentList(agents) {
  $('#agent-list').replaceChildren(...agents.map((a) => el('option', {value: a.address})));
}

/** A table of deliveries inside `host`, with attempts on demand and a Replay button. Pending
 * deliveries are looked at again when they are due (`refresh`): a push outcome on an intent that
 * is already over adds no event to the stream. `replayed(delivery)` hears of each replay. */
function deliveryTable(host, msg, {refresh, replayed = () => {}}) {
  host.replaceChildren(fromTemplate('t-delivery-table'));
  const body = $('tbody', host);
  const empty = $('.empty', host);
  const open = new Set();
  let timer = null;

  function attemptsRow(d, cols) {
    const table = el('table', {class: 'attempts'},
      el('caption', {text: `Attempts of delivery ${d.delivery_id}`}),
      el('thead', {}, el('tr', {}, ...['#', 'At', 'Status code', 'Latency', 'Error', 'Response']
        .map((h) => el('th', {scope: 'col', text: h})))),
      el('tbody', {}, ...d.attempts.map((a) => el('tr', {},
        el('td', {text: a.attempt}), el('td', {}, time(a.at)),
        el('td', {text: a.status_code == null ? '—' : a.status_code}),
        el('td', {text: `${a.latency_ms} ms`}), el('td', {text: a.error || '—'}),
        el('td', {class: 'mono', text: a.response_excerpt || '—'})))));
    return el('tr', {class: 'detail', id: `attempts-${d.delivery_id}`},
      el('td', {colspan: cols}, d.attempts.length ? table : el('p', {text: 'No attempt yet.'})));
  }

  async function toggle(d, button, tr) {
    const detailId = `attempts-${d.delivery_id}`;
    if (open.has(d.delivery_id)) {
      open.delete(d.delivery_id);
      button.setAttribute('aria-expanded', 'false');
      const det = document.getElementById(detailId);
      if (det) det.remove();
      return;
    }
    try {
      const r = await api(`/v1/deliveries/${encodeURIComponent(d.delivery_id)}`);
      open.add(d.delivery_id);
      button.setAttribute('aria-expanded', 'true');
      tr.after(attemptsRow(r.delivery, tr.children.length));
    } catch (e) { fail(msg, 'Loading attempts', e); }
  }

  async function replay(d, button) {
    button.disabled = true;
    try {
      await api(`/v1/deliveries/${encodeURIComponent(d.delivery_id)}/replay`, {method: 'POST', body: {}});
      say(msg, `Delivery ${short(d.delivery_id)} requeued for another attempt.`, 'ok');
      announce(msg.textContent);
      replayed(d);
      refresh();
    } catch (e) {
      fail(msg, 'Replay', e);
      button.disabled = false;
    }
  }

  function show(list) {
    const out = [];
    for (const d of list) {
      const toggleBtn = el('button', {type: 'button', class: 'link', 'aria-expanded': 'false',
        'aria-controls': `attempts-${d.delivery_id}`, text: `${d.attempts.length} attempt${d.attempts.length === 1 ? '' : 's'}`});
      const tr = el('tr', {'data-delivery-id': d.delivery_id, 'data-status': d.status},
        el('td', {class: 'mono', title: d.delivery_id, text: short(d.delivery_id)}),
        el('td', {}, d.intent_id ? intentLink(d.intent_id) : '—'),
        el('td', {text: `${d.event_type} (${d.kind})`}),
        el('td', {class: 'mono', text: d.target_url}),
        el('td', {}, statusBadge(d.status)),
        el('td', {}, toggleBtn),
        el('td', {}, d.next_attempt_at ? time(d.next_attempt_at) : '—'),
        el('td', {text: d.last_error || '—'}),
        el('td', {}, d.status === 'pending' ? null : el('button', {type: 'button',
          'aria-label': `Replay delivery ${d.delivery_id}`, text: 'Replay',
          onclick: (e) => replay(d, e.currentTarget)})));
      toggleBtn.addEventListener('click', () => toggle(d, toggleBtn, tr));
      out.push(tr);
      if (open.has(d.delivery_id)) {
        toggleBtn.setAttribute('aria-expanded', 'true');
        out.push(attemptsRow(d, 9));
      }
    }
    body.replaceChildren(...out);
    empty.hidden = list.length > 0;
    $('.scroll', host).hidden = list.length === 0;
    clearTimeout(timer);
    const wait = nextDue(list);
    if (wait !== null) timer = setTimeout(refresh, wait);
  }
  return {show};
}

/** When a shown pending delivery is next due, to look again then (within 1–30 s). One being
 * sent right now has no next attempt time: look again in a second. */
function nextDue(list) {
  const due = list.filter((d) => d.status === 'pending')
    .map((d) => (d.next_attempt_at ? Date.parse(d.next_attempt_at) - Date.now() : 0));
  if (!due.length) return null;
  return Math.min(30000, Math.max(1000, Math.min(...due) + 500));
}

// Deliveries (all, or only the dead-lettered ones), kept fresh by the stream and by their due times.
function deliveriesView(deadOnly) {
  const root = mount('t-deliveries');
  const form = rows(root, 'filters');
  const msg = rows(root, 'msg');
  const more = rows(root, 'more');
  if (deadOnly) {
    $('h1', root).textContent = 'Dead letters';
    form.hidden = true;
  }
  let status = deadOnly ? 'dead_lettered' : '';
  let shown = [];
  let next = null;
  // Replayed deliveries followed until they settle, even when the status filter leaves them
  // out meanwhile (a dead letter is pending again until its new attempts end).
  const following = new Set();
  const table = deliveryTable(rows(root, 'deliveries'), msg, {
    refresh: () => view === self && reload(),
    replayed: (d) => following.add(d.delivery_id),
  });

  /** The followed deliveries missing from `list`, read after it: still pending, or settled
   * since the list was read (in a status the filter shows). */
  async function followed(list) {
    const extra = [];
    for (const id of [...following]) {
      if (list.some((d) => d.delivery_id === id)) continue;
      const d = (await api(`/v1/deliveries/${encodeURIComponent(id)}`)).delivery;
      if (d.status !== 'pending') following.delete(id);
      if (d.status === 'pending' || !status || d.status === status) extra.push(d);
    }
    return extra;
  }

  async function load(append) {
    const q = new URLSearchParams({limit: String(PAGE)});
    if (status) q.set('status', status);
    if (append && next) q.set('cursor', next);
    try {
      const r = await api(`/v1/deliveries?${q}`);
      const extra = append ? [] : await followed(r.deliveries);
      if (view !== self) return;
      for (const d of r.deliveries) if (d.status !== 'pending') following.delete(d.delivery_id);
      shown = append ? shown.concat(r.deliveries) : extra.concat(r.deliveries);
      next = r.next_cursor;
      more.hidden = !next;
      table.show(shown);
    } catch (e) { fail(msg, 'Loading deliveries', e); }
  }
  const reload = coalesce(() => load(false), 1000);
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    status = form.elements.status.value;
    load(false);
  });
  more.addEventListener('click', () => load(true));
  const self = {
    reload,
    onEvent(e) {
      if (/^intent\.(submitted|delivered|delivery_failed|failed|completed)$/.test(e.event_type)) reload();
    },
  };
  load(false);
  return self;
}

// --- Attachments ---------------------------------------------------------------------------------

/** Lists in `host` the uploads an intent attaches (`payload.attachments[].upload_id`): name,
 * type, size, status. A download goes through fetch() with the key (a plain link could not send
 * it), so the server's access rules decide what this key gets; the bytes are saved as a file. */
function showAttachments(host, intent) {
  const given = intent.payload && Array.isArray(intent.payload.attachments) ? intent.payload.attachments : [];
  const ids = given.map((a) => a && a.upload_id).filter((id) => typeof id === 'string');
  const key = ids.join(' ');
  if (host.dataset.shown === key) return;
  host.dataset.shown = key;
  if (!ids.length) { host.replaceChildren(); return; }
  const frag = fromTemplate('t-attachments');
  const list = rows(frag, 'files');
  for (const id of ids) {
    const li = el('li', {'data-upload-id': id}, el('span', {class: 'mono', text: id}));
    list.append(li);
    api(`/v1/media/${encodeURIComponent(id)}`).then(({upload: u}) => {
      const name = u.status === 'ready'
        ? el('button', {type: 'button', class: 'link', text: u.filename,
          'aria-label': `Download ${u.filename}`, onclick: () => download(u, li)})
        : el('span', {text: u.filename});
      li.replaceChildren(name, ' ', el('span', {class: 'hint', text: `${u.mime_type}, ${u.size_bytes} bytes`}),
        ' ', statusBadge(u.status));
    }, (e) => {
      if (e.status === 401) return;
      const why = e.status === 404 ? 'not visible to this key' : e.message;
      li.append(' ', el('span', {class: 'msg', 'data-kind': 'error', text: why}));
    });
  }
  host.replaceChildren(frag);
}

async function download(u, li) {
  const out = $('.msg', li) || li.appendChild(el('span', {class: 'msg', role: 'status'}));
  say(out, '');
  try {
    const r = await fetch(`/v1/media/${encodeURIComponent(u.upload_id)}/content`,
      {headers: {'x-api-key': apiKey || ''}, cache: 'no-store'});
    if (r.status === 401) { signOut('The server refused the API key (401).'); return; }
    if (!r.ok) throw new Error(`${r.status} ${r.statusText}`);
    const url = URL.createObjectURL(await r.blob());
    const a = el('a', {href: url, download: u.filename, hidden: true});
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60_000);
  } catch (e) { say(out, ` Downloading failed: ${e.message}`); }
}

// --- Invites --------------------------------------------------------------------------------------

/** The token of an invite page (`#/invite/<token>`, where the server sends a browser that opens
 * an `invite_url`), or null. */
function inviteToken() {
  const m = location.hash.match(/^#\/invite\/([A-Za-z0-9_-]{12,64})$/);
  return m ? m[1] : null;
}

/** An invite: who sent it, a nick, one accept, then the new key shown once. It needs no key:
 * the token is the credential, so these calls go without `x-api-key`. */
function inviteView(token) {
  const root = mount('t-invite');
  $('#login').hidden = true;
  root.hidden = false;
  document.title = 'Invite · axme';
  const msg = rows(root, 'msg');
  const form = rows(root, 'accept');
  const path = `/v1/invites/${encodeURIComponent(token)}`;
  const call = async (method, url, body) => {
    const r = await fetch(url, {method, cache: 'no-store',
      headers: body ? {accept: 'application/json', 'content-type': 'application/json'} : {accept: 'application/json'},
      body: body ? JSON.stringify(body) : undefined});
    let j = null;
    try { j = await r.json(); } catch { /* the status says enough */ }
    return {status: r.status, body: j};
  };

  function show(inv) {
    fill(root, {owner_agent: inv.owner_agent, recipient_hint: inv.recipient_hint,
      status: statusBadge(inv.status), expires_at: time(inv.expires_at)});
    rows(root, 'facts').hidden = false;
    form.hidden = inv.status !== 'pending';
    if (inv.status === 'accepted') {
      say(msg, `This invite was already accepted${inv.nick ? ` by ${inv.nick}` : ''} at `
        + `${new Date(inv.accepted_at).toLocaleString()}. An invite works once: ask ${inv.owner_agent} for a new one.`);
    } else if (inv.status === 'expired') {
      say(msg, `This invite expired at ${new Date(inv.expires_at).toLocaleString()}. `
        + `Ask ${inv.owner_agent} for a new one.`);
    } else {
      say(msg, '');
    }
  }

  async function load() {
    try {
      const r = await call('GET', path);
      if (view !== self) return;
      if (r.status === 404) { say(msg, 'This invite link is not valid: no invite on this server has this token.'); return; }
      if (r.status !== 200) { say(msg, `Loading the invite failed: ${(r.body && r.body.error && r.body.error.message) || r.status}`); return; }
      show(r.body);
      if (!form.hidden) form.elements.nick.focus();
    } catch (e) { say(msg, `Loading the invite failed: ${e.message}`); }
  }

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const out = rows(root, 'accept-msg');
    const nick = form.elements.nick.value.trim();
    const name = form.elements.display_name.value.trim();
    const button = $('button', form);
    button.disabled = true;
    say(out, '');
    try {
      const r = await call('POST', `${path}/accept`, name ? {nick, display_name: name} : {nick});
      if (r.status !== 200) {
        const err = (r.body && r.body.error) || {};
        say(out, `Accepting failed: ${err.message || r.status}`);
        button.disabled = false;
        if (err.code === 'invite_already_accepted' || err.code === 'invite_expired') load();
        return;
      }
      form.hidden = true;
      fill(root, {status: statusBadge('accepted'), nick: r.body.nick, user_owner_agent: r.body.owner_agent});
      const done = rows(root, 'done');
      done.hidden = false;
      rows(done, 'key').value = r.body.api_key;
      rows(done, 'use').addEventListener('click', () => {
        apiKey = r.body.api_key;
        sessionStorage.setItem(KEY_ITEM, apiKey);
        history.replaceState(null, '', '#/tasks');
        showApp();
      });
      rows(done, 'key').focus();
      rows(done, 'key').select();
    } catch (err) {
      say(out, `Accepting failed: ${err.message}`);
      button.disabled = false;
    }
  });

  const self = {reload: load, onEvent() {}};
  load();
  return self;
}

// --- Navigation, sign-in, sign-out --------------------------------------------------------------

function route() {
  // An invite page needs no key.
  const invite = inviteToken();
  if (invite) { view = inviteView(invite); return; }
  // Only `#/…` names a view; any other fragment (the skip link's #main) leaves the view be.
  if (!apiKey || (location.hash && !location.hash.startsWith('#/') && view)) return;
  const hash = location.hash.replace(/^#\/?/, '');
  const [section, ...rest] = hash.split('/');
  const focus = view !== null;
  document.title = 'axme dashboard';
  $('#view').hidden = false;
  switch (section) {
    case 'tasks': view = tasksView(); break;
    case 'agents': view = agentsView(); break;
    case 'deliveries': view = deliveriesView(false); break;
    case 'dead-letters': view = deliveriesView(true); break;
    default:
      view = rest.length && rest[0] ? timelineView(decodeURIComponent(rest.join('/'))) : intentsView();
  }
  const current = `#/${section || 'intents'}`;
  for (const a of document.querySelectorAll('#nav a')) {
    if (a.getAttribute('href') === current) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  if (focus) $('#view h1').focus();
}

function showApp() {
  $('#login').hidden = true;
  $('#nav').hidden = false;
  $('#logout').hidden = false;
  startStream();
  api('/v1/agents').then((r) => fillAgentList(r.agents), () => {});
  view = null;
  route();
}

function signOut(message, kind = 'error') {
  stopStream();
  apiKey = null;
  sessionStorage.removeItem(KEY_ITEM);
  view = null;
  $('#view').replaceChildren();
  $('#view').hidden = true;
  $('#nav').hidden = true;
  $('#logout').hidden = true;
  $('#conn').hidden = true;
  $('#login').hidden = false;
  say($('#login-msg'), message || '', kind);
  const key = $('#key');
  key.value = '';
  key.focus();
}

async function signIn(e) {
  e.preventDefault();
  const candidate = $('#key').value.trim();
  if (!candidate) return;
  apiKey = candidate;
  say($('#login-msg'), '');
  try {
    await api('/v1/capabilities');
  } catch (err) {
    if (err.status !== 401) {
      apiKey = null;
      say($('#login-msg'), `Signing in failed: ${err.message}`);
    }
    return;
  }
  sessionStorage.setItem(KEY_ITEM, apiKey);
  showApp();
  $('#view h1').focus();
}

document.addEventListener('DOMContentLoaded', () => {
  $('#login-form').addEventListener('submit', signIn);
  $('#logout').addEventListener('click', () => signOut('Signed out.', 'info'));
  $('.skip').addEventListener('click', (e) => {
    e.preventDefault();
    $('#main').focus();
  });
  window.addEventListener('hashchange', route);
  if (apiKey) showApp();
  else {
    signOut('');
    if (inviteToken()) route();
  }
});
