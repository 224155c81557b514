// A result grid: rows of JSON documents as a table, columns taken from the rows' fields (nested
// ones as paths, Address.City), a column picker, and headers that sort when the page asks for
// it. Cells are text nodes; long values are cut, with the whole value in a title.

import { h, replace } from './dom.js';
import { cellText } from './json.js';

const DEFAULT_VISIBLE = 8; // columns shown before the user picks
const CELL_MAX = 120;      // characters shown in a cell
const TITLE_MAX = 2000;    // characters in a cell's tooltip
const NEST_DEPTH = 3;      // levels of nested objects offered as column paths
const NEST_MAX = 200;      // nested paths offered at most (a wide document stays usable)

const isObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);

/** The top-level fields of rows in order of first appearance, Id (or id/_id) first. */
export function fieldsOf(rows) {
  const seen = new Set();
  for (const r of rows) if (isObject(r)) for (const k of Object.keys(r)) seen.add(k);
  const all = [...seen];
  const idKey = ['Id', 'id', '_id'].find((k) => seen.has(k));
  return idKey ? [idKey, ...all.filter((k) => k !== idKey)] : all;
}

/** The paths of nested objects' members (Address.City, Address.Geo.Lat), in order of first
 * appearance, for the column picker. */
export function nestedPathsOf(rows) {
  const seen = new Set();
  const walk = (obj, prefix, depth) => {
    for (const [k, v] of Object.entries(obj)) {
      if (seen.size >= NEST_MAX) return;
      const path = `${prefix}.${k}`;
      seen.add(path);
      if (isObject(v) && depth < NEST_DEPTH) walk(v, path, depth + 1);
    }
  };
  for (const r of rows)
    if (isObject(r))
      for (const [k, v] of Object.entries(r)) if (isObject(v)) walk(v, k, 2);
  return [...seen];
}

/** A row's value at a column: the member of that name, else the dotted path into it. */
export function valueAt(row, column) {
  if (!isObject(row)) return undefined;
  if (column in row) return row[column];
  let v = row;
  for (const part of column.split('.')) {
    if (!isObject(v) || !(part in v)) return undefined;
    v = v[part];
  }
  return v;
}

export class Grid {
  /**
   * options:
   *   testid           data-testid of the table
   *   onOpen(row, i)   a row was clicked or Enter was pressed on it
   *   columns()        the saved column choice (array) or null
   *   onColumns(list)  the user chose columns (null: back to the default)
   *   empty            the text shown for no rows
   *   onSort(column)   a header was clicked (the page sorts and calls setSort); none: no sorting
   */
  constructor(options = {}) {
    this.opt = options;
    this.rows = [];
    this.fields = [];
    this.nested = [];
    this.sort = null; // {column, desc}
    this.marked = new Set(); // ids of rows to highlight (changed just now)
    this.table = h('table', { class: 'grid', 'data-testid': options.testid || 'grid' });
    this.pickerBtn = h('button', {
      type: 'button', class: 'btn btn-small', 'aria-expanded': 'false',
      'data-testid': `${options.testid || 'grid'}-columns`, on: { click: () => this.togglePicker() },
    }, 'Columns');
    this.picker = h('div', { class: 'column-picker', hidden: true,
      'data-testid': `${options.testid || 'grid'}-picker` });
    this.el = h('div', { class: 'grid-wrap' }, this.table);
  }

  /** The column-picker button and its popover, for a toolbar. */
  pickerControl() {
    return h('div', { class: 'picker-anchor' }, this.pickerBtn, this.picker);
  }

  setRows(rows) {
    this.rows = (rows || []).map((r) => (r && typeof r === 'object' && !Array.isArray(r)
      ? r : { value: r }));
    this.fields = fieldsOf(this.rows);
    this.nested = nestedPathsOf(this.rows);
    this.render();
  }

  /** Shows the sort in force ({column, desc} or null) on the headers. */
  setSort(sort) {
    this.sort = sort;
    this.render();
  }

