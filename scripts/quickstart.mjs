#!/usr/bin/env node
// Procura quickstart: installs dependencies if needed, makes sure Postgres and
// Redis are up, builds, migrates, then runs a demo identity provider, the API
// and the worker, and prints a copy-paste walkthrough.
//
//   node scripts/quickstart.mjs           run until Ctrl-C
//   node scripts/quickstart.mjs --check   also run the walkthrough itself, then stop
//                                         (exit 0 when every step passed, 1 otherwise)
//
// Environment: PORT (API, default 3000), DEV_IDP_PORT (default 3001),
// DATABASE_URL, REDIS_URL (defaults as in scripts/ensure-services.sh).
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const CHECK = process.argv.includes('--check');
const NPM = process.platform === 'win32' ? 'npm.cmd' : 'npm';

const PORT = Number(process.env.PORT || 3000);
const IDP_PORT = Number(process.env.DEV_IDP_PORT || 3001);
const API = `http://127.0.0.1:${PORT}`;
const IDP = `http://127.0.0.1:${IDP_PORT}`;
const READY_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 10_000;

const AUDIENCE = 'https://mail.example';
const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';

// One environment for every step (ensure-services, migrate, API, worker).
process.env.DATABASE_URL ||= 'postgres://postgres@127.0.0.1:5432/procura';
process.env.REDIS_URL ||= 'redis://127.0.0.1:6379';
process.env.PORT = String(PORT);
process.env.TRUSTED_ISSUERS = JSON.stringify([
  { issuer: IDP, jwks_uri: `${IDP}/jwks.json`, audience: 'procura' },
]);
process.env.ADMIN_SUBJECTS = 'admin';

const color = process.stdout.isTTY && !process.env.NO_COLOR;
const paint = (code) => (s) => (color ? `\x1b[${code}m${s}\x1b[0m` : s);
const bold = paint('1');
const dim = paint('2');
const green = paint('32');
const red = paint('31');

const say = (msg = '') => process.stdout.write(`${msg}\n`);
const heading = (msg) => say(bold(`▸ ${msg}`));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

class QuickstartError extends Error {}

// ---------------------------------------------------------------- helpers ---

function run(cmd, args, label = [cmd, ...args].join(' ')) {
  heading(label);
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: ROOT, stdio: 'inherit', env: process.env });
    child.on('error', (err) => reject(new QuickstartError(`${label}: ${err.message}`)));
    child.on('exit', (code, signal) => {
      if (code === 0) resolve();
      else reject(new QuickstartError(`${label} failed (${signal ?? `exit code ${code}`})`));
    });
  });
}

function portInUse(port) {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    const done = (v) => {
      s.destroy();
      resolve(v);
    };
    s.setTimeout(1000, () => done(false));
    s.on('connect', () => done(true));
    s.on('error', () => done(false));
  });
}

/** @type {{name: string, proc: import('node:child_process').ChildProcess, exit: null | string, log?: string}[]} */
const children = [];
let idp = null;

function startChild(name, entry) {
  const file = path.join(ROOT, entry);
  if (!existsSync(file)) {
    throw new QuickstartError(`${entry} does not exist; did \`npm run build\` build the ${name}?`);
  }
  let stdio = ['ignore', 'pipe', 'pipe'];
  let log;
  if (CHECK) {
    const dir = path.join(ROOT, '.procura', 'quickstart');
    mkdirSync(dir, { recursive: true });
    log = path.join(dir, `${name}.log`);
    const fd = openSync(log, 'w');
    stdio = ['ignore', fd, fd];
  }
  // Own process group: Ctrl-C reaches only us, and we stop the children once, cleanly.
  const proc = spawn(process.execPath, [file], { cwd: ROOT, env: process.env, stdio, detached: true });
  if (typeof stdio[1] === 'number') closeSync(stdio[1]);
  const child = { name, proc, exit: null, log };
  proc.on('error', (err) => {
    child.exit ??= err.message;
  });
  proc.on('exit', (code, signal) => {
    child.exit = signal ? `killed by ${signal}` : `exit code ${code}`;
  });
  if (!CHECK) {
    const prefix = dim(`[${name}]`.padEnd(9));
    for (const stream of [proc.stdout, proc.stderr]) {
      readline.createInterface({ input: stream }).on('line', (line) => say(`${prefix}${line}`));
    }
  }
  children.push(child);
  return child;
}

