// The /ui dashboard in a real browser: Debian's Chromium (headless, fresh profile) driven by
// playwright-core, against the real axme binary. Each step builds on the one before, as a person
// would use the page: sign in, watch an intent appear and change without reloading, read its
// timeline, decide a human task, replay a dead-lettered delivery, accept an invite and sign in
// with its key, download a task's attachment, sign out; screenshots go to
// $UI_ARTIFACTS (target/ui-artifacts).

import {after, before, test} from 'node:test';
import assert from 'node:assert/strict';
import {mkdtempSync, rmSync} from 'node:fs';
import {tmpdir} from 'node:os';
import {join} from 'node:path';
import {chromium} from 'playwright-core';
import {KEY, closedPort, intent, startServer, until} from './axme.mjs';

const ARTIFACTS = process.env.UI_ARTIFACTS;
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

let dir;
let server;
let browser;
let page;
/** Uncaught page errors and content-security-policy refusals: the page must cause none. */
const problems = [];

before(async () => {
  if (!ARTIFACTS) throw new Error('UI_ARTIFACTS is not set (run tests/ui/run.sh)');
  dir = mkdtempSync(join(tmpdir(), 'axme-ui-'));
  server = await startServer(join(dir, 'axme.db'), ['--push-retry-schedule', '1s']);
  browser = await chromium.launchPersistentContext(join(dir, 'profile'), {
    executablePath: CHROMIUM,
    headless: true,
    viewport: {width: 1280, height: 800},
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
  });
  page = browser.pages()[0] || await browser.newPage();
  page.setDefaultTimeout(20_000);
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('request', (r) => {
    const u = new URL(r.url());
    if (u.pathname === '/v1/events/stream') streamSince.push(u.searchParams.get('since'));
  });
  page.on('console', (m) => {
    if (/content security policy/i.test(m.text())) problems.push(`CSP: ${m.text()}`);
  });
});

after(async () => {
  await browser?.close();
  await server?.stop();
  if (dir) rmSync(dir, {recursive: true, force: true});
});

/** The `since` of every firehose request the page made, in order. */
const streamSince = [];

const heading = (name) => page.getByRole('heading', {level: 1, name});
const row = (id) => page.locator(`tr[data-intent-id="${id}"]`);

async function signIn(key) {
  await page.getByLabel('API key').fill(key);
  await page.getByLabel('API key').press('Enter');
}

test('a wrong key is refused with a clear message; the right one signs in', async () => {
  await page.goto(`${server.base}/ui`);
  await heading('Sign in to axme').waitFor();
  assert.equal(await page.evaluate(() => document.activeElement.id), 'key', 'focus starts on the key');
  await signIn('axme_not_a_key');
  await page.locator('#login-msg', {hasText: '401'}).waitFor();
  assert.equal(await page.evaluate(() => sessionStorage.getItem('axme.apiKey')), null);

  await signIn(KEY);
  await heading('Intents').waitFor();
  await page.locator('#conn[data-state="live"]').waitFor();
  assert.equal(await page.evaluate(() => sessionStorage.getItem('axme.apiKey')), KEY);
});

let live;

test('an intent created through the API appears and changes without a reload', async () => {
  await page.evaluate(() => { window.notReloaded = true; });
  live = (await server.ok('POST', '/v1/intents', intent('agent://team/worker'))).intent_id;
  await row(live).waitFor();
  assert.equal(await row(live).getAttribute('data-status'), 'SUBMITTED');
  await expectText(row(live), 'agent://team/worker');

  await server.ok('POST', `/v1/intents/${live}/ack`, {});
  await page.locator(`tr[data-intent-id="${live}"][data-status="ACKNOWLEDGED"]`).waitFor();

  const newer = (await server.ok('POST', '/v1/intents', intent('agent://team/other'))).intent_id;
  await row(newer).waitFor();
  const order = await page.locator('tbody tr').evaluateAll((trs) => trs.map((t) => t.dataset.intentId));
  assert.deepEqual(order.slice(0, 2), [newer, live], 'newest first');
  assert.equal(new Set(order).size, order.length, `a row twice: ${order}`);
  assert.equal(await page.evaluate(() => window.notReloaded), true, 'the page was reloaded');
  await page.locator('#announce', {hasText: /intent/i}).waitFor();
});

