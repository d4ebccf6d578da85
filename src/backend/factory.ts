import type { OpenSpec } from '../protocol/frames.js';
import type { Backend, BackendContext, BackendFactory } from './backend.js';
import { AgentBackend } from './agent-backend.js';
import { EchoBackend } from './echo-backend.js';
import { PtyBackend } from './pty-backend.js';

export const defaultBackends: BackendFactory = {
  create(spec: OpenSpec, context: BackendContext): Backend {
    switch (spec.kind) {
      case 'pty':
        return new PtyBackend(spec);
      case 'agent':
        return new AgentBackend(spec, context);
      case 'echo':
        return new EchoBackend();
      default:
        throw new Error(`unknown session kind ${String((spec as OpenSpec).kind)}`);
    }
  },
};
