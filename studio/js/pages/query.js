// Query runner: a LiteQL editor (Run, or Ctrl+Enter), the answer as a grid and as JSON with
// MatchedCount, AppliedCount, ReturnedRows and the time it took, and the recent queries.

import { h, replace, formatMs } from '../dom.js';
import { Grid } from '../grid.js';
import { jsonView } from '../json.js';
import { clearQueryHistory, queryHistory, rememberQuery } from '../store.js';
import { noticeArea, tabs } from '../ui.js';

export const title = 'Query';

const EXAMPLE = 'SELECT $ FROM orders LIMIT 100';
let draft = null; // the editor's text while the Studio stays open

export function mount(main, ctx) {
  const { client, profile } = ctx;
  let alive = true;
  let running = false;

  const editor = h('textarea', { class: 'code query-editor', rows: 8, spellcheck: 'false',
    autocomplete: 'off', autocapitalize: 'off', 'data-testid': 'query-editor',
    'aria-label': 'LiteQL query' });
  editor.value = draft ?? queryHistory()[0] ?? EXAMPLE;
  editor.addEventListener('input', () => {
    draft = editor.value;
  });
  editor.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) {
      e.preventDefault();
      run();
    }
  });
  const take = h('input', { type: 'number', min: 1, max: 10000, value: 200, class: 'narrow',
    'data-testid': 'query-take' });
  const runBtn = h('button', { type: 'button', class: 'btn btn-primary', 'data-testid': 'query-run',
    on: { click: () => run() } }, 'Run');
  const notice = noticeArea('query-notice');
  const stats = h('div', { class: 'stats', 'data-testid': 'query-stats', hidden: true });
  const grid = new Grid({ testid: 'query-grid', empty: 'The query returned no rows.' });
  const jsonPane = h('div', { class: 'json-pane', 'data-testid': 'query-json' });
  const results = h('div', { class: 'results', hidden: true },
    h('div', { class: 'toolbar' }, stats, h('span', { class: 'spacer' }), grid.pickerControl()),
    tabs([
      { id: 'grid', label: 'Grid', content: grid.el },
      { id: 'json', label: 'JSON', content: jsonPane },
    ], 'query-tabs'));
  const historyList = h('ol', { class: 'history-list', 'data-testid': 'query-history' });

  function renderHistory(list = queryHistory()) {
    replace(historyList, list.length
      ? list.map((q) => h('li', {}, h('button', { type: 'button', class: 'history-item', title: q,
        on: { click: () => {
          editor.value = draft = q;
          editor.focus();
        } } }, q)))
      : h('li', { class: 'muted' }, 'Queries you run are listed here.'));
  }

  // A parser message ends with "at position N." (code points from 1 in the text sent, which is
  // the editor's text trimmed): the caret goes there, where the problem is.
  function caretTo(message, sent) {
    const m = / at position (\d+)\.$/.exec(message || '');
    if (!m) return;
    const lead = editor.value.length - editor.value.trimStart().length;
    const at = lead + Array.from(sent).slice(0, Number(m[1]) - 1).join('').length;
    editor.focus();
    editor.setSelectionRange(at, at);
  }

  async function run() {
    if (running) return;
    const text = editor.value.trim();
    if (!text) {
      notice.error('Write a query first.');
      return;
    }
    running = true;
    runBtn.disabled = true;
    replace(runBtn, 'Running…');
    const r = await client.query(text, Number(take.value) || 200);
    running = false;
    if (!alive) return;
    runBtn.disabled = false;
    replace(runBtn, 'Run');
    renderHistory(rememberQuery(text));
    if (!r.ok) {
      notice.error(r.error);
      results.hidden = true;
      caretTo(r.error, text);
      return;
    }
    notice.clear();
    const b = r.body || {};
    const stat = (label, value, id) => h('span', { class: 'stat', 'data-testid': id },
      h('span', { class: 'stat-label' }, label), h('span', { class: 'stat-value' }, String(value ?? '—')));
    replace(stats,
      stat('Matched', b.MatchedCount, 'stat-matched'),
      stat('Applied', b.AppliedCount, 'stat-applied'),
      stat('Returned', b.ReturnedRows, 'stat-returned'),
      stat('Time', formatMs(r.ms), 'stat-time'));
    stats.hidden = false;
    grid.setRows(Array.isArray(b.Rows) ? b.Rows : []);
    replace(jsonPane, jsonView(r.text));
    results.hidden = false;
  }

  renderHistory();
  replace(main, h('section', { class: 'page page-query' },
    h('div', { class: 'query-main' },
      h('h1', {}, 'Query ', h('span', { class: 'muted small' }, 'on ', h('code', {}, profile.database))),
      editor,
      h('div', { class: 'toolbar' }, runBtn,
        h('span', { class: 'muted small' }, 'Ctrl+Enter runs'),
        h('span', { class: 'spacer' }),
        h('label', { class: 'inline' }, 'Take ', take)),
      notice.el,
      results),
    h('aside', { class: 'history' },
      h('div', { class: 'sidebar-head' }, h('h2', {}, 'Recent'),
        h('button', { type: 'button', class: 'btn btn-small', 'data-testid': 'history-clear',
          on: { click: () => {
            clearQueryHistory();
            renderHistory([]);
          } } }, 'Clear')),
      historyList)));
  editor.focus();
  return () => {
    alive = false;
  };
}
