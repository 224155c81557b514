// Small UI pieces shared by the pages: notices, the confirmation and prompt dialogs, tabs, the
// JSON editor (editor.js with Format and the error's position).

import { h, replace } from './dom.js';
import { codeEditor } from './editor.js';
import { checkJson, lineCol, prettyJson } from './json.js';

/** A notice area (role=alert for errors) that shows one message at a time. */
export function noticeArea(testid) {
  const el = h('div', { class: 'notice', 'data-testid': testid, hidden: true });
  let from = null; // what showed the error on show, so a background refresh clears only its own
  return {
    el,
    /** An error; `source` names what failed, for clearError(source). */
    error(text, source = null) {
      from = source;
      el.className = 'notice notice-error';
      el.setAttribute('role', 'alert');
      replace(el, text);
      el.hidden = false;
    },
    warn(...content) {
      el.className = 'notice notice-warn';
      el.setAttribute('role', 'status');
      replace(el, ...content);
      el.hidden = false;
    },
    ok(text) {
      el.className = 'notice notice-ok';
      el.setAttribute('role', 'status');
      replace(el, text);
      el.hidden = false;
    },
    clear() {
      el.hidden = true;
      replace(el);
    },
    /**
     * Clears an error once what failed works again; a success message stays. With a source, only
     * that source's error is cleared: a grid refreshed by the changes feed must not wipe the
     * message of an import the user just tried.
     */
    clearError(source) {
      if (el.classList.contains('notice-error') && (source === undefined || source === from)) this.clear();
    },
  };
}

/**
 * Asks for confirmation in a modal dialog. Resolves true when confirmed, false when cancelled
 * (the Cancel button, Escape, or a click outside).
 */
export function confirmDialog({ title, message, confirmText = 'OK', danger = false }) {
  return new Promise((resolve) => {
    const ok = h('button', { type: 'button', class: danger ? 'btn btn-danger' : 'btn btn-primary',
      'data-testid': 'confirm-ok' }, confirmText);
    const cancel = h('button', { type: 'button', class: 'btn', 'data-testid': 'confirm-cancel' },
      'Cancel');
    const dlg = h('dialog', { class: 'dialog', 'data-testid': 'confirm-dialog' },
      h('h2', {}, title), h('p', {}, message), h('div', { class: 'dialog-actions' }, cancel, ok));
    let done = false;
    const finish = (v) => {
      if (done) return;
      done = true;
      dlg.close();
      dlg.remove();
      resolve(v);
    };
    ok.addEventListener('click', () => finish(true));
    cancel.addEventListener('click', () => finish(false));
    dlg.addEventListener('cancel', (e) => {
      e.preventDefault();
      finish(false);
    });
    dlg.addEventListener('click', (e) => {
      if (e.target === dlg) finish(false); // the backdrop
    });
    document.body.append(dlg);
    dlg.showModal();
    cancel.focus();
  });
}

/**
 * Asks for a few text values in a modal dialog. fields: [{name, label, placeholder}]; check(values)
 * returns an error string to show (the dialog stays) or null. Resolves the values or null.
 */
export function promptDialog({ title, message, fields, confirmText = 'OK', check }) {
  return new Promise((resolve) => {
    const inputs = fields.map((f) => h('input', { type: 'text', name: f.name, spellcheck: 'false',
      autocomplete: 'off', placeholder: f.placeholder || '', 'data-testid': `prompt-${f.name}` }));
    const problem = h('div', { class: 'field-error', role: 'alert', 'data-testid': 'prompt-error',
      hidden: true });
    const ok = h('button', { type: 'submit', class: 'btn btn-primary', 'data-testid': 'prompt-ok' },
      confirmText);
    const cancel = h('button', { type: 'button', class: 'btn', 'data-testid': 'prompt-cancel' }, 'Cancel');
    const form = h('form', { method: 'dialog' }, h('h2', {}, title), message ? h('p', {}, message) : null,
      fields.map((f, i) => field(f.label, inputs[i])), problem, h('div', { class: 'dialog-actions' }, cancel, ok));
    const dlg = h('dialog', { class: 'dialog', 'data-testid': 'prompt-dialog' }, form);
    let done = false;
    const finish = (v) => {
      if (done) return;
      done = true;
      dlg.close();
      dlg.remove();
      resolve(v);
    };
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      const values = Object.fromEntries(fields.map((f, i) => [f.name, inputs[i].value]));
      const err = check ? check(values) : null;
      if (err) {
        replace(problem, err);
        problem.hidden = false;
        return;
      }
      finish(values);
    });
    cancel.addEventListener('click', () => finish(null));
    dlg.addEventListener('cancel', (e) => {
      e.preventDefault();
      finish(null);
    });
    document.body.append(dlg);
    dlg.showModal();
    inputs[0].focus();
  });
}

