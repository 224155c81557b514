// What the Studio needs to know about a LiteQL statement before it sends it: whether it is a
// bulk write (UPDATE or DELETE), the SELECT COUNT(*) that previews how many documents it
// matches, and the same statement restricted to ids after the last one written, so a write the
// server capped at Take can be continued. A small scanner, not a parser: the server's parser
// has the last word (query.md).

/**
 * Scans text at depth 0 (outside strings, comments, brackets) and returns the words found there
 * with their offsets: [{word (upper case), at, end}].
 */
function topWords(text) {
  const out = [];
  let depth = 0;
  let i = 0;
  const n = text.length;
  while (i < n) {
    const c = text[i];
    if (c === "'") {
      i++;
      while (i < n && !(text[i] === "'" && text[i + 1] !== "'")) i += text[i] === "'" ? 2 : 1;
      i++;
    } else if (c === '"') {
      i++;
      while (i < n && text[i] !== '"') i += text[i] === '\\' ? 2 : 1;
      i++;
    } else if (c === '-' && text[i + 1] === '-') {
      while (i < n && text[i] !== '\n') i++;
    } else if (c === '/' && text[i + 1] === '*') {
      const end = text.indexOf('*/', i + 2);
      i = end < 0 ? n : end + 2;
    } else if ('{[('.includes(c)) {
      depth++;
      i++;
    } else if ('}])'.includes(c)) {
      depth = Math.max(0, depth - 1);
      i++;
    } else if (/[A-Za-z_]/.test(c)) {
      const m = /[A-Za-z_][A-Za-z0-9_]*/y;
      m.lastIndex = i;
      const w = m.exec(text)[0];
      // A member name after '.' ($.where) is not a keyword.
      if (depth === 0 && text[i - 1] !== '.' && text[i - 1] !== '$')
        out.push({ word: w.toUpperCase(), at: i, end: i + w.length });
      i += w.length;
    } else {
      i++;
    }
  }
  return out;
}

/**
 * Analyses a bulk write. Returns null for anything but UPDATE or DELETE, else
 * {kind, collection, where (text or null), head (the statement up to its WHERE)}.
 */
export function bulkWrite(statement) {
  const text = String(statement).trim().replace(/;\s*$/, '');
  const words = topWords(text);
  if (!words.length) return null;
  const kind = words[0].word;
  let collFrom, collTo;
  if (kind === 'DELETE') {
    const from = words.find((w) => w.word === 'FROM');
    if (!from) return null;
    collFrom = from.end;
  } else if (kind === 'UPDATE') {
    collFrom = words[0].end;
  } else {
    return null;
  }
  const set = kind === 'UPDATE' ? words.find((w) => w.word === 'SET') : null;
  if (kind === 'UPDATE' && !set) return null;
  const where = words.find((w) => w.word === 'WHERE' && w.at > (set ? set.end : collFrom));
  collTo = set ? set.at : where ? where.at : text.length;
  const collection = text.slice(collFrom, collTo).trim();
  if (!collection) return null;
  return {
    kind,
    collection,
    where: where ? text.slice(where.end).trim() : null,
    head: where ? text.slice(0, where.at).trimEnd() : text,
  };
}

/** LiteQL's single-quoted string: a quote is doubled, nothing else is escaped. */
export function quote(s) {
  return `'${String(s).replace(/'/g, "''")}'`;
}

/** A collection name as LiteQL reads it whatever it is called (a keyword, a dash). */
export function collectionRef(name) {
  return JSON.stringify(String(name));
}

/** The SELECT COUNT(*) that counts what the bulk write would match. */
export function countQuery(bw) {
  return `SELECT COUNT(*) FROM ${bw.collection}${bw.where ? ` WHERE ${bw.where}` : ''}`;
}

/** The same write restricted to ids after `afterId` (writes go in id order). */
export function continuation(bw, afterId) {
  const rest = `_id > ${quote(afterId)}`;
  // A newline ends a trailing '--' comment of the WHERE before the added condition.
  return `${bw.head} WHERE ${bw.where ? `(${bw.where}\n) AND ${rest}` : rest}`;
}

/** The number a COUNT(*) answer holds (its one row's one member). */
export function countOf(body) {
  const row = Array.isArray(body?.Rows) ? body.Rows[0] : null;
  const v = row && typeof row === 'object' ? Object.values(row)[0] : null;
  return typeof v === 'number' ? v : null;
}
