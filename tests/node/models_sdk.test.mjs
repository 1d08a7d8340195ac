// End-to-end tests of the model gateway with the official `openai` npm SDK:
// a real `aifn serve` process on a generated test model, real HTTP, the SDK's
// own parsing of responses, streams and errors. Also the examples/chat
// function (the SDK inside a function, with its invocation token) and token
// rules and metering. The model's text is noise: assertions are on shapes,
// counts and token usage.
// Run by ctest (models_openai_sdk) with AIFN_BINARY, AIFN_GEN_MODEL and
// AIFN_SOURCE_DIR set.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import OpenAI from 'openai';

const bin = process.env.AIFN_BINARY;
const gen = process.env.AIFN_GEN_MODEL;
const src = process.env.AIFN_SOURCE_DIR;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

let dir;
let server;
let base;
let log = '';

// An SDK client with no Authorization header (anonymous /v1 calls are allowed
// until API keys exist).
const anon = () => new OpenAI({ baseURL: `${base}/v1`, apiKey: 'unused', maxRetries: 0,
                                defaultHeaders: { Authorization: null } });

const adminKey = () => fs.readFileSync(path.join(dir, 'data', 'admin.key'), 'utf8').trim();

async function usageRows(groupBy) {
  const r = await fetch(`${base}/admin/usage?group_by=${groupBy}`);
  assert.equal(r.status, 200);
  return (await r.json()).rows;
}

async function eventually(cond, ms = 20000) {
  const until = Date.now() + ms;
  for (;;) {
    const v = await cond();
    if (v) return v;
    if (Date.now() > until) return v;
    await sleep(50);
  }
}

// Reads an SSE body into its data: payloads.
async function sseData(res) {
  const text = await res.text();
  return text.split('\n\n').filter((b) => b.startsWith('data: ')).map((b) => b.slice(6));
}

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'aifn-models-sdk-'));
  execFileSync(gen, ['--out', path.join(dir, 'tiny.gguf'), '--type', 'q8_0', '--seed', '1']);
  // A slower model for the abandoned-stream test: generating its whole
  // max_tokens would take many seconds.
  execFileSync(gen, ['--out', path.join(dir, 'slow.gguf'), '--type', 'q8_0', '--seed', '2', '--n-embd', '512',
                     '--layers', '8', '--heads', '8', '--kv-heads', '8', '--ff', '1536', '--ctx', '4096']);
  fs.writeFileSync(path.join(dir, 'aifn.toml'), `
[[providers]]
name = "local"
kind = "gguf"
path = "${path.join(dir, 'tiny.gguf')}"
threads = 2

[[providers]]
name = "slow"
kind = "gguf"
path = "${path.join(dir, 'slow.gguf')}"
threads = 2

[[models]]
name = "default"
route = ["local/tiny"]

[pricing.tokens."local/tiny"]
input_per_million = 1000.0
output_per_million = 2000.0
`);
  const fns = path.join(dir, 'functions');
  fs.mkdirSync(path.join(fns, 'probe'), { recursive: true });
  fs.symlinkSync(path.join(src, 'examples', 'chat'), path.join(fns, 'chat'));
  fs.symlinkSync(path.join(src, 'examples', 'summarize'), path.join(fns, 'summarize'));
  // extract: a prompt function that wants JSON, which the noise model never writes.
  fs.mkdirSync(path.join(fns, 'extract'));
  fs.writeFileSync(path.join(fns, 'extract', 'function.toml'), `
name = "extract"
runtime = "prompt"
[prompt]
model = "default"
template = "Reply with JSON describing {{json .}}"
output = "json"
output_schema = "out.json"
max_tokens = 8
temperature = 0
`);
  fs.writeFileSync(path.join(fns, 'extract', 'out.json'), '{"type": "object", "required": ["name"]}');
  // slowjson: a prompt function whose answer takes far longer than its timeout.
  fs.mkdirSync(path.join(fns, 'slowjson'));
  fs.writeFileSync(path.join(fns, 'slowjson', 'function.toml'), `
name = "slowjson"
runtime = "prompt"
timeout = "500ms"
[prompt]
model = "slow/slow"
template = "{{json .}}"
output = "json"
max_tokens = 3000
temperature = 0
`);
  // probe: calls the gateway with the model the event names and reports what
  // happened, plus its token (to try it again after the call ended).
  fs.writeFileSync(path.join(fns, 'probe', 'function.toml'), `
name = "probe"
runtime = "node"
handler = "index.handler"
models = ["default"]
env = { NODE_PATH = "${path.join(src, 'tests', 'node', 'node_modules')}" }
`);
  fs.writeFileSync(path.join(fns, 'probe', 'index.js'), `
const OpenAI = require('openai');
exports.handler = async (event, context) => {
  const client = new OpenAI({ baseURL: context.aifn.modelsUrl, apiKey: context.aifn.token, maxRetries: 0 });
  try {
    const r = await client.chat.completions.create({
      model: event.model, messages: [{ role: 'user', content: 'hi' }], max_tokens: event.max_tokens, seed: 7 });
    return { ok: true, usage: r.usage, token: context.aifn.token, modelsUrl: context.aifn.modelsUrl };
  } catch (err) {
    return { ok: false, status: err.status, type: err.constructor.name, token: context.aifn.token };
  }
};
`);
  server = spawn(bin, ['serve', '--listen', '127.0.0.1:0', '--functions', fns, '--data', path.join(dir, 'data'),
                       '--config', path.join(dir, 'aifn.toml')], { stdio: ['ignore', 'pipe', 'pipe'] });
  const onLog = (b) => { log += b.toString(); };
  server.stdout.on('data', onLog);
  server.stderr.on('data', onLog);
  const port = await eventually(() => (log.match(/event=listening url=http:\/\/127\.0\.0\.1:(\d+)/) || [])[1], 20000);
  assert.ok(port, `the server did not start:\n${log}`);
  base = `http://127.0.0.1:${port}`;
});

