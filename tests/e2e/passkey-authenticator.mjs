// A software WebAuthn authenticator for the end-to-end tests that run without a browser: an ES256
// key (node:crypto), CBOR written by hand, clientDataJSON for an origin the test names. It answers
// the JSON forms of the server's options as `PublicKeyCredential.toJSON()` would.
import { createHash, generateKeyPairSync, randomBytes, sign } from 'node:crypto';

const b64u = (b) => Buffer.from(b).toString('base64url');
const sha256 = (b) => createHash('sha256').update(b).digest();

function head(major, n) {
  const m = major << 5;
  if (n < 24) return Buffer.from([m | n]);
  if (n < 256) return Buffer.from([m | 24, n]);
  return Buffer.from([m | 25, n >> 8, n & 0xff]);
}
const int = (n) => (n >= 0 ? head(0, n) : head(1, -1 - n));
const bstr = (b) => Buffer.concat([head(2, b.length), Buffer.from(b)]);
const tstr = (t) => Buffer.concat([head(3, Buffer.byteLength(t)), Buffer.from(t)]);
const map = (entries) => Buffer.concat([head(5, entries.length), ...entries.flat()]);

export class Authenticator {
  /** `origin` and `rpId`: where the ceremonies claim to run. */
  constructor({ origin, rpId }) {
    this.origin = origin;
    this.rpId = rpId;
    this.id = randomBytes(16);
    this.counter = 0;
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    this.privateKey = privateKey;
    const jwk = publicKey.export({ format: 'jwk' });
    this.cose = map([[int(1), int(2)], [int(3), int(-7)], [int(-1), int(1)],
      [int(-2), bstr(Buffer.from(jwk.x, 'base64url'))], [int(-3), bstr(Buffer.from(jwk.y, 'base64url'))]]);
  }

  clientData(type, challenge) {
    return Buffer.from(JSON.stringify({ type, challenge, origin: this.origin, crossOrigin: false }));
  }

  authData(flags, attested) {
    const counter = Buffer.alloc(4);
    counter.writeUInt32BE(this.counter);
    const parts = [sha256(this.rpId), Buffer.from([flags]), counter];
    if (attested) {
      const len = Buffer.alloc(2);
      len.writeUInt16BE(this.id.length);
      parts.push(Buffer.alloc(16), len, this.id, this.cose);
    }
    return Buffer.concat(parts);
  }

  /** `create()` for the `publicKey` member of /auth/webauthn/register/options. */
  create(publicKey) {
    const clientDataJSON = this.clientData('webauthn.create', publicKey.challenge);
    const authData = this.authData(0x01 | 0x04 | 0x40, true);
    const attestationObject = map([[tstr('fmt'), tstr('none')], [tstr('attStmt'), map([])], [tstr('authData'), bstr(authData)]]);
    return { id: b64u(this.id), type: 'public-key', response: { clientDataJSON: b64u(clientDataJSON), attestationObject: b64u(attestationObject), transports: ['internal'] } };
  }

  /** `get()` for the `publicKey` member of /auth/webauthn/login/options. */
  get(publicKey) {
    this.counter += 1;
    const clientDataJSON = this.clientData('webauthn.get', publicKey.challenge);
    const authenticatorData = this.authData(0x01 | 0x04, false);
    const signature = sign('sha256', Buffer.concat([authenticatorData, sha256(clientDataJSON)]), this.privateKey);
    return {
      id: b64u(this.id), type: 'public-key',
      response: { clientDataJSON: b64u(clientDataJSON), authenticatorData: b64u(authenticatorData), signature: b64u(signature), userHandle: null },
    };
  }
}
