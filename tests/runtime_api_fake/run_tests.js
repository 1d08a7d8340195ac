// Runs aifn's bootstraps and examples against the fake Runtime API and checks
// what reaches the endpoint. Exits non-zero on any failure.
//   node run_tests.js [--bench N] [--only SUBSTRING]
'use strict';

const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { runFake } = require('./fake_runtime_api.js');

const root = path.resolve(__dirname, '../..');
const fixtures = path.join(__dirname, 'fixtures');
const ex = (name) => path.join(root, 'examples', name);
const nodeBoot = ['node', [path.join(root, 'runtimes/node/bootstrap.js')]];
const pythons = [...new Set(['python3', '/usr/bin/python3'].filter(hasCommand))];
const pyBoot = (py) => [py, ['-u', path.join(root, 'runtimes/python/bootstrap.py')]];
const ric = path.join(root, 'tests/node/node_modules/aws-lambda-ric/index.mjs');
const helloCpp = path.join(ex('hello-cpp'), 'hello');

const args = process.argv.slice(2);
const benchN = args.includes('--bench') ? Number(args[args.indexOf('--bench') + 1]) || 5000 : 0;
const only = args.includes('--only') ? args[args.indexOf('--only') + 1] : '';

function hasCommand(cmd) {
  if (cmd.includes('/')) return fs.existsSync(cmd);
  return (process.env.PATH || '').split(':').some((d) => fs.existsSync(path.join(d, cmd)));
}

function run([command, baseArgs], cwd, handler, events, extra = {}) {
  return runFake({
    command, args: baseArgs, cwd,
    env: { _HANDLER: handler, ...extra.env },
    events: events.map((e) => (e && e.body !== undefined ? e : { body: e })),
    timeoutMs: extra.timeoutMs ?? 10000,
    repeat: extra.repeat,
  });
}

const cases = [];
const test = (name, fn) => cases.push({ name, fn });

// Streamed chunks that carry data, with their arrival times (ms).
const dataChunks = (inv) => inv.chunks.filter((c) => c.bytes > 0);

function ok(r, i = 0) {
  assert.equal(r.timedOut, false, `timed out; stderr: ${r.stderr}`);
  assert.equal(r.initError, null, `init error: ${r.initError && r.initError.body}`);
  const inv = r.invocations[i];
  assert.ok(inv && inv.kind, `invocation ${i} unanswered; stderr: ${r.stderr}`);
  return inv;
}

function expectError(r, type, message) {
  const inv = ok(r);
  assert.equal(inv.kind, 'error', `expected an error, got ${inv.body}`);
  assert.equal(inv.json.errorType, type);
  if (message) assert.match(inv.json.errorMessage, message);
  assert.ok(Array.isArray(inv.json.trace), 'trace is an array');
  assert.equal(inv.headers['lambda-runtime-function-error-type'], type);
  return inv;
}

function expectInitError(r, type, message) {
  assert.ok(r.initError, `no init error; stderr: ${r.stderr}`);
  assert.equal(r.initError.json.errorType, type, r.initError.body);
  if (message) assert.match(r.initError.json.errorMessage, message);
  assert.equal(r.exitCode, 1);
  assert.equal(r.invocations.length, 0);
}

// Chunks written `gapMs` apart must arrive spread out as they were written, not
// together at the end. Judged on the median gap and the total spread, so one
// late timer on a loaded machine does not fail the test; buffering still does.
function expectSpread(inv, count, gapMs) {
  const chunks = dataChunks(inv);
  assert.ok(chunks.length >= count, `expected >= ${count} separate chunks, got ${chunks.length}`);
  const gaps = chunks.slice(1, count).map((c, i) => c.t - chunks[i].t).sort((a, b) => a - b);
  const median = gaps[Math.floor(gaps.length / 2)];
  assert.ok(median >= gapMs * 0.6, `median gap between chunks ${median.toFixed(1)} ms; expected ~${gapMs}`);
  const spread = chunks[count - 1].t - chunks[0].t;
  assert.ok(spread >= (count - 1) * gapMs * 0.7, `chunks spread over ${spread.toFixed(1)} ms only`);
  const firstDelay = chunks[0].t - inv.tNext;
  assert.ok(firstDelay < spread / 2, `first chunk arrived ${firstDelay.toFixed(1)} ms after /next`);
}