after(() => {
  if (server) server.kill('SIGTERM');
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

test('models.list lists model names and provider targets', async () => {
  const ids = [];
  for await (const m of anon().models.list()) ids.push(m.id);
  assert.deepEqual(ids.sort(), ['default', 'local/tiny', 'slow/slow']);
});

test('chat completion, not streamed', async () => {
  const r = await anon().chat.completions.create({
    model: 'default', messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Hello' }],
    max_tokens: 8, temperature: 0 });
  assert.equal(r.object, 'chat.completion');
  assert.match(r.id, /^chatcmpl-/);
  assert.equal(r.model, 'default');
  assert.equal(r.choices.length, 1);
  assert.equal(r.choices[0].message.role, 'assistant');
  assert.equal(typeof r.choices[0].message.content, 'string');
  assert.equal(r.choices[0].finish_reason, 'length');
  assert.equal(r.usage.completion_tokens, 8);
  assert.ok(r.usage.prompt_tokens > 3);
  assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + 8);
  // Greedy is deterministic: the same answer again.
  const again = await anon().chat.completions.create({
    model: 'local/tiny', messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Hello' }],
    max_tokens: 8, temperature: 0 });
  assert.equal(again.choices[0].message.content, r.choices[0].message.content);
});

test('chat completion, streamed with include_usage', async () => {
  const stream = await anon().chat.completions.create({
    model: 'default', messages: [{ role: 'user', content: 'Tell me a story' }], max_tokens: 12, stream: true, seed: 7,
    stream_options: { include_usage: true } });
  const chunks = [];
  for await (const c of stream) chunks.push(c);
  assert.ok(chunks.length >= 4, `only ${chunks.length} chunks`);
  assert.ok(chunks.every((c) => c.object === 'chat.completion.chunk' && c.id === chunks[0].id));
  assert.equal(chunks[0].choices[0].delta.role, 'assistant');
  const finish = chunks.filter((c) => c.choices.length && c.choices[0].finish_reason);
  assert.equal(finish.length, 1);
  assert.equal(finish[0].choices[0].finish_reason, 'length');
  const last = chunks[chunks.length - 1];
  assert.deepEqual(last.choices, []);
  assert.equal(last.usage.completion_tokens, 12);
  assert.equal(last.usage.total_tokens, last.usage.prompt_tokens + 12);
  const text = chunks.map((c) => (c.choices[0] && c.choices[0].delta.content) || '').join('');
  assert.ok(text.length > 0);
});

test('text completion, plain and streamed', async () => {
  const r = await anon().completions.create({ model: 'local/tiny', prompt: 'Once upon a time', max_tokens: 5, seed: 7 });
  assert.equal(r.object, 'text_completion');
  assert.equal(typeof r.choices[0].text, 'string');
  assert.equal(r.usage.completion_tokens, 5);
  const stream = await anon().completions.create({ model: 'default', prompt: 'Once', max_tokens: 6, stream: true, seed: 7 });
  const chunks = [];
  for await (const c of stream) chunks.push(c);
  assert.ok(chunks.length >= 2);
  assert.equal(chunks[chunks.length - 1].choices[0].finish_reason, 'length');
  assert.equal(chunks[0].usage, undefined);  // no include_usage: no usage field
});

test('embeddings of a string and of an array, in both encodings', async () => {
  const one = await anon().embeddings.create({ model: 'default', input: 'hello world' });  // SDK asks for base64
  assert.equal(one.object, 'list');
  assert.equal(one.data.length, 1);
  assert.equal(one.data[0].embedding.length, 64);
  const norm = Math.sqrt(one.data[0].embedding.reduce((s, v) => s + v * v, 0));
  assert.ok(Math.abs(norm - 1) < 1e-3, `norm ${norm}`);
  assert.ok(one.usage.prompt_tokens > 0);
  const many = await anon().embeddings.create({ model: 'local/tiny', input: ['a', 'b', 'hello world'],
                                                encoding_format: 'float' });
  assert.deepEqual(many.data.map((d) => d.index), [0, 1, 2]);
  for (let i = 0; i < 64; i++) assert.ok(Math.abs(many.data[2].embedding[i] - one.data[0].embedding[i]) < 1e-6);
});

test('errors come back as the SDK error classes', async () => {
  await assert.rejects(
    anon().chat.completions.create({ model: 'default', messages: [{ role: 'user', content: 'x' }], temperature: 5 }),
    (e) => e instanceof OpenAI.BadRequestError && e.status === 400 && e.param === 'temperature');
  await assert.rejects(anon().chat.completions.create({ model: 'default', messages: [] }),
                       (e) => e instanceof OpenAI.BadRequestError && e.param === 'messages');
  await assert.rejects(
    anon().chat.completions.create({ model: 'no-such-model', messages: [{ role: 'user', content: 'x' }] }),
    (e) => e instanceof OpenAI.NotFoundError && e.status === 404 && e.code === 'model_not_found');
  await assert.rejects(anon().embeddings.create({ model: 'default', input: [1, 2, 3] }),
                       (e) => e instanceof OpenAI.BadRequestError);
  const stranger = new OpenAI({ baseURL: `${base}/v1`, apiKey: 'aifn_inv_not_a_real_token', maxRetries: 0 });
  await assert.rejects(stranger.models.list(), (e) => e instanceof OpenAI.AuthenticationError && e.status === 401);
  // Over max_request: refused from the Content-Length, before the body is read.
  const big = await new Promise((resolve, reject) => {
    const req = http.request(`${base}/v1/chat/completions`,
                             { method: 'POST', headers: { 'Content-Length': String(7 * 1024 * 1024) } },
                             (res) => { res.resume(); resolve(res.statusCode); });
    req.on('error', reject);
    req.flushHeaders();
  });
  assert.equal(big, 413);
  const bad = await fetch(`${base}/v1/chat/completions`, { method: 'POST', body: '{"model": ' });
  assert.equal(bad.status, 400);
  assert.equal((await bad.json()).error.type, 'invalid_json');
});

test('a function streams a chat answer through the SDK with its invocation token', async () => {
  const res = await fetch(`${base}/fn/chat`, { method: 'POST', body: JSON.stringify({ message: 'hi', max_tokens: 10, seed: 7 }) });
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type'), /^text\/event-stream/);
  const data = await sseData(res);
  assert.equal(data[data.length - 1], '[DONE]');
  const events = data.slice(0, -1).map((d) => JSON.parse(d));
  assert.equal(events.filter((e) => e.error).length, 0, JSON.stringify(events));
  assert.ok(events.filter((e) => e.token !== undefined).length >= 1);
  const usage = events.find((e) => e.usage).usage;
  assert.equal(usage.completion_tokens, 10);
  // The tokens are on the function call's usage row, priced.
  const row = await eventually(async () => (await usageRows('function')).find((r) => r.function === 'chat'));
  assert.equal(row.tokens_out, 10);
  assert.equal(row.tokens_in, usage.prompt_tokens);
  assert.ok(row.cost >= (usage.prompt_tokens * 1000 + 10 * 2000) / 1e6);
});

test('a token works only during its call and only for listed models', async () => {
  const call = async (event) => {
    const r = await fetch(`${base}/fn/probe`, { method: 'POST', body: JSON.stringify(event) });
    assert.equal(r.status, 200);
    return r.json();
  };
  const ok = await call({ model: 'default', max_tokens: 7 });
  assert.equal(ok.ok, true, JSON.stringify(ok));
  assert.equal(ok.usage.completion_tokens, 7);
  const denied = await call({ model: 'local/tiny', max_tokens: 3 });
  assert.deepEqual([denied.ok, denied.status, denied.type], [false, 403, 'PermissionDeniedError']);
  // After the call: the same token is refused.
  const late = new OpenAI({ baseURL: ok.modelsUrl, apiKey: ok.token, maxRetries: 0 });
  await assert.rejects(late.models.list(), (e) => e instanceof OpenAI.AuthenticationError);
  await assert.rejects(
    late.chat.completions.create({ model: 'default', messages: [{ role: 'user', content: 'x' }], max_tokens: 2 }),
    (e) => e.status === 401);
  const row = await eventually(async () => {
    const r = (await usageRows('function')).find((x) => x.function === 'probe');
    return r && r.calls >= 2 ? r : null;
  });
  assert.equal(row.tokens_out, 7);  // the refused call used none
  assert.ok(!log.includes(ok.token), 'the token must never be logged');
});

test('a prompt function streams its answer as text and meters its tokens', async () => {
  const res = await fetch(`${base}/fn/summarize`, { method: 'POST', body: JSON.stringify({ text: 'The cat sat on the mat.' }) });
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type'), /^text\/plain/);
  assert.ok((await res.text()).length > 0);
  const bad = await fetch(`${base}/fn/summarize`, { method: 'POST', body: '{}' });
  assert.equal(bad.status, 422);
  assert.equal((await bad.json()).error.type, 'invalid_input');
  const row = await eventually(async () => (await usageRows('function')).find((r) => r.function === 'summarize'));
  assert.equal(row.calls, 2);
  assert.ok(row.tokens_out > 0 && row.tokens_out <= 64, `tokens_out ${row.tokens_out}`);
  assert.ok(row.tokens_in > 5);
});

test('a JSON prompt function whose model writes no JSON fails with 502 upstream_error', async () => {
  const res = await fetch(`${base}/fn/extract`, { method: 'POST', body: JSON.stringify({ name: 'Ada' }) });
  assert.equal(res.status, 502);
  const err = (await res.json()).error;
  assert.equal(err.type, 'upstream_error');
  assert.match(err.message, /not valid JSON/);
  const row = await eventually(async () => (await usageRows('function')).find((r) => r.function === 'extract'));
  assert.equal(row.tokens_out, 8);  // the tokens were used all the same
  assert.equal(row.errors, 1);
});

test('a prompt function past its timeout stops generating and answers 504', async () => {
  const t0 = Date.now();
  const res = await fetch(`${base}/fn/slowjson`, { method: 'POST', body: '{"x": 1}' });
  assert.equal(res.status, 504);
  assert.equal((await res.json()).error.type, 'timeout');
  const row = await eventually(async () => (await usageRows('function')).find((r) => r.function === 'slowjson'));
  assert.ok(row.tokens_out > 0 && row.tokens_out < 3000, `tokens_out ${row.tokens_out} after ${Date.now() - t0} ms`);
});

test('an abandoned stream stops generating and bills what was produced', async (t) => {
  const zero = { calls: 0, tokens_out: 0, errors: 0 };
  const before = (await usageRows('model')).find((r) => r.model === 'slow/slow') || zero;
  const ac = new AbortController();
  const started = Date.now();
  const res = await fetch(`${base}/v1/chat/completions`, {
    method: 'POST', signal: ac.signal,
    body: JSON.stringify({ model: 'slow/slow', messages: [{ role: 'user', content: 'go' }], max_tokens: 3000,
                           temperature: 1, seed: 3, stream: true }) });
  assert.equal(res.status, 200);
  const reader = res.body.getReader();
  let seen = '';
  while (!seen.includes('"content":"') || seen.split('data: ').length < 4) {
    const { value, done } = await reader.read();
    if (done) break;
    seen += Buffer.from(value).toString();
  }
  ac.abort();
  const row = await eventually(async () => {
    const r = (await usageRows('model')).find((x) => x.model === 'slow/slow');
    return r && r.calls > before.calls ? r : null;
  }, 30000);
  assert.ok(row, 'the abandoned call was not metered');
  const elapsed = Date.now() - started;
  const billed = row.tokens_out - before.tokens_out;
  t.diagnostic(`abandoned after ${seen.length} bytes; billed tokens_out=${billed}; metered after ${elapsed} ms`);
  assert.ok(billed >= 2, `tokens_out ${billed}`);
  assert.ok(billed < 1000, `generation did not stop: tokens_out ${billed} after ${elapsed} ms`);
  assert.equal(row.errors - before.errors, 1);  // recorded as a client disconnect (499)
});

// Last: creating a key ends the open mode for every later request.
test('API keys with the models scope call /v1; their calls are recorded with the key', async () => {
  const made = await fetch(`${base}/admin/keys`, { method: 'POST',
    body: JSON.stringify({ name: 'sdk', scopes: ['models'], tokens: '100000/min' }) });
  assert.equal(made.status, 201);
  const { key, id } = await made.json();
  const other = await fetch(`${base}/admin/keys`, { method: 'POST', headers: { Authorization: `Bearer ${adminKey()}` },
    body: JSON.stringify({ name: 'fn-only', scopes: ['invoke:probe'] }) });
  const fnOnly = (await other.json()).key;
  await assert.rejects(anon().models.list(), (e) => e instanceof OpenAI.AuthenticationError);
  const wrongScope = new OpenAI({ baseURL: `${base}/v1`, apiKey: fnOnly, maxRetries: 0 });
  await assert.rejects(wrongScope.models.list(), (e) => e instanceof OpenAI.PermissionDeniedError);
  const client = new OpenAI({ baseURL: `${base}/v1`, apiKey: key, maxRetries: 0 });
  const r = await client.chat.completions.create({ model: 'default', messages: [{ role: 'user', content: 'hi' }],
                                                  max_tokens: 4, seed: 7 });
  assert.equal(r.usage.completion_tokens, 4);
  const rows = await eventually(async () => {
    const u = await fetch(`${base}/admin/usage?group_by=key`, { headers: { Authorization: `Bearer ${adminKey()}` } });
    const row = (await u.json()).rows.find((x) => x.key === id);
    return row && row.tokens_out === 4 ? row : null;
  });
  assert.ok(rows, 'no usage row for the key');
});
