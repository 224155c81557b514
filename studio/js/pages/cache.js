// Cache browser: list the keys matching a pattern (paged, GET /api/cache), read a key (its value,
// times and remaining TTL), set a JSON value with a TTL, delete a key after a confirmation. Keys
// travel percent-encoded in the path.

import { h, replace, timeCell } from '../dom.js';
import { jsonView } from '../json.js';
import { confirmDialog, field, jsonEditor, noticeArea } from '../ui.js';

export const title = 'Cache';

const KEY_MAX = 256; // the contract's limit, checked here to say so before sending
const LIST_PAGE = 50; // keys asked for per page of the list
// A page may come back short (the server stops after reading max(4 x take, 1000) entries): the
// list asks again, this many times at most per click, until the page is full or Next is null.
const LIST_ROUNDS = 10;

/** A TTL the server gives as whole milliseconds ("299412ms") as a duration a person reads
 * ("4m 59s"); anything else as it came. */
export function ttlText(ttl) {
  const m = /^(\d+)ms$/.exec(ttl ?? '');
  if (!m) return ttl ?? '—';
  const ms = Number(m[1]);
  if (ms < 1000) return `${ms} ms`;
  if (ms < 60000) return `${(Math.floor(ms / 100) / 10).toFixed(1)}s`;
  let s = Math.floor(ms / 1000);
  const parts = [];
  for (const [unit, size] of [['d', 86400], ['h', 3600], ['m', 60], ['s', 1]]) {
    const n = Math.floor(s / size);
    s -= n * size;
    if (n || (unit === 's' && !parts.length)) parts.push(`${n}${unit}`);
  }
  return parts.join(' ');
}