function expectStreamHeaders(inv, contentType) {
  assert.equal(inv.kind, 'response');
  assert.equal(inv.headers['lambda-runtime-function-response-mode'], 'streaming');
  assert.equal(inv.headers['transfer-encoding'], 'chunked');
  assert.equal(inv.headers['content-type'], contentType);
}

function expectTrailerError(inv, type, message) {
  assert.ok(inv.trailers, 'no trailers');
  assert.equal(inv.trailers['lambda-runtime-function-error-type'], type);
  const body = JSON.parse(Buffer.from(inv.trailers['lambda-runtime-function-error-body'], 'base64').toString());
  assert.equal(body.errorType, type);
  assert.match(body.errorMessage, message);
}

// ---- Node bootstrap ----

test('node: hello-node answers with the name, or world', async () => {
  const r = await run(nodeBoot, ex('hello-node'), 'index.handler', [{ name: 'Ada' }, {}]);
  assert.deepEqual(ok(r, 0).json, { message: 'hello, Ada' });
  assert.deepEqual(ok(r, 1).json, { message: 'hello, world' });
  assert.equal(r.invocations[0].headers['content-type'], 'application/json');
  assert.deepEqual(r.unknownRequests, []);
});

test('node: context carries Lambda fields and context.aifn', async () => {
  const r = await run(nodeBoot, fixtures, 'cases.context', [{ x: 1 }]);
  const c = ok(r).json;
  assert.equal(c.awsRequestId, 'req-0');
  assert.equal(c.functionName, 'fake');
  assert.equal(c.functionVersion, '1');
  assert.equal(c.memoryLimitInMB, '128');
  assert.match(c.invokedFunctionArn, /^arn:aws:lambda:/);
  assert.equal(c.logGroupName, '/aifn/fake');
  assert.equal(c.logStreamName, 'fake-stream');
  assert.ok(c.remaining > 25000 && c.remaining <= 30000, `remaining ${c.remaining}`);
  assert.deepEqual(c.aifn, { token: 'tok-0', modelsUrl: 'http://127.0.0.1:1/v1' });
  assert.deepEqual(c.event, { x: 1 });
});

test('node: callback, sync, undefined and string results', async () => {
  let r = await run(nodeBoot, fixtures, 'cases.callback', [{ n: 7 }]);
  assert.deepEqual(ok(r).json, { via: 'callback', n: 7 });
  r = await run(nodeBoot, fixtures, 'cases.sync', [{}]);
  assert.deepEqual(ok(r).json, { via: 'sync' });
  r = await run(nodeBoot, fixtures, 'cases.undef', [{}]);
  assert.equal(ok(r).body, 'null');
  r = await run(nodeBoot, fixtures, 'cases.str', [{}]);
  assert.equal(ok(r).body, '"hi \\"there\\""');
});

test('node: .mjs handler loads through import()', async () => {
  const r = await run(nodeBoot, fixtures, 'esm.handler', [{ name: 'Ada' }]);
  assert.deepEqual(ok(r).json, { esm: true, name: 'Ada' });
});

test('node: a .js file in a "type": "module" package loads through import()', async () => {
  const r = await run(nodeBoot, path.join(fixtures, 'esm-pkg'), 'index.handler', [{ name: 'Ada' }]);
  assert.deepEqual(ok(r).json, { esm: 'pkg', name: 'Ada' });
});

test('node: a thrown error becomes /error with type, message and trace', async () => {
  let r = await run(nodeBoot, fixtures, 'cases.throws', [{}, {}]);
  const inv = expectError(r, 'RangeError', /^boom$/);
  assert.match(inv.json.trace[0], /RangeError: boom/);
  assert.equal(ok(r, 1).kind, 'error', 'the runtime keeps serving after an error');
  r = await run(nodeBoot, fixtures, 'cases.callbackError', [{}]);
  expectError(r, 'TypeError', /bad callback/);
  r = await run(nodeBoot, fixtures, 'cases.throwsString', [{}]);
  expectError(r, 'string', /plain string/);
});

test('node: an event that is not JSON is an UnmarshalError', async () => {
  const r = await run(nodeBoot, fixtures, 'cases.context', [{ body: 'not json' }]);
  expectError(r, 'Runtime.UnmarshalError');
});

test('node: an error outside the handler reports and exits', async () => {
  const r = await run(nodeBoot, fixtures, 'cases.crash', [{}]);
  expectError(r, 'Error', /thrown from a timer/);
  assert.equal(r.exitCode, 1);
});