test('the status and agent filters', async () => {
  const form = page.locator('form.filters');
  await form.getByLabel('Status').selectOption('ACKNOWLEDGED');
  await form.getByRole('button', {name: 'Apply'}).click();
  await page.locator('tbody tr').first().waitFor();
  await until('only ACKNOWLEDGED rows', async () => {
    const statuses = await page.locator('tbody tr').evaluateAll((t) => t.map((r) => r.dataset.status));
    return statuses.length === 1 && statuses[0] === 'ACKNOWLEDGED';
  });
  await form.getByLabel('Status').selectOption('');
  await form.getByLabel('Agent', {exact: true}).fill('team/other');
  await form.getByRole('button', {name: 'Apply'}).click();
  await until('only the intent to agent://team/other', async () =>
    (await page.locator('tbody tr').count()) === 1 && (await row(live).count()) === 0);
  // A new intent to another agent stays out of the filtered list; one to this agent comes in.
  const elsewhere = (await server.ok('POST', '/v1/intents', intent('agent://team/worker'))).intent_id;
  const here = (await server.ok('POST', '/v1/intents', intent('agent://team/other'))).intent_id;
  await row(here).waitFor();
  assert.equal(await row(elsewhere).count(), 0);
  await form.getByRole('button', {name: 'Clear'}).click();
  await row(elsewhere).waitFor();
});

test('the timeline of an intent, followed live', async () => {
  await row(live).getByRole('link').click();
  await heading(new RegExp(`Intent ${live}`)).waitFor();
  const shown = () => page.locator('ol.timeline li').evaluateAll((li) =>
    li.map((l) => `${l.dataset.seq} ${l.querySelector('strong').textContent}`));
  const stored = async () => (await server.ok('GET', `/v1/intents/${live}/events`)).events
    .map((e) => `${e.seq} ${e.event_type}`);
  const before = await stored();
  assert.deepEqual(before.slice(0, 2), ['1 intent.created', '2 intent.submitted']);
  assert.equal(before.at(-1).split(' ')[1], 'intent.acknowledged');
  await until('the stored events', async () => (await shown()).join() === before.join());

  await server.ok('POST', `/v1/intents/${live}/progress`, {status: 'IN_PROGRESS'});
  const next = before.length + 1;
  await page.locator(`ol.timeline li[data-seq="${next}"]`, {hasText: 'intent.in_progress'}).waitFor();
  await server.ok('POST', `/v1/intents/${live}/resolve`, {status: 'COMPLETED', result: {answer: 42}});
  await page.locator(`ol.timeline li[data-seq="${next + 1}"]`, {hasText: 'intent.completed'}).waitFor();
  assert.deepEqual(await shown(), await stored());
  await page.locator('dd[data-f="status"]', {hasText: 'COMPLETED'}).waitFor();
  await page.locator('pre[data-f="result"]', {hasText: '42'}).waitFor();
  await page.screenshot({path: join(ARTIFACTS, 'timeline.png'), fullPage: true});
});

test('human tasks are approved and rejected from the inbox, with comments', async () => {
  const owner = 'agent://team/alice';
  const refund = (await server.ok('POST', '/v1/intents', intent(owner, {
    human_task: {title: 'Approve the refund', description: 'Order 1234, 12 EUR', task_type: 'approval'},
  }))).intent_id;
  await page.getByRole('link', {name: 'Tasks'}).click();
  await heading('Tasks').waitFor();
  await page.getByLabel('Owner agent').fill(owner);
  await page.getByRole('button', {name: 'Show tasks'}).click();
  const card = page.locator(`li[data-intent-id="${refund}"]`);
  await card.getByRole('heading', {name: 'Approve the refund'}).waitFor();
  await expectText(card, 'Order 1234, 12 EUR');

  // A task created while the page is open shows up by itself.
  const deploy = (await server.ok('POST', '/v1/intents', intent(owner, {
    human_task: {title: 'Ship 2.1?', required_comment: true},
  }))).intent_id;
  const second = page.locator(`li[data-intent-id="${deploy}"]`);
  await second.getByRole('heading', {name: 'Ship 2.1?'}).waitFor();
  await page.screenshot({path: join(ARTIFACTS, 'tasks.png'), fullPage: true});

  await card.getByLabel(/Comment/).fill('fine by me');
  await card.getByRole('button', {name: 'Approve'}).click();
  await card.waitFor({state: 'detached'});
  const approved = (await server.ok('GET', `/v1/intents/${refund}`)).intent;
  assert.equal(approved.status, 'COMPLETED');
  assert.equal(approved.result.comment, 'fine by me');

  // This one wants a comment: the page says so before asking the server.
  await second.getByRole('button', {name: 'Reject'}).click();
  await second.locator('[data-r="msg"]', {hasText: 'needs a comment'}).waitFor();
  await second.getByLabel(/Comment/).fill('not this week');
  await second.getByRole('button', {name: 'Reject'}).click();
  await second.waitFor({state: 'detached'});
  const rejected = (await server.ok('GET', `/v1/intents/${deploy}`)).intent;
  assert.equal(rejected.status, 'FAILED');
  assert.equal(rejected.error.code, 'rejected');
  const left = await server.ok('GET', '/v1/me/tasks', undefined, {'x-owner-agent': owner});
  assert.deepEqual(left.tasks, []);
  await page.locator('[data-r="empty"]', {hasText: 'No task is waiting'}).waitFor();
});