/** Tabs: [{id, label, content: Node}] -> an element; the first tab is shown. */
export function tabs(items, testid) {
  const bar = h('div', { class: 'tabs', role: 'tablist' });
  const panels = h('div', { class: 'tab-panels' });
  const buttons = [];
  items.forEach((item, i) => {
    const btn = h('button', {
      type: 'button', role: 'tab', class: 'tab', 'data-testid': `tab-${item.id}`,
      'aria-selected': i === 0 ? 'true' : 'false',
      on: { click: () => select(i) },
    }, item.label);
    const panel = h('div', { role: 'tabpanel', class: 'tab-panel', hidden: i !== 0 }, item.content);
    buttons.push([btn, panel]);
    bar.append(btn);
    panels.append(panel);
  });
  function select(i) {
    buttons.forEach(([b, p], k) => {
      b.setAttribute('aria-selected', k === i ? 'true' : 'false');
      p.hidden = k !== i;
    });
  }
  return h('div', { class: 'tabbed', 'data-testid': testid }, bar, panels);
}

/**
 * A JSON editor (editor.js: line numbers, highlighting) with a Format button; its text is
 * checked before anything is sent. check(value) may add rules of its own and return an error
 * string. Returns {el, textarea, read(), set(text)}; read() returns {text, value} or null after
 * showing the problem under the editor, the caret at its position and its line marked.
 */
export function jsonEditor({ text = '', rows = 16, testid = 'json-editor', check } = {}) {
  const editor = codeEditor({ text, rows, testid, label: 'JSON' });
  const { textarea } = editor;
  const problem = h('div', { class: 'field-error', role: 'alert', 'data-testid': `${testid}-error`,
    hidden: true });
  textarea.addEventListener('input', () => {
    problem.hidden = true;
  });
  function show(r) {
    replace(problem, r.error);
    problem.hidden = false;
    if (typeof r.offset === 'number') {
      editor.markLine(lineCol(textarea.value, r.offset).line);
      editor.caretTo(r.offset);
    } else {
      textarea.focus();
    }
  }
  const format = h('button', { type: 'button', class: 'btn btn-small', 'data-testid': `${testid}-format`,
    on: { click: () => {
      const r = checkJson(textarea.value);
      if (r.error) {
        show(r);
        return;
      }
      problem.hidden = true;
      editor.set(prettyJson(textarea.value));
    } } }, 'Format');
  return {
    el: h('div', { class: 'json-editor' }, h('div', { class: 'editor-bar' }, format), editor.el, problem),
    textarea,
    set(t) {
      editor.set(t);
      problem.hidden = true;
    },
    read() {
      const r = checkJson(textarea.value);
      const extra = r.error ? null : check ? check(r.value) : null;
      if (r.error || extra) {
        show(r.error ? r : { error: extra });
        return null;
      }
      problem.hidden = true;
      return { text: textarea.value, value: r.value };
    },
  };
}

/** A label around a control, with its text. */
export function field(label, control, hint) {
  return h('label', { class: 'field' }, h('span', { class: 'field-label' }, label), control,
    hint ? h('span', { class: 'field-hint' }, hint) : null);
}

/** A status badge: Online, Offline, Degraded, Unknown, Healthy, Error... */
export function badge(status, testid) {
  const s = String(status ?? 'Unknown');
  return h('span', { class: ['badge', `badge-${s.toLowerCase().replace(/[^a-z]+/g, '-')}`],
    'data-testid': testid }, s);
}
