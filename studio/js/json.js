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
 * Where JSON text first goes wrong: {offset, reason} (offset in UTF-16 units, as a textarea
 * counts), or null when it is valid. JSON.parse's own messages do not always name a position,
 * so the Studio finds it itself to put the caret there.
 */
export function jsonErrorAt(text) {
  const s = String(text);
  let i = 0;
  const ws = () => {
    while (i < s.length && ' \t\n\r'.includes(s[i])) i++;
  };
  const fail = (reason) => {
    throw { offset: Math.min(i, s.length), reason };
  };
  const value = () => {
    ws();
    const c = s[i];
    if (c === '{') {
      i++;
      ws();
      if (s[i] === '}') return void i++;
      for (;;) {
        ws();
        if (s[i] !== '"') fail('expected a member name in double quotes');
        string();
        ws();
        if (s[i] !== ':') fail("expected ':'");
        i++;
        value();
        ws();
        if (s[i] === ',') { i++; continue; }
        if (s[i] === '}') return void i++;
        fail("expected ',' or '}'");
      }
    }
    if (c === '[') {
      i++;
      ws();
      if (s[i] === ']') return void i++;
      for (;;) {
        value();
        ws();
        if (s[i] === ',') { i++; continue; }
        if (s[i] === ']') return void i++;
        fail("expected ',' or ']'");
      }
    }
    if (c === '"') return string();
    NUMBER.lastIndex = i;
    LITERAL.lastIndex = i;
    const m = NUMBER.exec(s) || LITERAL.exec(s);
    if (!m) fail(i >= s.length ? 'unexpected end' : 'expected a value');
    i += m[0].length;
  };
  const string = () => {
    i++;
    while (i < s.length && s[i] !== '"') {
      if (s[i] < ' ') fail('control character in a string');
      if (s[i] === '\\') {
        if (!/["\\/bfnrtu]/.test(s[i + 1] || '')) { i++; fail('bad escape'); }
        if (s[i + 1] === 'u' && !/^[0-9a-fA-F]{4}$/.test(s.slice(i + 2, i + 6))) { i++; fail('bad \\u escape'); }
        i += s[i + 1] === 'u' ? 6 : 2;
      } else i++;
    }
    if (i >= s.length) fail('unterminated string');
    i++;
  };
  try {
    value();
    ws();
    if (i < s.length) fail('text after the value');
    return null;
  } catch (e) {
    if (e && typeof e.offset === 'number') return e;
    throw e;
  }
}

/** Line and column (from 1) of an offset in text. */
export function lineCol(text, offset) {
  const upto = String(text).slice(0, offset);
  return { line: upto.split('\n').length, column: offset - upto.lastIndexOf('\n') };
}

/**
 * Validates JSON text before it is sent. Returns {value} or {error, offset}: the parser's message
 * with the line and column, so the user finds the mistake, and the offset for the caret.
 */
export function checkJson(text) {
  const src = String(text);
  if (!src.trim()) return { error: 'The JSON is empty.', offset: 0 };
  try {
    return { value: JSON.parse(src) };
  } catch (e) {
    const msg = String(e.message || e);
    const at = jsonErrorAt(src);
    if (!at) return { error: `Invalid JSON: ${msg}` };
    const { line, column } = lineCol(src, at.offset);
    return { error: `Invalid JSON: ${msg} (${at.reason} at line ${line}, column ${column})`,
      offset: at.offset };
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

/**
 * The raw texts of a JSON array's elements, or of an object's members ({name: text}), taken
 * from the text itself so numbers keep their exact form. Throws on text that is not one array
 * or object.
 */
export function topLevelTexts(text) {
  const src = String(text).trim();
  const open = src[0];
  if (open !== '[' && open !== '{') throw new SyntaxError('not a JSON array or object');
  const out = open === '[' ? [] : {};
  let depth = 0;
  let start = 1;
  let key = null;
  const flush = (end) => {
    const piece = src.slice(start, end).trim();
    if (!piece) return;
    if (Array.isArray(out)) out.push(piece);
    else {
      let j = 1;
      while (j < piece.length && piece[j] !== '"') j += piece[j] === '\\' ? 2 : 1;
      const colon = piece.indexOf(':', j + 1);
      if (piece[0] !== '"' || colon < 0) throw new SyntaxError('member without a name');
      key = JSON.parse(piece.slice(0, j + 1));
      out[key] = piece.slice(colon + 1).trim();
    }
  };
  for (let i = 0; i < src.length; i++) {
    const c = src[i];
    if (c === '"') {
      i++;
      while (i < src.length && src[i] !== '"') i += src[i] === '\\' ? 2 : 1;
    } else if (c === '[' || c === '{') {
      depth++;
    } else if (c === ']' || c === '}') {
      depth--;
      if (depth === 0) {
        flush(i);
        if (src.slice(i + 1).trim()) throw new SyntaxError('text after the value');
        return out;
      }
    } else if (c === ',' && depth === 1) {
      flush(i);
      start = i + 1;
    }
  }
  throw new SyntaxError('unterminated value');
}