test('a dead-lettered delivery is listed with its attempts and replayed', async () => {
  const port = await closedPort();
  await server.ok('POST', '/v1/agents', {
    address: 'agent://team/hook', delivery_mode: 'http',
    webhook_url: `http://127.0.0.1:${port}/hook`, max_delivery_attempts: 1,
  });
  const id = (await server.ok('POST', '/v1/intents', intent('agent://team/hook'))).intent_id;

  await page.getByRole('link', {name: 'Dead letters'}).click();
  await heading('Dead letters').waitFor();
  const dead = page.locator(`tr[data-status="dead_lettered"]:has(a[title="${id}"])`);
  await dead.waitFor();
  const delivery = await dead.getAttribute('data-delivery-id');

  await dead.getByRole('button', {name: '1 attempt'}).click();
  await page.locator(`#attempts-${delivery} tbody tr`).first().waitFor();
  assert.equal(await dead.getByRole('button', {name: '1 attempt'}).getAttribute('aria-expanded'), 'true');

  await dead.getByRole('button', {name: 'Replay'}).click();
  await page.locator('[data-r="msg"]', {hasText: 'requeued'}).waitFor();
  const after = await until('the replayed attempt', async () => {
    const d = (await server.ok('GET', `/v1/deliveries/${delivery}`)).delivery;
    return d.attempts.length === 2 && d.status === 'dead_lettered' ? d : null;
  });
  assert.equal(after.attempts.length, 2);
  // The page follows the replay to its end by itself.
  await page.locator(`tr[data-delivery-id="${delivery}"][data-status="dead_lettered"]`)
    .getByRole('button', {name: '2 attempts'}).waitFor();
  await page.screenshot({path: join(ARTIFACTS, 'dead-letters.png'), fullPage: true});
});

test('agents and their bindings, reached with the keyboard', async () => {
  await page.locator('#nav a[href="#/agents"]').focus();
  await page.keyboard.press('Enter');
  await heading('Agents').waitFor();
  const hook = page.locator('tr[data-address="agent://team/hook"]');
  await expectText(hook, 'http');
  await expectText(hook, '127.0.0.1');
  assert.equal(await page.locator('#nav a[aria-current="page"]').textContent(), 'Agents');

  await page.locator('#nav a[href="#/intents"]').focus();
  await page.keyboard.press('Enter');
  await heading('Intents').waitFor();
  assert.equal(await page.evaluate(() => document.activeElement.textContent), 'Intents',
    'focus moves to the heading of the new view');
  await page.reload();
  await row(live).waitFor();
  await page.screenshot({path: join(ARTIFACTS, 'dashboard.png'), fullPage: true});
  await page.emulateMedia({colorScheme: 'dark'});
  await page.screenshot({path: join(ARTIFACTS, 'dashboard-dark.png'), fullPage: true});
  await page.emulateMedia({colorScheme: 'light'});
  await page.keyboard.press('Tab');
  assert.equal(await page.evaluate(() => document.activeElement.textContent), 'Skip to content');
  await page.keyboard.press('Enter');
  assert.equal(await page.evaluate(() => document.activeElement.id), 'main');
  await row(live).waitFor();
});

