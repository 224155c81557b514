// The Studio in a real browser: Debian's chromium (headless, driven by playwright-core) against
// a two-node litedistd cluster started here. The steps run in order on one page, as a user
// would: create a connection profile, create a document and see it in the grid, edit it (invalid
// JSON refused before anything is sent), see server errors as the server said them, pick
// columns, run a query with Ctrl+Enter, delete the document after a confirmation, use the cache
// browser, then open the dashboard from GET /, see the peer online, stop it and see it offline.
//
// LD_BIN_DIR: the build's bin directory (default build/bin). LD_STUDIO_SCREENSHOTS=DIR saves a
// screenshot of each screen there (docs/images/studio is made that way). LD_BROWSER_ARTIFACTS=DIR
// keeps a screenshot of the page when a step fails.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

import {
  CHROMIUM, CHROMIUM_ARGS, checkPrerequisites, makeTempDir, removeDir, startCluster, startNode,
  stopAll, unclean, waitFor, waitForText,
} from './harness.js';

const DB = 'studio-db';
const SHOTS = process.env.LD_STUDIO_SCREENSHOTS;
const ARTIFACTS = process.env.LD_BROWSER_ARTIFACTS;
const STEP_TIMEOUT = 45000; // per step; every wait inside is shorter
const XSS = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>';

const problems = checkPrerequisites();

let browser, page, dir, nodeA, nodeB, nodeC;
const consoleErrors = [];

// One step of the walk-through: on failure the page's screenshot and the nodes' logs go with
// the error.
function step(name, fn, options = {}) {
  test(name, { timeout: STEP_TIMEOUT, ...options }, async (t) => {
    // A missing prerequisite fails the step: ctest must not count an unrun walk-through as passed.
    if (problems.length) throw new Error(`cannot run the browser tests: ${problems.join('; ')}`);
    try {
      await fn(t);
    } catch (e) {
      if (ARTIFACTS && page) {
        mkdirSync(ARTIFACTS, { recursive: true });
        await page.screenshot({ path: join(ARTIFACTS, `${name.replace(/\W+/g, '-')}.png`), fullPage: true })
          .catch(() => {});
      }
      e.message += `\n${nodeA ? nodeA.logTail(20) : ''}\n${nodeB ? nodeB.logTail(10) : ''}`;
      throw e;
    }
  });
}

async function shot(name) {
  if (!SHOTS) return;
  mkdirSync(SHOTS, { recursive: true });
  await page.waitForTimeout(150); // let the last paint settle
  await page.screenshot({ path: join(SHOTS, `${name}.png`) });
}

const byTest = (id) => page.getByTestId(id);

before(async () => {
  if (problems.length) return;
  const { chromium } = await import('playwright-core');
  dir = makeTempDir();
  [nodeA, nodeB] = await startCluster(dir, ['node-a', 'node-b']);
  // A node that allows one other origin only: a Studio served by node-a may not call it.
  nodeC = await startNode(dir, 'node-c', { extra: { Studio: { CorsOrigins: ['https://studio.example.com'] } } });
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS,
    timeout: 30000 });
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  page = await context.newPage();
  page.setDefaultTimeout(10000);
  page.on('pageerror', (e) => consoleErrors.push(`pageerror: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() !== 'error') return;
    const text = m.text();
    const where = m.location()?.url ?? '';
    // The browser logs the answers the steps provoke on purpose: 4xx statuses, and node-c's
    // refusal of this page's origin. Anything else is the page's own error.
    if (/Failed to load resource: the server responded with a status of 4\d\d/.test(text)) return;
    if (nodeC && (where.startsWith(nodeC.url) || text.includes(nodeC.url))) return;
    consoleErrors.push(`console: ${text} (${where})`);
  });
});

after(async () => {
  try {
    if (browser) await browser.close();
  } finally {
    await stopAll();
    removeDir(dir);
  }
});

// ------------------------------------------------------------------------------------------------
// Connection profiles
// ------------------------------------------------------------------------------------------------

step('a first visit opens Connections, prefilled for the node that served it', async () => {
  await page.goto(`${nodeA.url}/studio/`);
  await page.waitForURL(/#\/profiles$/);
  assert.equal(await byTest('profile-url').inputValue(), nodeA.url);
  assert.equal(await byTest('profile-database').inputValue(), 'testapp');
  assert.equal(await byTest('profile-apikey').inputValue(), 'root');
});

step('a wrong key is refused with the server\'s own words', async () => {
  await byTest('profile-database').fill(DB);
  await byTest('profile-apikey').fill('not-a-key');
  await byTest('profile-test').click();
  const expected = (await nodeA.api('GET', '/dashboard/api/overview', { key: 'not-a-key' })).body.Error;
  assert.equal(expected, 'ApiKey is invalid.');
  await waitFor('the error notice', async () =>
    (await byTest('profile-notice').textContent()).includes(expected));
});

step('a profile is created, saved in the browser and used', async () => {
  // The database exists (a collection registered), as one a user connects to does.
  assert.equal((await nodeA.api('POST', '/api/documents/orders/register', { db: DB })).status, 200);
  await byTest('profile-name').fill('local A');
  await byTest('profile-apikey').fill('root');
  await byTest('profile-save').click();
  await waitForText('the connected notice', byTest('profile-notice'),
    /Saved 'local A' and connected/);
  const saved = await page.evaluate(() => JSON.parse(localStorage.getItem('litedist.studio.profiles')));
  assert.equal(saved.length, 1);
  assert.deepEqual({ name: saved[0].name, url: saved[0].url, database: saved[0].database, apiKey: saved[0].apiKey },
    { name: 'local A', url: nodeA.url, database: DB, apiKey: 'root' });
  await page.reload();
  assert.equal(await byTest('profile-row').count(), 1);
  assert.match(await byTest('profile-select').locator('option:checked').textContent(), /local A — studio-db/);
  await shot('connections');
});

step('a Studio served by one node reaches another through CORS, and only where allowed', async () => {
  // node-b allows any localhost/127.0.0.1 origin (the default): the preflight passes.
  await byTest('profile-url').fill(nodeB.url);
  await byTest('profile-test').click();
  await waitForText('the connected notice', byTest('profile-notice'),
    /^Connected to (node )?node-b/);
  // node-c allows https://studio.example.com only: the browser refuses the call.
  await byTest('profile-url').fill(nodeC.url);
  await byTest('profile-test').click();
  await waitForText('the refusal', byTest('profile-notice'),
    /^Cannot reach .*Studio\.CorsOrigins/);
  // Nothing was saved by testing.
  const saved = await page.evaluate(() => JSON.parse(localStorage.getItem('litedist.studio.profiles')));
  assert.deepEqual(saved.map((p) => p.url), [nodeA.url]);
});


// ------------------------------------------------------------------------------------------------
// Databases in navigation (issue 19 item 2)
// ------------------------------------------------------------------------------------------------

step('Test connection with a misspelt database says it does not exist, with the list to pick from', async () => {
  await byTest('profile-url').fill(nodeA.url);
  await byTest('profile-database').fill('studio-dbb');
  await byTest('profile-test').click();
  await waitForText('the does-not-exist notice', byTest('profile-notice'),
    /database 'studio-dbb' does not exist\. Pick one:/);
  const picks = await byTest('db-pick').allTextContents();
  assert.ok(picks.includes(DB), picks.join(','));
  await byTest('db-pick').filter({ hasText: DB }).click();
  assert.equal(await byTest('profile-database').inputValue(), DB);
});

step('Use on a profile shows it in the form', async () => {
  // A second database and a profile for it.
  assert.equal((await nodeA.api('POST', '/api/documents/contacts/register', { db: 'crm' })).status, 200);
  await page.locator('form[data-testid="profile-form"] button', { hasText: 'Clear' }).click();
  await byTest('profile-name').fill('crm');
  await byTest('profile-database').fill('crm');
  await byTest('profile-save').click();
  await waitFor('the crm profile', async () => (await byTest('profile-row').count()) === 2);
  const rowA = byTest('profile-row').filter({ hasText: 'local A' });
  await rowA.getByTestId('profile-use').click();
  assert.equal(await byTest('profile-name').inputValue(), 'local A');
  assert.equal(await byTest('profile-database').inputValue(), DB);
  assert.equal(await page.locator('.form h2').textContent(), 'Edit local A');
  // The nav leads to the database of the profile in use.
  assert.equal(await page.locator('.nav a[data-route="explorer"]').getAttribute('href'), `#/db/${DB}/explorer`);
  await byTest('profile-row').filter({ hasText: 'crm' }).getByTestId('profile-use').click();
  assert.equal(await page.locator('.nav a[data-route="explorer"]').getAttribute('href'), '#/db/crm/explorer');
  await rowA.getByTestId('profile-use').click();
});

