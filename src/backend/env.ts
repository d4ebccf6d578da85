/**
 * What a session's process may inherit from the server: an allowlist, so tokens and
 * database URLs in the server's environment never reach a user's shell.
 */
const INHERITED = ['PATH', 'HOME', 'USER', 'LOGNAME', 'SHELL', 'LANG', 'LANGUAGE', 'TZ', 'TMPDIR'];

export function sessionEnvironment(own: Record<string, string> | undefined, extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const name of INHERITED) {
    const v = process.env[name];
    if (v !== undefined) env[name] = v;
  }
  for (const [name, v] of Object.entries(process.env)) {
    if (name.startsWith('LC_') && v !== undefined) env[name] = v;
  }
  env.PATH ??= '/usr/local/bin:/usr/bin:/bin';
  Object.assign(env, extra, own ?? {});
  return env;
}
