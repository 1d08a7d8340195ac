// A webhook receiver that checks aifn's job-completion callbacks the way the
// Standard Webhooks spec says (https://www.standardwebhooks.com), with
// Node's standard library only:
//   signed content = `${webhook-id}.${webhook-timestamp}.${raw body}`
//   webhook-signature = space-separated "v1,<base64 HMAC-SHA256(content)>",
//   keyed with the base64 part of the secret "whsec_<base64>".
// It refuses timestamps more than 5 minutes off (replays) and compares in
// constant time.
//
//   WEBHOOK_SECRET=$(cat .aifn/webhook_secret) node receiver.js [PORT]
//   TLS_CERT=cert.pem TLS_KEY=key.pem WEBHOOK_SECRET=... node receiver.js [PORT]   # https
//
// Prints one JSON line per delivery: {"verified":true,"id":...,"type":...,"job":...}.
// FAIL_FIRST=N answers the first N deliveries with 500, to watch aifn retry.
'use strict';
const http = require('node:http');
const https = require('node:https');
const fs = require('node:fs');
const crypto = require('node:crypto');

const TOLERANCE_S = 5 * 60;

function verify(secret, headers, body) {
  const id = headers['webhook-id'];
  const ts = headers['webhook-timestamp'];
  const sigs = headers['webhook-signature'];
  if (!id || !ts || !sigs) return 'missing webhook headers';
  if (Math.abs(Date.now() / 1000 - Number(ts)) > TOLERANCE_S) return 'timestamp too far from now';
  if (!secret.startsWith('whsec_')) return 'secret must start with whsec_';
  const key = Buffer.from(secret.slice('whsec_'.length), 'base64');
  const expected = crypto.createHmac('sha256', key).update(`${id}.${ts}.${body}`).digest();
  for (const s of sigs.split(' ')) {
    const [version, value] = s.split(',');
    if (version !== 'v1' || !value) continue;
    const got = Buffer.from(value, 'base64');
    if (got.length === expected.length && crypto.timingSafeEqual(got, expected)) return null;
  }
  return 'no matching v1 signature';
}

const secret = process.env.WEBHOOK_SECRET || '';
let failFirst = Number(process.env.FAIL_FIRST || 0);

// TLS_CERT and TLS_KEY (PEM files) make it an https receiver.
const tls = process.env.TLS_CERT
  ? { cert: fs.readFileSync(process.env.TLS_CERT), key: fs.readFileSync(process.env.TLS_KEY) } : null;
const handler = (req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const body = Buffer.concat(chunks).toString('utf8');
    const problem = verify(secret, req.headers, body);
    if (problem) {
      console.log(JSON.stringify({ verified: false, problem }));
      res.writeHead(401).end();
      return;
    }
    if (failFirst > 0) {
      failFirst--;
      console.log(JSON.stringify({ verified: true, answered: 500, id: req.headers['webhook-id'] }));
      res.writeHead(500).end();
      return;
    }
    const msg = JSON.parse(body);
    console.log(JSON.stringify({ verified: true, id: req.headers['webhook-id'], type: msg.type, job: msg.data.id,
                                 status: msg.data.status }));
    res.writeHead(204).end();
  });
};
const server = tls ? https.createServer(tls, handler) : http.createServer(handler);
server.listen(Number(process.argv[2] || 0), '127.0.0.1', () => {
  console.log(JSON.stringify({ listening: server.address().port }));
});
