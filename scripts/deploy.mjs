// Deploys gatehouse to Cloudflare from a fresh account (docs/DEPLOY.md); scripts/deploy.sh runs it.
//
//   bash scripts/deploy.sh [all-in-one|split|verifier] --issuer https://gatehouse.<you>.workers.dev [options]
//
// Flavours: `all-in-one` (wrangler.toml: edge and issuer in one Worker, the default), `split` (the
// issuer Worker, then the edge Worker in front of it through a service binding), `verifier` (the edge
// Worker alone: it verifies tokens of the issuers named with --var PUBLIC_KEYS / TRUSTED_ISSUERS /
// ISSUER_JWKS_URL, and issues none).
//
// Steps, each skipped when already done (so it is safe to run again, and a second run only deploys):
// 1. builds the release wasm of each Worker (scripts/build.sh), unless --skip-build;
// 2. finds the KV namespace for the denylist by its title, or creates it (`wrangler kv namespace`);
// 3. writes a generated config per Worker into .deploy/ (git-ignored): the tracked config's
//    [env.<env>] with the namespace id, ISSUER, --var values, a custom domain and the optional
//    METRICS dataset filled in. Tracked files are never edited;
// 4. `wrangler deploy -c .deploy/<worker>.json` (the issuer before the edge that binds it);
// 5. for a Worker that signs, stores fresh signing keys with `wrangler secret put SIGNING_KEYS` if it
//    has none (one Ed25519, one RSA 2048, made in memory and piped to wrangler: never on disk). With
//    --managed-keys no secret is needed: the key store makes and rotates the keys.
//
// --dry-run does steps 1 and 3 and `wrangler deploy --dry-run` (no account needed, nothing sent).
// WRANGLER names the wrangler to run (default: the pinned node_modules/.bin/wrangler).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseToml } from 'smol-toml';
import { devKeys } from './dev-keys.mjs';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const OUT = join(ROOT, '.deploy');

const USAGE = `usage: bash scripts/deploy.sh [all-in-one|split|verifier] (--issuer URL | --domain HOST) [options]
  --issuer URL         the public https URL of gatehouse: the tokens' iss (ISSUER)
  --domain HOST        serve on this custom domain of your zone (ISSUER defaults to https://HOST)
  --env NAME           the config environment (default: production)
  --var NAME=VALUE     any other var, repeatable (ORIGIN_URL, ALLOWED_ORIGINS, PUBLIC_KEYS, ...)
  --managed-keys       KEY_MANAGEMENT=managed: the key store makes and rotates the signing keys
  --password-hash H    argon2id (default) or pbkdf2 (the Workers Free plan: docs/DEPLOY.md "Plans")
  --metrics DATASET    write metrics to this Workers Analytics Engine dataset (binding METRICS)
  --kv-title TITLE     the denylist's KV namespace title (default: gatehouse-denylist-<env>)
  --skip-build         deploy the builds already in build/, build-edge/, build-issuer/
  --dry-run            no account needed: generate the configs and run wrangler deploy --dry-run`;

/** The Workers of each flavour, in deploy order: tracked config, build flavour, whether it signs. */
const FLAVOURS = {
  'all-in-one': [{ worker: 'gatehouse', config: 'wrangler.toml', build: 'full', signs: true }],
  split: [
    { worker: 'issuer', config: 'wrangler.issuer.toml', build: 'issuer', signs: true },
    { worker: 'edge', config: 'wrangler.edge.toml', build: 'edge', signs: false },
  ],
  verifier: [{ worker: 'edge', config: 'wrangler.edge.toml', build: 'edge', signs: false, verifier: true }],
};