export function mount(main, ctx) {
  const { client, profile } = ctx;
  let alive = true;
  const notice = noticeArea('cache-notice');
  const keyInput = h('input', { type: 'text', 'data-testid': 'cache-key', spellcheck: 'false',
    autocomplete: 'off', placeholder: 'session:42', maxlength: KEY_MAX });
  const ttlInput = h('input', { type: 'text', 'data-testid': 'cache-ttl', value: '5m',
    spellcheck: 'false', class: 'narrow' });
  const editor = jsonEditor({ text: '{\n  "hello": "world"\n}', rows: 8, testid: 'cache-value' });
  const result = h('div', { class: 'cache-result', 'data-testid': 'cache-result', hidden: true });

  // --- the key list -----------------------------------------------------------------------------
  const matchInput = h('input', { type: 'search', 'data-testid': 'cache-match', spellcheck: 'false',
    autocomplete: 'off', placeholder: 'session:*', 'aria-label': 'Key pattern', value: '*' });
  const keyRows = h('tbody', { 'data-testid': 'cache-keys' });
  const listInfo = h('span', { class: 'muted small', 'data-testid': 'cache-keys-info' });
  const moreBtn = h('button', { type: 'button', class: 'btn btn-small', 'data-testid': 'cache-keys-more',
    hidden: true, on: { click: () => listKeys(false) } }, 'More keys');
  let nextAfter = null;
  let shownKeys = 0;
  let listSeq = 0;

  async function listKeys(fresh) {
    const seq = ++listSeq;
    const match = matchInput.value.trim() || '*';
    if (fresh) {
      nextAfter = null;
      shownKeys = 0;
      replace(keyRows);
    }
    moreBtn.disabled = true;
    let got = 0;
    let error = null;
    for (let round = 0; round < LIST_ROUNDS && got < LIST_PAGE; round++) {
      const r = await client.cacheKeys(match, nextAfter, LIST_PAGE - got);
      if (!alive || seq !== listSeq) return;
      if (!r.ok) {
        error = r.error;
        nextAfter = null;
        break;
      }
      const keys = Array.isArray(r.body?.Keys) ? r.body.Keys : [];
      for (const k of keys) {
        keyRows.append(h('tr', {},
          h('td', {}, h('button', { type: 'button', class: 'linkish', 'data-testid': 'cache-key-link',
            on: { click: () => {
              keyInput.value = k.Key;
              get();
            } } }, k.Key)),
          h('td', {}, timeCell(k.ExpiresAtUtc)),
          h('td', {}, timeCell(k.UpdatedUtc))));
      }
      got += keys.length;
      nextAfter = typeof r.body?.Next === 'string' ? r.body.Next : null;
      if (nextAfter === null) break;
    }
    shownKeys += got;
    moreBtn.disabled = false;
    moreBtn.hidden = nextAfter === null;
    if (error) notice.error(error);
    replace(listInfo, shownKeys
      ? `${shownKeys} key${shownKeys === 1 ? '' : 's'} matching ${match}${nextAfter !== null ? ', more follow' : ''}`
      : nextAfter !== null ? `no keys matching ${match} yet; more to scan` : `no keys matching ${match}`);
  }
  matchInput.addEventListener('keydown', (e) => {
    if (e.key === 'Enter') listKeys(true);
  });

  function key() {
    const k = keyInput.value.trim();
    if (!k) {
      notice.error('Cache key is required.');
      keyInput.focus();
      return null;
    }
    return k;
  }

  function showEntry(e) {
    const row = (label, value, id) => h('tr', {}, h('th', { scope: 'row' }, label),
      h('td', { 'data-testid': id }, value));
    const valueText = JSON.stringify(e.Value === undefined ? null : e.Value);
    replace(result,
      h('table', { class: 'table kv' }, h('tbody', {},
        row('Key', e.Key, 'cache-entry-key'),
        row('Remaining TTL', h('span', { title: e.RemainingTtl ?? '' }, ttlText(e.RemainingTtl)),
          'cache-entry-ttl'),
        row('Expires', timeCell(e.ExpiresAtUtc), 'cache-entry-expires'),
        row('Created', timeCell(e.CreatedUtc), 'cache-entry-created'),
        row('Updated', timeCell(e.UpdatedUtc), 'cache-entry-updated'))),
      h('h3', {}, 'Value'),
      jsonView(valueText, { 'data-testid': 'cache-entry-value' }));
    result.hidden = false;
  }

  /** Reads the key and shows it; true when it was found. */
  async function get() {
    const k = key();
    if (!k) return false;
    const r = await client.cacheGet(k);
    if (!alive) return false;
    if (!r.ok) {
      notice.error(r.error);
      result.hidden = true;
      return false;
    }
    notice.clear();
    showEntry(r.body || {});
    return true;
  }

  async function set() {
    const k = key();
    if (!k) return;
    const value = editor.read();
    if (!value) return;
    const ttl = ttlInput.value.trim();
    const r = await client.cacheSet(k, value.text, ttl || undefined);
    if (!alive) return;
    if (!r.ok) {
      notice.error(r.error);
      return;
    }
    if (await get()) notice.ok(`Set '${r.body?.Key ?? k}' for ${r.body?.Ttl ?? ttl}.`);
    listKeys(true);
  }

  async function del() {
    const k = key();
    if (!k) return;
    const yes = await confirmDialog({ title: 'Delete cache entry',
      message: `Delete the cache entry '${k}'? The delete replicates to every peer.`,
      confirmText: 'Delete', danger: true });
    if (!yes || !alive) return;
    const r = await client.cacheDelete(k);
    if (!alive) return;
    if (!r.ok) {
      notice.error(r.error);
      return;
    }
    result.hidden = true;
    notice.ok(`Deleted '${k}'.`);
    listKeys(true);
  }

  keyInput.addEventListener('keydown', (e) => {
    if (e.key === 'Enter') get();
  });
  replace(main, h('section', { class: 'page page-cache' },
    h('h1', {}, 'Cache ', h('span', { class: 'muted small' }, 'in ', h('code', {}, profile.database))),
    h('div', { class: 'toolbar' },
      field('Keys matching', matchInput, 'A glob: * any run, ? one character, [abc] a set.'),
      h('button', { type: 'button', class: 'btn', 'data-testid': 'cache-list',
        on: { click: () => listKeys(true) } }, 'List keys')),
    h('div', { class: 'table-scroll' }, h('table', { class: 'table cache-keys' },
      h('thead', {}, h('tr', {}, ['Key', 'Expires', 'Updated'].map((t) => h('th', {}, t)))),
      keyRows)),
    h('div', { class: 'toolbar' }, listInfo, moreBtn),
    h('h2', {}, 'Read a key'),
    h('div', { class: 'toolbar' },
      field('Key', keyInput),
      h('button', { type: 'button', class: 'btn btn-primary', 'data-testid': 'cache-get',
        on: { click: get } }, 'Get'),
      h('button', { type: 'button', class: 'btn btn-danger', 'data-testid': 'cache-delete',
        on: { click: del } }, 'Delete')),
    notice.el,
    result,
    h('h2', {}, 'Set a value'),
    editor.el,
    h('div', { class: 'toolbar' },
      field('TTL', ttlInput, "e.g. 30s, 5m, 2h, 1d or hh:mm:ss"),
      h('button', { type: 'button', class: 'btn btn-primary', 'data-testid': 'cache-set',
        on: { click: set } }, 'Set'))));
  keyInput.focus();
  listKeys(true);
  return () => {
    alive = false;
  };
}
