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

const fs = require('node:fs');
const path = require('node:path');
const { Writable } = require('node:stream');
const { pathToFileURL } = require('node:url');
const { Connection } = require('./connection.js');

const kStreaming = Symbol.for('aws.lambda.runtime.handler.streaming');
const kTrailerType = 'Lambda-Runtime-Function-Error-Type';
const kTrailerBody = 'Lambda-Runtime-Function-Error-Body';

const env = process.env;
const apiEndpoint = env.AWS_LAMBDA_RUNTIME_API || '';
const apiHost = apiEndpoint.slice(0, apiEndpoint.lastIndexOf(':')).replace(/^\[(.*)\]$/, '$1');
const apiPort = Number(apiEndpoint.slice(apiEndpoint.lastIndexOf(':') + 1)) || 80;
const concurrency = Math.max(1, Number.parseInt(env.AIFN_CONCURRENCY || '1', 10) || 1);
const taskRoot = env.LAMBDA_TASK_ROOT || process.cwd();
const kBase = '/2018-06-01/runtime';
const kNextPath = `${kBase}/invocation/next`;

// ---- Runtime API calls -----------------------------------------------------

// Each next-loop owns one keep-alive Connection: it holds at most one request
// at a time (a long-poll /next, or that call's result), so none is shared.
const newConnection = () => new Connection(apiHost, apiPort);

