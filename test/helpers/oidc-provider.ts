/**
 * A real OpenID Connect provider for tests: oidc-provider in this process on a free
 * loopback port, with one confidential client registered for the gateway (PKCE
 * required) and its development interactions: a login form that accepts any name
 * (the name is the account's `sub`) and a consent form.
 */
import { createServer, type Server } from 'node:http';
import { once } from 'node:events';
import Provider from 'oidc-provider';
import { freePort } from './redis.js';

export const CLIENT_ID = 'switchboard-test';
export const CLIENT_SECRET = 'provider-client-secret-0123456789abcdef';
/** Accounts whose ID token carries groups: ["switchboard-admins"]. */
export const ADMIN_GROUP = 'switchboard-admins';

export interface TestProvider {
  issuer: string;
  /** Errors the provider reported (a failed token request, …), for assertions. */
  errors: string[];
  stop(): Promise<void>;
}

export async function startProvider(redirectUris: string[]): Promise<TestProvider> {
  const port = await freePort();
  const issuer = `http://127.0.0.1:${port}`;
  const provider = new Provider(issuer, {
    clients: [{
      client_id: CLIENT_ID,
      client_secret: CLIENT_SECRET,
      redirect_uris: redirectUris,
      response_types: ['code'],
      grant_types: ['authorization_code'],
      token_endpoint_auth_method: 'client_secret_basic',
    }],
    pkce: { required: () => true },
    cookies: { keys: ['provider-cookie-key-0123456789'] },
    claims: { openid: ['sub'], groups: ['groups'] },
    findAccount: (_ctx: unknown, id: string) => ({
      accountId: id,
      claims: () => ({ sub: id, ...(id.startsWith('ops') ? { groups: [ADMIN_GROUP] } : {}) }),
    }),
    // Include the claims of granted scopes in the ID token itself (no userinfo call).
    conformIdTokenClaims: false,
  });
  const errors: string[] = [];
  for (const event of ['grant.error', 'server_error', 'authorization.error']) {
    provider.on(event, (_ctx: unknown, err: Error) => errors.push(`${event}: ${err.message}`));
  }
  const server: Server = createServer(provider.callback());
  server.listen(port, '127.0.0.1');
  await once(server, 'listening');
  return {
    issuer,
    errors,
    stop: async () => {
      server.closeAllConnections();
      server.close();
      await once(server, 'close');
    },
  };
}
