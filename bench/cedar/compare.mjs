// compare.mjs: Cedar's half of the Warden-vs-Cedar policy benchmark.
//
//   node bench/cedar/compare.mjs DIR [--iterations N] [--max-seconds S]
//
// DIR is what bench/cedar_compare (Warden's half) wrote: policy.cedar,
// requests.json (each request with Warden's decision) and warden.json
// (Warden's figures). This script
//   1. pre-parses the Cedar policy set once (statefulIsAuthorized), timing it;
//   2. asserts that Cedar decides EVERY request exactly as Warden did, and
//      exits 1 naming the first disagreements otherwise;
//   3. times single Cedar decisions, one thread, the requests cycled, only
//      the request's own two entities passed (principal and topic);
//   4. prints both engines side by side and writes DIR/comparison.json.
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
let cedar;
try {
  cedar = require('@cedar-policy/cedar-wasm/nodejs');
} catch (e) {
  console.error(`compare.mjs: cannot load @cedar-policy/cedar-wasm (${e.code}); run scripts/setup, which installs it into bench/cedar/node_modules`);
  process.exit(2);
}

function usage(msg) {
  console.error(`compare.mjs: ${msg}\nusage: node compare.mjs DIR [--iterations N (default: one per request)] [--max-seconds S (default 60)]`);
  process.exit(2);
}

const args = process.argv.slice(2);
if (args.length < 1) usage('missing DIR');
const dir = args[0];
let iterations = 0;  // 0: as many as there are requests
let maxSeconds = 60;
for (let i = 1; i < args.length; i += 2) {
  const v = Number(args[i + 1]);
  if (!Number.isFinite(v) || v <= 0) usage(`bad value for ${args[i]}`);
  if (args[i] === '--iterations') iterations = Math.floor(v);
  else if (args[i] === '--max-seconds') maxSeconds = v;
  else usage(`unknown option ${args[i]}`);
}

const policyText = readFileSync(`${dir}/policy.cedar`, 'utf8');
const { requests } = JSON.parse(readFileSync(`${dir}/requests.json`, 'utf8'));
const warden = JSON.parse(readFileSync(`${dir}/warden.json`, 'utf8'));

// A topic's levels become the resource's attributes l0, l1, ... (Cedar has
// no MQTT topic type; see syntheticPolicyCedar in bench/synthetic_policy.cc).
function cedarRequest(r) {
  const attrs = {};
  r.topic.split('/').forEach((level, i) => { attrs[`l${i}`] = level; });
  return {
    principal: { type: 'Device', id: r.principal },
    action: { type: 'Action', id: 'mqtt:publish' },
    resource: { type: 'Topic', id: r.topic },
    context: {},
    preparsedPolicySetId: 'synthetic',
    entities: [
      { uid: { type: 'Device', id: r.principal }, attrs: { id: r.principal, role: r.role, kind: 'device' }, parents: [] },
      { uid: { type: 'Topic', id: r.topic }, attrs, parents: [] },
    ],
  };
}

const parseStart = process.hrtime.bigint();
const parsed = cedar.preparsePolicySet('synthetic', { staticPolicies: policyText });
const parseMs = Number(process.hrtime.bigint() - parseStart) / 1e6;
if (parsed.type !== 'success') {
  console.error('compare.mjs: Cedar refused the policy:', JSON.stringify(parsed.errors).slice(0, 2000));
  process.exit(1);
}

// 1. Agreement on every request.
const calls = requests.map(cedarRequest);
const disagreements = [];
for (let i = 0; i < requests.length; ++i) {
  const answer = cedar.statefulIsAuthorized(calls[i]);
  if (answer.type !== 'success') {
    console.error('compare.mjs: Cedar failed on', JSON.stringify(requests[i]), JSON.stringify(answer.errors));
    process.exit(1);
  }
  if (answer.response.decision !== requests[i].decision) {
    disagreements.push({ ...requests[i], cedar: answer.response.decision, cedar_policies: answer.response.diagnostics.reason });
  }
}
if (disagreements.length > 0) {
  console.error(`compare.mjs: Cedar and Warden disagree on ${disagreements.length} of ${requests.length} requests; first ones:`);
  for (const d of disagreements.slice(0, 10)) console.error('  ', JSON.stringify(d));
  process.exit(1);
}

