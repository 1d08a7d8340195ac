#!/usr/bin/env node
// aifn's Node.js bootstrap: a stdlib-only AWS Lambda Runtime API client.
//
// aifn starts it as `node bootstrap.js` in the function's folder with
// AWS_LAMBDA_RUNTIME_API, _HANDLER (file.export) and LAMBDA_TASK_ROOT set
// (DESIGN.md §5). It loads the handler once, then runs AIFN_CONCURRENCY
// loops of next → invoke → response|error. Handlers look like Lambda's:
// `async (event, context) => result`, `(event, context, callback)`, or
// `awslambda.streamifyResponse(async (event, responseStream, context) => …)`.
'use strict';

const http = require('node:http');
const fs = require('node:fs');
const path = require('node:path');
const { Writable } = require('node:stream');
const { pathToFileURL } = require('node:url');

const kStreaming = Symbol.for('aws.lambda.runtime.handler.streaming');
const kTrailerType = 'Lambda-Runtime-Function-Error-Type';
const kTrailerBody = 'Lambda-Runtime-Function-Error-Body';

const env = process.env;
const [apiHost, apiPortText] = (env.AWS_LAMBDA_RUNTIME_API || '').split(':');
const apiPort = Number(apiPortText) || 80;
const concurrency = Math.max(1, Number.parseInt(env.AIFN_CONCURRENCY || '1', 10) || 1);
const taskRoot = env.LAMBDA_TASK_ROOT || process.cwd();
const kBase = '/2018-06-01/runtime';

// One socket per loop: each loop holds at most one request at a time
// (a long-poll /next, or its result), so sockets are never shared mid-call.
// noDelay matters for streaming: a small chunk must not wait for an ACK.
const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency, noDelay: true });

// ---- Runtime API calls -----------------------------------------------------

function request(method, urlPath, headers, body) {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: apiHost, port: apiPort, method, path: urlPath, headers, agent },
      (res) => {
        const parts = [];
        res.on('data', (c) => parts.push(c));
        res.on('end', () => resolve({ res, body: parts.length === 1 ? parts[0] : Buffer.concat(parts) }));
        res.on('error', reject);
      });
    req.on('error', reject);
    req.end(body);
  });
}

function postJson(urlPath, text, extraHeaders) {
  const headers = { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) };
  if (extraHeaders) Object.assign(headers, extraHeaders);
  return request('POST', urlPath, headers, text);
}

// Lambda's error shape (the Node RIC sends exactly these three fields).
function errorBody(err) {
  if (err instanceof Error) {
    return {
      errorType: String(err.name || 'Error'),
      errorMessage: String(err.message),
      trace: typeof err.stack === 'string' ? err.stack.split('\n') : [],
    };
  }
  let message;
  try { message = typeof err === 'string' ? err : JSON.stringify(err); } catch { message = String(err); }
  return { errorType: typeof err, errorMessage: String(message), trace: [] };
}

// Header values must stay printable ASCII; an error name could be anything.
function headerSafe(text) {
  return String(text).replace(/[^\x20-\x7e]/g, '?').slice(0, 256);
}

function postError(urlPath, err) {
  const body = errorBody(err);
  return postJson(urlPath, JSON.stringify(body), { [kTrailerType]: headerSafe(body.errorType) });
}

// ---- Loading the handler ---------------------------------------------------

class InitError extends Error {
  constructor(name, message) { super(message); this.name = name; }
}

// "dir/file.a.b" → module "dir/file", export path ["a", "b"] (as Lambda splits it).
function splitHandler(spec) {
  const slash = spec.lastIndexOf('/');
  const dot = spec.indexOf('.', slash + 1);
  if (dot <= slash + 1 || dot === spec.length - 1) {
    throw new InitError('Runtime.MalformedHandlerName', `bad handler '${spec}': expected file.export`);
  }
  return { file: spec.slice(0, dot), exportPath: spec.slice(dot + 1).split('.') };
}

async function loadModule(base) {
  for (const ext of ['.js', '.cjs', '.mjs']) {
    const file = base + ext;
    if (!fs.existsSync(file)) continue;
    if (ext === '.mjs') return import(pathToFileURL(file).href);
    try {
      return require(file);
    } catch (err) {
      // A .js file under "type": "module" is ESM; only import() can load it.
      if (err && err.code === 'ERR_REQUIRE_ESM') return import(pathToFileURL(file).href);
      throw err;
    }
  }
  throw new InitError('Runtime.ImportModuleError', `Cannot find module '${base}' (.js, .cjs or .mjs)`);
}