function postJson(conn, urlPath, text, extraHeaders = '', thenGet = null) {
  const headers = `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(text)}\r\n${extraHeaders}`;
  return conn.request('POST', urlPath, headers, text, thenGet);
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

function postError(conn, urlPath, err, thenGet = null) {
  const body = errorBody(err);
  return postJson(conn, urlPath, JSON.stringify(body), `${kTrailerType}: ${headerSafe(body.errorType)}\r\n`, thenGet);
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

async function invokeBuffered(conn, handler, id, event, context) {
  const base = `${kBase}/invocation/${id}`;
  let text;
  try {
    const result = await callHandler(handler, event, context);
    // Lambda's rule: the answer is JSON.stringify(result); undefined is null.
    text = result === undefined ? 'null' : JSON.stringify(result);
    if (text === undefined) text = 'null'; // a function or symbol
  } catch (err) {
    await postError(conn, `${base}/error`, err, kNextPath);
    return;
  }
  // The next /next rides in the same write: one send and one wake-up per call.
  await postJson(conn, `${base}/response`, text, '', kNextPath);
}

// ---- Streamed calls --------------------------------------------------------

// A Writable whose writes leave as HTTP chunks at once (TCP_NODELAY, one
// writev each). The POST's head goes out with the first chunk, so
// setContentType works until then. The body's last chunk is written by
// _final, after every write before it, with the error trailers if fail() ran.
class ResponseStream extends Writable {
  constructor(conn, urlPath) {
    super({ decodeStrings: false });
    this.conn_ = conn;
    this.urlPath_ = urlPath;
    this.contentType_ = 'application/octet-stream';
    this.started_ = false; // the request head has been written
    this.bodyDone_ = false; // the last chunk has been written, or the stream abandoned
    this.error_ = null;
    this.terminated = new Promise((resolve, reject) => { this.resolve_ = resolve; this.reject_ = reject; });
    this.terminated.catch(() => {}); // awaited by invokeStreaming, not always at once
    // A lost connection surfaces through `terminated` and the response; the
    // handler need not listen for 'error' to keep the process alive.
    this.on('error', (err) => this.reject_(err));
  }

  setContentType(contentType) {
    if (this.started_) throw new Error('Cannot set content-type, too late: the stream has started');
    this.contentType_ = String(contentType);
  }

  get started() { return this.started_; }
  get bodyDone() { return this.bodyDone_; }

  head_() {
    if (this.started_) return '';
    this.started_ = true;
    return this.conn_.head('POST', this.urlPath_,
      'Lambda-Runtime-Function-Response-Mode: streaming\r\nTransfer-Encoding: chunked\r\n' +
      `Content-Type: ${headerSafe(this.contentType_)}\r\nTrailer: ${kTrailerType}, ${kTrailerBody}\r\n`);
  }

  _write(chunk, encoding, cb) {
    const data = typeof chunk === 'string' ? Buffer.from(chunk, encoding) : chunk;
    if (this.bodyDone_ || data.length === 0) { cb(); return; } // a zero-length chunk would end the body
    const conn = this.conn_;
    if (this.started_ && !conn.connected) { cb(new Error('lost the Runtime API connection')); return; }
    conn.cork();
    const head = this.head_();
    if (head) conn.write(head);
    conn.write(`${data.length.toString(16)}\r\n`);
    conn.write(data);
    conn.write('\r\n', cb);
    conn.uncork();
  }

  _final(cb) {
    if (this.bodyDone_) { cb(); return; }
    this.terminate_(cb);
  }

  terminate_(cb) {
    this.bodyDone_ = true;
    let tail = '0\r\n';
    if (this.error_) {
      // Lambda's trailers; the body is base64 JSON, as aws-lambda-ric sends it.
      const body = errorBody(this.error_);
      tail += `${kTrailerType}: ${headerSafe(body.errorType)}\r\n` +
        `${kTrailerBody}: ${Buffer.from(JSON.stringify(body)).toString('base64')}\r\n`;
    }
    tail += '\r\n';
    const done = (err) => {
      if (err) this.reject_(err); else this.resolve_();
      if (cb) cb(err);
    };
    if (this.started_ && !this.conn_.connected) { done(new Error('lost the Runtime API connection')); return; }
    // The next GET /next rides with the last chunk, as with whole results.
    this.conn_.write(this.head_() + tail + this.conn_.head('GET', kNextPath), done);
  }

  // Ends the body with `err` in the trailers, after what was written before.
  fail(err) {
    this.error_ = err;
    if (this.bodyDone_) return;
    if (this.destroyed) this.terminate_(null); // _final will not run
    else if (!this.writableEnded) this.end();
  }

  // Nothing was sent: the call's error goes to /error instead of this body.
  abandon() { this.bodyDone_ = true; this.resolve_(); }
}

function toChunk(value) {
  if (typeof value === 'string' || Buffer.isBuffer(value) || value instanceof Uint8Array) return value;
  return JSON.stringify(value);
}

async function invokeStreaming(conn, handler, id, event, context) {
  const base = `${kBase}/invocation/${id}`;
  const stream = new ResponseStream(conn, `${base}/response`);
  // Accept objects as the RIC does: they are written as JSON text.
  const write = stream.write.bind(stream);
  stream.write = (chunk, ...rest) => write(toChunk(chunk), ...rest);
  const end = stream.end.bind(stream);
  stream.end = (chunk, ...rest) =>
    (chunk === undefined || typeof chunk === 'function' ? end(chunk, ...rest) : end(toChunk(chunk), ...rest));
  try {
    await handler(event, stream, context);
    if (stream.destroyed && !stream.bodyDone) stream.fail(new Error('the response stream was destroyed before end()'));
    else if (!stream.writableEnded) stream.end();
  } catch (err) {
    if (!stream.started && !stream.writableEnded) {
      stream.abandon();
      await postError(conn, `${base}/error`, err, kNextPath);
      return;
    }
    stream.fail(err);
  }
  await stream.terminated;
  await conn.response();
  conn.markPipelined();
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

// The next event: the answer to a GET /next already sent with the last
// result, else a fresh GET (also when the pipelined one was lost with its socket).
async function nextEvent(conn) {
  if (conn.takePipelined()) {
    try {
      return await conn.response();
    } catch (err) {
      if (!err.noAnswer) throw err;
    }
  }
  return conn.request('GET', kNextPath);
}

async function loop(handler) {
  const invoke = handler[kStreaming] === 'response' ? invokeStreaming : invokeBuffered;
  const conn = newConnection();
  for (;;) {
    const { status, headers, body } = await nextEvent(conn);
    const id = headers['lambda-runtime-aws-request-id'];
    if (status !== 200 || !id) {
      throw new Error(`/next answered ${status} without a request id`);
    }
    const context = new Context(headers);
    inFlight.add(id);
    try {
      let event;
      try {
        event = body.length === 0 ? null : JSON.parse(body);
      } catch (err) {
        err.name = 'Runtime.UnmarshalError';
        await postError(conn, `${kBase}/invocation/${id}/error`, err, kNextPath);
        continue;
      }
      await invoke(conn, handler, id, event, context);
    } catch (err) {
      // Posting the result failed: aifn dropped the call (it timed out, or the
      // caller left) and closed the connection. The process is still good;
      // a fresh connection serves the next call. Only /next failing is fatal.
      console.error(`aifn bootstrap: could not deliver the result of ${id}: ${err.message}`);
      conn.close();
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
  // Fresh connections: the loops' own may be in the middle of a request.
  const reported = Promise.allSettled(
    ids.map((id) => postError(newConnection(), `${kBase}/invocation/${id}/error`, err)));
  // Do not wait forever on an endpoint that does not answer.
  await Promise.race([reported, new Promise((resolve) => setTimeout(resolve, 1000))]);
  process.exit(1);
}

async function main() {
  let handler;
  try {
    handler = await loadHandler();
  } catch (err) {
    console.error(err);
    try { await postError(newConnection(), `${kBase}/init/error`, err); } catch { /* the endpoint is gone: nothing to tell */ }
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