// 2. Timing: single decisions, the requests cycled, bounded in count and time.
// The agreement pass above has warmed the engine up.
if (iterations === 0) iterations = requests.length;
const samples = [];
const deadline = process.hrtime.bigint() + BigInt(Math.floor(maxSeconds * 1e9));
let allows = 0;
const loopStart = process.hrtime.bigint();
for (let i = 0; i < iterations; ++i) {
  const t0 = process.hrtime.bigint();
  const answer = cedar.statefulIsAuthorized(calls[i % calls.length]);
  const t1 = process.hrtime.bigint();
  if (answer.response.decision === 'allow') ++allows;
  samples.push(Number(t1 - t0));
  if ((i & 1023) === 0 && t1 > deadline) break;
}
const loopSeconds = Number(process.hrtime.bigint() - loopStart) / 1e9;
samples.sort((a, b) => a - b);
const cedarFigures = {
  engine: `cedar ${cedar.getCedarVersion()} (@cedar-policy/cedar-wasm, node ${process.version})`,
  parse_ms: parseMs,
  iterations: samples.length,
  p50_ns: samples[Math.floor(samples.length / 2)],
  p99_ns: samples[Math.floor(samples.length * 99 / 100)],
  per_second: samples.length / loopSeconds,
  allows,
};

const notExpressible = [
  "MQTT '+' levels and '#' tails: rewritten by hand as conditions on the topic's levels (resource.l0, l1, ...), which the harness splits out of each topic",
  "topic templates such as s1/${principal.id}/#: Cedar's `like` cannot refer to principal.id (rewritten as resource.l1 == principal.id)",
  'segments: no computed groups; each segment selector is repeated inline in every rule (principal.role == ...)',
  'services and flows: no equivalent; every missing flow is hand-compiled into a forbid per service',
  'subscribe: filter-subset and filter-overlap checks (a filter is permitted only if every topic it can match is) cannot be expressed, so only publish is compared',
  'decision deadlines (valid_until), explanations with missing flows, quarantine semantics',
];

const ratio = warden.per_second / cedarFigures.per_second;
const comparison = { warden, cedar: cedarFigures, throughput_ratio: ratio, requests_compared: requests.length, not_expressible_in_cedar: notExpressible };
writeFileSync(`${dir}/comparison.json`, JSON.stringify(comparison, null, 2));

const us = (ns) => (ns / 1000).toFixed(2);
console.log(`Both engines agree on all ${requests.length} requests (${requests.filter((r) => r.decision === 'allow').length} permitted).`);
console.log(`policy: ${warden.rules} rules, ${warden.segments} segments, ${warden.principals} principals; publish on concrete topics`);
console.log('');
console.log('| engine | parse | p50 | p99 | decisions/s | decisions timed |');
console.log('| --- | ---: | ---: | ---: | ---: | ---: |');
console.log(`| Warden (compiled, no cache) | ${warden.parse_ms.toFixed(1)} ms | ${us(warden.p50_ns)} µs | ${us(warden.p99_ns)} µs | ${Math.round(warden.per_second).toLocaleString('en-US')} | ${warden.iterations.toLocaleString('en-US')} |`);
console.log(`| ${cedarFigures.engine} | ${parseMs.toFixed(1)} ms | ${us(cedarFigures.p50_ns)} µs | ${us(cedarFigures.p99_ns)} µs | ${Math.round(cedarFigures.per_second).toLocaleString('en-US')} | ${cedarFigures.iterations.toLocaleString('en-US')} |`);
console.log('');
console.log(`Warden's throughput is ${ratio.toFixed(1)}x Cedar's (goal: at least 10x).`);
console.log('What Cedar cannot express (hand-translated or left out):');
for (const n of notExpressible) console.log(`  - ${n}`);
