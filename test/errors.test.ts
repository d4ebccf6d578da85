import t from 'tap';
import { SwitchboardError, TEMPORARY, WIRE_ERROR_CODES, isTransientError, toSwitchboardError } from '../src/errors/errors.js';

t.test('temporary comes from the catalog unless an instance says otherwise', async (t) => {
  for (const code of WIRE_ERROR_CODES) t.equal(new SwitchboardError(code, 'x').temporary, TEMPORARY[code], code);
  t.equal(new SwitchboardError('conflict', 'x', { temporary: true }).temporary, true);
  t.equal(new SwitchboardError('unavailable', 'x', { retryMs: 1500 }).retryMs, 1500);
  t.equal(new SwitchboardError('unavailable', 'x').retryMs, undefined);
});

t.test('overload and unreachable backends become unavailable, never internal', async (t) => {
  const cases: Array<[string, unknown]> = [
    ['pg pool exhausted', new Error('timeout exceeded when trying to connect')],
    ['pg connect timeout', new Error('Connection terminated due to connection timeout')],
    ['PostgreSQL too many connections', Object.assign(new Error('sorry, too many clients already'), { code: '53300', severity: 'FATAL' })],
    ['PostgreSQL shutting down', Object.assign(new Error('terminating connection due to administrator command'), { code: '57P01' })],
    ['statement timeout', Object.assign(new Error('canceling statement due to statement timeout'), { code: '57014' })],
    ['refused', Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' })],
    ['out of descriptors', Object.assign(new Error('accept EMFILE'), { code: 'EMFILE' })],
    ['ioredis command timeout', new Error('Command timed out')],
    ['ioredis closed', new Error('Connection is closed.')],
    ['ioredis retries', Object.assign(new Error('Reached the max retries per request limit (which is 20).'), { name: 'MaxRetriesPerRequestError' })],
    ['Redis cluster down', new Error('CLUSTERDOWN The cluster is down')],
    ['wrapped', new Error('open failed', { cause: new Error('timeout exceeded when trying to connect') })],
  ];
  for (const [what, err] of cases) {
    t.ok(isTransientError(err), what);
    const e = toSwitchboardError(err);
    t.match(e, { code: 'unavailable', temporary: true }, what);
    t.ok(e.retryMs !== undefined && e.retryMs > 0, `${what}: a retry hint`);
    t.match(e.message, /retry/, `${what}: says what to do`);
  }
});

t.test('other errors stay internal; ours pass through', async (t) => {
  const bug = new TypeError("Cannot read properties of undefined (reading 'x')");
  t.notOk(isTransientError(bug));
  t.match(toSwitchboardError(bug), { code: 'internal', message: bug.message });
  t.notOk(isTransientError(Object.assign(new Error('duplicate key'), { code: '23505' })), 'a unique violation is not transient');
  const ours = new SwitchboardError('not_found', 'no session');
  t.equal(toSwitchboardError(ours), ours);
  t.notOk(isTransientError('a string'));
});
