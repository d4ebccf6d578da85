import type { Cluster, Redis } from 'ioredis';
import { sessionEvents } from '../bus/channels.js';
import { FencedError, SwitchboardError } from '../errors/errors.js';
import { leaseKey } from '../lease/redis-leases.js';
import { decodeMessage, encodeFrame } from '../protocol/codec.js';
import type { Epoch, Offset, SessionId } from '../util/ids.js';
import type { LogBounds, LogChunk, LogRead, SessionLog } from './log.js';
import { sliceChunks } from './slice.js';
import { MAX_APPEND_BYTES } from './log.js';

/**
 * Key layout (all under the session's `{sid}` hash tag, so one script touches one slot):
 *   sb:{<sid>}:log    Stream; one entry per append, id "<off>-1", field f = encoded `out`
 *                     frame. Seq 1, not 0: "0-0" is not a valid stream id, offset 0 is.
 *   sb:{<sid>}:head   next offset to write (absent = 0)
 *   sb:{<sid>}:lease  written by RedisLeases, "<epoch>:<node>": the fence (no expiry)
 * The start offset needs no key of its own: it is the id of the first entry (XRANGE
 * COUNT 1 is O(log n)), or the head when the stream is empty.
 */
export const logKey = (sid: SessionId): string => `sb:{${sid}}:log`;
export const headKey = (sid: SessionId): string => `sb:{${sid}}:head`;

/** Entries one read returns at most, so a log of tiny chunks cannot make one huge reply. */
export const READ_MAX_ENTRIES = 4096;
/** Keeps offset arithmetic inside Lua's exact doubles whatever maxBytes a caller passes. */
const MAX_READ_BYTES = 2 ** 48;

// The fence, shared by append and announce: the owner record must hold exactly our
// epoch. The refusal names the current epoch ('FENCED -' with no record), so a writer
// can tell "another node took over" (end) from "Redis lost the record" (reclaim).
const FENCE = `
local lease = redis.call('GET', KEYS[1])
local current = lease and string.match(lease, '^(%d+):')
if not current or tonumber(current) ~= tonumber(ARGV[1]) then
  return redis.error_reply('FENCED ' .. (current or '-'))
end`;

// KEYS: lease, head, log, channel. ARGV: epoch, off, frame, len, replayBytes, sharded.
// Fence, head check, XADD, trim, publish: one round trip, all or nothing.
const APPEND = `${FENCE}
local head = tonumber(redis.call('GET', KEYS[2]) or '0')
if tonumber(ARGV[2]) ~= head then
  return redis.error_reply('CONFLICT ' .. string.format('%d', head))
end
local len = tonumber(ARGV[4])
if len == 0 then return head end
redis.call('XADD', KEYS[3], ARGV[2] .. '-1', 'f', ARGV[3])
head = redis.call('INCRBY', KEYS[2], len)
-- Keep the entry holding offset head - replayBytes and everything after it.
local keep = head - tonumber(ARGV[5])
if keep > 0 then
  local at = redis.call('XREVRANGE', KEYS[3], string.format('%d', keep), '-', 'COUNT', 1)
  if at[1] then redis.call('XTRIM', KEYS[3], 'MINID', at[1][1]) end
end
redis.call(ARGV[6] == '1' and 'SPUBLISH' or 'PUBLISH', KEYS[4], ARGV[3])
return head`;

// KEYS: lease, channel. ARGV: epoch, frame, sharded.
const ANNOUNCE = `${FENCE}
redis.call(ARGV[3] == '1' and 'SPUBLISH' or 'PUBLISH', KEYS[2], ARGV[2])
return 1`;

// KEYS: head, log. ARGV: from, maxBytes, maxEntries.
// Returns nil for an unknown log, else {start, head, frame...}: the entry holding `from`
// (or start) and every later one that begins before from + maxBytes. Atomic, so the
// bounds and the entries agree even while the owner appends and trims.
const READ = `
local head = redis.call('GET', KEYS[1])
if not head then return false end
head = tonumber(head)
local first = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)
local start = head
if first[1] then start = tonumber(string.match(first[1][1], '^%d+')) end
local out = {start, head}
local cursor = math.max(tonumber(ARGV[1]), start)
if cursor >= head then return out end
local at = redis.call('XREVRANGE', KEYS[2], string.format('%d', cursor), '-', 'COUNT', 1)
if not at[1] then return out end
local last = math.max(cursor + tonumber(ARGV[2]) - 1, cursor)
local entries = redis.call('XRANGE', KEYS[2], at[1][1], string.format('%d', last), 'COUNT', ARGV[3])
for _, e in ipairs(entries) do out[#out + 1] = e[2][2] end
return out`;