test('a scenario intent shows its workflow: each step, who holds it, its result', async () => {
  const bundle = {
    scenario_id: 'ui.workflow.v1',
    agents: [{role: 'checker', address: 'ui-checker', delivery_mode: 'poll', create_if_missing: true}],
    humans: [{role: 'operator'}],
    workflow: {steps: [
      {step_id: 'check', tool_id: 'tool.agent.task.v1', assigned_to: 'checker', step_deadline_seconds: 600},
      {step_id: 'approve', tool_id: 'tool.approval.human_signoff', assigned_to: 'operator',
        human_task: {title: 'Ship it?'}},
    ]},
    intent: {type: 'intent.ui.workflow.v1', payload: {n: 1}},
  };
  const applied = await server.ok('POST', '/v1/scenarios/apply', bundle);
  await page.evaluate((id) => { location.hash = `#/intents/${id}`; }, applied.intent_id);
  await heading(new RegExp(`Intent ${applied.intent_id}`)).waitFor();
  const step = (id) => page.locator(`table.steps tr[data-step-id="${id}"]`);
  await step('check').locator('.st-running').waitFor();
  await step('approve').locator('.st-pending').waitFor();
  assert.equal(await step('check').getAttribute('aria-current'), 'step');
  const w = (await server.ok('GET', `/v1/intents/${applied.intent_id}/workflow`)).workflow;
  await server.ok('POST', `/v1/intents/${w.runs[0].step_intent_id}/resume`, {action: 'complete', passed: true});
  await step('check').locator('.st-completed').waitFor();
  await step('approve').locator('.st-running').waitFor();
  await step('check').getByText('Result').click();
  await step('check').locator('pre', {hasText: '"passed": true'}).waitFor();
  await page.screenshot({path: join(ARTIFACTS, 'workflow.png'), fullPage: true});
  await page.evaluate(() => { location.hash = '#/intents'; });
  await heading('Intents').waitFor();
});

test('after a server restart the stream resumes from the last event id it saw', async () => {
  await page.locator('#conn[data-state="live"]').waitFor();
  const end = await server.logEnd();
  const requests = streamSince.length;
  const {port} = server;
  assert.equal(await server.stop(), 0);
  await page.locator('#conn[data-state="down"]').waitFor();
  server = await startServer(join(dir, 'axme.db'), ['--push-retry-schedule', '1s'], `127.0.0.1:${port}`);
  await page.locator('#conn[data-state="live"]').waitFor();
  assert.equal(streamSince.at(-1), String(end), `requests since the restart: ${streamSince.slice(requests)}`);
  const id = (await server.ok('POST', '/v1/intents', intent('agent://team/after'))).intent_id;
  await row(id).waitFor();
});

test('a refused key returns to the sign-in form; signing out forgets the key', async () => {
  await page.evaluate(() => sessionStorage.setItem('axme.apiKey', 'axme_revoked_key'));
  await page.reload();
  await page.locator('#login-msg', {hasText: '401'}).waitFor();
  await heading('Sign in to axme').waitFor();
  assert.equal(await page.evaluate(() => sessionStorage.getItem('axme.apiKey')), null);

  await signIn(KEY);
  await heading('Intents').waitFor();
  await page.getByRole('button', {name: 'Log out'}).click();
  await heading('Sign in to axme').waitFor();
  assert.equal(await page.evaluate(() => sessionStorage.getItem('axme.apiKey')), null);
});

/** An upload of `text` owned by the admin (`agent://admin`, the sender of its intents), ready. */
async function readyUpload(filename, text) {
  const bytes = new TextEncoder().encode(text);
  const up = await server.ok('POST', '/v1/media/create-upload', {
    owner_agent: 'agent://admin', filename, mime_type: 'text/plain', size_bytes: bytes.length,
  });
  const put = await fetch(up.upload_url, {method: 'PUT', body: bytes,
    headers: {'x-api-key': KEY, 'content-type': 'text/plain'}});
  assert.equal(put.status, 200, await put.text());
  await server.ok('POST', '/v1/media/finalize-upload', {upload_id: up.upload_id, size_bytes: bytes.length});
  return up.upload_id;
}

/** Clicks `button` and returns the text of the file the page saves. */
async function downloaded(button) {
  const [file] = await Promise.all([page.waitForEvent('download'), button.click()]);
  const chunks = [];
  for await (const c of await file.createReadStream()) chunks.push(c);
  return {name: file.suggestedFilename(), text: Buffer.concat(chunks).toString('utf8')};
}

let invitee;

