/**
 * The page reaches src/util/ids.ts only for its types (through src/protocol/frames.ts);
 * esbuild drops type-only imports, so Node's crypto never reaches the bundle (a value
 * import would fail the browser build). This keeps `tsc -p src/web` from needing Node's
 * type declarations, which would hide a Buffer or process in code the page runs.
 */
declare module 'node:crypto' {
  export function randomBytes(size: number): { toString(encoding: 'base64url'): string };
}
