// scripts/dashboard.mjs against a fake Analytics Engine SQL endpoint on loopback: it sends each query
// of scripts/metrics-queries.mjs (with the dataset named) and the token, and writes a page with one
// chart per query. docs/OBSERVABILITY.md shows each query exactly as the dashboard runs it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { createServer } from 'node:http';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from './harness.mjs';
import { QUERIES } from '../../scripts/metrics-queries.mjs';

const run = promisify(execFile);

test('the documented queries are the dashboard\'s', () => {
  const doc = readFileSync(join(ROOT, 'docs', 'OBSERVABILITY.md'), 'utf8');
  for (const q of QUERIES) assert.ok(doc.includes(`\`\`\`sql\n${q.sql}\n\`\`\``), `docs/OBSERVABILITY.md shows the ${q.name} query as it is`);
  const blobs = readFileSync(join(ROOT, 'src', 'metrics.rs'), 'utf8');
  // The columns the queries use are the data point's (double13 is the last).
  assert.match(blobs, /pub const DOUBLES: \[&str; 13\]/);
  assert.match(blobs, /pub const BLOBS: \[&str; 5\] = \["worker", "route", "status", "error", "version"\]/);
});

test('the dashboard runs every query and draws every chart', async () => {
  const asked = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (d) => { body += d; });
    req.on('end', () => {
      asked.push({ auth: req.headers.authorization, sql: body });
      const t = ['2026-12-01 10:00:00', '2026-12-01 10:15:00', '2026-12-01 10:30:00'];
      let data;
      if (body.includes('AS route')) data = t.flatMap((x, i) => [{ t: x, route: '/auth/login', requests: 10 + i, mean_latency_ms: 40 }, { t: x, route: 'gateway:protected', requests: 100 * i, mean_latency_ms: 3 }]);
      else if (body.includes('AS error') || body.includes('AS outcome')) data = t.map((x, i) => ({ t: x, [body.includes('AS error') ? 'error' : 'outcome']: 'invalid_token', requests: i }));
      else data = t.map((x, i) => ({ t: x, value_a: i, value_b: 2 * i }));
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ meta: [], data, rows: data.length }));
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-dashboard-'));
  try {
    const out = join(dir, 'dashboard.html');
    await run('node', [join(ROOT, 'scripts', 'dashboard.mjs'), '--dataset', 'my_metrics', '--out', out, '--api', `http://127.0.0.1:${server.address().port}/sql`],
      { env: { ...process.env, CLOUDFLARE_API_TOKEN: 'test-token' } });
    assert.equal(asked.length, QUERIES.length, 'one request per query');
    for (const [i, q] of QUERIES.entries()) {
      assert.equal(asked[i].auth, 'Bearer test-token');
      assert.equal(asked[i].sql, `${q.sql.replaceAll('gatehouse_metrics', 'my_metrics')}\nFORMAT JSON`);
    }
    const html = readFileSync(out, 'utf8');
    assert.equal((html.match(/<svg /g) ?? []).length, QUERIES.length, 'a chart per query');
    for (const q of QUERIES) assert.ok(html.includes(q.title.replace(/&/g, '&amp;')), q.title);
    assert.match(html, /<title>\/auth\/login requests<\/title>/, 'a series per route');
    assert.doesNotMatch(html, /<script/i);
  } finally {
    server.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