test('node: console.log reaches stdout', async () => {
  const r = await run(nodeBoot, fixtures, 'cases.log', [{ n: 7 }]);
  ok(r);
  assert.match(r.stdout, /log-line 7/);
});

test('node: init errors (missing file, missing export, throw at load)', async () => {
  expectInitError(await run(nodeBoot, fixtures, 'nope.handler', [{}]), 'Runtime.ImportModuleError', /nope/);
  expectInitError(await run(nodeBoot, fixtures, 'cases.nope', [{}]), 'Runtime.HandlerNotFound', /cases.nope/);
  expectInitError(await run(nodeBoot, fixtures, 'init_throw.handler', [{}]), 'Error', /failed at load/);
  expectInitError(await run(nodeBoot, fixtures, 'nodot', [{}]), 'Runtime.MalformedHandlerName');
});

test('node: AIFN_CONCURRENCY=3 runs three calls at once', async () => {
  const r = await run(nodeBoot, fixtures, 'cases.sleep', [{ ms: 300 }, { ms: 300 }, { ms: 300 }],
    { env: { AIFN_CONCURRENCY: '3' } });
  for (let i = 0; i < 3; i++) assert.deepEqual(ok(r, i).json, { slept: 300 });
  const span = Math.max(...r.invocations.map((i) => i.tDone)) - r.invocations[0].tNext;
  assert.ok(span < 550, `three 300 ms calls took ${span.toFixed(0)} ms: not parallel`);
  assert.equal(r.maxWaitingNext, 3);
});

test('node: stream writes 100 ms apart arrive 100 ms apart', async () => {
  const r = await run(nodeBoot, fixtures, 'cases.stream100', [{}]);
  const inv = ok(r);
  expectStreamHeaders(inv, 'text/plain');
  assert.equal(inv.body, 'part 0\npart 1\npart 2\n');
  assert.equal(inv.trailers, null);
  expectSpread(inv, 3, 100);
});

test('node: stream-node example streams SSE as it goes', async () => {
  const r = await run(nodeBoot, ex('stream-node'), 'index.handler', [{}]);
  const inv = ok(r);
  expectStreamHeaders(inv, 'text/event-stream');
  assert.equal(inv.body.split('\n\n').filter(Boolean).length, 11);
  assert.ok(inv.body.endsWith('data: [DONE]\n\n'));
  expectSpread(inv, 10, 50);
});

test('node: an error mid-stream arrives in the trailers', async () => {
  const r = await run(nodeBoot, fixtures, 'cases.streamError', [{}, {}]);
  const inv = ok(r);
  expectStreamHeaders(inv, 'application/octet-stream');
  assert.equal(inv.body, 'first ');
  expectTrailerError(inv, 'Error', /broke mid-stream/);
  assert.equal(ok(r, 1).kind, 'response', 'the runtime keeps serving after a stream error');
});

test('node: an error right after a burst of writes still follows all of them', async () => {
  const r = await run(nodeBoot, fixtures, 'cases.streamBurstError', [{}, {}]);
  const expected = Array.from({ length: 200 }, (_, i) => `x${i},`).join('');
  assert.equal(ok(r).body, expected);
  expectTrailerError(ok(r), 'Error', /after the burst/);
  assert.equal(ok(r, 1).body, expected);
});

test('node: streaming edge cases (early error, HttpResponseStream, no end())', async () => {
  let r = await run(nodeBoot, fixtures, 'cases.streamErrorEarly', [{}]);
  expectError(r, 'Error', /broke before writing/);
  r = await run(nodeBoot, fixtures, 'cases.streamHttp', [{}]);
  expectStreamHeaders(ok(r), 'application/x-ndjson');
  assert.equal(ok(r).body, '{"a":1}\n');
  r = await run(nodeBoot, fixtures, 'cases.streamNoEnd', [{}, {}]);
  assert.equal(ok(r).body, 'not ended');
  assert.equal(ok(r, 1).body, 'not ended');
});

test('node: stream.pipeline into the response stream streams too', async () => {
  const r = await run(nodeBoot, fixtures, 'cases.streamPipeline', [{}, {}]);
  assert.equal(ok(r).body, 'p0;p1;p2;');
  assert.equal(ok(r, 1).body, 'p0;p1;p2;');
  expectSpread(ok(r), 3, 60);
});

