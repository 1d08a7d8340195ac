// aifn::Error — the value type for expected failures (bad input, not found,
// over a limit, timeout, upstream down), carried in tl::expected<T, Error>.
// ErrorType names are DESIGN.md §6's; http_status() is the one place that maps
// them to HTTP statuses and error_body() the one place that renders the JSON
// body. Plain values: safe to copy between threads.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <tl/expected.hpp>

namespace aifn {

enum class ErrorType {
  invalid_json,
  bad_request,
  unauthorized,
  forbidden,
  not_found,
  method_not_allowed,
  conflict,
  payload_too_large,
  unsupported_media_type,
  invalid_input,
  throttled,
  rate_limited,
  budget_exceeded,
  function_error,
  internal,
  instance_crashed,
  out_of_memory,
  upstream_error,
  unavailable,
  timeout,
};

// One failing path of a JSON Schema validation (422 invalid_input).
struct ErrorDetail {
  std::string path;
  std::string message;
};

struct Error {
  ErrorType type = ErrorType::internal;
  std::string message;
  std::vector<ErrorDetail> details;        // invalid_input
  std::optional<int> retry_after_seconds;  // 429s
  std::string function_error_type;         // function_error: the function's errorType
  std::string function_error_body;         // raw JSON the function reported, if any

  Error() = default;
  Error(ErrorType t, std::string msg) : type(t), message(std::move(msg)) {}
};

template <typename T>
using Expected = tl::expected<T, Error>;

inline tl::unexpected<Error> fail(ErrorType t, std::string msg) {
  return tl::unexpected<Error>(Error(t, std::move(msg)));
}

std::string_view to_string(ErrorType t);
int http_status(ErrorType t);
// {"error": {"type": ..., "message": ..., ...}}
std::string error_body(const Error& e);

}  // namespace aifn