interface LogCommands {
  sbLogAppend(lease: string, head: string, log: string, channel: string,
    epoch: Epoch, off: Offset, frame: Buffer, len: number, replayBytes: number, sharded: 0 | 1): Promise<number>;
  sbLogAnnounce(lease: string, channel: string, epoch: Epoch, frame: Buffer, sharded: 0 | 1): Promise<number>;
  sbLogReadBuffer(head: string, log: string, from: Offset, maxBytes: number, maxEntries: number): Promise<[number, number, ...Buffer[]] | null>;
}

const asBuffer = (bytes: Uint8Array): Buffer =>
  Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);

/**
 * Replay log on Redis Streams. Publishes with SPUBLISH when given a Cluster, matching
 * RedisBus, which subscribes with SSUBSCRIBE there.
 */
export class RedisLog implements SessionLog {
  private readonly redis: LogCommands;
  private readonly sharded: 0 | 1;

  constructor(private readonly client: Redis | Cluster, private readonly replayBytes: number) {
    // defineCommand sends EVALSHA and falls back to EVAL after a Redis restart.
    client.defineCommand('sbLogAppend', { numberOfKeys: 4, lua: APPEND });
    client.defineCommand('sbLogAnnounce', { numberOfKeys: 2, lua: ANNOUNCE });
    client.defineCommand('sbLogRead', { numberOfKeys: 2, lua: READ });
    this.redis = client as unknown as LogCommands;
    this.sharded = client.isCluster ? 1 : 0;
  }

  async init(sid: SessionId, head: Offset = 0): Promise<void> {
    await this.client.set(headKey(sid), head, 'NX');
  }

  async append(sid: SessionId, epoch: Epoch, off: Offset, data: Uint8Array): Promise<void> {
    if (data.length > MAX_APPEND_BYTES) throw new RangeError(`append of ${data.length} bytes: at most ${MAX_APPEND_BYTES} per call`);
    const frame = asBuffer(encodeFrame({ t: 'out', sid, off, data }));
    try {
      await this.redis.sbLogAppend(leaseKey(sid), headKey(sid), logKey(sid), sessionEvents(sid),
        epoch, off, frame, data.length, this.replayBytes, this.sharded);
    } catch (err) {
      throw mapScriptError(err, sid, epoch, off);
    }
  }

  async announce(sid: SessionId, epoch: Epoch, frame: Uint8Array): Promise<void> {
    try {
      await this.redis.sbLogAnnounce(leaseKey(sid), sessionEvents(sid), epoch, asBuffer(frame), this.sharded);
    } catch (err) {
      throw mapScriptError(err, sid, epoch);
    }
  }

  async read(sid: SessionId, from: Offset, maxBytes: number): Promise<LogRead> {
    const bytes = Math.min(Math.max(0, Math.floor(maxBytes)), MAX_READ_BYTES);
    const reply = await this.redis.sbLogReadBuffer(headKey(sid), logKey(sid), Math.max(0, from), bytes, READ_MAX_ENTRIES);
    if (reply === null) return { start: 0, head: 0, chunks: [] };
    const [start, head, ...frames] = reply;
    const chunks: LogChunk[] = frames.map((f) => {
      const { off, data } = decodeMessage(f) as { off: Offset; data: Uint8Array };
      return { off, data };
    });
    return sliceChunks(chunks, start, head, from, maxBytes);
  }

  async bounds(sid: SessionId): Promise<LogBounds | null> {
    // A read that starts past any head returns just the bounds.
    const reply = await this.redis.sbLogReadBuffer(headKey(sid), logKey(sid), MAX_READ_BYTES, 0, 0);
    return reply === null ? null : { start: reply[0], head: reply[1] };
  }

  async retire(sid: SessionId, afterMs: number): Promise<void> {
    const ms = Math.max(1, Math.ceil(afterMs));
    // Same slot, so a MULTI works on Cluster too; both keys go at the same moment.
    await this.client.multi().pexpire(logKey(sid), ms).pexpire(headKey(sid), ms).exec();
  }

  async close(): Promise<void> {
    // The client belongs to the wiring, which closes it.
  }
}

function mapScriptError(err: unknown, sid: SessionId, epoch: Epoch, off?: Offset): unknown {
  // Redis may prefix a script's error with "ERR ", so match the word, not the start.
  const message = err instanceof Error ? err.message : '';
  const fenced = /\bFENCED (\d+|-)/.exec(message);
  if (fenced) return new FencedError(sid, epoch, fenced[1] === '-' ? null : Number(fenced[1]));
  const conflict = /\bCONFLICT (\d+)/.exec(message);
  if (conflict) {
    return new SwitchboardError('conflict', `session ${sid}: append at ${off} but the log head is ${conflict[1]}`);
  }
  return err;
}
