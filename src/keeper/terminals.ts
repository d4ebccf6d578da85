/**
 * What the host needs of the keeper beyond spawning (src/backend/kept-pty-backend.ts):
 * the terminals it holds, reattaching one, and ending a stale copy.
 */
import type { Backend, BackendFactory } from '../backend/backend.js';
import { KeptPtyBackend, keptBackends } from '../backend/kept-pty-backend.js';
import type { Epoch, NodeId, Offset, SessionId } from '../util/ids.js';
import type { KeeperLink, KeeperState } from './link.js';
import type { BufferLimits, KeptSessionInfo } from './protocol.js';

export interface KeptList {
  sessions: KeptSessionInfo[];
  /** Node ids connected to the keeper now (a terminal may be theirs to attach). */
  nodes: NodeId[];
}

export interface KeptTerminals {
  readonly state: KeeperState;
  /** The terminals no connection holds: what a node may adopt. */
  listUnattached(): Promise<KeptList>;
  /** Reattaches a kept terminal at `epoch` (won in the owner record); output resent from `from`. */
  adopt(sid: SessionId, epoch: Epoch, from: Offset): Backend;
  /** Ends a kept, unattached terminal whose epoch is below `below`; true if it did. */
  discard(sid: SessionId, below: Epoch): Promise<boolean>;
}

export class KeeperTerminals implements KeptTerminals {
  readonly backends: BackendFactory;

  constructor(private readonly link: KeeperLink, private readonly limits: BufferLimits, fallback?: BackendFactory) {
    this.backends = keptBackends(link, limits, fallback);
  }

  get state(): KeeperState {
    return this.link.state;
  }

  async listUnattached(): Promise<KeptList> {
    const reply = await (await this.link.client()).request({ t: 'list', unattached: true });
    return { sessions: reply.sessions as KeptSessionInfo[], nodes: reply.nodes as NodeId[] };
  }

  adopt(sid: SessionId, epoch: Epoch, from: Offset): Backend {
    return new KeptPtyBackend(this.link, sid, { how: 'attach', epoch, from }, this.limits);
  }

  async discard(sid: SessionId, below: Epoch): Promise<boolean> {
    const reply = await (await this.link.client()).request({ t: 'discard', sid, below });
    return reply.discarded === true;
  }
}