function signalGroup(child, signal) {
  if (child.exit !== null || !child.proc.pid) return;
  try {
    process.kill(-child.proc.pid, signal);
  } catch {
    try {
      child.proc.kill(signal);
    } catch {
      /* already gone */
    }
  }
}

async function stopAll() {
  for (const c of children) signalGroup(c, 'SIGTERM');
  const deadline = Date.now() + STOP_TIMEOUT_MS;
  while (children.some((c) => c.exit === null) && Date.now() < deadline) await sleep(100);
  for (const c of children) {
    if (c.exit === null) {
      say(red(`${c.name} did not stop within ${STOP_TIMEOUT_MS / 1000}s; killing it`));
      signalGroup(c, 'SIGKILL');
    }
  }
  if (idp) {
    await idp.close();
    idp = null;
  }
}

// Last resort if we exit without stopAll() (uncaught error and the like).
process.on('exit', () => {
  for (const c of children) signalGroup(c, 'SIGKILL');
});

function logTail(child, lines = 40) {
  if (!child.log || !existsSync(child.log)) return '';
  const all = readFileSync(child.log, 'utf8').trimEnd().split('\n');
  return all.slice(-lines).join('\n');
}

function reportChildLogs() {
  for (const c of children) {
    const tail = logTail(c);
    if (tail) {
      say(dim(`--- last lines of ${path.relative(ROOT, c.log)} ---`));
      say(tail);
    }
  }
}

async function waitReady() {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  let last = 'no answer yet';
  while (Date.now() < deadline) {
    const dead = children.find((c) => c.exit !== null);
    if (dead) throw new QuickstartError(`the ${dead.name} stopped (${dead.exit}) before the API was ready`);
    try {
      const res = await fetch(`${API}/readyz`, { signal: AbortSignal.timeout(2000) });
      const body = await res.text();
      if (res.status === 200) return;
      last = `HTTP ${res.status} ${body.slice(0, 500)}`;
    } catch (err) {
      last = err?.cause?.code ?? err?.message ?? String(err);
    }
    await sleep(500);
  }
  throw new QuickstartError(`GET ${API}/readyz did not answer 200 within ${READY_TIMEOUT_MS / 1000}s (last: ${last})`);
}

// ------------------------------------------------------------------ HTTP ---

const formEncode = (s) => encodeURIComponent(s).replace(/%20/g, '+');

async function call(method, url, { bearer, basic, json, form } = {}) {
  const headers = { accept: 'application/json' };
  let body;
  if (bearer) headers.authorization = `Bearer ${bearer}`;
  if (basic) {
    // RFC 6749 section 2.3.1: form-encode client_id and secret before base64.
    const pair = `${formEncode(basic[0])}:${formEncode(basic[1])}`;
    headers.authorization = `Basic ${Buffer.from(pair).toString('base64')}`;
  }
  if (json !== undefined) {
    headers['content-type'] = 'application/json';
    body = JSON.stringify(json);
  } else if (form) {
    headers['content-type'] = 'application/x-www-form-urlencoded';
    body = new URLSearchParams(form).toString();
  }
  let res;
  try {
    res = await fetch(url, { method, headers, body, signal: AbortSignal.timeout(10_000) });
  } catch (err) {
    throw new StepError(`${method} ${url} failed: ${err?.cause?.code ?? err?.message ?? err}`);
  }
  const text = await res.text();
  let data;
  try {
    data = text ? JSON.parse(text) : undefined;
  } catch {
    data = undefined;
  }
  return { method, url, status: res.status, text, data, contentType: res.headers.get('content-type') ?? '' };
}

