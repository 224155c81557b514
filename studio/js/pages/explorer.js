// Data explorer: the database's collections (and the databases: create, delete), a paged grid
// of a collection's documents with column picking, sorting, a LiteQL filter, totals and "go to
// Id", kept live from the changes feed; a panel to view a document as formatted JSON, create,
// edit (checked before it is sent) and delete (after a confirmation); export and import of the
// collection as JSON Lines. Server errors are shown as the server said them.

import { Client } from '../api.js';
import { h, replace } from '../dom.js';
import { Grid } from '../grid.js';
import { jsonView, prettyJson } from '../json.js';
import { collectionRef, countOf } from '../liteql.js';
import { chooseColumns, chosenColumns } from '../store.js';
import { confirmDialog, field, jsonEditor, noticeArea, promptDialog } from '../ui.js';
import { exportCollection, importCollection } from '../transfer.js';

export const title = 'Data';

const PAGE_SIZES = [25, 50, 100, 500];
const LIVE_WAIT_MS = 25000; // one longpoll's wait for a change
const LIVE_RETRY_MAX = 6;   // failed longpolls in a row before the live view stops
const DB_NAME = /^[a-z0-9][a-z0-9_-]{0,62}$/;
let pageSize = 25; // kept while the Studio stays open

// The collection the original keeps cache entries in: the document routes refuse it.
const CACHE = 'cache';

/** A LiteQL path for a grid column: Id is the document id, a.b a nested member. */
export function columnPath(column) {
  if (column === 'Id') return '_id';
  return '$' + column.split('.').map((p) => (/^[A-Za-z_][A-Za-z0-9_]*$/.test(p)
    ? `.${p}` : `[${JSON.stringify(p)}]`)).join('');
}

