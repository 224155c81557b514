// The Studio's pure modules, without a browser: what the query runner makes of a bulk write
// (liteql.js), where JSON text goes wrong and the raw texts of a JSON array or object (json.js).
// These decide what is sent to a node, so their edge cases are pinned here; the walk-through in
// studio.test.js checks the same paths end to end.

import { test } from 'node:test';
import assert from 'node:assert/strict';

import { bulkWrite, continuation, countOf, countQuery, quote } from '../../studio/js/liteql.js';
import { checkJson, jsonErrorAt, lineCol, topLevelTexts } from '../../studio/js/json.js';

test('bulkWrite finds the collection and the condition of UPDATE and DELETE only', () => {
  assert.deepEqual(bulkWrite("UPDATE orders SET {\"Reviewed\": true} WHERE $.Status = 'shipped';"), {
    kind: 'UPDATE', collection: 'orders', where: "$.Status = 'shipped'",
    head: 'UPDATE orders SET {"Reviewed": true}',
  });
  assert.deepEqual(bulkWrite('delete from "my-coll"'), {
    kind: 'DELETE', collection: '"my-coll"', where: null, head: 'delete from "my-coll"',
  });
  for (const q of ['SELECT $ FROM orders WHERE $.a = 1', "INSERT INTO o VALUES {\"Id\": \"x\"}", '', 'UPDATE orders',
    'DELETE orders'])
    assert.equal(bulkWrite(q), null, q);
});

test('bulkWrite ignores WHERE inside strings, the SET object, comments and member names', () => {
  const bw = bulkWrite("UPDATE o SET {\"where\": 'WHERE', \"x\": [1, {\"WHERE\": 2}]} /* WHERE */ " +
    "WHERE $.where = 'it''s WHERE' -- WHERE");
  assert.equal(bw.collection, 'o');
  assert.equal(bw.where, "$.where = 'it''s WHERE' -- WHERE");
  assert.equal(countQuery(bw), "SELECT COUNT(*) FROM o WHERE $.where = 'it''s WHERE' -- WHERE");
});

test('continuation restricts the write to the ids after the last one written', () => {
  const bw = bulkWrite("DELETE FROM o WHERE $.n > 1 -- old ones");
  // The newline ends the comment before the added condition.
  assert.equal(continuation(bw, "o'7"), "DELETE FROM o WHERE ($.n > 1 -- old ones\n) AND _id > 'o''7'");
  assert.equal(continuation(bulkWrite('UPDATE o SET {}'), 'a'), "UPDATE o SET {} WHERE _id > 'a'");
  assert.equal(quote("a'b''c"), "'a''b''''c'");
});

test('countOf reads the one value of a COUNT(*) row', () => {
  assert.equal(countOf({ Rows: [{ '[value]': 37 }] }), 37);
  assert.equal(countOf({ Rows: [{ n: 0 }] }), 0);
  assert.equal(countOf({ Rows: [] }), null);
  assert.equal(countOf(null), null);
});

test('jsonErrorAt names the offset where JSON text goes wrong', () => {
  const cases = [
    ['{"a": 1}', null],
    ['{"Id": "o-1", "Total": }', [23, 'expected a value']],
    ['{"a":1,}', [7, 'expected a member name in double quotes']],
    ['[1, 2', [5, "expected ',' or ']'"]],
    ['{"a":"x\\q"}', [8, 'bad escape']],
    ['"abc', [4, 'unterminated string']],
    ['{"a":1} x', [8, 'text after the value']],
    ['', [0, 'unexpected end']],
  ];
  for (const [text, want] of cases) {
    const got = jsonErrorAt(text);
    assert.deepEqual(got && [got.offset, got.reason], want, text);
  }
  // Where JSON.parse fails, the validator fails too (the two agree on what is valid).
  for (const text of ['{"a": 01}', '[1,]', '{"a" 1}', 'nul', '{"a": "\u0001"}', '1e', '-']) {
    assert.throws(() => JSON.parse(text), text);
    assert.notEqual(jsonErrorAt(text), null, text);
  }
});

test('checkJson gives the message with line and column, and the offset for the caret', () => {
  const r = checkJson('{\n  "Id": "o-1",\n  "Total": }');
  assert.equal(r.offset, 28);
  assert.match(r.error, /^Invalid JSON: .*\(expected a value at line 3, column 12\)$/);
  assert.deepEqual(lineCol('a\nbc', 3), { line: 2, column: 2 });
  assert.deepEqual(checkJson('[1]'), { value: [1] });
});

test('topLevelTexts keeps each element and member as written', () => {
  assert.deepEqual(topLevelTexts('[{"Id":"a","n":12345678901234567890}, {"Id":"b,]","x":[1,2]}]'),
    ['{"Id":"a","n":12345678901234567890}', '{"Id":"b,]","x":[1,2]}']);
  assert.deepEqual(topLevelTexts('{"collection":"o","id":"a\\":","document":{"n":1.50}}'),
    { collection: '"o"', id: '"a\\":"', document: '{"n":1.50}' });
  assert.deepEqual(topLevelTexts('[]'), []);
  assert.throws(() => topLevelTexts('[1, 2'), /unterminated/);
  assert.throws(() => topLevelTexts('[1] 2'), /text after/);
  assert.throws(() => topLevelTexts('"x"'), /not a JSON array or object/);
});