step('an old link redirects to a route naming the database; an unknown collection says so', async () => {
  await page.goto(`${nodeA.url}/studio/#/explorer/ordrs`);
  await page.waitForURL(/#\/db\/studio-db\/explorer\/ordrs$/);
  await waitFor('the unknown-collection notice', async () =>
    (await byTest('explorer-notice').textContent()) ===
      "Collection 'ordrs' does not exist in database 'studio-db'. Pick one of the list, or create a document to create it.");
  assert.equal(await page.locator('.nav a[aria-current="page"]').textContent(), 'Data');
  await byTest('new-doc').click();
  assert.equal(await byTest('new-collection').inputValue(), '');
  await page.keyboard.press('Escape');
});

step('switching connection or database never shows one database\'s collection under another\'s name', async () => {
  await page.goto(`${nodeA.url}/studio/#/db/${DB}/explorer/orders`);
  await byTest('collection-title').filter({ hasText: 'orders' }).waitFor();
  const crm = await page.evaluate(() =>
    JSON.parse(localStorage.getItem('litedist.studio.profiles')).find((p) => p.name === 'crm').id);
  await byTest('profile-select').selectOption(crm);
  await page.waitForURL(/#\/db\/crm\/explorer$/);
  assert.equal(await byTest('collection-title').textContent(), 'Pick a collection');
  await waitFor('crm\'s collections', async () =>
    (await byTest('collection-link').allTextContents()).join(',') === 'contacts');
  await byTest('new-doc').click();
  assert.equal(await byTest('new-collection').inputValue(), '');
  await page.keyboard.press('Escape');
  // The database picker lists /api/databases and switches within the connection.
  await waitFor('the database list', async () =>
    (await byTest('db-select').locator('option').allTextContents()).includes(DB));
  await byTest('db-select').selectOption(DB);
  await page.waitForURL(new RegExp(`#/db/${DB}/explorer$`));
  assert.equal(await byTest('collection-title').textContent(), 'Pick a collection');
  const local = await page.evaluate(() =>
    JSON.parse(localStorage.getItem('litedist.studio.profiles')).find((p) => p.name === 'local A').id);
  await byTest('profile-select').selectOption(local);
  await page.waitForURL(new RegExp(`#/db/${DB}/explorer$`));
  assert.equal(await page.evaluate(() => JSON.parse(localStorage.getItem('litedist.studio.activeProfile'))), local);
});

step('a database is created and deleted (after a confirmation) from the explorer', async () => {
  await byTest('db-create').click();
  await byTest('prompt-database').fill('scratch');
  await byTest('prompt-collection').fill('notes');
  await byTest('prompt-ok').click();
  await page.waitForURL(/#\/db\/scratch\/explorer\/notes$/);
  assert.ok((await nodeA.api('GET', '/api/databases')).body.includes('scratch'));
  await byTest('db-delete').click();
  assert.match(await byTest('confirm-dialog').textContent(), /Delete the database 'scratch'/);
  await byTest('confirm-ok').click();
  await page.waitForURL(/#\/db\/(?!scratch)[^/]+\/explorer$/);
  assert.ok(!(await nodeA.api('GET', '/api/databases')).body.includes('scratch'));
});

// ------------------------------------------------------------------------------------------------
// Data explorer
// ------------------------------------------------------------------------------------------------

step('a document is created and shown in the grid, markup shown as text', async () => {
  await page.goto(`${nodeA.url}/studio/#/explorer`);
  await byTest('new-doc').click();
  await byTest('new-collection').fill('orders');
  const doc = { Id: 'o-1', Customer: 'Ada', Total: 42.5, Items: [{ sku: 'a-1', qty: 2 }], Note: XSS };
  await byTest('doc-editor').fill(JSON.stringify(doc, null, 2));
  await byTest('doc-create').click();
  await page.waitForURL(/#\/db\/studio-db\/explorer\/orders$/);
  const row = byTest('doc-grid').locator('tbody tr', { hasText: 'o-1' });
  await row.waitFor();
  assert.match(await row.textContent(), /Ada/);
  // The markup is in the cell as text: no element was made from it, nothing ran.
  assert.ok((await row.textContent()).includes(XSS));
  assert.equal(await byTest('doc-grid').locator('img, script').count(), 0);
  assert.equal(await page.evaluate(() => window.__xss), undefined);
  const stored = await nodeA.api('GET', '/api/documents/orders/o-1', { db: DB });
  assert.equal(stored.status, 200);
  assert.deepEqual(stored.body, doc);
  // A second document, so the grid has more than one row and one more column.
  await byTest('new-doc').click();
  await byTest('doc-editor').fill('{"Id": "o-2", "Customer": "Bob", "Total": 7, "Paid": true}');
  await byTest('doc-create').click();
  await byTest('doc-grid').locator('tbody tr', { hasText: 'o-2' }).waitFor();
  await byTest('doc-title').filter({ hasText: 'orders / o-2' }).waitFor(); // the create has ended
  assert.equal(await byTest('doc-grid').locator('tbody tr').count(), 2);
});

step('a document opens as formatted JSON', async () => {
  await byTest('doc-grid').locator('tbody tr', { hasText: 'o-1' }).click();
  await byTest('doc-title').filter({ hasText: 'orders / o-1' }).waitFor();
  const view = byTest('doc-json');
  await view.waitFor();
  const text = await view.textContent();
  assert.match(text, /\n {2}"Customer": "Ada",\n/);
  assert.match(text, /"qty": 2/);
  assert.equal(await view.locator('img, script').count(), 0);
  assert.equal(await page.evaluate(() => window.__xss), undefined);
  await shot('data-explorer');
});

step('invalid JSON is refused before anything is sent', async () => {
  const writes = [];
  const watch = (req) => {
    if (req.method() !== 'GET') writes.push(`${req.method()} ${req.url()}`);
  };
  page.on('request', watch);
  try {
    await byTest('doc-edit').click();
    await byTest('doc-editor').fill('{\n  "Id": "o-1",\n  "Total": }');
    await byTest('doc-save').click();
    const problem = byTest('doc-editor-error');
    await problem.waitFor();
    assert.match(await problem.textContent(), /^Invalid JSON: .*\(expected a value at line 3, column 12\)$/);
    // The editor: line numbers, the line in error marked, the caret where the value is missing.
    const gutter = byTest('doc-editor-gutter');
    assert.deepEqual(await gutter.locator('.ce-line').allTextContents(), ['1', '2', '3']);
    assert.equal(await gutter.locator('.ce-line-error').textContent(), '3');
    assert.equal(await byTest('doc-editor').evaluate((e) => e.selectionStart), 28);
    // Format re-indents valid JSON (the exact number kept), and highlights it.
    await byTest('doc-editor').fill('{"Id":"o-1","Big":12345678901234567890,"A":[1,{"b":null}]}');
    await byTest('doc-editor-format').click();
    assert.equal(await byTest('doc-editor').inputValue(),
      '{\n  "Id": "o-1",\n  "Big": 12345678901234567890,\n  "A": [\n    1,\n    {\n      "b": null\n    }\n  ]\n}');
    assert.equal(await gutter.locator('.ce-line').count(), 10);
    const hl = page.locator('.doc-panel .ce-highlight');
    // The highlighted copy lies exactly under the text box's text.
    const metrics = await page.evaluate(() => {
      const m = (el) => {
        const c = getComputedStyle(el);
        return [c.fontFamily, c.fontSize, c.lineHeight, c.paddingLeft, c.paddingTop, el.getBoundingClientRect().left];
      };
      const box = document.querySelector('.doc-panel .ce-input');
      const pre = document.querySelector('.doc-panel .ce-highlight');
      const code = pre.querySelector('code');
      return { box: m(box), pre: m(pre), code: [getComputedStyle(code).paddingLeft, getComputedStyle(code).fontSize] };
    });
    assert.deepEqual(metrics.pre, metrics.box);
    assert.deepEqual(metrics.code, ['0px', metrics.box[1]]);
    assert.equal(await hl.locator('.j-key').first().textContent(), '"Id"');
    assert.equal(await hl.locator('.j-num').first().textContent(), '12345678901234567890');
    // Valid JSON that is not an object is refused as well.
    await byTest('doc-editor').fill('[1, 2]');
    await byTest('doc-save').click();
    await waitFor('the not-an-object message', async () =>
      (await problem.textContent()) === 'A document must be a JSON object.');
    await page.waitForTimeout(300);
    assert.deepEqual(writes, []);
  } finally {
    page.off('request', watch);
  }
  const stored = await nodeA.api('GET', '/api/documents/orders/o-1', { db: DB });
  assert.equal(stored.body.Total, 42.5);
});

step('a document is edited', async () => {
  const edited = { Id: 'o-1', Customer: 'Ada Lovelace', Total: 50, Note: XSS };
  await byTest('doc-editor').fill(JSON.stringify(edited, null, 2));
  await shot('edit-document');
  await byTest('doc-editor').press('Control+s'); // saves, as the Save button does
  await waitForText('the saved notice', byTest('explorer-notice'),
    'Saved orders/o-1.');
  await waitFor('the panel to show the new version', async () =>
    (await byTest('doc-json').textContent()).includes('"Ada Lovelace"'));
  const stored = await nodeA.api('GET', '/api/documents/orders/o-1', { db: DB });
  assert.deepEqual(stored.body, edited);
  const row = byTest('doc-grid').locator('tbody tr', { hasText: 'o-1' });
  assert.match(await row.textContent(), /Ada Lovelace/);
  // Escape closes the panel; the next step opens the document again.
  await page.keyboard.press('Escape');
  await waitFor('the panel to close', async () => await byTest('doc-panel').isHidden());
  await row.click();
  await byTest('doc-json').waitFor();
});

step('server errors are shown as the server said them', async () => {
  const cases = [
    ['9bad', '{"Id": "x"}'],
    ['orders', '{"Customer": "nobody"}'],
    ['cache', '{"Id": "x"}'],
  ];
  for (const [coll, body] of cases) {
    const direct = await nodeA.api('POST', `/api/documents/${coll}`, { db: DB, body: JSON.parse(body) });
    assert.ok(direct.status >= 400, `${coll}: ${direct.status}`);
    await byTest('new-doc').click();
    await byTest('new-collection').fill(coll);
    await byTest('doc-editor').fill(body);
    await byTest('doc-create').click();
    await waitFor(`the error for ${coll}`, async () =>
      (await byTest('doc-notice').textContent()) === direct.body.Error);
  }
  await byTest('doc-close').click();
});

step('columns are picked from the documents\' fields and kept', async () => {
  const headers = () => byTest('doc-grid').locator('thead th').allTextContents();
  assert.deepEqual(await headers(), ['Id', 'Customer', 'Total', 'Note', 'Paid']);
  await byTest('doc-grid-columns').click();
  await byTest('doc-grid-picker').locator('input[data-column="Note"]').uncheck();
  await byTest('doc-grid-picker').locator('input[data-column="Paid"]').uncheck();
  assert.deepEqual(await headers(), ['Id', 'Customer', 'Total']);
  await page.reload();
  await byTest('doc-grid').locator('tbody tr', { hasText: 'o-2' }).waitFor();
  assert.deepEqual(await headers(), ['Id', 'Customer', 'Total']);
  await byTest('doc-grid-columns').click();
  await byTest('doc-grid-picker').getByRole('button', { name: 'Default' }).click();
  assert.deepEqual(await headers(), ['Id', 'Customer', 'Total', 'Note', 'Paid']);
  await byTest('doc-grid-columns').click();
});

step('pages follow the ids: Next starts after the last id shown, Prev goes back', async () => {
  // 30 documents, ids p-00 .. p-29 (id order is the listing's order): 25 on the first page.
  for (let i = 0; i < 30; i++) {
    const id = `p-${String(i).padStart(2, '0')}`;
    const r = await nodeA.api('PUT', `/api/documents/pages/${id}`, { db: DB, body: { n: i } });
    assert.equal(r.status, 200);
  }
  const requests = [];
  const counts = [];
  const watch = (req) => {
    if (req.url().includes('/api/documents/pages?')) requests.push(new URL(req.url()).search);
    if (req.url().endsWith('/api/query') && /COUNT\(\*\)/.test(req.postData() || '')) counts.push(req.postData());
  };
  page.on('request', watch);
  try {
    await page.goto(`${nodeA.url}/studio/#/explorer/pages`);
    const rows = byTest('doc-grid').locator('tbody tr');
    await rows.filter({ hasText: 'p-24' }).waitFor();
    assert.equal(await rows.count(), 25);
    assert.equal(await byTest('page-label').textContent(), 'rows 1–25');
    assert.ok(await byTest('page-prev').isDisabled());
    await waitForText('the total', byTest('total-label'), 'of 30');
    assert.equal(counts.length, 1);
    await byTest('page-next').click();
    await rows.filter({ hasText: 'p-29' }).waitFor();
    assert.equal(await rows.count(), 5);
    assert.equal(await byTest('page-label').textContent(), 'rows 26–30');
    assert.ok(await byTest('page-next').isDisabled());
    // The second page was asked for after the first page's last id, not by skipping rows.
    assert.ok(requests.some((q) => q.includes('after=p-24')), requests.join(' '));
    assert.ok(!requests.some((q) => q.includes('skip=')), requests.join(' '));
    await byTest('page-prev').click();
    await rows.filter({ hasText: 'p-00' }).waitFor();
    assert.equal(await rows.count(), 25);
    assert.equal(await byTest('page-label').textContent(), 'rows 1–25');
    // Paging does not count the collection again.
    assert.equal(counts.length, 1, counts.join(' | '));
    assert.equal(await byTest('total-label').textContent(), 'of 30');
  } finally {
    page.off('request', watch);
  }
});


// 37 documents b-00 .. b-36 in `bulk`: n, a Status (every third 'open', the rest 'shipped'), a
// nested Ship.City. The bulk-write, filter, sort, totals and export steps use them.
async function seedBulk() {
  for (let i = 0; i < 37; i++) {
    const id = `b-${String(i).padStart(2, '0')}`;
    const r = await nodeA.api('PUT', `/api/documents/bulk/${id}`, { db: DB,
      body: { Id: id, n: i, Status: i % 3 === 0 ? 'open' : 'shipped', Ship: { City: `c${i % 4}` } } });
    assert.equal(r.status, 200);
  }
}

step('data: totals, a LiteQL filter, sort by column, go to Id, nested paths in the column picker', async () => {
  await seedBulk();
  await page.goto(`${nodeA.url}/studio/#/db/${DB}/explorer/bulk`);
  const rows = byTest('doc-grid').locator('tbody tr');
  await rows.filter({ hasText: 'b-24' }).waitFor();
  await waitForText('the total', byTest('total-label'), 'of 37');
  // The filter runs as a WHERE.
  await byTest('filter').fill('$.n >= 30');
  await byTest('filter').press('Enter');
  await waitForText('the filtered total', byTest('total-label'),
    'of 7 matching');
  assert.equal(await rows.count(), 7);
  assert.equal(await byTest('page-label').textContent(), 'rows 1–7');
  // A bad filter shows the parser's words.
  await byTest('filter').fill('$.n >');
  await byTest('filter-apply').click();
  await waitForText('the filter error', byTest('explorer-notice'),
    /^Filter: /);
  await byTest('filter').fill('');
  await byTest('filter').press('Enter');
  await waitForText('the whole collection again', byTest('total-label'),
    'of 37');
  // Sort: ascending, then descending by n; the header says so.
  const nHeader = byTest('sort-column').and(page.locator('[data-column="n"]'));
  await nHeader.click();
  await nHeader.click();
  await waitFor('b-36 first', async () =>
    /^b-36/.test(await rows.first().textContent()));
  assert.equal(await page.locator('th[aria-sort="descending"]').textContent(), 'n ▼');
  assert.equal(await rows.count(), 25);
  await byTest('page-next').click();
  await waitFor('the second sorted page', async () => /^b-11/.test(await rows.first().textContent()));
  assert.equal(await rows.count(), 12);
  assert.equal(await byTest('page-label').textContent(), 'rows 26–37');
  await nHeader.click(); // back to id order
  await waitFor('id order', async () => /^b-00/.test(await rows.first().textContent()));
  assert.equal(await page.locator('th[aria-sort]').count(), 0);
  // Go to Id.
  await byTest('goto-id').fill('b-05');
  await byTest('goto-id').press('Enter');
  await byTest('doc-title').filter({ hasText: 'bulk / b-05' }).waitFor();
  await page.keyboard.press('Escape');
  await byTest('goto-id').fill('nope');
  await byTest('goto-id-go').click();
  await waitFor('the not-found notice', async () =>
    (await byTest('explorer-notice').textContent()) === "No document 'nope' in bulk.");
  // The nested path Ship.City is offered and shows its values.
  await byTest('doc-grid-columns').click();
  await byTest('doc-grid-picker').locator('input[data-column="Ship.City"]').check();
  await byTest('doc-grid-columns').click();
  const headers = await byTest('doc-grid').locator('thead th').allTextContents();
  assert.deepEqual(headers, ['Id', 'n', 'Status', 'Ship', 'Ship.City']);
  assert.match(await rows.first().textContent(), /c0$/);
});

step('the explorer follows the changes feed: new, changed and deleted documents without a reload', async () => {
  await waitFor('the live indicator', async () =>
    (await byTest('live-indicator').getAttribute('data-state')) === 'on');
  assert.match(await byTest('live-indicator').textContent(), /^Live/);
  const rows = byTest('doc-grid').locator('tbody tr');
  // A new document (written by another client, here straight to the node).
  await nodeA.api('PUT', '/api/documents/bulk/b-0a', { db: DB, body: { Id: 'b-0a', n: 100 } });
  const added = rows.filter({ hasText: 'b-0a' });
  await added.waitFor({ timeout: 10000 });
  await waitFor('the new row highlighted', async () => /row-live/.test(await added.getAttribute('class')));
  // A change, to the document open in the panel: the panel shows the new version too.
  await rows.filter({ hasText: 'b-01' }).click();
  await byTest('doc-title').filter({ hasText: 'bulk / b-01' }).waitFor();
  await nodeA.api('PUT', '/api/documents/bulk/b-01', { db: DB,
    body: { Id: 'b-01', n: 1, Status: 'shipped', Ship: { City: 'c-changed' } } });
  await waitFor('b-01 changed', async () =>
    /c-changed/.test(await rows.filter({ hasText: 'b-01' }).textContent()));
  await waitForText('the panel to follow', byTest('doc-json'),
    /c-changed/);
  // Being edited, it keeps the user's text and says the document changed meanwhile.
  await byTest('doc-edit').click();
  await nodeA.api('PUT', '/api/documents/bulk/b-01', { db: DB,
    body: { Id: 'b-01', n: 1, Status: 'shipped', Ship: { City: 'c-changed' }, Note: 'again' } });
  await waitForText('the meanwhile warning', byTest('doc-notice'),
    'bulk/b-01 was changed meanwhile: Save replaces that version.');
  await byTest('doc-close').click();
  // A delete.
  await nodeA.api('DELETE', '/api/documents/bulk/b-0a', { db: DB });
  await waitFor('b-0a gone', async () => (await rows.filter({ hasText: 'b-0a' }).count()) === 0);
  await waitForText('the total follows', byTest('total-label'),
    'of 37');
  assert.match(await byTest('live-indicator').textContent(), /^Live · 1 change \(1 deleted\)/);
  // Leaving the page ends the feed: its waiting request is cancelled.
  const ended = page.waitForEvent('requestfailed', { predicate: (r) => r.url().includes('/api/changes'),
    timeout: 5000 });
  await page.locator('.nav a[data-route="query"]').click();
  await ended;
});

step('a collection is exported as JSON Lines and imported back', async () => {
  await page.goto(`${nodeA.url}/studio/#/db/${DB}/explorer/bulk`);
  await byTest('doc-grid').locator('tbody tr', { hasText: 'b-00' }).waitFor();
  const [download] = await Promise.all([page.waitForEvent('download'), byTest('export').click()]);
  assert.equal(download.suggestedFilename(), `${DB}-bulk.jsonl`);
  const text = await readFile(await download.path(), 'utf8');
  const lines = text.trimEnd().split('\n');
  assert.equal(lines.length, 37);
  assert.deepEqual(JSON.parse(lines[0]), { collection: 'bulk', id: 'b-00',
    document: { Id: 'b-00', n: 0, Status: 'open', Ship: { City: 'c0' } } });
  await waitForText('the exported notice', byTest('explorer-notice'),
    'Exported 37 documents of bulk.');
  // Import: new ids, a number kept exactly, into the open collection.
  const file = '{"collection":"bulk","id":"imp-1","document":{"Id":"imp-1","Big":12345678901234567890}}\n' +
    '{"collection":"bulk","id":"imp-2","document":{"Id":"imp-2","n":2}}\n';
  await byTest('import-file').setInputFiles({ name: 'in.jsonl', mimeType: 'application/x-ndjson',
    buffer: Buffer.from(file) });
  await waitForText('the imported notice', byTest('explorer-notice'),
    'Imported 2 documents into bulk.');
  const big = await nodeA.api('GET', '/api/documents/bulk/imp-1', { db: DB });
  assert.equal(big.text, '{"Id":"imp-1","Big":12345678901234567890}');
  // A bad line stops the import before anything is written.
  await byTest('import-file').setInputFiles({ name: 'bad.jsonl', mimeType: 'application/x-ndjson',
    buffer: Buffer.from('{"collection":"bulk","id":"imp-3","document":{"Id":"imp-3"}}\n{"id": 4}\n') });
  await waitForText('the bad-line notice', byTest('explorer-notice'),
    'Nothing was imported: line 2: needs "collection" and "id" strings and a "document" object');
  assert.equal((await nodeA.api('GET', '/api/documents/bulk/imp-3', { db: DB })).status, 404);
  // The grid refreshed by the changes feed leaves that message alone.
  await nodeA.api('PUT', '/api/documents/bulk/a-imp-4', { db: DB, body: { Id: 'a-imp-4' } });
  await byTest('doc-grid').locator('tbody tr', { hasText: 'a-imp-4' }).waitFor();
  await waitForText('the total after a-imp-4', byTest('total-label'), 'of 40');
  assert.equal(await byTest('explorer-notice').textContent(),
    'Nothing was imported: line 2: needs "collection" and "id" strings and a "document" object');
  for (const id of ['imp-1', 'imp-2', 'a-imp-4'])
    await nodeA.api('DELETE', `/api/documents/bulk/${id}`, { db: DB });
});

// ------------------------------------------------------------------------------------------------
// Query runner
// ------------------------------------------------------------------------------------------------

step('a query runs with Ctrl+Enter: counts, grid, JSON and history', async () => {
  await page.goto(`${nodeA.url}/studio/#/query`);
  const q = 'SELECT $ FROM orders WHERE $.Total > 10';
  await byTest('query-editor').fill(q);
  await byTest('query-editor').press('Control+Enter');
  await waitFor('the query stats', async () => await byTest('query-stats').isVisible());
  const direct = await nodeA.api('POST', '/api/query', { db: DB, body: { Query: q, Take: 200 } });
  assert.equal(direct.body.MatchedCount, 1);
  assert.match(await byTest('stat-matched').textContent(), /Matched\s*1$/);
  assert.match(await byTest('stat-applied').textContent(), /Applied\s*0$/);
  assert.match(await byTest('stat-returned').textContent(), /Returned\s*1$/);
  assert.match(await byTest('stat-time').textContent(), /Time\s*[\d.]+ ms$/);
  const rows = byTest('query-grid').locator('tbody tr');
  assert.equal(await rows.count(), 1);
  assert.match(await rows.first().textContent(), /o-1.*Ada Lovelace/);
  await shot('query');
  await byTest('tab-json').click();
  const json = await byTest('query-json').textContent();
  assert.match(json, /"MatchedCount": 1/);
  assert.match(json, /"Rows": \[/);
  assert.equal(await byTest('query-history').locator('li').first().textContent(), q);
});

step('a bad query shows the parser\'s message; history recalls queries', async () => {
  const bad = "SELECT $ FROM orders WHERE $.a = 'x";
  await byTest('query-editor').fill(bad);
  await byTest('query-run').click();
  const direct = await nodeA.api('POST', '/api/query', { db: DB, body: { Query: bad } });
  assert.equal(direct.status, 400);
  await waitFor('the parser message', async () =>
    (await byTest('query-notice').textContent()) === direct.body.Error);
  // The message names a position ("Unterminated string at position 34."): the caret is there.
  const pos = Number(/ at position (\d+)\.$/.exec(direct.body.Error)[1]);
  assert.equal(await byTest('query-editor').evaluate((e) => e.selectionStart), pos - 1);
  const history = await byTest('query-history').locator('li').allTextContents();
  assert.deepEqual(history.slice(0, 2), [bad, 'SELECT $ FROM orders WHERE $.Total > 10']);
  await byTest('query-history').locator('li').nth(1).getByRole('button').click();
  assert.equal(await byTest('query-editor').inputValue(), 'SELECT $ FROM orders WHERE $.Total > 10');
});


step('a bulk UPDATE is counted and confirmed; capped by Take, it says so and continues until all are applied', async () => {
  await page.goto(`${nodeA.url}/studio/#/db/${DB}/query`);
  const q = "UPDATE bulk SET {\"Reviewed\": true} WHERE $.Status = 'shipped'";
  const reviewed = async () => (await nodeA.api('POST', '/api/query', { db: DB,
    body: { Query: 'SELECT COUNT(*) FROM bulk WHERE $.Reviewed = true' } })).body.Rows[0]['[value]'];
  await byTest('query-take').fill('10');
  await byTest('query-editor').fill(q);
  // Cancelled: nothing is written.
  await byTest('query-run').click();
  await byTest('confirm-dialog').waitFor();
  assert.match(await byTest('confirm-dialog').textContent(),
    /Update 24 documents\?This UPDATE matches 24 documents in bulk \(database studio-db\).*Take is 10, so this run applies the first 10/);
  await byTest('confirm-cancel').click();
  assert.equal(await reviewed(), 0);
  // Confirmed: the first 10, then a warning and the offer to continue.
  await byTest('query-run').click();
  await byTest('confirm-ok').click();
  await waitForText('the capped warning', byTest('bulk-notice'),
    /^Applied 10 of 24 matched documents: Take \(10\) capped this run, so 14 are not written yet\./);
  assert.equal(await reviewed(), 10);
  await shot('bulk-capped');
  await byTest('bulk-continue').click();
  await waitForText('all applied', byTest('query-notice'),
    'Updated 24 of the 24 matched documents: all are applied.');
  assert.equal(await reviewed(), 24);
  assert.ok(await byTest('bulk-notice').isHidden());
});

step('a bulk DELETE is confirmed; a SELECT cut at Take loads more', async () => {
  await byTest('query-editor').fill("DELETE FROM bulk WHERE $.n >= 30");
  await byTest('query-take').fill('200');
  await byTest('query-run').click();
  assert.match(await byTest('confirm-dialog').textContent(), /Delete 7 documents\?/);
  await byTest('confirm-ok').click();
  await waitForText('all deleted', byTest('query-notice'),
    'Deleted all 7 matched documents.');
  await byTest('query-take').fill('10');
  await byTest('query-editor').fill('SELECT $ FROM bulk');
  await byTest('query-run').click();
  await waitForText('load more', byTest('query-more'),
    'Load more (10 of 30)');
  await byTest('query-more').click();
  await waitFor('20 rows', async () => (await byTest('query-grid').locator('tbody tr').count()) === 20);
  assert.equal(await byTest('query-more').textContent(), 'Load more (20 of 30)');
  await byTest('query-more').click();
  await waitFor('30 rows', async () => (await byTest('query-grid').locator('tbody tr').count()) === 30);
  assert.ok(await byTest('query-more').isHidden());
});

// ------------------------------------------------------------------------------------------------
// Delete
// ------------------------------------------------------------------------------------------------

step('a document is deleted only after the confirmation', async () => {
  await page.goto(`${nodeA.url}/studio/#/explorer/orders`);
  await byTest('doc-grid').locator('tbody tr', { hasText: 'o-1' }).click();
  await byTest('doc-delete').click();
  await byTest('confirm-dialog').waitFor();
  await shot('delete-confirmation');
  await byTest('confirm-cancel').click();
  assert.equal(await byTest('confirm-dialog').count(), 0);
  assert.equal((await nodeA.api('GET', '/api/documents/orders/o-1', { db: DB })).status, 200);
  await byTest('doc-delete').click();
  await byTest('confirm-ok').click();
  await waitForText('the deleted notice', byTest('explorer-notice'),
    'Deleted orders/o-1.');
  await waitFor('o-1 to leave the grid', async () =>
    (await byTest('doc-grid').locator('tbody tr', { hasText: 'o-1' }).count()) === 0);
  assert.equal((await nodeA.api('GET', '/api/documents/orders/o-1', { db: DB })).status, 404);
});

// ------------------------------------------------------------------------------------------------
// Cache browser
// ------------------------------------------------------------------------------------------------

step('the cache browser sets, reads and deletes a key', async () => {
  await page.goto(`${nodeA.url}/studio/#/cache`);
  await byTest('cache-key').fill('greeting');
  await byTest('cache-value').fill('{"hello": "<b>studio</b>", "n": 1}');
  await byTest('cache-ttl').fill('1m');
  await byTest('cache-set').click();
  await byTest('cache-result').waitFor({ state: 'visible' });
  assert.equal(await byTest('cache-entry-key').textContent(), 'greeting');
  // The remaining TTL reads as a duration (set to 1m: under a minute left, in seconds with a
  // tenth), the exact milliseconds in its title.
  const ttl = byTest('cache-entry-ttl').locator('span');
  const shown = (await ttl.textContent()).match(/^(\d{1,2}\.\d)s$/);
  assert.ok(shown && Number(shown[1]) > 30 && Number(shown[1]) <= 60, await ttl.textContent());
  assert.match(await ttl.getAttribute('title'), /^\d+ms$/);
  assert.match(await byTest('cache-entry-value').textContent(), /"hello": "<b>studio<\/b>"/);
  assert.equal(await byTest('cache-result').locator('b').count(), 0);
  const stored = await nodeA.api('GET', '/api/cache/greeting', { db: DB });
  assert.deepEqual(stored.body.Value, { hello: '<b>studio</b>', n: 1 });
  await shot('cache');
  await byTest('cache-delete').click();
  await byTest('confirm-ok').click();
  await waitFor('the deleted notice', async () =>
    (await byTest('cache-notice').textContent()) === "Deleted 'greeting'.");
  const gone = await nodeA.api('GET', '/api/cache/greeting', { db: DB });
  assert.equal(gone.status, 404);
  await byTest('cache-get').click();
  await waitFor('the server\'s 404 message', async () =>
    (await byTest('cache-notice').textContent()) === gone.body.Error);
});


step('the cache browser lists keys by pattern, a page at a time', async () => {
  for (let i = 0; i < 55; i++) {
    const r = await nodeA.api('PUT', `/api/cache/many:${String(i).padStart(2, '0')}?ttl=5m`, { db: DB, body: i });
    assert.equal(r.status, 200);
  }
  for (const k of ['sess:1', 'sess:2']) await nodeA.api('PUT', `/api/cache/${k}?ttl=5m`, { db: DB, body: { k } });
  await page.goto(`${nodeA.url}/studio/#/db/${DB}/cache`);
  await byTest('cache-match').fill('many:*');
  await byTest('cache-list').click();
  const links = byTest('cache-key-link');
  await waitForText('the first page', byTest('cache-keys-info'),
    '50 keys matching many:*, more follow');
  assert.equal(await links.count(), 50);
  assert.equal(await links.first().textContent(), 'many:00');
  await byTest('cache-keys-more').click();
  await waitForText('the second page', byTest('cache-keys-info'),
    '55 keys matching many:*');
  assert.equal(await links.nth(54).textContent(), 'many:54');
  assert.ok(await byTest('cache-keys-more').isHidden());
  await byTest('cache-match').fill('sess:?');
  await byTest('cache-match').press('Enter');
  await waitFor('the sess keys', async () => (await links.allTextContents()).join(',') === 'sess:1,sess:2');
  await links.nth(1).click();
  await waitForText('the key read', byTest('cache-entry-key'),
    'sess:2');
  assert.match(await byTest('cache-entry-value').textContent(), /"k": "sess:2"/);
  await shot('cache-keys');
});

// ------------------------------------------------------------------------------------------------
// Node dashboard
// ------------------------------------------------------------------------------------------------

step('GET / lands on the dashboard; the peer is online', async () => {
  await page.goto(`${nodeA.url}/`);
  await page.waitForURL(/\/studio\/#\/dashboard$/);
  await waitFor('the node id', async () => (await byTest('dash-node-id').textContent()).includes('node-a'));
  assert.match(await byTest('dash-uptime').textContent(), /Uptime\s*\d+[dhms]/);
  const peer = byTest('peer-card').and(page.locator('[data-peer="node-b"]'));
  await waitFor('node-b online', async () =>
    (await peer.getByTestId('peer-status').textContent()) === 'Online', { timeout: 15000 });
  assert.equal(await peer.getByTestId('peer-chart').count(), 1);
  // The database: its size and op-log length as the node reports them.
  const ov = (await nodeA.api('GET', '/dashboard/api/overview')).body;
  const d = ov.Databases.find((x) => x.Name === DB);
  assert.ok(d && d.LocalMaxLogSequence >= 4, JSON.stringify(d));
  const card = byTest('db-card').and(page.locator(`[data-db="${DB}"]`));
  await waitFor('the op-log length', async () =>
    (await card.getByTestId('db-oplog').textContent()) === `Op log ${d.LocalMaxLogSequence}`);
  assert.match(await card.getByTestId('db-size').textContent(), /^Size \d+(\.\d)? (B|KiB|MiB)$/);
  // The storage bound: the log held and the purge's figures (no prune pass ran yet).
  assert.match(await card.getByTestId('db-oplog-held').textContent(), /^Log held \d+ \(\d+(\.\d)? (B|KiB|MiB)\)$/);
  assert.equal(await card.getByTestId('db-tombstones').textContent(), 'Tombstones —');
  assert.equal(await card.getByTestId('db-purge-floor').textContent(), 'Purge floor none');
  const replRow = card.getByTestId('repl-peer-row');
  assert.equal(await replRow.count(), 1);
  assert.equal(await replRow.getAttribute('data-peer'), 'node-b');
  await waitFor('the push checkpoint to reach the op log', async () =>
    (await replRow.getByTestId('repl-push').textContent()) === `${d.LocalMaxLogSequence} / ${d.LocalMaxLogSequence}`,
  { timeout: 15000 });
  const nodeRows = byTest('node-row');
  assert.equal(await nodeRows.count(), 2);
  await shot('dashboard');
});

step('the peer stopped, the dashboard shows it offline', async () => {
  assert.equal(unclean(nodeB, await nodeB.stop()), null);
  const peer = byTest('peer-card').and(page.locator('[data-peer="node-b"]'));
  await waitFor('node-b offline', async () =>
    (await peer.getByTestId('peer-status').textContent()) === 'Offline', { timeout: 20000 });
  assert.match(await peer.getByTestId('peer-error').textContent(), /refused|cannot connect|timed out/i);
  const row = byTest('node-row').and(page.locator('[data-node="node-b"]'));
  assert.equal(await row.getByTestId('node-status').textContent(), 'Offline');
  // The database's link to node-b says the same in the same refresh (one source for both).
  const link = byTest('db-card').and(page.locator(`[data-db="${DB}"]`)).getByTestId('repl-peer-row')
    .and(page.locator('[data-peer="node-b"]')).getByTestId('repl-link');
  assert.equal(await link.textContent(), 'Offline');
  await shot('dashboard-peer-offline');
});


// ------------------------------------------------------------------------------------------------
// Phone layout and dark mode (issue 19 item 6)
// ------------------------------------------------------------------------------------------------

step('at 390x844 no page is wider than the screen; an opened document is in view', async () => {
  await page.setViewportSize({ width: 390, height: 844 });
  try {
    const dir = ARTIFACTS;
    const check = async (name) => {
      await page.waitForTimeout(100); // a layout pass after the last answer
      const width = await page.evaluate(() => document.documentElement.scrollWidth);
      if (dir) {
        mkdirSync(dir, { recursive: true });
        await page.screenshot({ path: join(dir, `phone-${name}.png`), fullPage: true });
      }
      assert.ok(width <= 390, `${name}: the page is ${width} px wide`);
    };
    await page.goto(`${nodeA.url}/studio/#/db/${DB}/explorer/bulk`);
    await byTest('doc-grid').locator('tbody tr', { hasText: 'b-00' }).waitFor();
    await check('data');
    await byTest('doc-grid').locator('tbody tr', { hasText: 'b-02' }).click();
    await byTest('doc-title').filter({ hasText: 'bulk / b-02' }).waitFor();
    await waitFor('the document in view', async () => {
      const box = await byTest('doc-panel').boundingBox();
      return box && box.y >= 0 && box.y < 844;
    }, { timeout: 3000 });
    await check('document');
    await shot('phone-document');
    await page.goto(`${nodeA.url}/studio/#/db/${DB}/query`);
    await byTest('query-editor').fill('SELECT $ FROM bulk LIMIT 5');
    await byTest('query-run').click();
    await byTest('query-stats').waitFor();
    await check('query');
    await page.goto(`${nodeA.url}/studio/#/db/${DB}/cache`);
    await byTest('cache-key-link').first().waitFor();
    await check('cache');
    await page.goto(`${nodeA.url}/studio/#/dashboard`);
    await byTest('db-card').first().waitFor();
    await check('dashboard');
    await page.goto(`${nodeA.url}/studio/#/profiles`);
    await byTest('profile-row').first().waitFor();
    await check('connections');
  } finally {
    await page.setViewportSize({ width: 1280, height: 800 });
  }
});

step('dark mode follows prefers-color-scheme until the toggle picks one, and is remembered', async () => {
  const theme = () => page.evaluate(() => document.documentElement.dataset.theme);
  await page.emulateMedia({ colorScheme: 'dark' });
  await waitFor('the system\'s dark theme', async () => (await theme()) === 'dark');
  await page.emulateMedia({ colorScheme: 'light' });
  await waitFor('the system\'s light theme', async () => (await theme()) === 'light');
  await byTest('theme-toggle').click();
  assert.equal(await theme(), 'dark');
  assert.equal(await byTest('theme-toggle').getAttribute('aria-pressed'), 'true');
  assert.equal(await page.evaluate(() => getComputedStyle(document.documentElement).backgroundColor),
    'rgb(15, 20, 26)');
  await page.reload();
  await waitFor('the remembered dark theme', async () => (await theme()) === 'dark');
  if (SHOTS) {
    await page.goto(`${nodeA.url}/studio/#/db/${DB}/explorer/bulk`);
    await byTest('doc-grid').locator('tbody tr', { hasText: 'b-03' }).click();
    await byTest('doc-json').waitFor();
    await shot('dark');
  }
  await byTest('theme-toggle').click();
  assert.equal(await theme(), 'light');
  assert.equal(await page.evaluate(() => localStorage.getItem('litedist.studio.theme')), '"light"');
});

step('a skip link leads to the content; the current page is marked for assistive technology', async () => {
  // The dashboard focuses nothing itself: the first Tab of a fresh page reaches the skip link.
  await page.goto(`${nodeA.url}/studio/#/dashboard`);
  await page.reload();
  await byTest('dash-refresh').waitFor();
  await page.keyboard.press('Tab');
  assert.equal(await page.evaluate(() => document.activeElement?.dataset.testid), 'skip-link');
  await page.keyboard.press('Enter');
  assert.equal(await page.evaluate(() => document.activeElement?.id), 'main');
  assert.match(page.url(), /#\/dashboard$/);
  assert.equal(await page.locator('.nav a[aria-current="page"]').textContent(), 'Dashboard');
});

step('the page logged no errors of its own', async () => {
  assert.deepEqual(consoleErrors, []);
});