export function mount(main, ctx, collection) {
  const { client, profile } = ctx;
  // Where each page starts: the id the previous page ended with (null for the first). Next
  // pushes the current page's last id, Prev pops it.
  let starts = [null];
  let lastId = null;
  let alive = true;
  let loadSeq = 0;
  let known = null;       // the database's collections, once listed
  let filter = '';        // a LiteQL WHERE the grid is narrowed by ('' for none)
  let sort = null;        // {column, desc} or null for id order
  let offsetPage = 0;     // the page while a filter or sort is in force (they page by OFFSET)
  const liveCtl = new AbortController(); // ends the live feed's wait when the page is left

  const notice = noticeArea('explorer-notice');
  const collList = h('ul', { class: 'coll-list', 'data-testid': 'collections' });
  const heading = h('h2', { 'data-testid': 'collection-title' }, collection || 'Pick a collection');
  const pageLabel = h('span', { class: 'muted', 'data-testid': 'page-label' });
  const prev = h('button', { type: 'button', class: 'btn btn-small', 'data-testid': 'page-prev',
    on: { click: () => {
      if (queried()) offsetPage = Math.max(0, offsetPage - 1);
      else if (starts.length > 1) starts.pop();
      loadDocs();
    } } }, '‹ Prev');
  const next = h('button', { type: 'button', class: 'btn btn-small', 'data-testid': 'page-next',
    on: { click: () => {
      if (queried()) offsetPage++;
      else if (lastId !== null) starts.push(lastId);
      loadDocs();
    } } }, 'Next ›');
  const sizeSel = h('select', { 'aria-label': 'Rows per page', 'data-testid': 'page-size' },
    PAGE_SIZES.map((n) => h('option', { value: n, props: { selected: n === pageSize } }, `${n} rows`)));
  sizeSel.addEventListener('change', () => {
    pageSize = Number(sizeSel.value);
    restart();
  });
  const scope = (c) => `${profile.url}|${profile.database}|${c}`;
  const grid = new Grid({
    testid: 'doc-grid',
    empty: 'No documents on this page.',
    onOpen: (row) => openDoc(row.Id),
    columns: () => (collection ? chosenColumns(scope(collection)) : null),
    onColumns: (list) => chooseColumns(scope(collection), list),
    onSort: (column) => {
      // Ascending, then descending, then back to id order.
      sort = !sort || sort.column !== column ? { column, desc: false }
        : !sort.desc ? { column, desc: true } : null;
      grid.setSort(sort);
      restart();
    },
  });

  // Go to Id: opens a document by its id.
  const idInput = h('input', { type: 'search', 'data-testid': 'goto-id', spellcheck: 'false',
    placeholder: 'Go to Id', 'aria-label': 'Go to Id', class: 'narrow' });
  idInput.addEventListener('keydown', (e) => {
    if (e.key === 'Enter') goToId();
  });
  const idBtn = h('button', { type: 'button', class: 'btn btn-small', 'data-testid': 'goto-id-go',
    on: { click: () => goToId() } }, 'Go');
  // The filter: a LiteQL WHERE run as SELECT $ FROM <collection> WHERE <filter>.
  const filterInput = h('input', { type: 'search', 'data-testid': 'filter', spellcheck: 'false',
    placeholder: "WHERE … e.g. $.Total > 10 AND $.Status = 'paid'", 'aria-label': 'Filter (LiteQL WHERE)',
    class: 'filter-input' });
  filterInput.addEventListener('keydown', (e) => {
    if (e.key === 'Enter') applyFilter();
  });
  const filterBtn = h('button', { type: 'button', class: 'btn btn-small', 'data-testid': 'filter-apply',
    on: { click: () => applyFilter() } }, 'Filter');
  const totalLabel = h('span', { class: 'muted small', 'data-testid': 'total-label' });
  const live = h('span', { class: 'live', 'data-testid': 'live-indicator', hidden: true,
    role: 'status' });
  const dbActions = h('div', { class: 'db-actions' },
    h('button', { type: 'button', class: 'btn btn-small', 'data-testid': 'db-create',
      on: { click: () => createDatabase() } }, 'New database'),
    h('button', { type: 'button', class: 'btn btn-small btn-danger', 'data-testid': 'db-delete',
      on: { click: () => deleteDatabase() } }, 'Delete database'));
  const transfer = h('div', { class: 'toolbar transfer' });
  const panel = h('aside', { class: 'doc-panel', 'data-testid': 'doc-panel', hidden: true });
  const newBtn = h('button', { type: 'button', class: 'btn btn-primary', 'data-testid': 'new-doc',
    on: { click: () => showCreate() } }, 'New document');
  const searchbar = h('div', { class: 'toolbar' }, idInput, idBtn, filterInput, filterBtn);
  const toolbar = h('div', { class: 'toolbar' },
    sizeSel, prev, pageLabel, next, totalLabel, h('span', { class: 'spacer' }), live, grid.pickerControl(),
    h('button', { type: 'button', class: 'btn btn-small', 'data-testid': 'reload-docs',
      on: { click: () => {
        countedFor = null;
        loadDocs();
      } } }, 'Reload'));

  replace(main, h('section', { class: 'page page-explorer' },
    h('aside', { class: 'sidebar' },
      h('div', { class: 'sidebar-head' },
        h('h2', {}, 'Collections'),
        h('button', { type: 'button', class: 'btn btn-small', title: 'Reload the collections',
          'data-testid': 'reload-collections', on: { click: () => loadCollections() } }, '↻')),
      h('p', { class: 'muted small', 'data-testid': 'explorer-db' }, 'Database ',
        h('code', {}, profile.database), ' on ', profile.url),
      collList,
      newBtn,
      dbActions),
    h('div', { class: 'explorer-main' },
      notice.el,
      h('div', { class: 'explorer-body' },
        h('div', { class: 'explorer-grid' }, heading, searchbar, toolbar, grid.el, transfer),
        panel))));

  // --- collections ----------------------------------------------------------------------------

  async function loadCollections() {
    const r = await client.collections();
    if (!alive) return;
    if (!r.ok) {
      notice.error(r.error);
      replace(collList);
      return;
    }
    const names = Array.isArray(r.body) ? r.body.filter((n) => typeof n === 'string') : [];
    known = names;
    replace(collList, names.length ? names.map((name) => h('li', {},
      name.toLowerCase() === CACHE
        ? h('a', { href: ctx.dbHash('cache'), class: 'system', title: 'Cache entries: open the cache browser' },
          name, h('span', { class: 'tag' }, 'cache'))
        : h('a', { href: ctx.dbHash('explorer', name), 'data-testid': 'collection-link',
          class: name === collection ? 'active' : null, 'aria-current': name === collection ? 'page' : null },
          name)))
      : h('li', { class: 'muted' }, 'No collections yet: create a document.'));
    return names;
  }

  /** Whether the open collection exists in this database (said so when it does not). */
  function exists() {
    if (!collection || !known || known.includes(collection)) return true;
    notice.error(`Collection '${collection}' does not exist in database '${profile.database}'. ` +
      'Pick one of the list, or create a document to create it.');
    return false;
  }

  // --- the grid ---------------------------------------------------------------------------------

  // A filter or a sort pages through a query (SELECT ... LIMIT/OFFSET); otherwise the grid pages
  // by id (after=), which costs the same however deep the page is.
  const queried = () => Boolean(filter || sort);

  function restart() {
    starts = [null];
    offsetPage = 0;
    return loadDocs();
  }

  function selectText(countOnly) {
    const where = filter ? ` WHERE ${filter}\n` : '';
    if (countOnly) return `SELECT COUNT(*) FROM ${collectionRef(collection)}${where}`;
    const order = sort ? ` ORDER BY ${columnPath(sort.column)} ${sort.desc ? 'DESC' : 'ASC'}` : '';
    return `SELECT $ FROM ${collectionRef(collection)}${where}${order} LIMIT ${pageSize} ` +
      `OFFSET ${offsetPage * pageSize}`;
  }

  // The total is counted once per filter (a COUNT(*) reads the whole collection), not per page:
  // a change from the live feed or a new filter counts again.
  let countedFor = null;

  async function loadTotal(seq) {
    if (countedFor === filter) return;
    const r = await client.query(selectText(true), 1);
    if (!alive || seq !== loadSeq) return;
    countedFor = r.ok ? filter : null;
    const n = r.ok ? countOf(r.body) : null;
    replace(totalLabel, n === null ? '' : filter ? `of ${n} matching` : `of ${n}`);
  }

  async function loadDocs() {
    if (!collection) {
      replace(heading, 'Pick a collection');
      grid.setRows([]);
      prev.disabled = next.disabled = true;
      replace(pageLabel);
      return;
    }
    replace(heading, collection);
    const seq = ++loadSeq;
    const r = queried()
      ? await client.query(selectText(false), pageSize)
      : await client.documents(collection, starts[starts.length - 1], pageSize);
    if (!alive || seq !== loadSeq) return; // a newer load is on its way
    if (!r.ok) {
      notice.error(filter ? `Filter: ${r.error}` : r.error, 'load');
      grid.setRows([]);
      replace(totalLabel);
      countedFor = null;
      return;
    }
    notice.clearError('load');
    const rows = queried() ? (Array.isArray(r.body?.Rows) ? r.body.Rows : []) : (Array.isArray(r.body) ? r.body : []);
    grid.setRows(rows);
    const first = (queried() ? offsetPage : starts.length - 1) * pageSize + 1;
    lastId = rows.length && typeof rows[rows.length - 1].Id === 'string' ? rows[rows.length - 1].Id : null;
    prev.disabled = queried() ? offsetPage === 0 : starts.length === 1;
    // A full page means there may be more.
    next.disabled = rows.length < pageSize || (!queried() && lastId === null);
    replace(pageLabel, rows.length ? `rows ${first}–${first + rows.length - 1}` : `no rows from ${first}`);
    await loadTotal(seq);
  }

  function applyFilter() {
    filter = filterInput.value.trim();
    notice.clearError();
    restart();
  }

  async function goToId() {
    const id = idInput.value.trim();
    if (!id || !collection) return;
    const r = await client.document(collection, id);
    if (!alive) return;
    if (r.status === 404) {
      notice.error(`No document '${id}' in ${collection}.`);
      return;
    }
    if (!r.ok) {
      notice.error(r.error);
      return;
    }
    notice.clearError();
    showDoc(id, r.text);
  }

  // --- the live view: the changes feed (longpoll) of this collection ---------------------------

  const pause = (ms) => new Promise((ok) => {
    const t = setTimeout(ok, ms);
    liveCtl.signal.addEventListener('abort', () => {
      clearTimeout(t);
      ok();
    }, { once: true });
  });

  function liveState(state, text) {
    live.hidden = false;
    live.className = `live live-${state}`;
    replace(live, h('span', { class: 'live-dot', 'aria-hidden': 'true' }), text);
    live.dataset.state = state;
  }

  async function follow() {
    let since = 'now';
    let failures = 0;
    liveState('on', 'Live');
    while (alive) {
      const r = await client.changes({ since, collections: collection, waitMs: LIVE_WAIT_MS,
        signal: liveCtl.signal });
      if (!alive || r.cancelled) return;
      if (!r.ok) {
        // A cursor the log no longer holds (410): start again from now, after a reload.
        if (r.status === 410) {
          since = 'now';
          await loadDocs();
          continue;
        }
        failures++;
        if (failures >= LIVE_RETRY_MAX) {
          liveState('off', `Not live: ${r.error}`);
          return;
        }
        liveState('retry', 'Reconnecting…');
        await pause(Math.min(500 * 2 ** failures, 15000));
        continue;
      }
      failures = 0;
      liveState('on', 'Live');
      since = r.body?.LastCursor ?? since;
      const changes = (Array.isArray(r.body?.Changes) ? r.body.Changes : [])
        .filter((c) => c && c.Collection === collection);
      if (!changes.length) continue;
      // Marked first, so the reloaded rows are drawn highlighted.
      grid.mark(changes.map((c) => c.Id));
      countedFor = null;
      await loadDocs();
      if (!alive) return;
      panelFollows(changes);
      const removed = changes.filter((c) => c.Deleted).length;
      liveState('on', `Live · ${changes.length} change${changes.length === 1 ? '' : 's'}` +
        (removed ? ` (${removed} deleted)` : '') + ` at ${new Date().toLocaleTimeString()}`);
    }
  }

  // The document in the panel changed elsewhere: a view shows the new version; an edit keeps
  // the user's text and says so (saving then overwrites the other write).
  async function panelFollows(changes) {
    const open = inPanel;
    const change = open && open.mode !== 'saving' && [...changes].reverse().find((c) => c.Id === open.id);
    if (!change) return;
    if (open.mode === 'edit') {
      panelNotice.warn(change.Deleted
        ? `${collection}/${open.id} was deleted meanwhile: Save writes it again.`
        : `${collection}/${open.id} was changed meanwhile: Save replaces that version.`);
      return;
    }
    if (change.Deleted) {
      panelNotice.warn(`${collection}/${open.id} was deleted meanwhile.`);
      return;
    }
    const r = await client.document(collection, open.id);
    if (alive && r.ok && inPanel === open) showDoc(open.id, r.text);
  }

  // --- databases ----------------------------------------------------------------------------------

  async function createDatabase() {
    const values = await promptDialog({
      title: 'New database',
      message: 'A database exists once it holds a collection: name both.',
      fields: [
        { name: 'database', label: 'Database', placeholder: 'shop' },
        { name: 'collection', label: 'First collection', placeholder: 'orders' },
      ],
      confirmText: 'Create',
      check: (v) => {
        const db = v.database.trim().toLowerCase();
        if (!DB_NAME.test(db))
          return "Database: 1-63 of lowercase letters, digits, '-' or '_', starting with a letter or digit.";
        if (!v.collection.trim()) return 'Name the first collection.';
        return null;
      },
    });
    if (!values || !alive) return;
    const db = values.database.trim().toLowerCase();
    const coll = values.collection.trim();
    const r = await new Client({ ...profile, database: db }).registerCollection(coll);
    if (!alive) return;
    if (!r.ok) {
      notice.error(r.error);
      return;
    }
    ctx.go(ctx.dbHash('explorer', coll, db));
  }

  async function deleteDatabase() {
    const db = profile.database;
    const yes = await confirmDialog({
      title: 'Delete database',
      message: `Delete the database '${db}' and every document in it on this node? This cannot be undone.`,
      confirmText: `Delete ${db}`, danger: true,
    });
    if (!yes || !alive) return;
    const r = await client.deleteDatabase(db);
    if (!alive) return;
    if (!r.ok) {
      notice.error(r.error);
      return;
    }
    // Back to the connection's own database, or another one that is left.
    const rest = await client.databases();
    const others = rest.ok && Array.isArray(rest.body) ? rest.body.filter((n) => n !== db) : [];
    const home = ctx.homeDatabase !== db ? ctx.homeDatabase : others[0] || db;
    ctx.go(ctx.dbHash('explorer', '', home));
  }

  // --- the document panel -----------------------------------------------------------------------

  // On a narrow screen the panel sits below the grid: bring it into view when it opens.
  function revealPanel() {
    panel.hidden = false;
    if (window.matchMedia('(max-width: 900px)').matches) panel.scrollIntoView({ block: 'start' });
  }

  // What the panel shows: {id, mode: 'view' | 'edit' | 'saving'} or null (closed, or a new
  // document).
  let inPanel = null;
  let panelNotice = null;

  function closePanel() {
    panel.hidden = true;
    inPanel = null;
    replace(panel);
  }

  function panelHead(text, ...buttons) {
    return h('div', { class: 'panel-head' }, h('h3', { 'data-testid': 'doc-title' }, text),
      h('span', { class: 'spacer' }), buttons,
      h('button', { type: 'button', class: 'btn btn-small', 'aria-label': 'Close',
        'data-testid': 'doc-close', on: { click: closePanel } }, '×'));
  }

  async function openDoc(id) {
    if (typeof id !== 'string') {
      notice.error('This row has no string Id, so it cannot be opened.');
      return;
    }
    const r = await client.document(collection, id);
    if (!alive) return;
    if (!r.ok) {
      notice.error(r.error);
      return;
    }
    notice.clearError(); // a success message ("Saved ...") stays
    showDoc(id, r.text);
  }

  function showDoc(id, text) {
    const pnotice = noticeArea('doc-notice');
    inPanel = { id, mode: 'view' };
    panelNotice = pnotice;
    replace(panel,
      panelHead(`${collection} / ${id}`,
        h('button', { type: 'button', class: 'btn btn-small', 'data-testid': 'doc-edit',
          on: { click: () => showEdit(id, text) } }, 'Edit'),
        h('button', { type: 'button', class: 'btn btn-small btn-danger', 'data-testid': 'doc-delete',
          on: { click: () => remove(id, pnotice) } }, 'Delete')),
      pnotice.el,
      jsonView(text, { 'data-testid': 'doc-json' }));
    revealPanel();
  }

  function showEdit(id, text) {
    const pnotice = noticeArea('doc-notice');
    inPanel = { id, mode: 'edit' };
    panelNotice = pnotice;
    const editor = jsonEditor({
      text: prettyJson(text), testid: 'doc-editor',
      check: (v) => {
        if (!v || typeof v !== 'object' || Array.isArray(v)) return 'A document must be a JSON object.';
        if ('Id' in v && v.Id !== id)
          return `The Id is the document's name ('${id}') and cannot change here: create a new document instead.`;
        return null;
      },
    });
    const save = h('button', { type: 'button', class: 'btn btn-primary', 'data-testid': 'doc-save',
      on: { click: async () => {
        const doc = editor.read();
        if (!doc) return; // the problem is shown under the editor; nothing was sent
        save.disabled = true;
        // Our own write comes back through the feed: not a change made "meanwhile".
        const editing = inPanel;
        inPanel = { id, mode: 'saving' };
        const r = await client.putDocument(collection, id, doc.text);
        save.disabled = false;
        if (!alive) return;
        if (!r.ok) {
          inPanel = editing;
          pnotice.error(r.error);
          return;
        }
        notice.ok(`Saved ${collection}/${id}.`);
        await loadDocs();
        await openDoc(id);
      } } }, 'Save');
    replace(panel,
      panelHead(`Edit ${collection} / ${id}`),
      pnotice.el, editor.el,
      h('div', { class: 'form-actions' }, save,
        h('button', { type: 'button', class: 'btn', 'data-testid': 'doc-cancel',
          on: { click: () => showDoc(id, text) } }, 'Cancel')));
    revealPanel();
    editor.textarea.focus();
  }

  function showCreate() {
    const pnotice = noticeArea('doc-notice');
    inPanel = null;
    const collInput = h('input', { type: 'text', 'data-testid': 'new-collection', spellcheck: 'false',
      props: { value: collection && known && known.includes(collection) ? collection : '' },
      placeholder: 'orders' });
    const editor = jsonEditor({
      text: '{\n  "Id": ""\n}', testid: 'doc-editor',
      check: (v) => (!v || typeof v !== 'object' || Array.isArray(v)
        ? 'A document must be a JSON object.' : null),
    });
    const create = h('button', { type: 'button', class: 'btn btn-primary', 'data-testid': 'doc-create',
      on: { click: async () => {
        const coll = collInput.value.trim();
        if (!coll) {
          pnotice.error('Name the collection.');
          collInput.focus();
          return;
        }
        const doc = editor.read();
        if (!doc) return;
        create.disabled = true;
        const r = await client.createDocument(coll, doc.text);
        create.disabled = false;
        if (!alive) return;
        if (!r.ok) {
          pnotice.error(r.error);
          return;
        }
        const id = r.body?.EntityId;
        notice.ok(`Created ${coll}/${id}.`);
        if (coll !== collection) {
          ctx.go(ctx.dbHash('explorer', coll));
          return;
        }
        await loadCollections();
        await loadDocs();
        await openDoc(id);
      } } }, 'Create');
    replace(panel,
      panelHead('New document'),
      pnotice.el,
      field('Collection', collInput),
      editor.el,
      h('p', { class: 'muted small' }, 'The document needs a string ', h('code', {}, 'Id'),
        '; a document with the same Id is replaced.'),
      h('div', { class: 'form-actions' }, create,
        h('button', { type: 'button', class: 'btn', on: { click: closePanel } }, 'Cancel')));
    revealPanel();
    editor.textarea.focus();
  }

  async function remove(id, pnotice) {
    const yes = await confirmDialog({
      title: 'Delete document',
      message: `Delete ${collection}/${id}? The delete replicates to every peer.`,
      confirmText: 'Delete', danger: true,
    });
    if (!yes || !alive) return;
    const r = await client.deleteDocument(collection, id);
    if (!alive) return;
    if (!r.ok) {
      pnotice.error(r.error);
      return;
    }
    closePanel();
    notice.ok(`Deleted ${collection}/${id}.`);
    await loadDocs();
  }

  // Keyboard: Escape closes the document panel, Ctrl+S (Cmd+S) saves or creates the document
  // being edited. Not while a confirmation dialog is open: it has its own keys.
  function onKey(e) {
    if (panel.hidden || document.querySelector('dialog[open]')) return;
    if (e.key === 'Escape') {
      e.preventDefault();
      closePanel();
    } else if ((e.ctrlKey || e.metaKey) && e.key.toLowerCase() === 's') {
      const primary = panel.querySelector('[data-testid="doc-save"], [data-testid="doc-create"]');
      if (!primary) return;
      e.preventDefault(); // not the browser's "save page"
      if (!primary.disabled) primary.click();
    }
  }
  document.addEventListener('keydown', onKey);

  (async () => {
    await loadCollections();
    if (!alive) return;
    if (!exists()) {
      replace(heading, collection);
      grid.setRows([]);
      prev.disabled = next.disabled = true;
      return;
    }
    await loadDocs();
    if (!alive || !collection) return;
    replace(transfer,
      exportCollection({ client, collection, database: profile.database, notice }),
      importCollection({ client, collection, notice, done: () => restart() }));
    follow();
  })();
  return () => {
    alive = false;
    liveCtl.abort();
    document.removeEventListener('keydown', onKey);
  };
}
