#include "base/error.h"

#include <boost/json.hpp>

namespace aifn {

std::string_view to_string(ErrorType t) {
  switch (t) {
    case ErrorType::invalid_json: return "invalid_json";
    case ErrorType::bad_request: return "bad_request";
    case ErrorType::unauthorized: return "unauthorized";
    case ErrorType::forbidden: return "forbidden";
    case ErrorType::not_found: return "not_found";
    case ErrorType::method_not_allowed: return "method_not_allowed";
    case ErrorType::conflict: return "conflict";
    case ErrorType::payload_too_large: return "payload_too_large";
    case ErrorType::unsupported_media_type: return "unsupported_media_type";
    case ErrorType::invalid_input: return "invalid_input";
    case ErrorType::throttled: return "throttled";
    case ErrorType::rate_limited: return "rate_limited";
    case ErrorType::budget_exceeded: return "budget_exceeded";
    case ErrorType::function_error: return "function_error";
    case ErrorType::internal: return "internal";
    case ErrorType::instance_crashed: return "instance_crashed";
    case ErrorType::out_of_memory: return "out_of_memory";
    case ErrorType::upstream_error: return "upstream_error";
    case ErrorType::unavailable: return "unavailable";
    case ErrorType::timeout: return "timeout";
  }
  return "internal";
}

int http_status(ErrorType t) {
  switch (t) {
    case ErrorType::invalid_json:
    case ErrorType::bad_request: return 400;
    case ErrorType::unauthorized: return 401;
    case ErrorType::forbidden: return 403;
    case ErrorType::not_found: return 404;
    case ErrorType::method_not_allowed: return 405;
    case ErrorType::conflict: return 409;
    case ErrorType::payload_too_large: return 413;
    case ErrorType::unsupported_media_type: return 415;
    case ErrorType::invalid_input: return 422;
    case ErrorType::throttled:
    case ErrorType::rate_limited:
    case ErrorType::budget_exceeded: return 429;
    case ErrorType::function_error:
    case ErrorType::internal: return 500;
    case ErrorType::instance_crashed:
    case ErrorType::out_of_memory:
    case ErrorType::upstream_error: return 502;
    case ErrorType::unavailable: return 503;
    case ErrorType::timeout: return 504;
  }
  return 500;
}

std::string error_body(const Error& e) {
  boost::json::object err;
  err["type"] = to_string(e.type);
  err["message"] = e.message;
  if (!e.details.empty()) {
    boost::json::array details;
    for (const auto& d : e.details) details.push_back({{"path", d.path}, {"message", d.message}});
    err["details"] = std::move(details);
  }
  if (e.type == ErrorType::function_error) {
    err["errorType"] = e.function_error_type;
    // The function's own error JSON, kept whole when it parses (errorMessage, trace).
    boost::system::error_code ec;
    auto v = boost::json::parse(e.function_error_body, ec);
    if (!ec && v.is_object()) {
      auto& o = v.as_object();
      if (auto* m = o.if_contains("errorMessage")) err["errorMessage"] = *m;
      if (auto* tr = o.if_contains("trace")) err["trace"] = *tr;
    }
    if (!err.contains("errorMessage")) err["errorMessage"] = e.message;
  }
  if (e.retry_after_seconds) err["retry_after"] = *e.retry_after_seconds;
  return boost::json::serialize(boost::json::object{{"error", std::move(err)}});
}

}  // namespace aifn