class StepError extends Error {
  constructor(message, res) {
    super(message);
    this.res = res;
  }
}

function expectStatus(res, ...statuses) {
  const ok = statuses.length ? statuses.includes(res.status) : res.status >= 200 && res.status < 300;
  if (!ok) {
    const want = statuses.length ? statuses.join(' or ') : '2xx';
    throw new StepError(`expected HTTP ${want}, got ${res.status}`, res);
  }
  return res.data;
}

function expectFields(res, ...fields) {
  const data = res.data;
  if (!data || typeof data !== 'object') throw new StepError('expected a JSON object body', res);
  const missing = fields.filter((f) => data[f] === undefined || data[f] === null || data[f] === '');
  if (missing.length) throw new StepError(`response lacks ${missing.join(', ')}`, res);
  return data;
}

function check(condition, message, res) {
  if (!condition) throw new StepError(message, res);
}

const scopeSet = (s) => new Set(String(s ?? '').split(' ').filter(Boolean));
const sameScopes = (a, b) => {
  const x = scopeSet(a);
  const y = scopeSet(b);
  return x.size === y.size && [...x].every((s) => y.has(s));
};

let failed = false;

async function step(label, fn) {
  try {
    const detail = await fn();
    say(`${green('✓')} ${label}${detail ? dim(`  ${detail}`) : ''}`);
  } catch (err) {
    failed = true;
    say(`${red('✗')} ${label}`);
    say(`    ${err?.message ?? err}`);
    const res = err?.res;
    if (res) {
      say(`    ${res.method} ${res.url} -> HTTP ${res.status}`);
      const body = res.data !== undefined ? JSON.stringify(res.data, null, 2) : res.text || '(empty body)';
      say(body.slice(0, 4000).replace(/^/gm, '    '));
    } else if (!(err instanceof StepError) && err?.stack) {
      say(dim(err.stack.replace(/^/gm, '    ')));
    }
    throw new QuickstartError(`step failed: ${label}`);
  }
}

// -------------------------------------------------------------- the demo ---

async function fetchMetadata() {
  try {
    const res = await call('GET', `${API}/.well-known/oauth-authorization-server`);
    if (res.status === 200 && res.data) return res.data;
  } catch {
    /* printed as a failed step in --check */
  }
  return null;
}

