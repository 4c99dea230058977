// gatehouse's thin module entry in front of a worker-build output: the fast path, then the full
// path. Used by js/entry.mjs (the all-in-one Worker) and js/edge.mjs (the edge Worker).
//
// A verified request to a protected route is decided by the fast path in Rust (src/edge/fast.rs) in
// synchronous calls. When the decision needs I/O, Rust says which: the user's denylist record (read
// here from the DENYLIST namespace, when this isolate has no fresh read) or WebCrypto's verdict on an
// RS256 or ES256 signature (asked of crypto.subtle here, with the key and algorithm objects Rust
// gives); this file does exactly that and resumes the waiting decision with the answer and its ticket
// (gatehouseResume). Everything else goes to the
// full workers-rs path (src/edge/mod.rs), through the same entry points as worker-build's own shim.
// The fast path decides only with the full path's own code; this file adds no rule of its own. It
// wraps the whoami answer Rust wrote in a Response with the headers Rust gave it, sends the origin
// request Rust built, and puts the request id on the origin's answer. A decision that needs no I/O
// (a token and a user this isolate has seen) is answered without a promise; an isolate's first
// request is decided here too (Rust loads the configuration from `env`), and `FAST_PATH=off` sends
// everything to the full path. Any failure of its I/O hands
// the request to the full path, which decides (and fails closed) as always. With the optional METRICS
// binding (Workers Analytics Engine) it writes the one data point of a request the fast path answered,
// as Rust makes it (gatehouseMetricsPoint); the full path writes its own (src/web/metrics.rs).
//
// It relies on worker-build 0.8.7's output (index.js): the default export is the entry class,
// whose prototype holds `fetch` and the wasm-bindgen exports (`gatehouseFast`, `gatehouseResume`), and
// `globalThis.__worker_init_state` marks a wasm instance that must be reset.

/** Sends the outgoing request the fast path built and returns the origin's answer as it came, plus
 *  the request id (as the full path does for answers it does not make itself). */
async function forward(outgoing) {
  let answer;
  try {
    answer = await fetch(outgoing);
  } catch {
    return null;
  }
  // Copied entry by entry: each Set-Cookie stays a header of its own. The body stays a stream.
  const headers = new Headers(answer.headers);
  headers.set('x-request-id', outgoing.headers.get('x-request-id'));
  return new Response(answer.body, { status: answer.status, statusText: answer.statusText, headers });
}

/** Public keys imported for verifying, by the key object Rust gives for each key (one per key, kept
 *  by Rust: see webcrypto::key_object), so a look-up is by identity, not by the JWK's text. */
const imported = new WeakMap();

/** WebCrypto's verdict for a need of the fast path: the signature over the data, with the key. */
async function verdict(need) {
  const { publicKey } = need;
  let key = imported.get(publicKey);
  if (!key) {
    key = crypto.subtle.importKey('jwk', JSON.parse(publicKey.jwk), publicKey.importAlgorithm, false, ['verify']);
    imported.set(publicKey, key);
  }
  return crypto.subtle.verify(publicKey.verifyAlgorithm, await key, need.signature, need.data);
}

/** Runs the fast path to a decision, doing the I/O it asks for (at most one verdict and one read):
 *  each need is resumed with its ticket and what the I/O got, and a failed I/O drops the waiting
 *  decision (`undefined`) before the error goes on. `decided` is the first call's answer, a need. */
async function withIo(gatehouseResume, env, decided) {
  for (let step = 0; step < 2 && decided?.need; step += 1) {
    const { ticket } = decided;
    let got;
    try {
      got = decided.need === 'record' ? await env[decided.binding].get(decided.key) : await verdict(decided);
    } catch (e) {
      gatehouseResume(ticket, undefined);
      throw e;
    }
    decided = gatehouseResume(ticket, got);
  }
  return decided?.need ? undefined : decided;
}

/** The default export of a Worker whose worker-build entry class is `Gatehouse`. */
export function front(Gatehouse) {
  const { fetch: fullPath, gatehouseFast, gatehouseResume, gatehouseOriginDown, gatehouseWhoamiHeaders, gatehouseMetricsPoint } =
    Gatehouse.prototype;
  const state = globalThis.__worker_init_state;
  // The whoami answer's headers, from the Rust code that makes them (less the request id).
  const WHOAMI_HEADERS = JSON.parse(gatehouseWhoamiHeaders());
  /** The whoami answer Rust wrote, "<request id>\n<body>", as a Response. Its headers are built once,
   *  from a plain object (the Response's own), not in a Headers object the Response would copy: the
   *  Response is most of what this answer costs (bench/profile.mjs). */
  const whoami = (decided) => {
    const cut = decided.indexOf('\n');
    return new Response(decided.slice(cut + 1), { headers: { ...WHOAMI_HEADERS, 'x-request-id': decided.slice(0, cut) } });
  };
  const failed = (e) => {
    if (e instanceof WebAssembly.RuntimeError && state) {
      state.criticalError = true;
      throw e;
    }
    // A failed read or verdict: the full path decides, with its own I/O.
    return undefined;
  };
  return {
    fetch(request, env, ctx) {
      if (state && state.criticalError) {
        // The shim's own path resets the wasm instance first.
        return new Gatehouse(ctx, env).fetch(request);
      }
      const metrics = env.METRICS;
      const started = metrics ? Date.now() : 0;
      const measured = (response) => {
        if (metrics) metrics.writeDataPoint(gatehouseMetricsPoint(response.status, Date.now() - started));
        return response;
      };
      let decided;
      try {
        decided = gatehouseFast(request, env);
      } catch (e) {
        decided = failed(e);
      }
      // The common case (a token this isolate verified, a user it read lately) needs no I/O and is
      // answered without a promise.
      if (typeof decided === 'string') return measured(whoami(decided));
      return (async () => {
        if (decided?.need) {
          try {
            decided = await withIo(gatehouseResume, env, decided);
          } catch (e) {
            decided = failed(e);
          }
        }
        if (typeof decided === 'string') return measured(whoami(decided));
        if (decided instanceof Request) {
          // An origin that cannot be reached gets the full path's answer: 503, made by the same code.
          return measured((await forward(decided)) ?? gatehouseOriginDown(decided.headers.get('x-request-id')));
        }
        return fullPath.call({ env, ctx }, request);
      })();
    },
  };
}
