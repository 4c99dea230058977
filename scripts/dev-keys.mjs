// Writes fresh development signing keys (one Ed25519, one RSA 2048, as a private JWK Set) to the
// .dev.vars-style file named on the command line, unless it already has SIGNING_KEYS, and a fresh
// MFA_ENCRYPTION_KEY (32 random bytes, unpadded base64url) unless it already has one.
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { calculateJwkThumbprint } from 'jose';

export async function devKeys() {
  const ed = generateKeyPairSync('ed25519').privateKey.export({ format: 'jwk' });
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' });
  ed.alg = 'EdDSA';
  rsa.alg = 'RS256';
  ed.kid = `ed-${(await calculateJwkThumbprint(ed)).slice(0, 16)}`;
  rsa.kid = `rs-${(await calculateJwkThumbprint(rsa)).slice(0, 16)}`;
  for (const k of [ed, rsa]) k.use = 'sig';
  return { keys: [ed, rsa] };
}

/** A fresh key sealing TOTP secrets: 32 random bytes, unpadded base64url. */
export function devMfaKey() {
  return randomBytes(32).toString('base64url');
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const file = process.argv[2] ?? '.dev.vars';
  const existing = existsSync(file) ? readFileSync(file, 'utf8') : '';
  if (/^SIGNING_KEYS=/m.test(existing)) {
    console.error(`[dev-keys] ${file} already has SIGNING_KEYS; keeping them`);
  } else {
    const set = await devKeys();
    writeFileSync(file, `${existing}${existing && !existing.endsWith('\n') ? '\n' : ''}SIGNING_KEYS='${JSON.stringify(set)}'\n`, { mode: 0o600 });
    console.error(`[dev-keys] wrote new signing keys (${set.keys.map((k) => k.kid).join(', ')}) to ${file}`);
  }
  const now = existsSync(file) ? readFileSync(file, 'utf8') : '';
  if (!/^MFA_ENCRYPTION_KEY=/m.test(now)) {
    writeFileSync(file, `${now}${now && !now.endsWith('\n') ? '\n' : ''}MFA_ENCRYPTION_KEY='${devMfaKey()}'\n`, { mode: 0o600 });
    console.error(`[dev-keys] wrote a new MFA_ENCRYPTION_KEY to ${file}`);
  }
}