function printBanner(metadata) {
  const jwks = metadata?.jwks_uri ?? `${API}/.well-known/jwks.json`;
  say();
  say(bold('Procura is running.'));
  say();
  say(`  API                  ${API}`);
  say(`  OpenAPI docs         ${API}/docs`);
  say(`  AS metadata          ${API}/.well-known/oauth-authorization-server`);
  say(`  JWKS                 ${jwks}`);
  say(`  Dev IdP (demo only)  ${IDP}   tokens: ${IDP}/token?sub=alice   keys: ${IDP}/jwks.json`);
  say(`  Admin subject        admin`);
  if (CHECK) say(`  Logs                 ${path.relative(ROOT, children[0]?.log ?? '')}, ${path.relative(ROOT, children[1]?.log ?? '')}`);
  say();
  const tools = ['curl', 'jq'].filter((t) => spawnSync(t, ['--version'], { stdio: 'ignore' }).error);
  say(bold('Walkthrough') + dim(` (bash; needs curl and jq${tools.length ? `; missing here: ${tools.join(', ')}` : ''})`));
  say();
  say(
    String.raw`API=${API}
IDP=${IDP}

# a. Sign in at the dev IdP as the admin and as Alice
ADMIN=$(curl -s "$IDP/token?sub=admin" | jq -r .access_token)
ALICE=$(curl -s "$IDP/token?sub=alice" | jq -r .access_token)

# b. The admin registers a resource server (the Mail API)
RS=$(curl -s -X POST "$API/v1/resource-servers" -H "Authorization: Bearer $ADMIN" \
  -H 'Content-Type: application/json' -d '{"name":"Mail API","audience":"${AUDIENCE}"}')
echo "$RS" | jq
RS_CLIENT_ID=$(echo "$RS" | jq -r .client_id); RS_SECRET=$(echo "$RS" | jq -r .client_secret)

# c. The admin registers an agent
AGENT=$(curl -s -X POST "$API/v1/agents" -H "Authorization: Bearer $ADMIN" \
  -H 'Content-Type: application/json' -d '{"name":"inbox-assistant"}')
echo "$AGENT" | jq
AGENT_ID=$(echo "$AGENT" | jq -r .id)
AGENT_CLIENT_ID=$(echo "$AGENT" | jq -r .client_id); AGENT_SECRET=$(echo "$AGENT" | jq -r .client_secret)

# d. Alice lets the agent read and send her mail
READ_GRANT=$(curl -s -X POST "$API/v1/grants" -H "Authorization: Bearer $ALICE" \
  -H 'Content-Type: application/json' \
  -d "{\"agent_id\":\"$AGENT_ID\",\"resource\":\"${AUDIENCE}\",\"action\":\"email:read\",\"purpose\":\"triage my inbox\"}" \
  | jq -r .id)
SEND_GRANT=$(curl -s -X POST "$API/v1/grants" -H "Authorization: Bearer $ALICE" \
  -H 'Content-Type: application/json' \
  -d "{\"agent_id\":\"$AGENT_ID\",\"resource\":\"${AUDIENCE}\",\"action\":\"email:send\",\"purpose\":\"send the replies I approve\"}" \
  | jq -r .id)
echo "read grant: $READ_GRANT  send grant: $SEND_GRANT"

# e. The agent exchanges Alice's token for a Mail API token (RFC 8693)
EXCHANGE=$(curl -s -X POST "$API/oauth/token" -u "$AGENT_CLIENT_ID:$AGENT_SECRET" \
  --data-urlencode 'grant_type=${TOKEN_EXCHANGE}' \
  --data-urlencode "subject_token=$ALICE" \
  --data-urlencode 'subject_token_type=${ACCESS_TOKEN_TYPE}' \
  --data-urlencode 'resource=${AUDIENCE}' \
  --data-urlencode 'scope=email:read email:send')
echo "$EXCHANGE" | jq
TOKEN=$(echo "$EXCHANGE" | jq -r .access_token)

# f. The Mail API introspects it: active, scope "email:read email:send"
curl -s -X POST "$API/oauth/introspect" -u "$RS_CLIENT_ID:$RS_SECRET" --data-urlencode "token=$TOKEN" | jq

# g. Alice revokes the send grant
curl -s -X POST "$API/v1/grants/$SEND_GRANT/revoke" -H "Authorization: Bearer $ALICE" \
  -H 'Content-Type: application/json' -d '{"reason":"no sending"}' | jq

# h. Introspect again: still active, scope now "email:read" only
curl -s -X POST "$API/oauth/introspect" -u "$RS_CLIENT_ID:$RS_SECRET" --data-urlencode "token=$TOKEN" | jq`.replace(/^(?=.)/gm, '  '),
  );
  say();
}

