// Query runner: a LiteQL editor (Run, or Ctrl+Enter), the answer as a grid and as JSON with
// MatchedCount, AppliedCount, ReturnedRows and the time it took, and the recent queries. A bulk
// write (UPDATE, DELETE) is counted and confirmed first, and one the server capped at Take can be
// continued until every match is applied; a SELECT cut at Take loads more on request.

import { h, replace, formatMs } from '../dom.js';
import { Grid } from '../grid.js';
import { jsonView } from '../json.js';
import { clearQueryHistory, queryHistory, rememberQuery } from '../store.js';
import { bulkWrite, continuation, countOf, countQuery } from '../liteql.js';
import { confirmDialog, noticeArea, tabs } from '../ui.js';

export const title = 'Query';

const EXAMPLE = 'SELECT $ FROM orders LIMIT 100';
const TAKE_MAX = 10000; // the server's cap on Take (query.md)
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
  // What the last run asks the user: continue a capped write, or load more rows.
  const bulk = h('div', { class: 'notice notice-warn', role: 'status', 'data-testid': 'bulk-notice',
    hidden: true });
  const moreBtn = h('button', { type: 'button', class: 'btn btn-small', 'data-testid': 'query-more',
    hidden: true }, 'Load more');
  const grid = new Grid({ testid: 'query-grid', empty: 'The query returned no rows.' });
  const jsonPane = h('div', { class: 'json-pane', 'data-testid': 'query-json' });
  const results = h('div', { class: 'results', hidden: true },
    h('div', { class: 'toolbar' }, stats, moreBtn, h('span', { class: 'spacer' }), grid.pickerControl()),
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

  function busy(on, label = 'Running…') {
    running = on;
    runBtn.disabled = on;
    replace(runBtn, on ? label : 'Run');
  }

  function showAnswer(r) {
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

  async function run() {
    if (running) return;
    const text = editor.value.trim();
    if (!text) {
      notice.error('Write a query first.');
      return;
    }
    const takeN = Math.min(Math.max(Number(take.value) || 200, 1), TAKE_MAX);
    bulk.hidden = true;
    moreBtn.hidden = true;
    const bw = bulkWrite(text);
    if (bw) {
      await runBulk(text, bw, takeN);
      return;
    }
    busy(true);
    const r = await client.query(text, takeN);
    busy(false);
    if (!alive) return;
    renderHistory(rememberQuery(text));
    if (!r.ok) {
      notice.error(r.error);
      results.hidden = true;
      caretTo(r.error, text);
      return;
    }
    notice.clear();
    showAnswer(r);
    offerMore(text, r.body || {}, takeN);
  }

  // A SELECT cut by Take (more matched than returned): Load more runs it again with a larger
  // Take, up to the server's 10,000.
  function offerMore(text, b, takeN) {
    const returned = b.ReturnedRows ?? 0;
    if (!(b.MatchedCount > returned && returned >= takeN)) return;
    const nextTake = Math.min(returned + (Number(take.value) || 200), TAKE_MAX);
    if (returned >= TAKE_MAX) {
      replace(bulk, `Showing ${returned} of ${b.MatchedCount} rows: 10,000 is the most one answer `,
        'holds; narrow the WHERE or page with OFFSET.');
      bulk.hidden = false;
      return;
    }
    moreBtn.hidden = false;
    replace(moreBtn, `Load more (${returned} of ${b.MatchedCount})`);
    moreBtn.onclick = async () => {
      moreBtn.disabled = true;
      const r = await client.query(text, nextTake);
      moreBtn.disabled = false;
      if (!alive) return;
      if (!r.ok) {
        notice.error(r.error);
        return;
      }
      moreBtn.hidden = true;
      showAnswer(r);
      offerMore(text, r.body || {}, nextTake);
    };
  }

  // An UPDATE or DELETE: count what it matches, ask, run; when Take capped it, say so and offer
  // to continue (the same write on the ids after the last one written) until all are applied.
  async function runBulk(text, bw, takeN) {
    busy(true, 'Counting…');
    const c = await client.query(countQuery(bw), 1);
    busy(false);
    if (!alive) return;
    renderHistory(rememberQuery(text));
    if (!c.ok) {
      notice.error(c.error);
      results.hidden = true;
      return;
    }
    const matched = countOf(c.body);
    if (matched === 0) {
      notice.ok(`This ${bw.kind} matches no document in ${bw.collection}: nothing was written.`);
      results.hidden = true;
      return;
    }
    const verb = bw.kind === 'UPDATE' ? 'Update' : 'Delete';
    const capped = matched > takeN;
    const yes = await confirmDialog({
      title: `${verb} ${matched} document${matched === 1 ? '' : 's'}?`,
      message: `This ${bw.kind} matches ${matched} document${matched === 1 ? '' : 's'} in ` +
        `${bw.collection} (database ${profile.database}); the writes replicate to every peer.` +
        (capped ? ` Take is ${takeN}, so this run applies the first ${takeN}; you can then continue.` : ''),
      confirmText: capped ? `${verb} the first ${takeN}` : `${verb} ${matched}`,
      danger: true,
    });
    if (!yes || !alive) return;
    busy(true);
    const r = await client.query(text, takeN);
    busy(false);
    if (!alive) return;
    if (!r.ok) {
      notice.error(r.error);
      results.hidden = true;
      caretTo(r.error, text);
      return;
    }
    notice.clear();
    showAnswer(r);
    reportBulk(bw, r.body || {}, takeN, r.body?.AppliedCount ?? 0, r.body?.MatchedCount ?? matched);
  }

  function lastId(b) {
    const rows = Array.isArray(b.Rows) ? b.Rows : [];
    const last = rows[rows.length - 1];
    return last && typeof last.id === 'string' ? last.id : null;
  }

  function reportBulk(bw, b, takeN, applied, matched) {
    if (applied >= matched) {
      notice.ok(`${bw.kind === 'UPDATE' ? 'Updated' : 'Deleted'} all ${applied} matched documents.`);
      bulk.hidden = true;
      return;
    }
    const after = lastId(b);
    const cont = h('button', { type: 'button', class: 'btn btn-small btn-primary',
      'data-testid': 'bulk-continue', on: { click: () => continueBulk(bw, takeN, applied, matched, after) } },
    'Continue until all are applied');
    replace(bulk, `Applied ${applied} of ${matched} matched documents: Take (${takeN}) capped this run, `,
      `so ${matched - applied} are not written yet. `, after ? cont : null);
    bulk.hidden = false;
  }

  async function continueBulk(bw, takeN, applied, matched, after) {
    bulk.hidden = true;
    busy(true, 'Applying…');
    // Each round writes up to Take ids after the last one written; the rounds needed are known,
    // and a round that writes nothing ends it (the rest stopped matching meanwhile).
    const rounds = Math.ceil((matched - applied) / takeN) + 1;
    let last = null;
    for (let i = 0; i < rounds && after; i++) {
      replace(runBtn, `Applied ${applied} of ${matched}…`);
      const r = await client.query(continuation(bw, after), takeN);
      if (!alive) return;
      if (!r.ok) {
        busy(false);
        notice.error(`After ${applied} of ${matched}: ${r.error}`);
        return;
      }
      last = r;
      applied += r.body?.AppliedCount ?? 0;
      after = (r.body?.AppliedCount ?? 0) > 0 ? lastId(r.body) : null;
      if ((r.body?.MatchedCount ?? 0) <= (r.body?.AppliedCount ?? 0)) break;
    }
    busy(false);
    if (last) showAnswer(last);
    notice.ok(`${bw.kind === 'UPDATE' ? 'Updated' : 'Deleted'} ${applied} of the ${matched} ` +
      `matched documents${applied >= matched ? ': all are applied.' : '.'}`);
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
      bulk,
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
