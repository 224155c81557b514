// Export and import of one collection as JSON Lines, in the format of `litedistd export` and
// `litedistd import` (backup.md): one {"collection", "id", "document"} object per line. Export
// pages through the collection by id and downloads the file; import reads a file and writes each
// line's document into the open collection with PUT, with progress, stopping at the first bad
// line. Documents travel as the text the server sent or the file holds, so numbers keep their
// exact form.

import { h, replace } from './dom.js';
import { topLevelTexts } from './json.js';

const EXPORT_PAGE = 1000; // documents per request while exporting

/** The Export button: downloads <database>-<collection>.jsonl. */
export function exportCollection({ client, collection, database, notice }) {
  const btn = h('button', { type: 'button', class: 'btn btn-small', 'data-testid': 'export' },
    'Export (JSON Lines)');
  btn.addEventListener('click', async () => {
    btn.disabled = true;
    const lines = [];
    let after = null;
    for (;;) {
      replace(btn, `Exporting… ${lines.length}`);
      const r = await client.documents(collection, after, EXPORT_PAGE);
      if (!r.ok) {
        notice.error(`Export stopped after ${lines.length} documents: ${r.error}`);
        break;
      }
      let texts;
      try {
        texts = topLevelTexts(r.text);
      } catch (e) {
        notice.error(`Export stopped: the answer is not a JSON array (${e.message}).`);
        break;
      }
      const docs = Array.isArray(r.body) ? r.body : [];
      docs.forEach((d, i) => {
        // A document's raw text holds no raw newline outside strings but whitespace: one line.
        lines.push(`{"collection":${JSON.stringify(collection)},"id":${JSON.stringify(d.Id)},` +
          `"document":${texts[i].replace(/[\r\n]+/g, ' ')}}`);
      });
      if (docs.length < EXPORT_PAGE) {
        download(`${database}-${collection}.jsonl`, lines.join('\n') + (lines.length ? '\n' : ''));
        notice.ok(`Exported ${lines.length} documents of ${collection}.`);
        break;
      }
      after = docs[docs.length - 1].Id;
    }
    btn.disabled = false;
    replace(btn, 'Export (JSON Lines)');
  });
  return btn;
}

function download(name, text) {
  const url = URL.createObjectURL(new Blob([text], { type: 'application/x-ndjson' }));
  const a = h('a', { href: url, download: name, hidden: true });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

/**
 * The Import control: a file of JSON Lines; each line's document is written to the open
 * collection under its id. done() is called after the last write.
 */
export function importCollection({ client, collection, notice, done }) {
  const input = h('input', { type: 'file', accept: '.jsonl,.ndjson,.json,application/x-ndjson',
    'data-testid': 'import-file', class: 'file-input' });
  const progress = h('progress', { max: '1', value: '0', hidden: true, 'data-testid': 'import-progress' });
  input.addEventListener('change', async () => {
    const file = input.files && input.files[0];
    if (!file) return;
    const text = await file.text();
    input.value = '';
    const lines = text.split('\n').map((l, i) => ({ n: i + 1, text: l.trim() })).filter((l) => l.text);
    const docs = [];
    for (const line of lines) {
      const d = parseLine(line);
      if (d.error) {
        notice.error(`Nothing was imported: line ${line.n}: ${d.error}`);
        return;
      }
      docs.push(d);
    }
    progress.hidden = false;
    progress.max = Math.max(docs.length, 1);
    let written = 0;
    for (const d of docs) {
      const r = await client.putDocument(collection, d.id, d.document);
      if (!r.ok) {
        notice.error(`Import stopped at line ${d.n} (${written} of ${docs.length} written): ${r.error}`);
        progress.hidden = true;
        done();
        return;
      }
      written++;
      progress.value = written;
    }
    progress.hidden = true;
    notice.ok(`Imported ${written} documents into ${collection}.`);
    done();
  });
  return h('label', { class: 'btn btn-small file-label' }, 'Import (JSON Lines)', input, progress);
}

/** One line: {id, document (its text), n} or {error}, in the words of `litedistd import`. */
function parseLine(line) {
  let value, members;
  try {
    value = JSON.parse(line.text);
    members = topLevelTexts(line.text);
  } catch (e) {
    return { error: `not JSON (${e.message})` };
  }
  if (!value || typeof value !== 'object' || Array.isArray(value) ||
      typeof value.collection !== 'string' || typeof value.id !== 'string' ||
      !value.document || typeof value.document !== 'object' || Array.isArray(value.document))
    return { error: 'needs "collection" and "id" strings and a "document" object' };
  return { n: line.n, id: value.id, document: members.document };
}
