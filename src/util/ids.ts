import { randomBytes } from 'node:crypto';

export type SessionId = string;
export type NodeId = string;
/** A fencing token: strictly increases each time a session changes owner. */
export type Epoch = number;
/** A byte offset in a session's output stream. */
export type Offset = number;
export type ClientId = number;

/** 128 random bits as 22 characters of URL-safe base64 (PROTOCOL.md, Sessions). */
export function newSessionId(): SessionId {
  return randomBytes(16).toString('base64url');
}

export function newToken(): string {
  return randomBytes(24).toString('base64url');
}

const SID_PATTERN = /^[A-Za-z0-9_-]{22,64}$/;
export function isSessionId(value: unknown): value is SessionId {
  return typeof value === 'string' && SID_PATTERN.test(value);
}
