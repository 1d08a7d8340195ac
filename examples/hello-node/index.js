// The smallest useful function: greets the caller by name.
// Plain Lambda style, so aws-lambda-ric runs it unchanged too.
exports.handler = async (event) => {
  const name = event && typeof event.name === 'string' ? event.name : 'world';
  return { message: `hello, ${name}` };
};