test('node: slow example sleeps event.ms', async () => {
  const r = await run(nodeBoot, ex('slow'), 'index.handler', [{ ms: 10 }]);
  assert.deepEqual(ok(r).json, { slept_ms: 10 });
});

// ---- Python bootstrap ----

for (const py of pythons) {
  const boot = pyBoot(py);
  const tag = `python (${py})`;

  test(`${tag}: hello-python answers with the name, or world`, async () => {
    const r = await run(boot, ex('hello-python'), 'main.handler', [{ name: 'Ada' }, {}]);
    assert.deepEqual(ok(r, 0).json, { message: 'hello, Ada' });
    assert.deepEqual(ok(r, 1).json, { message: 'hello, world' });
    assert.deepEqual(r.unknownRequests, []);
  });

  test(`${tag}: context carries Lambda fields and context.aifn`, async () => {
    const r = await run(boot, fixtures, 'cases.context', [{ x: 1 }]);
    const c = ok(r).json;
    assert.equal(c.aws_request_id, 'req-0');
    assert.equal(c.function_name, 'fake');
    assert.equal(c.function_version, '1');
    assert.equal(c.memory_limit_in_mb, '128');
    assert.match(c.invoked_function_arn, /^arn:aws:lambda:/);
    assert.equal(c.log_group_name, '/aifn/fake');
    assert.equal(c.log_stream_name, 'fake-stream');
    assert.ok(c.remaining > 25000 && c.remaining <= 30000, `remaining ${c.remaining}`);
    assert.equal(c.token, 'tok-0');
    assert.equal(c.models_url, 'http://127.0.0.1:1/v1');
    assert.deepEqual(c.event, { x: 1 });
  });

  test(`${tag}: errors, None, unserializable results, print`, async () => {
    let r = await run(boot, fixtures, 'cases.raises', [{}, {}]);
    const inv = expectError(r, 'ValueError', /^boom$/);
    assert.ok(inv.json.trace.some((l) => l.includes('cases.py')), 'trace names the file');
    assert.equal(ok(r, 1).kind, 'error');
    r = await run(boot, fixtures, 'cases.unserializable', [{}]);
    expectError(r, 'Runtime.MarshalError');
    r = await run(boot, fixtures, 'cases.none', [{}]);
    assert.equal(ok(r).body, 'null');
    r = await run(boot, fixtures, 'cases.context', [{ body: '{"x":' }]);
    expectError(r, 'Runtime.UnmarshalError');
    r = await run(boot, fixtures, 'cases.log', [{ n: 7 }]);
    ok(r);
    assert.match(r.stdout, /log-line 7/);
  });

  test(`${tag}: init errors (missing module, missing function, raise, syntax)`, async () => {
    expectInitError(await run(boot, fixtures, 'nope.handler', [{}]), 'Runtime.ImportModuleError', /nope/);
    expectInitError(await run(boot, fixtures, 'cases.nope', [{}]), 'Runtime.HandlerNotFound', /nope/);
    expectInitError(await run(boot, fixtures, 'init_raise.handler', [{}]), 'RuntimeError', /failed at import/);
    expectInitError(await run(boot, fixtures, 'syntax_error.handler', [{}]), 'Runtime.UserCodeSyntaxError');
  });

  test(`${tag}: stream-python example streams as it yields`, async () => {
    const r = await run(boot, ex('stream-python'), 'main.handler', [{}]);
    const inv = ok(r);
    expectStreamHeaders(inv, 'text/event-stream');
    assert.ok(inv.body.startsWith('data: chunk 0\n\n') && inv.body.endsWith('data: [DONE]\n\n'));
    expectSpread(inv, 10, 50);
  });

  test(`${tag}: streamed errors, objects, returned generators`, async () => {
    let r = await run(boot, fixtures, 'cases.stream_error', [{}, {}]);
    const inv = ok(r);
    expectStreamHeaders(inv, 'text/plain; charset=utf-8');
    assert.equal(inv.body, 'first ');
    expectTrailerError(inv, 'KeyError', /broke mid-stream/);
    assert.equal(ok(r, 1).body, 'first ', 'the runtime keeps serving after a stream error');
    r = await run(boot, fixtures, 'cases.stream_error_early', [{}]);
    expectError(r, 'RuntimeError', /broke before yielding/);
    r = await run(boot, fixtures, 'cases.stream_dicts', [{}]);
    expectStreamHeaders(ok(r), 'application/x-ndjson');
    assert.equal(ok(r).body, '{"a": 1}\n[1, 2]\n');
    r = await run(boot, fixtures, 'cases.stream_returned', [{}]);
    assert.equal(ok(r).body, '0,1,2,');
  });

  test(`${tag}: AIFN_CONCURRENCY=3 runs three calls at once`, async () => {
    const r = await run(boot, fixtures, 'cases.sleep', [{ ms: 300 }, { ms: 300 }, { ms: 300 }],
      { env: { AIFN_CONCURRENCY: '3' } });
    for (let i = 0; i < 3; i++) assert.deepEqual(ok(r, i).json, { slept: 300 });
    const span = Math.max(...r.invocations.map((i) => i.tDone)) - r.invocations[0].tNext;
    assert.ok(span < 550, `three 300 ms calls took ${span.toFixed(0)} ms: not parallel`);
  });
}