async function runWalkthrough(metadata) {
  say(bold('Running the walkthrough (--check)'));
  const s = {};

  await step('authorization server metadata', async () => {
    const res = await call('GET', `${API}/.well-known/oauth-authorization-server`);
    expectStatus(res, 200);
    const data = expectFields(res, 'issuer', 'token_endpoint');
    s.jwksUri = data.jwks_uri ?? metadata?.jwks_uri;
    return `issuer ${data.issuer}`;
  });
  await step('JWKS', async () => {
    check(s.jwksUri, 'the metadata has no jwks_uri');
    const res = await call('GET', s.jwksUri);
    expectStatus(res, 200);
    check(Array.isArray(res.data?.keys) && res.data.keys.length > 0, 'expected a JWKS with at least one key', res);
    return `${res.data.keys.length} key(s) at ${s.jwksUri}`;
  });
  await step('OpenAPI docs', async () => {
    const res = await call('GET', `${API}/docs`);
    expectStatus(res, 200);
    return `${API}/docs`;
  });

  await step('a. tokens for admin and alice from the dev IdP', async () => {
    for (const sub of ['admin', 'alice']) {
      const res = await call('GET', `${IDP}/token?sub=${sub}`);
      expectStatus(res, 200);
      s[sub] = expectFields(res, 'access_token').access_token;
    }
  });

  // A repeated --check on the same database finds the demo resource server (and
  // maybe the agent) already registered; register uniquely named ones instead.
  const runId = randomBytes(3).toString('hex');

  await step('b. admin registers the Mail API resource server', async () => {
    let audience = AUDIENCE;
    let res = await call('POST', `${API}/v1/resource-servers`, {
      bearer: s.admin,
      json: { name: 'Mail API', audience },
    });
    if (res.status === 409) {
      audience = `https://mail-${runId}.example`;
      res = await call('POST', `${API}/v1/resource-servers`, {
        bearer: s.admin,
        json: { name: `Mail API ${runId}`, audience },
      });
    }
    expectStatus(res, 201);
    const rs = expectFields(res, 'id', 'client_id', 'client_secret');
    s.rs = rs;
    s.audience = audience;
    return `client_id ${rs.client_id}${audience !== AUDIENCE ? `, audience ${audience} (${AUDIENCE} was taken)` : ''}`;
  });

  await step('c. admin registers the inbox-assistant agent', async () => {
    let res = await call('POST', `${API}/v1/agents`, { bearer: s.admin, json: { name: 'inbox-assistant' } });
    if (res.status === 409) {
      res = await call('POST', `${API}/v1/agents`, { bearer: s.admin, json: { name: `inbox-assistant-${runId}` } });
    }
    expectStatus(res, 201);
    s.agent = expectFields(res, 'id', 'client_id', 'client_secret');
    return `id ${s.agent.id}, client_id ${s.agent.client_id}`;
  });

  for (const [key, action, purpose] of [
    ['readGrant', 'email:read', 'triage my inbox'],
    ['sendGrant', 'email:send', 'send the replies I approve'],
  ]) {
    await step(`d. alice grants ${action}`, async () => {
      const res = await call('POST', `${API}/v1/grants`, {
        bearer: s.alice,
        json: { agent_id: s.agent.id, resource: s.audience, action, purpose },
      });
      expectStatus(res, 201);
      s[key] = expectFields(res, 'id').id;
      return `grant ${s[key]}`;
    });
  }

  await step('e. agent exchanges alice’s token (RFC 8693)', async () => {
    const res = await call('POST', `${API}/oauth/token`, {
      basic: [s.agent.client_id, s.agent.client_secret],
      form: {
        grant_type: TOKEN_EXCHANGE,
        subject_token: s.alice,
        subject_token_type: ACCESS_TOKEN_TYPE,
        resource: s.audience,
        scope: 'email:read email:send',
      },
    });
    expectStatus(res, 200);
    const data = expectFields(res, 'access_token', 'issued_token_type', 'token_type', 'expires_in');
    check(String(data.token_type).toLowerCase() === 'bearer', `expected token_type Bearer, got ${data.token_type}`, res);
    check(sameScopes(data.scope, 'email:read email:send'), `expected scope "email:read email:send", got ${JSON.stringify(data.scope)}`, res);
    s.token = data.access_token;
    return `scope "${data.scope}", expires_in ${data.expires_in}`;
  });

  const introspect = () =>
    call('POST', `${API}/oauth/introspect`, { basic: [s.rs.client_id, s.rs.client_secret], form: { token: s.token } });

  await step('f. Mail API introspects: active, email:read email:send', async () => {
    const res = await introspect();
    expectStatus(res, 200);
    check(res.data?.active === true, 'expected active: true', res);
    check(sameScopes(res.data.scope, 'email:read email:send'), `expected scope "email:read email:send", got ${JSON.stringify(res.data.scope)}`, res);
    return `scope "${res.data.scope}"`;
  });

  await step('g. alice revokes the email:send grant', async () => {
    const res = await call('POST', `${API}/v1/grants/${encodeURIComponent(s.sendGrant)}/revoke`, {
      bearer: s.alice,
      json: { reason: 'no sending' },
    });
    expectStatus(res);
    return `HTTP ${res.status}`;
  });

  await step('h. Mail API introspects again: active, email:read only', async () => {
    const res = await introspect();
    expectStatus(res, 200);
    check(res.data?.active === true, 'expected active: true', res);
    check(sameScopes(res.data.scope, 'email:read'), `expected scope "email:read", got ${JSON.stringify(res.data.scope)}`, res);
    return `scope "${res.data.scope}"`;
  });
}

