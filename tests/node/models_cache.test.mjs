// The model gateway's exact-match cache, through the official `openai` SDK:
// deterministic requests (temperature 0 or a seed) are answered again from
// the cache (as a stream when the caller streams), identical ones in flight
// share one model call, tenants never share answers, and hits are metered.
// Also a key's token rate on model calls. Run by ctest (models_cache) with
// AIFN_BINARY and AIFN_GEN_MODEL set.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import OpenAI from 'openai';

const bin = process.env.AIFN_BINARY;
const gen = process.env.AIFN_GEN_MODEL;
let dir;
let server;
let base;

const client = (key = null) => new OpenAI({ baseURL: `${base}/v1`, apiKey: key || 'unused', maxRetries: 0,
                                             defaultHeaders: key ? {} : { Authorization: null } });
const ask = (extra) => ({ model: 'default', messages: [{ role: 'user', content: 'tell me about caches' }],
                          max_tokens: 24, ...extra });

async function usageByModel(headers = {}) {
  const r = await fetch(`${base}/admin/usage?group_by=model`, { headers });
  return (await r.json()).rows.find((x) => x.model === 'local/tiny');
}

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'aifn-models-cache-'));
  execFileSync(gen, ['--out', path.join(dir, 'tiny.gguf'), '--type', 'q8_0', '--seed', '3']);
  fs.writeFileSync(path.join(dir, 'aifn.toml'), `
[[providers]]
name = "local"
kind = "gguf"
path = "${path.join(dir, 'tiny.gguf')}"
threads = 2
[[models]]
name = "default"
route = ["local/tiny"]
`);
  // A prompt function whose answers are cached per input ([cache] ttl).
  fs.mkdirSync(path.join(dir, 'functions', 'blurb'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'functions', 'blurb', 'function.toml'), `
name = "blurb"
runtime = "prompt"
[prompt]
model = "default"
template = "Write a blurb about {{topic}}"
max_tokens = 16
temperature = 0.7
[cache]
ttl = "1h"
`);
  server = spawn(bin, ['serve', '--listen', '127.0.0.1:0', '--functions', path.join(dir, 'functions'),
                       '--data', path.join(dir, 'data'), '--config', path.join(dir, 'aifn.toml')],
                 { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  base = await new Promise((resolve, reject) => {
    const onLog = (b) => {
      log += b.toString();
      const m = log.match(/event=listening url=(http:\/\/[0-9.:]+)/);
      if (m) resolve(m[1]);
    };
    server.stdout.on('data', onLog);
    server.stderr.on('data', onLog);
    server.on('exit', () => reject(new Error('aifn exited: ' + log)));
  });
});

after(() => {
  server.kill('SIGTERM');
  fs.rmSync(dir, { recursive: true, force: true });
});

test('a deterministic chat is answered from the cache, also as a stream', async () => {
  const c = client();
  const first = await c.chat.completions.create(ask({ temperature: 0 })).withResponse();
  assert.equal(first.response.headers.get('x-aifn-cache'), 'miss');
  const again = await c.chat.completions.create(ask({ temperature: 0 })).withResponse();
  assert.equal(again.response.headers.get('x-aifn-cache'), 'hit');
  assert.equal(again.data.choices[0].message.content, first.data.choices[0].message.content);
  assert.deepEqual(again.data.usage, first.data.usage);  // the answer's own counts

  // The same request streamed: replayed as SSE, same text, usage chunk included.
  const stream = await c.chat.completions.create(
    ask({ temperature: 0, stream: true, stream_options: { include_usage: true } })).withResponse();
  assert.equal(stream.response.headers.get('x-aifn-cache'), 'hit');
  let text = '';
  let usage = null;
  for await (const chunk of stream.data) {
    if (chunk.choices[0]?.delta?.content) text += chunk.choices[0].delta.content;
    if (chunk.usage) usage = chunk.usage;
  }
  assert.equal(text, first.data.choices[0].message.content);
  assert.equal(usage.completion_tokens, first.data.usage.completion_tokens);

  // Any sampling difference is another answer; sampling at random is never cached.
  const other = await c.chat.completions.create(ask({ temperature: 0, max_tokens: 25 })).withResponse();
  assert.equal(other.response.headers.get('x-aifn-cache'), 'miss');
  const random = await c.chat.completions.create(ask({ temperature: 0.9 })).withResponse();
  assert.equal(random.response.headers.get('x-aifn-cache'), null);

  const row = await usageByModel();
  assert.equal(row.cache_hits, 2);
  // Hits bill no tokens: three model calls' worth (first, other, random).
  const billed = first.data.usage.completion_tokens + other.data.usage.completion_tokens +
                 random.data.usage.completion_tokens;
  assert.equal(row.tokens_out, billed);
});

