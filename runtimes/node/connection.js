// One persistent HTTP/1.1 connection to the Lambda Runtime API, just enough
// for its few requests. Written on a net.Socket rather than node:http: the
// http client's per-request machinery (agent, ClientRequest, IncomingMessage)
// cost ~3x this bootstrap's whole per-call CPU on a hello function.
//
// Not shareable: one request (or streamed body) at a time, awaited by one
// caller. The bootstrap gives each next-loop its own Connection.
'use strict';

const net = require('node:net');

const kEmpty = Buffer.alloc(0);
const kHeadEnd = Buffer.from('\r\n\r\n');

class Connection {
  constructor(host, port) {
    this.host_ = host;
    this.port_ = port;
    this.hostHeader_ = `Host: ${host}:${port}\r\n`;
    this.sock_ = null;
    this.chunks_ = []; // received, not yet parsed
    this.length_ = 0;
    this.head_ = null; // parsed head of the response being read
    this.waiter_ = null; // { resolve, reject } of response()
    this.pipelined_ = false; // a GET sent with the last request awaits its answer
  }

  // Writes raw bytes, connecting first if needed. `done` runs once they are flushed.
  write(data, done) {
    if (this.sock_ === null) this.connect_();
    return this.sock_.write(data, done);
  }

  // Groups several write() calls into one packet (one writev).
  cork() { if (this.sock_ === null) this.connect_(); this.sock_.cork(); }
  uncork() { this.sock_.uncork(); }

  get connected() { return this.sock_ !== null; }

  head(method, path, headers = '') {
    return `${method} ${path} HTTP/1.1\r\n${this.hostHeader_}${headers}\r\n`;
  }

  // Sends a whole request and resolves with { status, headers, body }. A
  // keep-alive socket the server closed shows up only on reuse, so a request
  // that got no answer byte at all is sent once more on a fresh socket.
  // With `thenGet`, a GET of that path follows in the same write (HTTP/1.1
  // pipelining); its answer is then taken with takePipelined().
  async request(method, path, headers = '', body = '', thenGet = null) {
    let data = body.length ? this.head(method, path, headers) + body : this.head(method, path, headers);
    if (thenGet !== null) data += this.head('GET', thenGet);
    const reused = this.sock_ !== null;
    this.write(data);
    let res;
    try {
      res = await this.response();
    } catch (err) {
      if (!reused || !err.noAnswer) throw err;
      this.write(data);
      res = await this.response();
    }
    // A closed socket took the pipelined request with it.
    this.pipelined_ = thenGet !== null && this.sock_ !== null;
    return res;
  }

  // For a request written piece by piece (a streamed result): its last write
  // carried a GET too, and its own answer has been read.
  markPipelined() { this.pipelined_ = this.sock_ !== null; }

  // True once: the last request() also asked for the next answer (thenGet).
  takePipelined() {
    const was = this.pipelined_;
    this.pipelined_ = false;
    return was;
  }

  // The next response on this connection (header names lower-cased).
  response() {
    return new Promise((resolve, reject) => {
      if (this.sock_ === null && this.length_ === 0) {
        const err = new Error('the Runtime API connection is closed');
        err.noAnswer = true;
        reject(err);
        return;
      }
      this.waiter_ = { resolve, reject };
      this.parse_();
    });
  }

  close() {
    if (this.sock_ !== null) this.sock_.destroy();
    this.sock_ = null;
    this.pipelined_ = false;
    this.chunks_ = [];
    this.length_ = 0;
    this.head_ = null;
  }

  connect_() {
    const sock = net.connect({ host: this.host_, port: this.port_, noDelay: true });
    this.sock_ = sock;
    sock.on('data', (data) => {
      this.chunks_.push(data);
      this.length_ += data.length;
      if (this.waiter_) this.parse_();
    });
    const fail = (err) => {
      if (this.sock_ !== sock) return;
      const noAnswer = this.length_ === 0 && this.head_ === null;
      this.close();
      const waiter = this.waiter_;
      this.waiter_ = null;
      if (waiter) {
        const error = err || new Error('the Runtime API closed the connection');
        error.noAnswer = noAnswer;
        waiter.reject(error);
      }
    };
    sock.on('error', fail);
    sock.on('close', () => fail(null));
  }

  flat_() {
    if (this.chunks_.length > 1) this.chunks_ = [Buffer.concat(this.chunks_, this.length_)];
    return this.chunks_.length ? this.chunks_[0] : kEmpty;
  }

  parse_() {
    if (this.head_ === null && !this.parseHead_()) return;
    const head = this.head_;
    let body;
    let used;
    if (head.contentLength >= 0) {
      used = head.bodyStart + head.contentLength;
      if (this.length_ < used) return;
      body = this.flat_().subarray(head.bodyStart, used);
    } else if (head.chunked) {
      const decoded = decodeChunked(this.flat_(), head.bodyStart);
      if (decoded === null) return;
      ({ body, used } = decoded);
    } else {
      // Without a length only an empty body can be delimited on a kept-alive socket.
      used = head.bodyStart;
      body = kEmpty;
    }
    const rest = this.flat_().subarray(used);
    this.chunks_ = rest.length ? [rest] : [];
    this.length_ = rest.length;
    this.head_ = null;
    const waiter = this.waiter_;
    this.waiter_ = null;
    if (head.close) this.close();
    waiter.resolve({ status: head.status, headers: head.headers, body });
  }

  parseHead_() {
    const buf = this.flat_();
    const end = buf.indexOf(kHeadEnd);
    if (end < 0) return false;
    const lines = buf.toString('latin1', 0, end).split('\r\n');
    const headers = {};
    for (let i = 1; i < lines.length; i++) {
      const colon = lines[i].indexOf(':');
      if (colon > 0) headers[lines[i].slice(0, colon).trim().toLowerCase()] = lines[i].slice(colon + 1).trim();
    }
    const length = headers['content-length'];
    this.head_ = {
      status: Number(lines[0].split(' ', 3)[1]),
      headers,
      bodyStart: end + 4,
      contentLength: length === undefined ? -1 : Number(length),
      chunked: /chunked/i.test(headers['transfer-encoding'] || ''),
      close: /close/i.test(headers.connection || ''),
    };
    return true;
  }
}

// Decodes a chunked body starting at `start`; null until all of it has arrived.
function decodeChunked(buf, start) {
  const parts = [];
  let at = start;
  for (;;) {
    const lineEnd = buf.indexOf('\r\n', at);
    if (lineEnd < 0) return null;
    const size = Number.parseInt(buf.toString('latin1', at, lineEnd), 16);
    at = lineEnd + 2;
    if (size === 0) break;
    if (buf.length < at + size + 2) return null;
    parts.push(buf.subarray(at, at + size));
    at += size + 2;
  }
  // Trailer lines (none expected from the Runtime API), then the empty line.
  for (;;) {
    const lineEnd = buf.indexOf('\r\n', at);
    if (lineEnd < 0) return null;
    const empty = lineEnd === at;
    at = lineEnd + 2;
    if (empty) return { body: Buffer.concat(parts), used: at };
  }
}

module.exports = { Connection };