// ------------------------------------------------------------------ main ---

let stopping = false;
let running = false;

async function shutdown(signal) {
  if (stopping) return;
  stopping = true;
  if (children.length) say(`\n${signal ? `${signal}: ` : ''}stopping the API and the worker…`);
  await stopAll();
  process.exit(running ? 0 : signal === 'SIGINT' ? 130 : 143);
}
process.on('SIGINT', () => shutdown('SIGINT'));
process.on('SIGTERM', () => shutdown('SIGTERM'));

async function main() {
  process.chdir(ROOT);

  if (!existsSync(path.join(ROOT, 'node_modules'))) {
    // `npm install` follows package-lock.json; npm 11's `npm ci` rejects locks that omit other
    // platforms' optional binaries (SWC), which is how npm itself writes them here.
    await run(NPM, ['install', '--no-audit', '--no-fund']);
  }
  await run('bash', [path.join('scripts', 'ensure-services.sh')], 'ensure Postgres and Redis');
  await run(NPM, ['run', 'build']);
  await run(NPM, ['run', 'migrate']);

  for (const [what, port, env] of [
    ['the API', PORT, 'PORT'],
    ['the dev IdP', IDP_PORT, 'DEV_IDP_PORT'],
  ]) {
    if (await portInUse(port)) {
      throw new QuickstartError(`port ${port} (for ${what}) is already in use; stop whatever listens there or set ${env}`);
    }
  }

  heading('start the dev IdP, the API and the worker');
  // Imported only now: it needs `jose` from node_modules.
  const { startDevIdp } = await import(pathToFileURL(path.join(ROOT, 'scripts', 'dev-idp.mjs')).href);
  idp = await startDevIdp({ port: IDP_PORT });
  startChild('api', 'dist/apps/api/src/main.js');
  startChild('worker', 'dist/apps/worker/src/main.js');
  await waitReady();

  const metadata = await fetchMetadata();
  printBanner(metadata);

  if (CHECK) {
    try {
      await runWalkthrough(metadata);
    } finally {
      const dead = children.find((c) => c.exit !== null);
      if (dead) {
        failed = true;
        say(red(`✗ the ${dead.name} stopped during the walkthrough (${dead.exit})`));
      }
    }
    if (failed) throw new QuickstartError('the walkthrough failed');
    say();
    say(green('All steps passed.'));
    stopping = true;
    await stopAll();
    return 0;
  }

  running = true;
  say(dim('Press Ctrl-C to stop.'));
  // Keep running; if a child dies on its own, stop everything.
  await new Promise((resolve) => {
    const timer = setInterval(() => {
      const dead = children.find((c) => c.exit !== null);
      if (dead && !stopping) {
        clearInterval(timer);
        say(red(`the ${dead.name} stopped unexpectedly (${dead.exit}); shutting down`));
        resolve();
      }
    }, 500);
  });
  running = false;
  stopping = true;
  await stopAll();
  return 1;
}

try {
  process.exitCode = await main();
} catch (err) {
  if (!stopping) {
    say();
    say(red(`quickstart: ${err instanceof QuickstartError ? err.message : (err?.stack ?? err)}`));
    if (CHECK) reportChildLogs();
    stopping = true;
    await stopAll();
  }
  process.exitCode = 1;
}