test('an invite link opens the accept page: the invite, a nick, one accept, the key shown once', async () => {
  const inv = await server.ok('POST', '/v1/invites/create',
    {owner_agent: 'agent://team/lead', recipient_hint: 'the new reviewer'});
  await page.goto(inv.invite_url);
  assert.equal(new URL(page.url()).hash, `#/invite/${inv.token}`, 'the invite_url opens the accept page');
  await heading('You are invited to axme').waitFor();
  await expectText(page.locator('dl.facts'), 'agent://team/lead');
  await expectText(page.locator('dl.facts'), 'the new reviewer');
  await page.getByLabel('Your nick').fill('@uireviewer');
  await page.getByRole('button', {name: 'Accept the invite'}).click();
  await page.getByRole('heading', {name: 'Welcome, @uireviewer'}).waitFor();
  const key = await page.getByLabel('Your API key').inputValue();
  const accepted = await server.ok('GET', `/v1/invites/${inv.token}`);
  assert.equal(accepted.status, 'accepted');
  assert.equal(accepted.nick, '@uireviewer');
  invitee = {key, owner: accepted.accepted_owner_agent};
  await page.screenshot({path: join(ARTIFACTS, 'invite-accepted.png'), fullPage: true});

  // The key is shown once: the same link now says precisely that it was used.
  await page.reload();
  await page.locator('[data-r="msg"]', {hasText: 'already accepted by @uireviewer'}).waitFor();
  assert.equal(await page.locator('form.invite').isHidden(), true);
  assert.equal(await page.getByLabel('Your API key').isVisible(), false, 'the key is not shown again');
  // An accept sent anyway is refused, and nothing changes.
  const again = await fetch(`${server.base}/v1/invites/${inv.token}/accept`, {method: 'POST',
    headers: {'content-type': 'application/json'}, body: JSON.stringify({nick: '@another'})});
  assert.equal(again.status, 409);
  await page.evaluate(() => { location.hash = '#/invite/not-a-real-invite-token'; });
  await page.locator('[data-r="msg"]', {hasText: 'This invite link is not valid'}).waitFor();

  // An expired invite (the server's own expiry is tested with its clock; here its answer is
  // stood in for, as the shortest TTL is a minute) says when it expired and offers no form.
  const late = await server.ok('POST', '/v1/invites/create', {owner_agent: 'agent://team/lead'});
  const expired = {...(await server.ok('GET', `/v1/invites/${late.token}`)), status: 'expired',
    expires_at: '2026-01-02T03:04:05Z'};
  await page.route(`**/v1/invites/${late.token}`, (r) => r.fulfill({status: 200,
    contentType: 'application/json', body: JSON.stringify(expired)}));
  await page.evaluate((t) => { location.hash = `#/invite/${t}`; }, late.token);
  const when = await page.evaluate(() => new Date('2026-01-02T03:04:05Z').toLocaleString());
  await page.locator('[data-r="msg"]', {hasText: `This invite expired at ${when}`}).waitFor();
  assert.equal(await page.locator('form.invite').isHidden(), true);
  await page.unroute(`**/v1/invites/${late.token}`);
});

test('a task with an attachment: the new user signs in with their key, sees it and downloads it', async () => {
  const uploadId = await readyUpload('report.txt', 'quarterly numbers\n');
  const task = (await server.ok('POST', '/v1/intents', intent(invitee.owner, {
    payload: {title: 'Check the report', attachments: [{upload_id: uploadId}]},
    human_task: {title: 'Check the report'},
  }))).intent_id;

  const inv = await server.ok('POST', '/v1/invites/create', {owner_agent: 'agent://team/lead'});
  await page.goto(inv.invite_url);
  await page.getByLabel('Your nick').fill('@uisecond');
  await page.getByRole('button', {name: 'Accept the invite'}).click();
  await page.getByRole('heading', {name: 'Welcome, @uisecond'}).waitFor();
  // This second user's key sees nothing of the first user's task, nor its attachment.
  const second = await page.getByLabel('Your API key').inputValue();
  const hidden = await fetch(`${server.base}/v1/media/${uploadId}/content`, {headers: {'x-api-key': second}});
  assert.equal(hidden.status, 404);

  // The first user: the key they were shown signs them in; their task lists its attachment.
  await page.evaluate(() => sessionStorage.clear());
  await page.goto(`${server.base}/ui`);
  await signIn(invitee.key);
  await page.getByRole('link', {name: 'Tasks'}).click();
  const card = page.locator(`li[data-intent-id="${task}"]`);
  await card.waitFor();
  const button = card.getByRole('button', {name: 'Download report.txt'});
  assert.deepEqual(await downloaded(button), {name: 'report.txt', text: 'quarterly numbers\n'});

  // And the intent's own view shows it too.
  await card.getByRole('link', {name: `Intent ${task}`}).click();
  await heading(new RegExp(`Intent ${task}`)).waitFor();
  const files = page.locator('section.attachments');
  await expectText(files, 'text/plain, 18 bytes');
  await files.locator('.st-ready').waitFor();
  assert.deepEqual(await downloaded(files.getByRole('button', {name: 'Download report.txt'})),
    {name: 'report.txt', text: 'quarterly numbers\n'});
  await page.screenshot({path: join(ARTIFACTS, 'attachments.png'), fullPage: true});
  await page.getByRole('button', {name: 'Log out'}).click();
  await heading('Sign in to axme').waitFor();
});

test('the page caused no script error and no content-security-policy refusal', () => {
  assert.deepEqual(problems, []);
});

async function expectText(locator, text) {
  await locator.filter({hasText: text}).first().waitFor();
}
