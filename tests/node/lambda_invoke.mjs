// Calls aifn's Lambda-compatible invoke with the official AWS SDK
// (@aws-sdk/client-lambda), as any Lambda client would, and prints what the
// SDK returned as one JSON line per call. Usage: node lambda_invoke.mjs URL FUNCTION
import { LambdaClient, InvokeCommand } from '@aws-sdk/client-lambda';

const [url, fn] = process.argv.slice(2);
const client = new LambdaClient({
  endpoint: url,
  region: 'us-east-1',
  credentials: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'dummy-secret' },
  maxAttempts: 1,
});
const text = (b) => (b ? Buffer.from(b).toString('utf8') : '');

async function call(name, type, payload) {
  try {
    const r = await client.send(new InvokeCommand({
      FunctionName: fn, InvocationType: type, Payload: Buffer.from(JSON.stringify(payload)),
    }));
    console.log(JSON.stringify({ name, status: r.StatusCode, functionError: r.FunctionError || null,
                                 payload: text(r.Payload) }));
  } catch (e) {
    console.log(JSON.stringify({ name, thrown: e.name, status: e.$metadata && e.$metadata.httpStatusCode }));
  }
}

await call('ok', 'RequestResponse', { name: 'Ada' });
await call('error', 'RequestResponse', { throw: 'bad input' });
await call('event', 'Event', { name: 'Bob' });
await call('dryrun', 'DryRun', {});
