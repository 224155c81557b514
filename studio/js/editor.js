// The Studio's code editor, a small component of its own (no third-party editor): a textarea
// for the typing (so the browser's undo, selection, IME and accessibility all work as usual)
// laid exactly over a <pre> that shows the same text highlighted, with a gutter of line numbers.
// Both follow the textarea's scrolling. The highlighting is a lenient JSON scanner, so half-typed
// text is coloured too; values are text nodes, never markup.

import { h, replace } from './dom.js';

// Beyond this the overlay costs more than it helps: the text is shown plain.
const HIGHLIGHT_MAX = 200 * 1024;
const TOKEN = /("(?:[^"\\\n]|\\.)*"?)(\s*:)?|(-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)|(true|false|null)\b|([{}[\],])/g;

/** Appends text to el as highlighted JSON pieces. */
function highlight(el, text) {
  let last = 0;
  const frag = document.createDocumentFragment();
  const put = (piece, cls) => frag.append(cls ? h('span', { class: cls }, piece) : piece);
  TOKEN.lastIndex = 0;
  for (let m = TOKEN.exec(text); m; m = TOKEN.exec(text)) {
    if (m.index > last) put(text.slice(last, m.index), null);
    if (m[1] !== undefined) {
      put(m[1], m[2] ? 'j-key' : 'j-str');
      if (m[2]) put(m[2], null);
    } else if (m[3] !== undefined) put(m[3], 'j-num');
    else if (m[4] !== undefined) put(m[4], 'j-lit');
    else put(m[5], 'j-punct');
    last = TOKEN.lastIndex;
  }
  if (last < text.length) put(text.slice(last), null);
  el.append(frag);
}

/**
 * A code editor. options: text, rows, testid (the textarea's data-testid), label (aria-label),
 * highlight (false for plain text). Returns {el, textarea, value(), set(text), markLine(n|null),
 * caretTo(offset)}.
 */
export function codeEditor({ text = '', rows = 12, testid = 'code-editor', label = 'JSON',
  json = true } = {}) {
  const textarea = h('textarea', {
    class: 'ce-input', rows, spellcheck: 'false', autocomplete: 'off', autocapitalize: 'off',
    wrap: 'off', 'data-testid': testid, 'aria-label': label,
  });
  textarea.value = text;
  const code = h('code');
  const pre = h('pre', { class: 'ce-highlight', 'aria-hidden': 'true' }, code);
  const gutter = h('div', { class: 'ce-gutter', 'aria-hidden': 'true', 'data-testid': `${testid}-gutter` });
  const el = h('div', { class: 'code-editor' }, gutter, h('div', { class: 'ce-body' }, pre, textarea));
  // Through the CSSOM: the page's Content-Security-Policy refuses style attributes.
  el.style.setProperty('--ce-rows', String(rows));
  let lines = 0;
  let errorLine = null;

  function draw() {
    const t = textarea.value;
    replace(code);
    if (json && t.length <= HIGHLIGHT_MAX) highlight(code, t);
    else code.append(t);
    code.append('\n'); // a last empty line keeps its height
    const n = t.split('\n').length;
    if (n !== lines || errorLine !== null) {
      lines = n;
      replace(gutter, Array.from({ length: n }, (_, i) => h('div', {
        class: i + 1 === errorLine ? 'ce-line ce-line-error' : 'ce-line' }, String(i + 1))));
    }
    sync();
  }

  function sync() {
    pre.scrollTop = textarea.scrollTop;
    pre.scrollLeft = textarea.scrollLeft;
    gutter.scrollTop = textarea.scrollTop;
  }

  textarea.addEventListener('input', () => {
    errorLine = null;
    draw();
  });
  textarea.addEventListener('scroll', sync);
  // Tab indents (two spaces) rather than leaving the editor; Escape then Tab still leaves it,
  // since Escape is left to the page (it closes the panel).
  textarea.addEventListener('keydown', (e) => {
    if (e.key !== 'Tab' || e.shiftKey || e.ctrlKey || e.metaKey || e.altKey) return;
    e.preventDefault();
    textarea.setRangeText('  ', textarea.selectionStart, textarea.selectionEnd, 'end');
    draw();
  });
  draw();

  return {
    el,
    textarea,
    value: () => textarea.value,
    set(t) {
      textarea.value = t;
      errorLine = null;
      draw();
    },
    /** Marks a line (from 1) in the gutter as the one in error; null clears it. */
    markLine(n) {
      errorLine = n;
      lines = -1;
      draw();
    },
    caretTo(offset) {
      textarea.focus();
      textarea.setSelectionRange(offset, offset);
      // Bring the caret into view: the line's height times its index.
      const line = textarea.value.slice(0, offset).split('\n').length;
      const lh = parseFloat(getComputedStyle(textarea).lineHeight) || 18;
      if ((line - 1) * lh < textarea.scrollTop || line * lh > textarea.scrollTop + textarea.clientHeight)
        textarea.scrollTop = Math.max(0, (line - 3) * lh);
      sync();
    },
  };
}
