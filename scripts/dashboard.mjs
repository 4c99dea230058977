// A small dashboard of gatehouse's metrics (docs/OBSERVABILITY.md): runs each query of
// scripts/metrics-queries.mjs against the Workers Analytics Engine SQL API and writes one HTML page
// of line charts (inline SVG, no dependencies, no script).
//
//   CLOUDFLARE_ACCOUNT_ID=… CLOUDFLARE_API_TOKEN=… node scripts/dashboard.mjs [--dataset gatehouse_metrics] [--out dashboard.html]
//
// The token needs the "Account Analytics: Read" permission. --api names another SQL endpoint (the
// tests use a fake one).
import { writeFileSync } from 'node:fs';
import { DATASET, QUERIES } from './metrics-queries.mjs';

function args(argv) {
  const out = { dataset: DATASET, out: 'dashboard.html', api: null };
  for (let i = 0; i < argv.length; i += 2) {
    const [k, v] = [argv[i], argv[i + 1]];
    if (k === '--dataset') out.dataset = v;
    else if (k === '--out') out.out = v;
    else if (k === '--api') out.api = v;
    else throw new Error(`unknown argument ${k}`);
  }
  if (!/^[A-Za-z0-9_]+$/.test(out.dataset)) throw new Error(`--dataset ${out.dataset}: a dataset name`);
  return out;
}

/** Runs one query; the API answers `{ meta, data: [rows] }` with FORMAT JSON. */
async function run(sql, { api, token }) {
  const res = await fetch(api, { method: 'POST', headers: { authorization: `Bearer ${token}` }, body: `${sql}\nFORMAT JSON` });
  if (!res.ok) throw new Error(`the SQL API answered ${res.status}: ${await res.text()}`);
  return (await res.json()).data ?? [];
}

const escape = (s) => String(s).replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]);
const COLOURS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf'];

/** Series of a result: by its string column (route, outcome, error) if it has one, else one per number column. */
export function series(rows) {
  if (!rows.length) return [];
  const keys = Object.keys(rows[0]).filter((k) => k !== 't');
  const label = keys.find((k) => typeof rows[0][k] === 'string' && Number.isNaN(Number(rows[0][k])));
  const values = keys.filter((k) => k !== label);
  const out = new Map();
  for (const row of rows) {
    for (const v of values) {
      const name = label ? `${row[label]}${values.length > 1 ? ` ${v}` : ''}` : v;
      if (!out.has(name)) out.set(name, []);
      out.get(name).push([Date.parse(`${row.t}Z`.replace(' ', 'T').replace('ZZ', 'Z')), Number(row[v])]);
    }
  }
  return [...out.entries()].map(([name, points]) => ({ name, points }));
}

/** One chart as SVG. */
export function chart(title, lines) {
  const W = 720;
  const H = 220;
  const pad = 40;
  const all = lines.flatMap((l) => l.points);
  if (!all.length) return `<section><h2>${escape(title)}</h2><p>No data in the window.</p></section>`;
  const [x0, x1] = [Math.min(...all.map((p) => p[0])), Math.max(...all.map((p) => p[0]))];
  const y1 = Math.max(...all.map((p) => p[1]), 1e-9);
  const x = (v) => pad + ((v - x0) / Math.max(x1 - x0, 1)) * (W - 2 * pad);
  const y = (v) => H - pad + (-(v / y1) * (H - 2 * pad));
  const paths = lines.map((l, i) => `<polyline fill="none" stroke="${COLOURS[i % COLOURS.length]}" stroke-width="2" points="${l.points.map(([a, b]) => `${x(a).toFixed(1)},${y(b).toFixed(1)}`).join(' ')}"><title>${escape(l.name)}</title></polyline>`);
  const legend = lines.map((l, i) => `<li style="color:${COLOURS[i % COLOURS.length]}">${escape(l.name)}</li>`).join('');
  return `<section><h2>${escape(title)}</h2><svg viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" aria-label="${escape(title)}">
<line x1="${pad}" y1="${H - pad}" x2="${W - pad}" y2="${H - pad}" stroke="#999"/><line x1="${pad}" y1="${pad}" x2="${pad}" y2="${H - pad}" stroke="#999"/>
<text x="${pad - 4}" y="${pad}" text-anchor="end" font-size="11">${escape(+y1.toPrecision(3))}</text><text x="${pad - 4}" y="${H - pad}" text-anchor="end" font-size="11">0</text>
${paths.join('\n')}</svg><ul>${legend}</ul></section>`;
}

export function page(dataset, results) {
  const sections = results.map(({ title, rows }) => chart(title, series(rows))).join('\n');
  return `<!doctype html><meta charset="utf-8"><title>gatehouse metrics</title>
<style>body{font:14px system-ui,sans-serif;margin:2em;max-width:760px}ul{list-style:none;padding:0;display:flex;flex-wrap:wrap;gap:1em}</style>
<h1>gatehouse metrics: ${escape(dataset)}, last day, 15-minute buckets</h1>
${sections}
`;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  try {
    const opts = args(process.argv.slice(2));
    const account = process.env.CLOUDFLARE_ACCOUNT_ID;
    const token = process.env.CLOUDFLARE_API_TOKEN ?? '';
    const api = opts.api ?? (account && `https://api.cloudflare.com/client/v4/accounts/${account}/analytics_engine/sql`);
    if (!api) throw new Error('set CLOUDFLARE_ACCOUNT_ID and CLOUDFLARE_API_TOKEN (Account Analytics: Read)');
    const results = [];
    for (const q of QUERIES) {
      results.push({ title: q.title, rows: await run(q.sql.replaceAll(DATASET, opts.dataset), { api, token }) });
    }
    writeFileSync(opts.out, page(opts.dataset, results));
    console.error(`[dashboard] wrote ${opts.out} (${results.length} charts)`);
  } catch (e) {
    console.error(`dashboard: ${e.message}`);
    process.exit(1);
  }
}
