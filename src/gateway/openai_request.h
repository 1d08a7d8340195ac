// Parsing and checking the bodies of the OpenAI-compatible /v1 routes
// (DESIGN.md §6, Models) into models::CompletionRequest, and the error body
// OpenAI clients parse: {"error": {"message", "type", "param", "code"}} with
// aifn's error type names (DESIGN.md §6). Pure functions: thread-safe.
#pragma once

#include <string>
#include <vector>

#include <boost/json/value.hpp>

#include "base/error.h"
#include "models/provider.h"

namespace aifn::gateway {

// An error of a /v1 route: `param` names the request field at fault ("" =
// none), `code` is a machine-readable reason (default: the error type).
struct V1Error {
  Error error;
  std::string param;
  std::string code;
};

template <typename T>
using V1Expected = tl::expected<T, V1Error>;

std::string v1_error_body(const V1Error& e);

struct ParsedCompletion {
  std::string model;  // as the client wrote it: a [[models]] name or "provider/model"
  models::CompletionRequest req;
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
};

// /v1/chat/completions (chat = true) or /v1/completions.
V1Expected<ParsedCompletion> parse_completion(const boost::json::value& body, bool chat);

struct ParsedEmbeddings {
  std::string model;
  std::vector<std::string> inputs;
  bool base64 = false;  // encoding_format "base64": little-endian float32 bytes
};

V1Expected<ParsedEmbeddings> parse_embeddings(const boost::json::value& body);

// Little-endian float32 bytes, base64-encoded (encoding_format "base64").
std::string floats_base64(const std::vector<float>& v);

}  // namespace aifn::gateway