test('identical requests in flight share one model call', async () => {
  const c = client();
  const calls = await Promise.all([1, 2, 3, 4].map(() =>
    c.completions.create({ model: 'default', prompt: 'coalesce me', max_tokens: 48, seed: 11 }).withResponse()));
  const states = calls.map((x) => x.response.headers.get('x-aifn-cache')).sort();
  assert.deepEqual(states, ['hit', 'hit', 'hit', 'miss']);
  const texts = new Set(calls.map((x) => x.data.choices[0].text));
  assert.equal(texts.size, 1);
});

test('a prompt function with [cache] ttl answers a repeated input from the cache', async () => {
  const call = (body) => fetch(`${base}/fn/blurb`, { method: 'POST', body: JSON.stringify(body),
                                                      headers: { 'Content-Type': 'application/json' } });
  const first = await call({ topic: 'rivers' });
  assert.equal(first.status, 200);
  assert.equal(first.headers.get('x-aifn-cache'), 'miss');
  const text = await first.text();
  const again = await call({ topic: 'rivers' });
  assert.equal(again.headers.get('x-aifn-cache'), 'hit');
  assert.equal(await again.text(), text);  // temperature 0.7: only the cache gives the same text
  const other = await call({ topic: 'lakes' });
  assert.equal(other.headers.get('x-aifn-cache'), 'miss');
  await other.text();
  const r = await fetch(`${base}/admin/usage?group_by=function`);
  const row = (await r.json()).rows.find((x) => x.function === 'blurb');
  assert.equal(row.calls, 3);
  assert.equal(row.cache_hits, 1);
});

test('tenants never see each other\'s answers', async () => {
  // Creating keys makes this loopback server require them from now on.
  const mk = async (name) => {
    const admin = { 'Content-Type': 'application/json' };
    const keyFile = path.join(dir, 'data', 'admin.key');  // written once the first key exists
    if (fs.existsSync(keyFile)) admin.Authorization = `Bearer ${fs.readFileSync(keyFile, 'utf8').trim()}`;
    const r = await fetch(`${base}/admin/keys`, { method: 'POST', headers: admin,
                                                  body: JSON.stringify({ name, scopes: ['models'] }) });
    assert.equal(r.status, 201);
    return (await r.json()).key;
  };
  const a = await mk('tenant-a');
  const b = await mk('tenant-b');
  const req = ask({ seed: 5, messages: [{ role: 'user', content: 'per tenant' }] });
  const a1 = await client(a).chat.completions.create(req).withResponse();
  const a2 = await client(a).chat.completions.create(req).withResponse();
  const b1 = await client(b).chat.completions.create(req).withResponse();
  assert.equal(a1.response.headers.get('x-aifn-cache'), 'miss');
  assert.equal(a2.response.headers.get('x-aifn-cache'), 'hit');
  assert.equal(b1.response.headers.get('x-aifn-cache'), 'miss');
});

test('a key\'s token rate limits its model calls with 429 rate_limited', async () => {
  const keyFile = path.join(dir, 'data', 'admin.key');
  const admin = { 'Content-Type': 'application/json', Authorization: `Bearer ${fs.readFileSync(keyFile, 'utf8').trim()}` };
  const r = await fetch(`${base}/admin/keys`, { method: 'POST', headers: admin,
                                                body: JSON.stringify({ name: 'frugal', scopes: ['models'],
                                                                       tokens: '40/min' }) });
  const key = (await r.json()).key;
  const c = client(key);
  const req = ask({ temperature: 0.9, max_tokens: 24 });  // not cacheable: every call reaches the model
  await c.chat.completions.create(req);
  await assert.rejects(c.chat.completions.create(req), (err) => {
    assert.equal(err.status, 429);
    assert.equal(err.error?.type ?? err.type, 'rate_limited');
    assert.ok(Number(err.headers['retry-after']) >= 1);
    return true;
  });
});
