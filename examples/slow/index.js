// Sleeps event.ms milliseconds (default 2000), then answers: the timeout demo.
exports.handler = async (event) => {
  const ms = event && Number.isFinite(event.ms) ? event.ms : 2000;
  await new Promise((resolve) => setTimeout(resolve, ms));
  return { slept_ms: ms };
};