  /** Highlights the rows with these ids (changes the live feed brought) until the next call. */
  mark(ids) {
    this.marked = new Set(ids);
    this.render();
  }

  visible() {
    const chosen = this.opt.columns ? this.opt.columns() : null;
    if (chosen && chosen.length) return chosen;
    return this.fields.slice(0, DEFAULT_VISIBLE);
  }

  render() {
    const cols = this.visible();
    const head = h('tr', {}, cols.map((c) => {
      if (!this.opt.onSort) return h('th', { scope: 'col', title: c }, c);
      const sorted = this.sort && this.sort.column === c;
      return h('th', { scope: 'col', title: c,
        'aria-sort': sorted ? (this.sort.desc ? 'descending' : 'ascending') : null },
      h('button', { type: 'button', class: 'th-sort', 'data-testid': 'sort-column', dataset: { column: c },
        on: { click: () => this.opt.onSort(c) } }, c, sorted ? (this.sort.desc ? ' ▼' : ' ▲') : ''));
    }));
    const body = h('tbody');
    if (!this.rows.length) {
      body.append(h('tr', {}, h('td', { class: 'grid-empty', colspan: Math.max(1, cols.length) },
        this.opt.empty || 'No rows.')));
    }
    this.rows.forEach((row, i) => {
      const id = isObject(row) ? row.Id : undefined;
      const tr = h('tr', {
        tabindex: this.opt.onOpen ? '0' : null,
        class: [this.opt.onOpen && 'clickable', typeof id === 'string' && this.marked.has(id) && 'row-live'],
        dataset: typeof id === 'string' ? { id } : {},
        on: this.opt.onOpen ? {
          click: () => this.opt.onOpen(row, i),
          keydown: (e) => {
            if (e.key === 'Enter' || e.key === ' ') {
              e.preventDefault();
              this.opt.onOpen(row, i);
            }
          },
        } : {},
      });
      for (const c of cols) {
        const v = valueAt(row, c);
        const text = cellText(v);
        const cut = text.length > CELL_MAX ? text.slice(0, CELL_MAX) + '…' : text;
        tr.append(h('td', {
          class: [v === undefined && 'missing', v === null && 'null',
            typeof v === 'number' && 'num', typeof v === 'object' && v !== null && 'obj'],
          title: text.length > CELL_MAX ? text.slice(0, TITLE_MAX) : null,
        }, cut));
      }
      body.append(tr);
    });
    replace(this.table, h('thead', {}, head), body);
    this.pickerBtn.textContent = `Columns (${cols.length}/${new Set([...this.fields, ...this.nested, ...cols]).size})`;
    if (!this.picker.hidden) this.renderPicker();
  }

  togglePicker() {
    const open = this.picker.hidden;
    this.picker.hidden = !open;
    this.pickerBtn.setAttribute('aria-expanded', open ? 'true' : 'false');
    if (open) this.renderPicker();
  }

  renderPicker() {
    const shown = new Set(this.visible());
    const names = [...new Set([...this.fields, ...this.nested, ...shown])];
    const choose = (list) => {
      if (this.opt.onColumns) this.opt.onColumns(list);
      this.render();
    };
    const boxes = names.map((name) => {
      const box = h('input', { type: 'checkbox', props: { checked: shown.has(name) },
        'data-column': name });
      box.addEventListener('change', () => {
        // Keep the order of the fields, whatever order they are ticked in.
        const picked = names.filter((n) =>
          n === name ? box.checked : shown.has(n));
        choose(picked.length ? picked : null);
      });
      return h('label', { class: ['picker-item', this.nested.includes(name) && 'picker-nested'] }, box,
        h('span', {}, name));
    });
    replace(this.picker,
      h('div', { class: 'picker-actions' },
        h('button', { type: 'button', class: 'btn btn-small', on: { click: () => choose(names) } },
          'All'),
        h('button', { type: 'button', class: 'btn btn-small', on: { click: () => choose(null) } },
          'Default')),
      names.length ? boxes : h('p', { class: 'muted' }, 'No fields yet.'));
  }
}