// ---- C++ exec example ----

test('exec: hello-cpp answers with the name, or world; bad JSON is an error', async () => {
  assert.ok(fs.existsSync(helloCpp), `${helloCpp} is not built (cmake --build … --target hello-cpp)`);
  const r = await run([helloCpp, []], ex('hello-cpp'), '', [{ name: 'Ada "A"' }, {}, { body: 'nope' }]);
  assert.deepEqual(ok(r, 0).json, { message: 'hello, Ada "A"' });
  assert.deepEqual(ok(r, 1).json, { message: 'hello, world' });
  assert.equal(ok(r, 2).json.errorType, 'Runtime.UnmarshalError');
});

test('exec: hello-cpp with AIFN_CONCURRENCY=3 polls /next three times at once, one process', async () => {
  const names = ['A', 'B', 'C', 'D', 'E', 'F', 'G'];
  const r = await run([helloCpp, []], ex('hello-cpp'), '', names.map((name) => ({ name })),
    { env: { AIFN_CONCURRENCY: '3' } });
  for (const [i, name] of names.entries()) assert.deepEqual(ok(r, i).json, { message: `hello, ${name}` });
  assert.equal(r.maxWaitingNext, 3);
  assert.deepEqual(r.unknownRequests, []);
});

// ---- The official client, for compatibility ----

test('aws-lambda-ric runs examples/hello-node unchanged', async () => {
  assert.ok(fs.existsSync(ric), 'aws-lambda-ric is not installed (npm ci in tests/node)');
  const r = await run(['node', [ric]], ex('hello-node'), 'index.handler', [{ name: 'Ada' }, {}]);
  assert.deepEqual(ok(r, 0).json, { message: 'hello, Ada' }, r.stderr);
  assert.deepEqual(ok(r, 1).json, { message: 'hello, world' });
});

// Under runtime = "exec", aifn sets _HANDLER to the command line itself; the
// RIC reads its handler only from _HANDLER, so the command line must set it.
test('aws-lambda-ric as an exec command line: env _HANDLER=index.handler node …/index.mjs', async () => {
  const r = await runFake({
    command: 'env', args: ['_HANDLER=index.handler', 'node', ric], cwd: ex('hello-node'),
    env: { _HANDLER: `env _HANDLER=index.handler node ${ric}` }, events: [{ body: { name: 'Ada' } }],
  });
  assert.deepEqual(ok(r).json, { message: 'hello, Ada' }, r.stderr);
});

test('aws-lambda-ric streams examples/stream-node the same way', async () => {
  const r = await run(['node', [ric]], ex('stream-node'), 'index.handler', [{}]);
  const inv = ok(r);
  expectStreamHeaders(inv, 'text/event-stream');
  expectSpread(inv, 10, 50);
});

test('aws-lambda-ric reports thrown and mid-stream errors as our bootstrap does', async () => {
  let r = await run(['node', [ric]], fixtures, 'cases.throws', [{}]);
  assert.equal(ok(r).kind, 'error');
  assert.equal(ok(r).json.errorType, 'RangeError');
  r = await run(['node', [ric]], fixtures, 'cases.streamError', [{}]);
  assert.equal(ok(r).body, 'first ');
  expectTrailerError(ok(r), 'Error', /broke mid-stream/);
});

// ---- Server quirks every client must survive ----

