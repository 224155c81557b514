// Data explorer: the database's collections, a paged grid of a collection's documents with
// column picking, and a panel to view a document as formatted JSON, create, edit (checked
// before it is sent) and delete (after a confirmation). Server errors are shown as the server
// said them.

import { h, replace } from '../dom.js';
import { Grid } from '../grid.js';
import { jsonView, prettyJson } from '../json.js';
import { chooseColumns, chosenColumns } from '../store.js';
import { confirmDialog, field, jsonEditor, noticeArea } from '../ui.js';

export const title = 'Data';

const PAGE_SIZES = [25, 50, 100, 500];
let pageSize = 25; // kept while the Studio stays open

// The collection the original keeps cache entries in: the document routes refuse it.
const CACHE = 'cache';

export function mount(main, ctx, collection) {
  const { client, profile } = ctx;
  // Where each page starts: the id the previous page ended with (null for the first). Next
  // pushes the current page's last id, Prev pops it.
  let starts = [null];
  let lastId = null;
  let alive = true;
  let loadSeq = 0;

  const notice = noticeArea('explorer-notice');
  const collList = h('ul', { class: 'coll-list', 'data-testid': 'collections' });
  const heading = h('h2', { 'data-testid': 'collection-title' });
  const pageLabel = h('span', { class: 'muted', 'data-testid': 'page-label' });
  const prev = h('button', { type: 'button', class: 'btn btn-small', 'data-testid': 'page-prev',
    on: { click: () => { if (starts.length > 1) starts.pop(); loadDocs(); } } }, '‹ Prev');
  const next = h('button', { type: 'button', class: 'btn btn-small', 'data-testid': 'page-next',
    on: { click: () => { if (lastId !== null) starts.push(lastId); loadDocs(); } } }, 'Next ›');
  const sizeSel = h('select', { 'aria-label': 'Rows per page', 'data-testid': 'page-size' },
    PAGE_SIZES.map((n) => h('option', { value: n, props: { selected: n === pageSize } }, `${n} rows`)));
  sizeSel.addEventListener('change', () => {
    pageSize = Number(sizeSel.value);
    starts = [null];
    loadDocs();
  });
  const scope = (c) => `${profile.url}|${profile.database}|${c}`;
  const grid = new Grid({
    testid: 'doc-grid',
    empty: 'No documents on this page.',
    onOpen: (row) => openDoc(row.Id),
    columns: () => (collection ? chosenColumns(scope(collection)) : null),
    onColumns: (list) => chooseColumns(scope(collection), list),
  });
  const panel = h('aside', { class: 'doc-panel', 'data-testid': 'doc-panel', hidden: true });
  const newBtn = h('button', { type: 'button', class: 'btn btn-primary', 'data-testid': 'new-doc',
    on: { click: () => showCreate() } }, 'New document');
  const toolbar = h('div', { class: 'toolbar' },
    sizeSel, prev, pageLabel, next, h('span', { class: 'spacer' }), grid.pickerControl(),
    h('button', { type: 'button', class: 'btn btn-small', 'data-testid': 'reload-docs',
      on: { click: () => loadDocs() } }, 'Reload'));

  replace(main, h('section', { class: 'page page-explorer' },
    h('aside', { class: 'sidebar' },
      h('div', { class: 'sidebar-head' },
        h('h2', {}, 'Collections'),
        h('button', { type: 'button', class: 'btn btn-small', title: 'Reload the collections',
          'data-testid': 'reload-collections', on: { click: () => loadCollections() } }, '↻')),
      h('p', { class: 'muted small' }, h('code', {}, profile.database), ' on ', profile.url),
      collList,
      newBtn),
    h('div', { class: 'explorer-main' },
      notice.el,
      h('div', { class: 'explorer-body' },
        h('div', { class: 'explorer-grid' }, heading, toolbar, grid.el),
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
    replace(collList, names.length ? names.map((name) => h('li', {},
      name.toLowerCase() === CACHE
        ? h('a', { href: '#/cache', class: 'system', title: 'Cache entries: open the cache browser' },
          name, h('span', { class: 'tag' }, 'cache'))
        : h('a', { href: `#/explorer/${encodeURIComponent(name)}`, 'data-testid': 'collection-link',
          class: name === collection ? 'active' : null, 'aria-current': name === collection ? 'page' : null },
          name)))
      : h('li', { class: 'muted' }, 'No collections yet: create a document.'));
  }

  // --- the grid ---------------------------------------------------------------------------------

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
    const r = await client.documents(collection, starts[starts.length - 1], pageSize);
    if (!alive || seq !== loadSeq) return; // a newer load is on its way
    if (!r.ok) {
      notice.error(r.error);
      grid.setRows([]);
      return;
    }
    notice.clearError();
    const rows = Array.isArray(r.body) ? r.body : [];
    grid.setRows(rows);
    const first = (starts.length - 1) * pageSize + 1;
    lastId = rows.length && typeof rows[rows.length - 1].Id === 'string' ? rows[rows.length - 1].Id : null;
    prev.disabled = starts.length === 1;
    // The API returns no total: a full page means there may be more.
    next.disabled = rows.length < pageSize || lastId === null;
    replace(pageLabel, rows.length ? `rows ${first}–${first + rows.length - 1}` : `no rows from ${first}`);
  }

  // --- the document panel -----------------------------------------------------------------------

  function closePanel() {
    panel.hidden = true;
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
    replace(panel,
      panelHead(`${collection} / ${id}`,
        h('button', { type: 'button', class: 'btn btn-small', 'data-testid': 'doc-edit',
          on: { click: () => showEdit(id, text) } }, 'Edit'),
        h('button', { type: 'button', class: 'btn btn-small btn-danger', 'data-testid': 'doc-delete',
          on: { click: () => remove(id, pnotice) } }, 'Delete')),
      pnotice.el,
      jsonView(text, { 'data-testid': 'doc-json' }));
    panel.hidden = false;
  }

  function showEdit(id, text) {
    const pnotice = noticeArea('doc-notice');
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
        const r = await client.putDocument(collection, id, doc.text);
        save.disabled = false;
        if (!alive) return;
        if (!r.ok) {
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
    panel.hidden = false;
    editor.textarea.focus();
  }

  function showCreate() {
    const pnotice = noticeArea('doc-notice');
    const collInput = h('input', { type: 'text', 'data-testid': 'new-collection', spellcheck: 'false',
      props: { value: collection || '' }, placeholder: 'orders' });
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
          ctx.go(`#/explorer/${encodeURIComponent(coll)}`);
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
    panel.hidden = false;
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

  loadCollections();
  loadDocs();
  return () => {
    alive = false;
    document.removeEventListener('keydown', onKey);
  };
}
