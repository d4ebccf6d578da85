import type { Cluster, Redis } from 'ioredis';
import { sessionEvents } from '../bus/channels.js';
import { FencedError, SwitchboardError } from '../errors/errors.js';
import { leaseKey } from '../lease/redis-leases.js';
import { decodeMessage, encodeFrame } from '../protocol/codec.js';
import type { Epoch, Offset, SessionId } from '../util/ids.js';
import type { LogBounds, LogChunk, LogRead, SessionLog } from './log.js';
import { sliceChunks } from './slice.js';
import { MAX_APPEND_BYTES } from './log.js';
import { TurnBatch } from '../util/turn-batch.js';

/**
 * Key layout (all under the session's `{sid}` hash tag, so one script touches one slot):
 *   sb:{<sid>}:log    Stream; one entry per append, id "<off>-1", field f = encoded `out`
 *                     frame. Seq 1, not 0: "0-0" is not a valid stream id, offset 0 is.
 *   sb:{<sid>}:head   next offset to write (absent = 0)
 *   sb:{<sid>}:lease  written by RedisLeases, "<epoch>:<node>": the fence (no expiry)
 * (WRITE_MANY below builds these names, and the session's event channel's, from the sid
 * with the same functions: see luaKey.)
 * The start offset needs no key of its own: it is the id of the first entry (XRANGE
 * COUNT 1 is O(log n)), or the head when the stream is empty.
 */
export const logKey = (sid: SessionId): string => `sb:{${sid}}:log`;
export const headKey = (sid: SessionId): string => `sb:{${sid}}:head`;

/** Entries one read returns at most, so a log of tiny chunks cannot make one huge reply. */
export const READ_MAX_ENTRIES = 4096;
/** Keeps offset arithmetic inside Lua's exact doubles whatever maxBytes a caller passes. */
const MAX_READ_BYTES = 2 ** 48;

// Appends and announcements of many sessions in one script call: every item is checked
// and applied on its own (one item's refusal does not stop the others), in the order
// given, so two appends of one session in one call land in order.
//
// Two argument layouts share one body (`ITEM`):
// - WRITE_ONE (Redis Cluster, one item per call, its keys declared so ioredis routes it
//   to the slot's node): KEYS lease, head, log, channel; ARGV replayBytes, sharded, kind,
//   epoch, off, frame, len.
// - WRITE_MANY (one Redis): ARGV replayBytes, then 2 per item: "<kind> <epoch> <off>
//   <len> <sid>" and the frame; the script names the keys from the sid (luaKey; a
//   standalone Redis lets a script reach keys it was not given). Measured: ioredis serialises each
//   argument on its own (a string and a buffer per argument), and 9 arguments per
//   keystroke were ~1.6 KB of garbage on the host; 2 are a fraction of it.
// kind is 'a' (append) or 'n' (announce).
// Returns one entry per item: the new head (append), 1 (announce), or the refusal as a
// string: 'FENCED <current epoch|->' (the owner record is not ours: another epoch, or
// none) or 'CONFLICT <head>' (the append is not at the head).
//
// The fence: the owner record must hold exactly the item's epoch (read with the head in
// one MGET: both keys are in the session's slot). An append stores the
// encoded `out` frame at its offset, keeps the entry holding offset head - replayBytes
// and everything after it, and publishes the frame: all or nothing per item.
const ITEM = `
local function item(replay, publish, leaseK, headK, logK, channel, kind, epoch, off, frame, len)
  local read = redis.call('MGET', leaseK, headK)
  local lease = read[1]
  local current = lease and string.match(lease, '^(%d+):')
  if not current or tonumber(current) ~= tonumber(epoch) then
    return 'FENCED ' .. (current or '-')
  end
  if kind == 'n' then
    redis.call(publish, channel, frame)
    return 1
  end
  local head = tonumber(read[2] or '0')
  if tonumber(off) ~= head then return 'CONFLICT ' .. string.format('%d', head) end
  len = tonumber(len)
  if len > 0 then
    redis.call('XADD', logK, off .. '-1', 'f', frame)
    head = redis.call('INCRBY', headK, len)
    local keep = head - replay
    if keep > 0 then
      local at = redis.call('XREVRANGE', logK, string.format('%d', keep), '-', 'COUNT', 1)
      if at[1] then redis.call('XTRIM', logK, 'MINID', at[1][1]) end
    end
    redis.call(publish, channel, frame)
  end
  return head
end
`;

/**
 * A Lua expression naming `keyOf(sid)` for the script's variable `sid`, taken from the
 * TypeScript function itself, so the script and the other commands name a key alike.
 */
function luaKey(keyOf: (sid: SessionId) => string): string {
  const [before, after] = keyOf('\u0001').split('\u0001');
  return `'${before}' .. sid .. '${after}'`;
}

const WRITE_ONE = `${ITEM}
local publish = ARGV[2] == '1' and 'SPUBLISH' or 'PUBLISH'
return {item(tonumber(ARGV[1]), publish, KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7])}`;

