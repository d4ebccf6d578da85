import t from 'tap';
import { readFileSync } from 'node:fs';
import { CLOSE, HTTP_STATUS, TEMPORARY, WIRE_ERROR_CODES } from '../src/errors/errors.js';

const doc = readFileSync(new URL('../docs/errors.md', import.meta.url), 'utf8');

t.test('every error code is documented with its HTTP status and whether it is temporary', async (t) => {
  for (const code of WIRE_ERROR_CODES) {
    t.match(doc, new RegExp(`\\| \`${code}\` \\| ${HTTP_STATUS[code]} \\| ${TEMPORARY[code] ? 'yes' : 'no'} \\|`), code);
  }
});

t.test('every close code is documented with whether it is temporary', async (t) => {
  for (const { code, temporary } of Object.values(CLOSE)) t.match(doc, new RegExp(`\\| ${code} \\| ${temporary ? 'yes' : 'no'} \\|`), String(code));
});
