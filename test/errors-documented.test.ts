import t from 'tap';
import { readFileSync } from 'node:fs';
import { CLOSE, HTTP_STATUS, WIRE_ERROR_CODES } from '../src/errors/errors.js';

const doc = readFileSync(new URL('../docs/errors.md', import.meta.url), 'utf8');

t.test('every error code is documented with its HTTP status', async (t) => {
  for (const code of WIRE_ERROR_CODES) {
    t.match(doc, new RegExp(`\\| \`${code}\` \\| ${HTTP_STATUS[code]} \\|`), code);
  }
});

t.test('every close code is documented', async (t) => {
  for (const { code } of Object.values(CLOSE)) t.match(doc, new RegExp(`\\| ${code} \\|`), String(code));
});
