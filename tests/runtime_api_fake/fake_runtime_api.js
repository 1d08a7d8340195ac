// A fake AWS Lambda Runtime API endpoint for testing bootstraps without aifn.
//
// runFake() starts an HTTP server on a loopback port, spawns the runtime
// process with the Lambda env pointing at it, hands out the queued events on
// /next, and records every answer: buffered bodies, streamed chunks with
// their arrival times, trailers, errors and init errors. It resolves once
// every event is answered (or the process exits, or the time limit passes).
//
// CLI: _HANDLER=… node fake_runtime_api.js EVENTS.json -- COMMAND ARGS...  (prints JSON)
'use strict';

const http = require('node:http');
const { spawn } = require('node:child_process');

const kBase = '/2018-06-01/runtime';

// options: { command, args, cwd, env (extra vars), events: [ {body, deadlineMs?} ],
//   repeat (serve events[0] this many times, keeping only counts: a benchmark),
//   timeoutMs, quietMs (wait after the last answer, to catch stray requests),
//   server quirks a real endpoint may have: chunkedNext (events sent chunked),
//   closeEach (Connection: close on every answer), dropAfterAnswer (the
//   socket is closed right after each answer to a post: a stale keep-alive),
//   abortStreamOf (a request id whose streamed result is cut off at its first chunk) }
function runFake(options) {
  const events = options.events || [];
  const repeat = options.repeat || 0;
  const total = repeat || events.length;
  const t0 = process.hrtime.bigint();
  const now = () => Number(process.hrtime.bigint() - t0) / 1e6;

  const result = {
    invocations: [], initError: null, exitCode: null, signal: null, stdout: '', stderr: '',
    firstNextMs: null, maxWaitingNext: 0, childCpuMs: null, childUserMs: null, unknownRequests: [], timedOut: false, benchMs: null,
  };
  const byId = new Map();
  let served = 0;
  let answered = 0;
  const waiting = new Set();
  let child;
  let finish;
  const done = new Promise((resolve) => { finish = resolve; });

  function serveNext(res) {
    const i = served++;
    const id = `req-${i}`;
    const ev = repeat ? events[0] : events[i];
    const body = typeof ev.body === 'string' ? ev.body : JSON.stringify(ev.body ?? {});
    const deadline = Date.now() + (ev.deadlineMs ?? 30000);
    if (!repeat || i === 0) {
      const inv = { id, tNext: now(), kind: null, headers: null, body: '', chunks: [], trailers: null, tDone: null };
      byId.set(id, inv);
      result.invocations.push(inv);
    }
    const length = options.chunkedNext ? {} : { 'Content-Length': Buffer.byteLength(body) };
    res.writeHead(200, {
      'Content-Type': 'application/json',
      ...length,
      ...(options.closeEach ? { Connection: 'close' } : {}),
      'Lambda-Runtime-Aws-Request-Id': id,
      'Lambda-Runtime-Deadline-Ms': String(deadline),
      'Lambda-Runtime-Invoked-Function-Arn': 'arn:aws:lambda:us-east-1:000000000000:function:fake',
      'Lambda-Runtime-Trace-Id': `Root=1-fake-${i}`,
      'Aifn-Invocation-Token': `tok-${i}`,
    });
    if (options.chunkedNext && body.length > 1) res.write(body.slice(0, 1));
    res.end(options.chunkedNext && body.length > 1 ? body.slice(1) : body);
  }

  function answer(id) {
    answered++;
    if (answered === total) {
      if (repeat) result.benchMs = now() - result.invocations[0].tNext;
      setTimeout(() => stop(), options.quietMs ?? 100);
    }
  }

  const server = http.createServer((req, res) => {
    // RFC 9112 9.6: a server that will close the connection after an answer
    // processes no later request on it. Node calls this handler for each
    // pipelined request as it is parsed, so the fake skips those itself
    // (they would otherwise take an event that is then lost with the socket).
    if (req.socket.fakeClosing) return;
    if (options.closeEach || (options.dropAfterAnswer && req.method === 'POST')) req.socket.fakeClosing = true;
    const url = req.url;
    if (req.method === 'GET' && url === `${kBase}/invocation/next`) {
      if (result.firstNextMs === null) result.firstNextMs = now();
      if (served < total) { serveNext(res); return; }
      // Long poll: nothing more to hand out; hold the request open.
      waiting.add(res);
      result.maxWaitingNext = Math.max(result.maxWaitingNext, waiting.size);
      res.on('close', () => waiting.delete(res));
      return;
    }
    const m = /^\/2018-06-01\/runtime\/(?:invocation\/([^/]+)\/(response|error)|init\/(error))$/.exec(url);
    if (req.method !== 'POST' || !m) {
      result.unknownRequests.push(`${req.method} ${url}`);
      res.writeHead(404).end();
      return;
    }
    const inv = m[1] ? byId.get(m[1]) : null;
    const record = inv || { chunks: [] };
    if (m[1] && !inv && !repeat) {
      result.unknownRequests.push(`${req.method} ${url}`);
    }
    const parts = [];
    const keepChunks = !repeat || inv;
    if (m[1] && m[1] === options.abortStreamOf) {
      // As aifn does when the call has ended (timeout, caller gone): refuse
      // the rest of the body and close the connection.
      req.once('data', () => {
        record.kind = 'aborted';
        record.tDone = now();
        res.writeHead(409, { Connection: 'close', 'Content-Length': 0 });
        res.end(() => req.socket.destroy());
        answer(m[1]);
      });
      return;
    }
    req.on('data', (c) => {
      if (!keepChunks) return;
      parts.push(c);
      record.chunks.push({ t: now(), bytes: c.length, text: c.toString() });
    });
    req.on('end', () => {
      const text = Buffer.concat(parts).toString();
      if (m[3]) {
        result.initError = { headers: req.headers, body: text, json: tryJson(text) };
      } else if (keepChunks) {
        record.kind = m[2];
        record.headers = req.headers;
        record.body = text;
        record.json = tryJson(text);
        record.trailers = Object.keys(req.trailers).length ? req.trailers : null;
        record.tDone = now();
      }
      res.writeHead(202, {
        'Content-Type': 'application/json', 'Content-Length': 15,
        ...(options.closeEach ? { Connection: 'close' } : {}),
      });
      res.end('{"status":"OK"}', () => { if (options.dropAfterAnswer) req.socket.destroy(); });
      if (!m[3]) answer(m[1]);
    });
  });

  // CPU the runtime process used (user + system, ms), read before it is killed:
  // the per-call overhead of a bootstrap, apart from the fake's own.
  function readChildCpu() {
    try {
      const stat = require('node:fs').readFileSync(`/proc/${child.pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      // USER_HZ is 100 on Linux.
      result.childUserMs = Number(fields[11]) * 10;
      result.childCpuMs = result.childUserMs + Number(fields[12]) * 10;
    } catch { /* already gone */ }
  }

  function stop() {
    if (child) readChildCpu();
    for (const res of waiting) res.destroy();
    if (child && child.exitCode === null && child.signalCode === null) child.kill(options.killSignal || 'SIGKILL');
    else finishIfExited();
  }

  let closed = false;
  function finishIfExited() {
    if (closed) return;
    closed = true;
    server.close();
    server.closeAllConnections?.();
    finish(result);
  }

  server.listen(0, '127.0.0.1', () => {
    const port = server.address().port;
    const env = {
      PATH: process.env.PATH, HOME: process.env.HOME,
      AWS_LAMBDA_RUNTIME_API: `127.0.0.1:${port}`,
      LAMBDA_TASK_ROOT: options.cwd,
      AWS_LAMBDA_FUNCTION_NAME: 'fake',
      AWS_LAMBDA_FUNCTION_VERSION: '1',
      AWS_LAMBDA_FUNCTION_MEMORY_SIZE: '128',
      AWS_LAMBDA_LOG_GROUP_NAME: '/aifn/fake',
      AWS_LAMBDA_LOG_STREAM_NAME: 'fake-stream',
      AIFN_MODELS_URL: 'http://127.0.0.1:1/v1',
      ...options.env,
    };
    for (const k of Object.keys(env)) if (env[k] === undefined) delete env[k];
    child = spawn(options.command, options.args || [], { cwd: options.cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.on('data', (c) => { if (result.stdout.length < 65536) result.stdout += c; });
    child.stderr.on('data', (c) => { if (result.stderr.length < 65536) result.stderr += c; });
    child.on('error', (err) => { result.stderr += `spawn failed: ${err.message}`; });
    child.on('close', (code, signal) => {
      result.exitCode = code;
      result.signal = signal;
      finishIfExited();
    });
  });

  const timer = setTimeout(() => { result.timedOut = true; stop(); }, options.timeoutMs ?? 10000);
  return done.then((r) => { clearTimeout(timer); return r; });
}

function tryJson(text) {
  try { return JSON.parse(text); } catch { return undefined; }
}

module.exports = { runFake };

if (require.main === module) {
  const sep = process.argv.indexOf('--');
  if (sep < 3) {
    console.error('usage: node fake_runtime_api.js EVENTS.json -- COMMAND ARGS...');
    process.exit(2);
  }
  const events = JSON.parse(require('node:fs').readFileSync(process.argv[2], 'utf8'));
  runFake({
    command: process.argv[sep + 1], args: process.argv.slice(sep + 2), cwd: process.cwd(),
    events: events.map((body) => ({ body })),
    env: { _HANDLER: process.env._HANDLER, AIFN_CONCURRENCY: process.env.AIFN_CONCURRENCY },
  }).then((r) => console.log(JSON.stringify(r, null, 2)));
}