const WRITE_MANY = `${ITEM}
local replay = tonumber(ARGV[1])
local out = {}
for a = 2, #ARGV, 2 do
  local kind, epoch, off, len, sid = string.match(ARGV[a], '^(%a) (%d+) (%d+) (%d+) (.+)$')
  out[#out + 1] = item(replay, 'PUBLISH', ${luaKey(leaseKey)}, ${luaKey(headKey)}, ${luaKey(logKey)}, ${luaKey(sessionEvents)}, kind, epoch, off, ARGV[a + 1], len)
end
return out`;

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
  sbLogWriteMany(...args: Array<string | number | Buffer>): Promise<Array<number | string>>;
  sbLogWriteOne(...keysThenArgs: Array<string | number | Buffer>): Promise<Array<number | string>>;
  sbLogReadBuffer(head: string, log: string, from: Offset, maxBytes: number, maxEntries: number): Promise<[number, number, ...Buffer[]] | null>;
}

const asBuffer = (bytes: Uint8Array): Buffer =>
  Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);

/**
 * The log's write commands. They batch by themselves (one call per turn), so the wiring
 * sends them straight away instead of through ioredis's auto-pipelining, which would hold
 * each for one more event-loop turn (a turn costs a system call; on small machines those
 * dominate the cost of a keystroke).
 */
export const LOG_WRITE_COMMANDS: readonly string[] = ['sbLogWriteMany', 'sbLogWriteOne'];

/** Items one script call carries at most: Redis runs nothing else while a script runs. */
export const WRITE_BATCH_MAX = 256;

/** One append or announcement waiting for this turn's script call. */
interface PendingWrite {
  kind: 'a' | 'n';
  sid: SessionId;
  epoch: Epoch;
  off: Offset;
  frame: Buffer;
  len: number;
  resolve: () => void;
  reject: (err: unknown) => void;
}

/**
 * Replay log on Redis Streams. Publishes with SPUBLISH when given a Cluster, matching
 * RedisBus, which subscribes with SSUBSCRIBE there.
 *
 * Writes are batched: every append and announcement made in one run of the event loop
 * (a host flushes all its sessions' output in one callback) goes out as one script call
 * instead of one call per session (on a Cluster, one call per item: see `batch`). Each item keeps its own
 * fence check and its own outcome; per connection, calls keep their order, so one
 * session's writes land in the order made.
 */
export class RedisLog implements SessionLog {
  private readonly redis: LogCommands;
  private readonly sharded: 0 | 1;
  /**
   * A microtask ends a batch: after the caller's synchronous run (every session of a
   * host's flush), before any I/O. A Cluster runs a script on one slot, and ioredis routes
   * a call by its first key only when the key count is fixed: one call per item there
   * (sessions rarely share a slot).
   */
  private readonly batch: TurnBatch<PendingWrite>;

  constructor(private readonly client: Redis | Cluster, private readonly replayBytes: number) {
    // defineCommand sends EVALSHA and falls back to EVAL after a Redis restart.
    client.defineCommand('sbLogWriteMany', { numberOfKeys: 0, lua: WRITE_MANY });
    client.defineCommand('sbLogWriteOne', { numberOfKeys: 4, lua: WRITE_ONE });
    client.defineCommand('sbLogRead', { numberOfKeys: 2, lua: READ });
    this.redis = client as unknown as LogCommands;
    this.sharded = client.isCluster ? 1 : 0;
    this.batch = new TurnBatch(queueMicrotask, this.sharded ? 1 : WRITE_BATCH_MAX, (writes) => this.send(writes));
  }

  async init(sid: SessionId, head: Offset = 0): Promise<void> {
    await this.client.set(headKey(sid), head, 'NX');
  }

  append(sid: SessionId, epoch: Epoch, off: Offset, data: Uint8Array): Promise<void> {
    if (data.length > MAX_APPEND_BYTES) {
      return Promise.reject(new RangeError(`append of ${data.length} bytes: at most ${MAX_APPEND_BYTES} per call`));
    }
    const frame = asBuffer(encodeFrame({ t: 'out', sid, off, data }));
    return this.enqueue('a', sid, epoch, off, frame, data.length);
  }

  announce(sid: SessionId, epoch: Epoch, frame: Uint8Array): Promise<void> {
    return this.enqueue('n', sid, epoch, 0, asBuffer(frame), 0);
  }

  private enqueue(kind: 'a' | 'n', sid: SessionId, epoch: Epoch, off: Offset, frame: Buffer, len: number): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.batch.add({ kind, sid, epoch, off, frame, len, resolve, reject });
    });
  }

  private send(writes: PendingWrite[]): void {
    let call: Promise<Array<number | string>>;
    if (this.sharded) {
      const w = writes[0]!;
      call = this.redis.sbLogWriteOne(leaseKey(w.sid), headKey(w.sid), logKey(w.sid), sessionEvents(w.sid), this.replayBytes, 1, w.kind, w.epoch, w.off, w.frame, w.len);
    } else {
      const args: Array<string | number | Buffer> = [this.replayBytes];
      for (const w of writes) args.push(`${w.kind} ${w.epoch} ${w.off} ${w.len} ${w.sid}`, w.frame);
      call = this.redis.sbLogWriteMany(...args);
    }
    call.then(
      (replies) => {
        for (let i = 0; i < writes.length; i++) {
          const w = writes[i]!;
          const reply = replies[i];
          if (typeof reply === 'string') w.reject(mapScriptError(new Error(reply), w.sid, w.epoch, w.kind === 'a' ? w.off : undefined));
          else w.resolve();
        }
      },
      (err: unknown) => {
        for (const w of writes) w.reject(mapScriptError(err, w.sid, w.epoch, w.kind === 'a' ? w.off : undefined));
      },
    );
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
