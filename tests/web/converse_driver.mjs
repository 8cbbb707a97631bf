// SPDX-License-Identifier: Apache-2.0
// Drives Converse.js in headless Chromium for tests/web/test_converse.py: log in over
// tcbroker's WebSocket, join a room, post, see the reflection; then a fresh browser profile
// logs in again and must show the room's history from the server's archive (XEP-0313).
// Prints one JSON object per step on stdout; exits non-zero on the first failure.
//
// Environment: TC_WEB_PAGE (page URL with its query string), TC_WEB_ROOM, TC_WEB_BODY (what to
// post), TC_WEB_EXPECT (a message another client posted before), TC_WEB_SCREENSHOT (path),
// TC_CHROMIUM (browser binary), TC_WEB_TIMEOUT_MS (each wait).
import puppeteer from 'puppeteer-core';

const env = (name, fallback) => {
  const v = process.env[name] ?? fallback;
  if (v === undefined) throw new Error(`${name} is required`);
  return v;
};
const page_url = env('TC_WEB_PAGE');
const room = env('TC_WEB_ROOM');
const body = env('TC_WEB_BODY');
const expected = env('TC_WEB_EXPECT');
const screenshot = env('TC_WEB_SCREENSHOT');
const timeout = Number(env('TC_WEB_TIMEOUT_MS', '30000'));

const step = (name, extra = {}) =>
  console.log(JSON.stringify({ step: name, t: Date.now(), ...extra }));

// The room's messages as Converse holds them: body, whether the room's reflection (with its
// stanza-id) arrived, whether it came from the archive.
async function room_messages(page) {
  return page.evaluate((room) => {
    const c = window.tcConverse;
    const muc = c && c.state && c.state.chatboxes ? c.state.chatboxes.get(room)
              : c && c.chatboxes ? c.chatboxes.get(room) : null;
    if (!muc || !muc.messages) return null;
    return muc.messages.map((m) => ({
      body: m.get('body') || null,
      sender: m.get('sender') || null,
      nick: m.get('nick') || null,
      reflected: !!m.get(`stanza_id ${room}`),
      archived: !!m.get('is_archived'),
    }));
  }, room);
}

async function wait_for(page, what, pred) {
  const deadline = Date.now() + timeout;
  let last = null;
  while (Date.now() < deadline) {
    last = await room_messages(page);
    if (last && pred(last)) return last;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${what} within ${timeout} ms; room messages: ${JSON.stringify(last)}`);
}

// What the page shows, for a failure report.
async function describe(page) {
  return page.evaluate((room) => {
    const c = window.tcConverse;
    const boxes = c && c.state && c.state.chatboxes ? c.state.chatboxes
                : c && c.chatboxes ? c.chatboxes : null;
    return {
      converse: !!c,
      connected: !!(c && c.api && c.api.connection && c.api.connection.connected &&
                    c.api.connection.connected()),
      chatboxes: boxes ? boxes.map((b) => [b.get('jid'), b.get('type'),
                                           b.session && b.session.get('connection_status')])
                       : null,
      room_elements: document.querySelectorAll('converse-muc').length,
      textareas: [...document.querySelectorAll('textarea')].map((t) => t.className),
    };
  }, room);
}

let current = null;

async function open(browser, label) {
  const context = await browser.createBrowserContext();  // a fresh profile: no cache
  const page = await context.newPage();
  await page.setViewport({ width: 1200, height: 760 });
  page.on('console', (m) => {
    if (m.type() === 'error') step('console-error', { label, text: m.text().slice(0, 500) });
  });
  page.on('pageerror', (e) => step('page-error', { label, text: String(e).slice(0, 500) }));
  current = page;
  await page.goto(page_url, { waitUntil: 'load', timeout });
  step('page-loaded', { label });
  return { context, page };
}

const browser = await puppeteer.launch({
  executablePath: env('TC_CHROMIUM', '/usr/bin/chromium'),
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run'],
  timeout,
});
try {
  // 1. Log in, join, see what was said before.
  const first = await open(browser, 'first');
  await first.page.waitForSelector('textarea.chat-textarea', { timeout });
  step('room-open');
  await wait_for(first.page, `the earlier message "${expected}"`,
                 (ms) => ms.some((m) => m.body === expected));
  step('earlier-message-shown');

  // 2. Post; the message counts as sent once the room reflected it with its stanza-id.
  await first.page.type('textarea.chat-textarea', body);
  await first.page.keyboard.press('Enter');
  const sent = await wait_for(first.page, 'the reflection of the posted message',
                              (ms) => ms.some((m) => m.body === body && m.reflected));
  step('reflected', { messages: sent });
  await first.page.screenshot({ path: screenshot });
  step('screenshot', { path: screenshot });
  await first.context.close();

  // 3. A fresh profile (nothing cached) logs in again: the history comes from the server.
  const second = await open(browser, 'second');
  await second.page.waitForSelector('textarea.chat-textarea', { timeout });
  const history = await wait_for(second.page, 'both messages again after the reload',
    (ms) => ms.some((m) => m.body === expected) && ms.some((m) => m.body === body));
  step('history', { messages: history });
  await second.context.close();
  step('done');
} catch (e) {
  let page_state = null;
  if (current) {
    page_state = await describe(current).catch((x) => String(x));
    await current.screenshot({ path: screenshot.replace(/\.png$/, '') + '.failed.png' })
      .catch(() => {});
  }
  step('failed', { error: String(e && e.stack || e).slice(0, 2000), page: page_state });
  process.exitCode = 1;
} finally {
  await browser.close();
}