const quirkClients = [
  ['node', nodeBoot, ex('hello-node'), 'index.handler'],
  ...pythons.slice(-1).map((py) => ['python', pyBoot(py), ex('hello-python'), 'main.handler']),
  ['cpp', [helloCpp, []], ex('hello-cpp'), ''],
];
for (const quirk of ['chunkedNext', 'closeEach', 'dropAfterAnswer']) {
  for (const [label, boot, cwd, handler] of quirkClients) {
    test(`quirk ${quirk}: ${label} keeps answering`, async () => {
      const r = await runFake({
        command: boot[0], args: boot[1], cwd, env: { _HANDLER: handler },
        events: [{ body: { name: 'A' } }, { body: { name: 'B' } }, { body: { name: 'C' } }],
        timeoutMs: 5000, [quirk]: true,
      });
      for (const [i, name] of ['A', 'B', 'C'].entries()) {
        assert.deepEqual(ok(r, i).json, { message: `hello, ${name}` }, r.stderr);
      }
    });
  }
}

test('quirk: node streams survive a server that closes after each answer', async () => {
  const r = await runFake({
    command: nodeBoot[0], args: nodeBoot[1], cwd: fixtures, env: { _HANDLER: 'cases.streamNoEnd' },
    events: [{ body: {} }, { body: {} }], timeoutMs: 5000, closeEach: true,
  });
  assert.equal(ok(r, 0).body, 'not ended');
  assert.equal(ok(r, 1).body, 'not ended');
});

// aifn cuts a stream off when the call ends early; the runtime must live on.
for (const [label, boot, cwd, handler] of [
  ['node', nodeBoot, ex('stream-node'), 'index.handler'],
  ...pythons.slice(-1).map((py) => ['python', pyBoot(py), ex('stream-python'), 'main.handler']),
]) {
  test(`quirk abortStreamOf: ${label} serves the next call after a stream is cut off`, async () => {
    const r = await runFake({
      command: boot[0], args: boot[1], cwd, env: { _HANDLER: handler },
      events: [{ body: {} }, { body: {} }], timeoutMs: 5000, abortStreamOf: 'req-0',
    });
    assert.equal(ok(r, 0).kind, 'aborted');
    assert.equal(ok(r, 1).kind, 'response', r.stderr);
    assert.ok(ok(r, 1).body.endsWith('data: [DONE]\n\n'));
    assert.equal(r.exitCode, null, 'the runtime must not exit');
  });
}

// ---- Benchmarks: calls/s through one instance, fake endpoint included ----

if (benchN) {
  const targets = [
    ['node', nodeBoot, ex('hello-node'), 'index.handler'],
    ...pythons.map((py) => [`python ${py}`, pyBoot(py), ex('hello-python'), 'main.handler']),
    ['cpp', [helloCpp, []], ex('hello-cpp'), ''],
    ['aws-lambda-ric', ['node', [ric]], ex('hello-node'), 'index.handler'],
  ];
  for (const [label, boot, cwd, handler] of targets) {
    test(`bench: ${label}`, async () => {
      const r = await run(boot, cwd, handler, [{ name: 'Ada' }], { repeat: benchN, timeoutMs: 120000 });
      ok(r);
      const perSec = (benchN / r.benchMs) * 1000;
      console.log(`BENCH runtime="${label}" calls=${benchN} ms=${r.benchMs.toFixed(0)} ` +
        `calls_per_s=${perSec.toFixed(0)} us_per_call=${((r.benchMs * 1000) / benchN).toFixed(1)} ` +
        `runtime_cpu_us_per_call=${((r.childCpuMs * 1000) / benchN).toFixed(1)} ` +
        `runtime_user_us_per_call=${((r.childUserMs * 1000) / benchN).toFixed(1)} ` +
        `first_next_ms=${r.firstNextMs.toFixed(1)}`);
    });
  }
}

(async () => {
  let failed = 0;
  for (const { name, fn } of cases) {
    if (only && !name.includes(only)) continue;
    const t = Date.now();
    try {
      await fn();
      console.log(`PASS ${name} (${Date.now() - t} ms)`);
    } catch (err) {
      failed++;
      console.log(`FAIL ${name}\n  ${String(err.stack || err).split('\n').slice(0, 6).join('\n  ')}`);
    }
  }
  console.log(failed ? `${failed} FAILED` : 'ALL PASSED');
  process.exit(failed ? 1 : 0);
})();
