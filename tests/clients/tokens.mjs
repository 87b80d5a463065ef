// Bearer tokens as an identity provider's library mints them, to check the server against a
// JWT implementation other than its own. jose signs, with fresh keys for every run:
//
//   hs256       HS256 with JWT_SECRET                  claims: sub, exp
//   rs256       RS256, a new 2048-bit RSA key, kid rs-1   claims: sub, exp
//   es256       ES256, a new P-256 key, kid es-1         claims: sub, exp
//   es256_full  ES256, the same key                      claims: sub, exp, iat, nbf (10 s ago)
//
// sub and exp are all a token needs; iat and nbf are optional. No network is used: the caller
// serves the printed JWKS (the public keys, with kid, alg and use "sig") and sends the tokens.
//
//   JWT_SECRET   the server's HS256 secret
//   TOKEN_SUB    the tokens' subject (default user-1)
//
// Prints {"jwks":{"keys":[…]},"tokens":{"hs256":…,"rs256":…,"es256":…,"es256_full":…}}.

import { SignJWT, exportJWK, generateKeyPair } from 'jose';
import { env, finish } from './lib.mjs';

const secret = new TextEncoder().encode(env('JWT_SECRET'));
const sub = env('TOKEN_SUB', 'user-1');
const now = Math.floor(Date.now() / 1000);
const exp = now + 600;

const rsa = await generateKeyPair('RS256', { modulusLength: 2048, extractable: true });
const ec = await generateKeyPair('ES256', { extractable: true });

const publicJwk = async (key, kid, alg) => ({ ...(await exportJWK(key)), kid, alg, use: 'sig' });

/** A JWT with exactly these claims and a header of alg (and kid), nothing added. */
const sign = (claims, alg, key, kid) =>
  new SignJWT(claims).setProtectedHeader(kid ? { alg, kid } : { alg }).sign(key);

finish({
  jwks: {
    keys: [await publicJwk(rsa.publicKey, 'rs-1', 'RS256'), await publicJwk(ec.publicKey, 'es-1', 'ES256')],
  },
  tokens: {
    hs256: await sign({ sub, exp }, 'HS256', secret),
    rs256: await sign({ sub, exp }, 'RS256', rsa.privateKey, 'rs-1'),
    es256: await sign({ sub, exp }, 'ES256', ec.privateKey, 'es-1'),
    es256_full: await sign({ sub, exp, iat: now, nbf: now - 10 }, 'ES256', ec.privateKey, 'es-1'),
  },
});
