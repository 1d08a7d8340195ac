// Streams ten "tokens" as Server-Sent Events, 50 ms apart, the way a model's
// output would arrive. Each write reaches the caller as soon as it is made.
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

exports.handler = awslambda.streamifyResponse(async (event, responseStream) => {
  responseStream.setContentType('text/event-stream');
  const words = String((event && event.text) || 'the quick brown fox jumps over the lazy dog again').split(' ');
  for (let i = 0; i < 10; i++) {
    responseStream.write(`data: ${JSON.stringify({ index: i, token: words[i % words.length] })}\n\n`);
    await sleep(50);
  }
  responseStream.write('data: [DONE]\n\n');
  responseStream.end();
});
