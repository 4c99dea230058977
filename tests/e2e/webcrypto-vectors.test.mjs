// The edge's own signature path against public vectors: RS256 and ES256 at the edge are checked by
// WebCrypto (src/edge/webcrypto.rs `verify_signature`), not by the Rust primitive that
// tests/vectors.rs runs natively. Here Wycheproof's RSA PKCS#1 v1.5 SHA-256 (2048, 3072, 4096 bits)
// and ECDSA P-256 SHA-256 (P1363) files go through that very function inside workerd (Miniflare),
// each key loaded by the edge's JWK code for a trusted issuer. Every verdict must be the expected
// one, must have been given by WebCrypto (never by the Rust fallback), and must equal the Rust
// primitive's verdict on the same input.
//
// Divergences from Wycheproof, on purpose:
// - RSA "acceptable" cases (a DigestInfo without its NULL parameter, flag MissingNull) are refused:
//   only the one DER encoding of RFC 8017 §9.2 verifies, on both paths.
// - An ES256 signature that is not exactly 64 bytes is refused by the length rule before WebCrypto
//   (RFC 7518 §3.4), so WebCrypto never decides which encoding is acceptable; Wycheproof calls all
//   of these invalid too.
// - None for high-S ES256 signatures (s > n/2): valid for Wycheproof (67 of the file's valid cases),
//   allowed by RFC 7518 §3.4, accepted by both paths (docs/HARDENING.md explains the decision).
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Miniflare } from 'miniflare';
import { ROOT } from './harness.mjs';

// A worker of its own in front of the real build: it hands each case to the wasm export, in order.
const WORKER = `
import Gatehouse from './build/index.js';
const { gatehouseVerifyForTest } = Gatehouse.prototype;
const bytes = (hex) => Uint8Array.from(hex.match(/../g) ?? [], (h) => parseInt(h, 16));
export default {
  async fetch(request) {
    const { alg, jwk, cases } = await request.json();
    const out = [];
    for (const c of cases) out.push(JSON.parse(await gatehouseVerifyForTest(alg, JSON.stringify(jwk), bytes(c.msg), bytes(c.sig))));
    return Response.json(out);
  },
};
`;

const vectors = (name) => JSON.parse(readFileSync(join(ROOT, 'tests', 'vectors', 'wycheproof', name), 'utf8'));

describe('the edge\'s WebCrypto signature path against Wycheproof (workerd)', () => {
  let mf;
  before(async () => {
    mf = new Miniflare({
      modules: [
        { type: 'ESModule', path: join(ROOT, 'vectors-worker.mjs'), contents: WORKER },
        { type: 'ESModule', path: join(ROOT, 'build', 'index.js') },
        { type: 'CompiledWasm', path: join(ROOT, 'build', 'index_bg.wasm') },
      ],
      modulesRoot: ROOT,
      compatibilityDate: '2026-04-20',
    });
    await mf.ready;
  });
  after(async () => { await mf?.dispose(); });

  /** Runs every case of a file and checks each verdict against `expected(result, case)`. */
  async function everyCase(file, alg, jwkMember, expected) {
    const data = vectors(file);
    const tally = { webcrypto: 0, length: 0, accepted: 0, refused: 0 };
    let count = 0;
    for (const group of data.testGroups) {
      const res = await mf.dispatchFetch('http://vectors.test/', {
        method: 'POST', body: JSON.stringify({ alg, jwk: group[jwkMember], cases: group.tests }),
      });
      const verdicts = await res.json();
      assert.equal(verdicts.length, group.tests.length);
      group.tests.forEach((c, i) => {
        const v = verdicts[i];
        const what = `${file} tcId ${c.tcId} (${c.comment}) [${c.flags}]`;
        assert.equal(v.key, 'ok', `${what}: the key was refused: ${JSON.stringify(v.key)}`);
        assert.equal(v.valid, expected(c.result, c), `${what}: verdict`);
        // The Rust primitive is linked in this build for ES256 (the issuer's p256), not for RS256.
        if (v.rust !== null) assert.equal(v.rust, v.valid, `${what}: WebCrypto and the Rust primitive disagree`);
        // WebCrypto decided, except for ES256 signatures of the wrong length, which the length rule
        // refuses first. Never the Rust fallback.
        const sigBytes = c.sig.length / 2;
        assert.equal(v.decided_by, alg === 'ES256' && sigBytes !== 64 ? 'length' : 'webcrypto', `${what}: decided by`);
        tally[v.decided_by] += 1;
        tally[v.valid ? 'accepted' : 'refused'] += 1;
        count += 1;
      });
    }
    assert.equal(count, data.numberOfTests, 'every case ran');
    return tally;
  }

  const rsaExpected = (result) => ({ valid: true, invalid: false, acceptable: false })[result];

  for (const bits of [2048, 3072, 4096]) {
    test(`RSA PKCS#1 v1.5 SHA-256, ${bits} bits: every case`, async () => {
      const tally = await everyCase(`rsa_signature_${bits}_sha256_test.json`, 'RS256', 'keyJwk', rsaExpected);
      assert.ok(tally.accepted >= 7, `valid signatures were checked (${JSON.stringify(tally)})`);
      console.log(`# RSA ${bits}: ${JSON.stringify(tally)}`);
    });
  }

  test('ECDSA P-256 SHA-256 (P1363): every case, high-S accepted', async () => {
    // The valid signatures whose s lies in the upper half (n/2, n): every one must be accepted.
    const n = BigInt('0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551');
    const isHighS = (c) => c.sig.length === 128 && BigInt(`0x${c.sig.slice(64)}`) > n / 2n && BigInt(`0x${c.sig.slice(64)}`) < n;
    let highS = 0;
    const tally = await everyCase('ecdsa_secp256r1_sha256_p1363_test.json', 'ES256', 'publicKeyJwk', (result, c) => {
      assert.notEqual(result, 'acceptable', 'the P1363 file has no acceptable cases');
      if (result === 'valid' && isHighS(c)) highS += 1;
      return result === 'valid';
    });
    assert.ok(highS > 50, `high-S valid signatures were checked (${highS})`);
    console.log(`# ECDSA P-256: ${JSON.stringify(tally)}, of which ${highS} valid high-S accepted`);
  });
});
