// A plain Node `http` server answering what the hello functions answer, as a
// second same-run baseline for bench/platform_bench.py (the issue quotes one
// at about 0.44x nginx on its reference machine). Usage: node node_http_hello.js PORT
'use strict';
const http = require('http');

http
  .createServer((req, res) => {
    const parts = [];
    req.on('data', (d) => parts.push(d));
    req.on('end', () => {
      let name = 'world';
      try {
        name = JSON.parse(Buffer.concat(parts).toString() || '{}').name || name;
      } catch {
        // a body that is not JSON gets the default greeting (the benchmark never sends one)
      }
      const body = JSON.stringify({ message: `hello, ${name}` });
      res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });
      res.end(body);
    });
  })
  .listen(Number(process.argv[2]), '127.0.0.1');