async function loadHandler() {
  const spec = env._HANDLER;
  if (!spec) throw new InitError('Runtime.MalformedHandlerName', '_HANDLER is not set');
  const { file, exportPath } = splitHandler(spec);
  let mod;
  try {
    mod = await loadModule(path.resolve(taskRoot, file));
  } catch (err) {
    if (err instanceof SyntaxError) err.name = 'Runtime.UserCodeSyntaxError';
    throw err;
  }
  let fn = mod;
  for (const key of exportPath) fn = fn != null ? fn[key] : undefined;
  // An ESM module imported as CommonJS puts its exports under default.
  if (typeof fn !== 'function' && mod && mod.default) {
    fn = mod.default;
    for (const key of exportPath) fn = fn != null ? fn[key] : undefined;
  }
  if (typeof fn !== 'function') {
    throw new InitError('Runtime.HandlerNotFound', `${spec} is not a function`);
  }
  return fn;
}

// ---- Per-call context ------------------------------------------------------

// Read once: every process.env access is a call into C++.
const fixedContext = {
  functionName: env.AWS_LAMBDA_FUNCTION_NAME,
  functionVersion: env.AWS_LAMBDA_FUNCTION_VERSION,
  memoryLimitInMB: env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE,
  logGroupName: env.AWS_LAMBDA_LOG_GROUP_NAME,
  logStreamName: env.AWS_LAMBDA_LOG_STREAM_NAME,
  modelsUrl: env.AIFN_MODELS_URL,
};

class Context {
  constructor(headers) {
    this.callbackWaitsForEmptyEventLoop = true;
    this.functionName = fixedContext.functionName;
    this.functionVersion = fixedContext.functionVersion;
    this.memoryLimitInMB = fixedContext.memoryLimitInMB;
    this.logGroupName = fixedContext.logGroupName;
    this.logStreamName = fixedContext.logStreamName;
    this.awsRequestId = headers['lambda-runtime-aws-request-id'];
    this.invokedFunctionArn = headers['lambda-runtime-invoked-function-arn'];
    this.xRayTraceId = headers['lambda-runtime-trace-id'];
    this.identity = parseOptional(headers['lambda-runtime-cognito-identity']);
    this.clientContext = parseOptional(headers['lambda-runtime-client-context']);
    // Lambda Runtime API: the deadline header is epoch milliseconds.
    this.deadlineMs = Number(headers['lambda-runtime-deadline-ms']) || 0;
    this.aifn = { token: headers['aifn-invocation-token'], modelsUrl: fixedContext.modelsUrl };
  }

  getRemainingTimeInMillis() {
    return this.deadlineMs ? this.deadlineMs - Date.now() : 0;
  }
}

function parseOptional(text) {
  if (!text) return undefined;
  try { return JSON.parse(text); } catch { return undefined; }
}

// ---- Buffered calls --------------------------------------------------------

// Resolves with the handler's answer whichever way it gives it: a promise,
// the callback, or (for a plain function that takes no callback) its return.
function callHandler(handler, event, context) {
  return new Promise((resolve, reject) => {
    const callback = (err, value) => (err != null ? reject(err) : resolve(value));
    context.done = callback;
    context.succeed = (value) => resolve(value);
    context.fail = (err) => reject(err);
    const result = handler(event, context, callback);
    if (result && typeof result.then === 'function') result.then(resolve, reject);
    else if (handler.length < 3) resolve(result);
  });
}

async function invokeBuffered(handler, id, event, context) {
  const base = `${kBase}/invocation/${id}`;
  let text;
  try {
    const result = await callHandler(handler, event, context);
    // Lambda's rule: the answer is JSON.stringify(result); undefined is null.
    text = result === undefined ? 'null' : JSON.stringify(result);
    if (text === undefined) text = 'null'; // a function or symbol
  } catch (err) {
    await postError(`${base}/error`, err);
    return;
  }
  await postJson(`${base}/response`, text);
}

// ---- Streamed calls --------------------------------------------------------

// A Writable whose writes leave as HTTP chunks at once. The POST starts at
// the first write (or end) so setContentType still works until then.
class ResponseStream extends Writable {
  constructor(urlPath) {
    super({ decodeStrings: false });
    this.urlPath_ = urlPath;
    this.contentType_ = 'application/octet-stream';
    this.req_ = null;
    this.done = new Promise((resolve, reject) => { this.resolve_ = resolve; this.reject_ = reject; });
  }

  setContentType(contentType) {
    if (this.req_) throw new Error('Cannot set content-type, too late: the stream has started');
    this.contentType_ = String(contentType);
  }

  get started() { return this.req_ !== null; }

