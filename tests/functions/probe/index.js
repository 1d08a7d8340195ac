// A test function whose behaviour the event chooses, so one file serves
// every end-to-end scenario.
const fs = require('node:fs');
const { spawn } = require('node:child_process');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

exports.handler = async (event, context) => {
  if (event.log) console.log(event.log);
  if (event.count_file) {
    // Counts this function's runs for the event: retries and at-least-once
    // delivery are visible as lines in the file.
    fs.appendFileSync(event.count_file, (event.tag || 'run') + '\n');
    const runs = fs.readFileSync(event.count_file, 'utf8').split('\n').filter((l) => l === (event.tag || 'run')).length;
    if (runs <= (event.fail_times || 0)) throw new Error(`run ${runs} fails on purpose`);
  }
  if (event.child_pid_file) {
    // A grandchild in our process group: a timeout must kill it too.
    const child = spawn('sleep', ['60'], { stdio: 'ignore' });
    fs.writeFileSync(event.child_pid_file, String(child.pid));
  }
  if (event.sleep_ms) await sleep(event.sleep_ms);
  if (event.crash) process.exit(3);
  if (event.throw) throw new Error(event.throw);
  if (event.alloc_mb) {
    const keep = [];
    for (let i = 0; i < event.alloc_mb; i++) keep.push(Buffer.alloc(1 << 20, 1));
    return { allocated_mb: keep.length };
  }
  if (event.env_name) return { pid: process.pid, value: process.env[event.env_name] ?? null };
  if (event.connect_port) {
    // Can this instance open a TCP connection to 127.0.0.1:connect_port?
    const net = require('node:net');
    return await new Promise((resolve) => {
      const s = net.connect({ host: '127.0.0.1', port: event.connect_port });
      s.setTimeout(2000, () => { s.destroy(); resolve({ reached: false, error: 'timeout' }); });
      s.on('connect', () => { s.end(); resolve({ reached: true }); });
      s.on('error', (e) => resolve({ reached: false, error: e.code }));
    });
  }
  if (event.gateway_health) {
    const url = process.env.AIFN_MODELS_URL.replace(/\/v1$/, '/healthz');
    const r = await fetch(url);
    return { status: r.status, body: await r.text() };
  }
  if (event.isolation) {
    // What the instance sees of the host: its user, limits, /tmp and
    // scheduling policy (field 41 of /proc/self/stat: 0 normal, 3 batch).
    const limits = fs.readFileSync('/proc/self/limits', 'utf8');
    const limit = (name) => (limits.split('\n').find((l) => l.startsWith(name)) || '').trim().split(/\s{2,}/)[1];
    if (event.write_tmp) fs.writeFileSync('/tmp/' + event.write_tmp, 'x');
    return {
      uid: process.getuid(),
      nofile: limit('Max open files'),
      nproc: limit('Max processes'),
      tmp: fs.readdirSync('/tmp').sort(),
      policy: ((stat) => Number(stat.slice(stat.lastIndexOf(') ') + 2).split(' ')[38]))(
        fs.readFileSync('/proc/self/stat', 'utf8')),
      file: event.read_file ? fs.readFileSync(event.read_file, 'utf8') : undefined,
    };
  }
  return {
    pid: process.pid,
    event,
    remaining_ms: context.getRemainingTimeInMillis(),
    token: context.aifn ? context.aifn.token : null,
  };
};

exports.stream = awslambda.streamifyResponse(async (event, stream) => {
  if (event.throw) throw new Error(event.throw); // before anything was written
  stream.setContentType(event.sse ? 'text/event-stream' : 'text/plain');
  const n = event.chunks || 5;
  for (let i = 0; i < n; i++) {
    if (event.fail_at === i) throw new Error('failed mid-stream');
    stream.write(event.sse ? `data: ${i}\n\n` : `chunk${i}\n`);
    await sleep(event.gap_ms === undefined ? 200 : event.gap_ms);
  }
  stream.end();
});
