// JSON for people: validation with a position, and formatting that works on the text itself, so
// a number keeps the exact form the server sent (JSON.parse would round 12345678901234567890).

import { h } from './dom.js';

const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
const LITERAL = /true|false|null/y;

/** Splits JSON text into tokens {t, v}: t is 'p' (punctuation), 's', 'n' or 'l' (literal). */
export function tokenize(text) {
  const out = [];
  const n = text.length;
  let i = 0;
  while (i < n) {
    const c = text[i];
    if (c === ' ' || c === '\t' || c === '\n' || c === '\r') {
      i++;
    } else if ('{}[],:'.includes(c)) {
      out.push({ t: 'p', v: c });
      i++;
    } else if (c === '"') {
      let j = i + 1;
      while (j < n && text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      if (j >= n) throw new SyntaxError('unterminated string');
      out.push({ t: 's', v: text.slice(i, j + 1) });
      i = j + 1;
    } else {
      NUMBER.lastIndex = i;
      LITERAL.lastIndex = i;
      const m = NUMBER.exec(text) || LITERAL.exec(text);
      if (!m) throw new SyntaxError(`unexpected character at ${i}`);
      out.push({ t: m[0][0] === '-' || (m[0][0] >= '0' && m[0][0] <= '9') ? 'n' : 'l', v: m[0] });
      i += m[0].length;
    }
  }
  return out;
}

/** Lays tokens out two spaces per level, calling emit(text, kind) for each piece. */
function layout(toks, emit) {
  let depth = 0;
  const newline = () => emit('\n' + '  '.repeat(depth), null);
  for (let k = 0; k < toks.length; k++) {
    const tk = toks[k];
    const next = toks[k + 1];
    if (tk.t !== 'p') {
      const key = tk.t === 's' && next && next.t === 'p' && next.v === ':';
      emit(tk.v, key ? 'key' : { s: 'str', n: 'num', l: 'lit' }[tk.t]);
    } else if (tk.v === '{' || tk.v === '[') {
      const close = tk.v === '{' ? '}' : ']';
      if (next && next.t === 'p' && next.v === close) {
        emit(tk.v + close, 'punct');
        k++;
        continue;
      }
      emit(tk.v, 'punct');
      depth++;
      newline();
    } else if (tk.v === '}' || tk.v === ']') {
      depth = Math.max(0, depth - 1);
      newline();
      emit(tk.v, 'punct');
    } else if (tk.v === ',') {
      emit(',', 'punct');
      newline();
    } else {
      emit(': ', 'punct');
    }
  }
}

/** JSON text re-indented (the text itself when it does not tokenize). */
export function prettyJson(text) {
  let toks;
  try {
    toks = tokenize(String(text));
  } catch {
    return String(text);
  }
  const parts = [];
  layout(toks, (piece) => parts.push(piece));
  return parts.join('');
}

// Beyond this, colouring costs more than it helps: the text is shown plain.
const HIGHLIGHT_MAX = 256 * 1024;

/** A <pre> showing JSON text formatted and coloured; values are text nodes, never markup. */
export function jsonView(text, attrs = {}) {
  const pre = h('pre', { class: 'json', ...attrs });
  const src = String(text ?? '');
  let toks = null;
  if (src.length <= HIGHLIGHT_MAX) {
    try {
      toks = tokenize(src);
    } catch {
      toks = null;
    }
  }
  if (!toks) {
    pre.textContent = src.length <= HIGHLIGHT_MAX ? src : prettyJson(src);
    return pre;
  }
  const frag = document.createDocumentFragment();
  layout(toks, (piece, kind) => {
    frag.append(kind && kind !== 'punct' ? h('span', { class: `j-${kind}` }, piece) : piece);
  });
  pre.append(frag);
  return pre;
}

/** The same for a value already parsed. */
export function jsonValueView(value, attrs = {}) {
  return jsonView(JSON.stringify(value), attrs);
}

/**
 * Validates JSON text before it is sent. Returns {value} or {error}: the parser's message with
 * the line and column, so the user finds the mistake.
 */
export function checkJson(text) {
  const src = String(text);
  if (!src.trim()) return { error: 'The JSON is empty.' };
  try {
    return { value: JSON.parse(src) };
  } catch (e) {
    let msg = String(e.message || e);
    const m = /position (\d+)/.exec(msg);
    if (m && !/line \d+/.test(msg)) {
      const upto = src.slice(0, Number(m[1]));
      const line = upto.split('\n').length;
      const col = Number(m[1]) - upto.lastIndexOf('\n');
      msg += ` (line ${line}, column ${col})`;
    }
    return { error: `Invalid JSON: ${msg}` };
  }
}

/** A short one-line rendering of a value for a grid cell. */
export function cellText(v) {
  if (v === undefined) return '';
  if (v === null) return 'null';
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  return JSON.stringify(v);
}