  start_() {
    if (this.req_) return this.req_;
    const req = http.request({
      host: apiHost, port: apiPort, method: 'POST', path: this.urlPath_, agent,
      headers: {
        'Lambda-Runtime-Function-Response-Mode': 'streaming',
        'Transfer-Encoding': 'chunked',
        'Content-Type': this.contentType_,
        Trailer: `${kTrailerType}, ${kTrailerBody}`,
      },
    }, (res) => {
      res.resume();
      res.on('end', () => this.resolve_(res));
      res.on('error', this.reject_);
    });
    req.on('error', (err) => this.reject_(err));
    // Headers go out now, not with the first chunk, so the server learns early.
    req.flushHeaders();
    this.req_ = req;
    return req;
  }

  _write(chunk, encoding, cb) {
    if (chunk.length === 0) { cb(); return; } // a zero-length chunk would end the body
    this.start_().write(chunk, encoding, cb);
  }

  _final(cb) {
    this.start_().end(cb);
  }

  // Ends the body with Lambda's error trailers (the body is base64 JSON, as the RIC sends it).
  fail(err) {
    const body = errorBody(err);
    const req = this.start_();
    if (!req.writableEnded) {
      req.addTrailers({
        [kTrailerType]: headerSafe(body.errorType),
        [kTrailerBody]: Buffer.from(JSON.stringify(body)).toString('base64'),
      });
      req.end();
    }
    return this.done;
  }
}

function toChunk(value) {
  if (typeof value === 'string' || Buffer.isBuffer(value) || value instanceof Uint8Array) return value;
  return JSON.stringify(value);
}

async function invokeStreaming(handler, id, event, context) {
  const base = `${kBase}/invocation/${id}`;
  const stream = new ResponseStream(`${base}/response`);
  // Accept objects as the RIC does: they are written as JSON text.
  const write = stream.write.bind(stream);
  stream.write = (chunk, ...rest) => write(toChunk(chunk), ...rest);
  const end = stream.end.bind(stream);
  stream.end = (chunk, ...rest) =>
    (chunk === undefined || typeof chunk === 'function' ? end(chunk, ...rest) : end(toChunk(chunk), ...rest));
  try {
    await handler(event, stream, context);
    if (!stream.writableEnded) stream.end();
    await stream.done;
  } catch (err) {
    if (stream.started) await stream.fail(err);
    else await postError(`${base}/error`, err); // nothing sent yet: a plain error
  }
}

// awslambda.HttpResponseStream.from: Lambda prepends a JSON prelude for
// function URLs; aifn has no such front end, so only the content type is taken.
const HttpResponseStream = {
  from(stream, prelude) {
    const headers = (prelude && prelude.headers) || {};
    for (const [name, value] of Object.entries(headers)) {
      if (name.toLowerCase() === 'content-type') stream.setContentType(value);
    }
    return stream;
  },
};

globalThis.awslambda = {
  ...globalThis.awslambda,
  streamifyResponse(fn) { fn[kStreaming] = 'response'; return fn; },
  HttpResponseStream,
};

// ---- Main loop -------------------------------------------------------------

const inFlight = new Set();

async function loop(handler) {
  const invoke = handler[kStreaming] === 'response' ? invokeStreaming : invokeBuffered;
  for (;;) {
    const { res, body } = await request('GET', `${kBase}/invocation/next`, undefined, undefined);
    const id = res.headers['lambda-runtime-aws-request-id'];
    if (res.statusCode !== 200 || !id) {
      throw new Error(`/next answered ${res.statusCode} without a request id`);
    }
    const context = new Context(res.headers);
    inFlight.add(id);
    try {
      let event;
      try {
        event = body.length === 0 ? null : JSON.parse(body);
      } catch (err) {
        err.name = 'Runtime.UnmarshalError';
        await postError(`${kBase}/invocation/${id}/error`, err);
        continue;
      }
      await invoke(handler, id, event, context);
    } finally {
      inFlight.delete(id);
    }
  }
}

// An error thrown outside any handler's promise (a timer callback, an
// unawaited rejection) leaves the process in an unknown state: report it
// for every call in flight, then exit so aifn starts a fresh instance.
async function crash(err) {
  console.error(err);
  const ids = [...inFlight];
  inFlight.clear();
  const reported = Promise.allSettled(ids.map((id) => postError(`${kBase}/invocation/${id}/error`, err)));
  // A streaming call may hold the only socket: do not wait for it forever.
  await Promise.race([reported, new Promise((resolve) => setTimeout(resolve, 1000))]);
  process.exit(1);
}

async function main() {
  let handler;
  try {
    handler = await loadHandler();
  } catch (err) {
    console.error(err);
    try { await postError(`${kBase}/init/error`, err); } catch { /* the endpoint is gone: nothing to tell */ }
    process.exit(1);
  }
  process.on('uncaughtException', crash);
  const loops = [];
  for (let i = 0; i < concurrency; i++) loops.push(loop(handler));
  await Promise.all(loops);
}

main().catch((err) => {
  console.error('aifn bootstrap: runtime API failure:', err);
  process.exit(1);
});
