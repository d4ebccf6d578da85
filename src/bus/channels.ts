/**
 * Channel and key names shared by every implementation. The `{sid}` hash tag keeps all of
 * a session's keys and its shard channel in one Redis Cluster slot, so one Lua script
 * can check the fence, append and publish atomically.
 */
import type { NodeId, SessionId } from '../util/ids.js';

/** Host → edges: out, resized, owner, exit frames (already encoded for clients). */
export const sessionEvents = (sid: SessionId): string => `sb:{${sid}}:ev`;
/** Edges → owner host: input, resize, kill, flow and watch commands. */
export const sessionControl = (sid: SessionId): string => `sb:{${sid}}:ctl`;
/** Anything → one node: requests and their replies. */
export const nodeInbox = (node: NodeId): string => `sb:node:{${node}}`;