export function parseArgs(argv) {
  const opts = { flavour: 'all-in-one', env: 'production', vars: {}, managedKeys: false, dryRun: false, skipBuild: false };
  const rest = [...argv];
  if (rest[0] && !rest[0].startsWith('-')) opts.flavour = rest.shift();
  if (!FLAVOURS[opts.flavour]) throw new Error(`unknown flavour ${opts.flavour} (all-in-one, split, verifier)`);
  while (rest.length) {
    const arg = rest.shift();
    const value = () => {
      if (!rest.length) throw new Error(`${arg} needs a value`);
      return rest.shift();
    };
    switch (arg) {
      case '--issuer': opts.issuer = value(); break;
      case '--domain': opts.domain = value(); break;
      case '--env': opts.env = value(); break;
      case '--var': {
        const pair = value();
        const at = pair.indexOf('=');
        if (at < 1) throw new Error(`--var ${pair}: NAME=VALUE`);
        opts.vars[pair.slice(0, at)] = pair.slice(at + 1);
        break;
      }
      case '--managed-keys': opts.managedKeys = true; break;
      case '--password-hash': opts.vars.PASSWORD_HASH = value(); break;
      case '--metrics': opts.metrics = value(); break;
      case '--kv-title': opts.kvTitle = value(); break;
      case '--skip-build': opts.skipBuild = true; break;
      case '--dry-run': opts.dryRun = true; break;
      case '-h': case '--help': opts.help = true; break;
      default: throw new Error(`unknown argument ${arg}`);
    }
  }
  if (opts.help) return opts;
  if (opts.domain && !/^[a-z0-9.-]+\.[a-z]{2,}$/i.test(opts.domain)) throw new Error(`--domain ${opts.domain}: a host name`);
  opts.issuer ??= opts.domain ? `https://${opts.domain}` : undefined;
  if (!opts.issuer) throw new Error('--issuer URL (or --domain HOST) is required: it is the iss of every token');
  if (!/^https:\/\/[^/?#]+$/.test(opts.issuer.replace(/\/$/, ''))) throw new Error(`--issuer ${opts.issuer}: an https:// origin`);
  opts.issuer = opts.issuer.replace(/\/$/, '');
  opts.kvTitle ??= `gatehouse-denylist-${opts.env}`;
  if (opts.flavour === 'verifier' && !['PUBLIC_KEYS', 'TRUSTED_ISSUERS', 'ISSUER_JWKS_URL'].some((k) => opts.vars[k])) {
    throw new Error('a verifier needs keys to verify with: --var PUBLIC_KEYS=… , TRUSTED_ISSUERS=… or ISSUER_JWKS_URL=…');
  }
  if (opts.vars.MAIL_TRANSPORT === 'outbox') {
    throw new Error('MAIL_TRANSPORT=outbox keeps mail in a development outbox (GET /dev/outbox): deploy with send_email or http (docs/CONFIGURATION.md "Mail")');
  }
  if (opts.managedKeys) opts.vars.KEY_MANAGEMENT = 'managed';
  return opts;
}

/** Runs wrangler (stdin: text to pipe in); returns stdout, or throws with what it said. */
function wrangler(args, { input, allowFail = false } = {}) {
  const bin = process.env.WRANGLER ?? join(ROOT, 'node_modules', '.bin', 'wrangler');
  const r = spawnSync(bin, args, {
    cwd: ROOT,
    input: input ?? '',
    encoding: 'utf8',
    env: { ...process.env, WRANGLER_SEND_METRICS: 'false' },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  if (r.status !== 0 && !allowFail) {
    throw new Error(`wrangler ${args.join(' ')} failed (${r.status ?? r.signal}):\n${r.stdout}${r.stderr}`);
  }
  return r.status === 0 ? r.stdout : null;
}

/** The first JSON array in a command's output (wrangler may print a banner before it). */
function jsonArray(text, what) {
  const start = text.indexOf('[');
  try {
    return JSON.parse(text.slice(start));
  } catch {
    throw new Error(`could not read ${what} from wrangler's answer:\n${text}`);
  }
}

/** The id of the denylist's KV namespace, made if there is none with this title. */
function kvNamespace(title, log) {
  const found = jsonArray(wrangler(['kv', 'namespace', 'list']), 'the KV namespaces').find((n) => n.title === title);
  if (found) {
    log(`KV namespace "${title}" exists: ${found.id}`);
    return found.id;
  }
  const said = wrangler(['kv', 'namespace', 'create', title, '--update-config=false']);
  const id = said.match(/\b[0-9a-f]{32}\b/)?.[0];
  if (!id) throw new Error(`could not read the new namespace's id from wrangler's answer:\n${said}`);
  log(`KV namespace "${title}" created: ${id}`);
  return id;
}

/** The generated config of one Worker: the tracked config's environment, completed. */
export function generateConfig(spec, opts, kvId) {
  const tracked = parseToml(readFileSync(join(ROOT, spec.config), 'utf8'));
  const env = tracked.env?.[opts.env];
  if (!env) throw new Error(`${spec.config} has no [env.${opts.env}]`);
  const config = { ...tracked, ...env };
  delete config.env;
  // Built by this script beforehand; paths are relative to the generated file's directory.
  delete config.build;
  config.main = relative(OUT, join(ROOT, tracked.main));
  if (config.assets) config.assets = { ...config.assets, directory: relative(OUT, join(ROOT, config.assets.directory)) };
  config.vars = { ...env.vars, ISSUER: opts.issuer, ...opts.vars };
  config.kv_namespaces = (env.kv_namespaces ?? []).map((kv) => ({ ...kv, id: kvId }));
  if (spec.verifier) {
    delete config.services;
    if (config.vars.ISSUER_JWKS_URL?.startsWith('service:') && !opts.vars.ISSUER_JWKS_URL) delete config.vars.ISSUER_JWKS_URL;
  }
  // The edge of a split deployment is the public face: the domain is its; the issuer stays private.
  if (opts.domain && (opts.flavour !== 'split' || spec.worker === 'edge')) {
    config.routes = [{ pattern: opts.domain, custom_domain: true }];
  }
  if (opts.metrics) config.analytics_engine_datasets = [{ binding: 'METRICS', dataset: opts.metrics }];
  return config;
}

/** Deploys a flavour; `log` reports each step. Returns the generated config paths. */
export async function deploy(opts, log = (m) => console.error(`[deploy] ${m}`)) {
  const specs = FLAVOURS[opts.flavour];
  if (!opts.skipBuild) {
    for (const spec of specs) {
      log(`building the ${spec.build} Worker (release)`);
      const r = spawnSync('bash', [join(ROOT, 'scripts', 'build.sh'), spec.build], { cwd: ROOT, stdio: 'inherit' });
      if (r.status !== 0) throw new Error(`scripts/build.sh ${spec.build} failed`);
    }
  }
  if (!opts.dryRun) wrangler(['whoami']);
  const kvId = opts.dryRun ? '00000000000000000000000000000000' : kvNamespace(opts.kvTitle, log);
  mkdirSync(OUT, { recursive: true });
  const written = [];
  for (const spec of specs) {
    const config = generateConfig(spec, opts, kvId);
    const file = join(OUT, `${config.name}.json`);
    writeFileSync(file, `${JSON.stringify(config, null, 2)}\n`);
    written.push(file);
    log(`wrote ${relative(ROOT, file)}`);
    if (opts.dryRun) {
      wrangler(['deploy', '--dry-run', '--outdir', join(OUT, `dry-run-${config.name}`), '-c', file]);
      log(`${config.name}: wrangler deploy --dry-run passed`);
      continue;
    }
    wrangler(['deploy', '-c', file]);
    log(`${config.name}: deployed`);
    if (spec.signs && !opts.managedKeys) {
      const secrets = jsonArray(wrangler(['secret', 'list', '-c', file]), 'the secrets');
      if (secrets.some((s) => s.name === 'SIGNING_KEYS')) {
        log(`${config.name}: SIGNING_KEYS is set; kept (rotate: docs/DEPLOY.md "Rotate keys")`);
      } else {
        const set = await devKeys();
        wrangler(['secret', 'put', 'SIGNING_KEYS', '-c', file], { input: JSON.stringify(set) });
        log(`${config.name}: stored new signing keys (${set.keys.map((k) => k.kid).join(', ')}) as the SIGNING_KEYS secret`);
      }
    }
  }
  const face = opts.issuer;
  log(opts.dryRun ? 'dry run done: nothing was sent' : `done: curl ${face}/healthz`);
  return written;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  let opts;
  try {
    opts = parseArgs(process.argv.slice(2));
  } catch (e) {
    console.error(`deploy: ${e.message}\n\n${USAGE}`);
    process.exit(2);
  }
  if (opts.help) {
    console.log(USAGE);
    process.exit(0);
  }
  try {
    await deploy(opts);
  } catch (e) {
    console.error(`deploy: ${e.message}`);
    process.exit(1);
  }
}
