// Chat with the model gateway through the official `openai` SDK and stream
// the answer to the caller as Server-Sent Events while the model writes it.
// The SDK talks to aifn's /v1 with this call's invocation token: it works only
// while this call runs, only for the models in function.toml, and the tokens
// the model uses are billed to this call.
//
// Event: {"message": "...", "messages": [...], "model": "default", "max_tokens": 64, "seed": 1}
// Stream: data: {"token": "..."} per piece, then data: {"usage": {...}}, then data: [DONE]
const OpenAI = require('openai');

exports.handler = awslambda.streamifyResponse(async (event, responseStream, context) => {
  responseStream.setContentType('text/event-stream');
  const send = (obj) => responseStream.write(`data: ${JSON.stringify(obj)}\n\n`);
  const client = new OpenAI({ baseURL: context.aifn.modelsUrl, apiKey: context.aifn.token, maxRetries: 0 });
  const messages = Array.isArray(event && event.messages)
    ? event.messages
    : [{ role: 'user', content: String((event && event.message) || 'Say hello.') }];
  try {
    const stream = await client.chat.completions.create({
      model: (event && event.model) || 'default',
      messages,
      max_tokens: (event && event.max_tokens) || 64,
      seed: event && event.seed,
      stream: true,
      stream_options: { include_usage: true },
    });
    for await (const chunk of stream) {
      const token = chunk.choices[0] && chunk.choices[0].delta && chunk.choices[0].delta.content;
      if (token) send({ token });
      if (chunk.usage) send({ usage: chunk.usage });
    }
  } catch (err) {
    // An API error from the gateway (e.g. 403 for a model not in function.toml).
    send({ error: { status: err.status || null, message: err.message } });
  }
  responseStream.write('data: [DONE]\n\n');
  responseStream.end();
});
