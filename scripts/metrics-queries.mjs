// The SQL of docs/OBSERVABILITY.md, one query per metric, over the Workers Analytics Engine dataset
// gatehouse writes (one data point per request; the columns of src/metrics.rs). scripts/dashboard.mjs
// runs them; tests/e2e/dashboard.test.mjs checks that the document shows each one as it is here.
// Every sum is weighted by _sample_interval, so the figures stay right when Analytics Engine samples.

/** The dataset name in the queries below; the dashboard replaces it with yours. */
export const DATASET = 'gatehouse_metrics';

const WINDOW = "timestamp > NOW() - INTERVAL '1' DAY";
const BUCKET = "toStartOfInterval(timestamp, INTERVAL '15' MINUTE) AS t";

export const QUERIES = [
  {
    name: 'requests',
    title: 'Requests and mean latency (ms) per route',
    sql: `SELECT ${BUCKET}, blob2 AS route,
  SUM(_sample_interval) AS requests,
  SUM(_sample_interval * double2) / SUM(_sample_interval) AS mean_latency_ms
FROM ${DATASET} WHERE ${WINDOW}
GROUP BY t, route ORDER BY t`,
  },
  {
    name: 'verifications',
    title: 'Verifications by outcome and algorithm',
    sql: `SELECT ${BUCKET},
  SUM(_sample_interval * double4) AS verified_eddsa,
  SUM(_sample_interval * double5) AS verified_rs256,
  SUM(_sample_interval * double6) AS verified_es256,
  SUM(_sample_interval * double7) AS refused_eddsa,
  SUM(_sample_interval * double8) AS refused_rs256,
  SUM(_sample_interval * double9) AS refused_es256
FROM ${DATASET} WHERE ${WINDOW}
GROUP BY t ORDER BY t`,
  },
  {
    name: 'cache',
    title: 'Cache hit rates: verified tokens and denylist reads',
    sql: `SELECT ${BUCKET},
  SUM(_sample_interval * double10)
    / (SUM(_sample_interval * double10) + SUM(_sample_interval * (double4 + double5 + double6 + double7 + double8 + double9)) + 0.000001)
    AS token_cache_hit_rate,
  SUM(_sample_interval * double11) / (SUM(_sample_interval * (double11 + double12)) + 0.000001) AS denylist_cache_hit_rate
FROM ${DATASET} WHERE ${WINDOW}
GROUP BY t ORDER BY t`,
  },
  {
    name: 'kv',
    title: 'KV reads, per request and in all',
    sql: `SELECT ${BUCKET},
  SUM(_sample_interval * double12) AS kv_reads,
  SUM(_sample_interval * double12) / SUM(_sample_interval) AS kv_reads_per_request
FROM ${DATASET} WHERE ${WINDOW}
GROUP BY t ORDER BY t`,
  },
  {
    name: 'jwks',
    title: 'JWKS fetches over the network',
    sql: `SELECT ${BUCKET}, SUM(_sample_interval * double13) AS jwks_fetches
FROM ${DATASET} WHERE ${WINDOW}
GROUP BY t ORDER BY t`,
  },
  {
    name: 'sessions',
    title: 'Login and refresh outcomes',
    sql: `SELECT ${BUCKET}, concat(blob2, ' ', blob3, ' ', blob4) AS outcome,
  SUM(_sample_interval) AS requests
FROM ${DATASET} WHERE ${WINDOW} AND blob2 IN ('/auth/login', '/auth/refresh', '/oauth/token')
GROUP BY t, outcome ORDER BY t`,
  },
  {
    name: 'refusals',
    title: 'Refusals by error code',
    sql: `SELECT ${BUCKET}, blob4 AS error, SUM(_sample_interval) AS requests
FROM ${DATASET} WHERE ${WINDOW} AND blob4 != ''
GROUP BY t, error ORDER BY t`,
  },
];
