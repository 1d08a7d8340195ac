// What a runtime reports about a failure through the Lambda Runtime API
// (/response error trailers, /error, /init/error), parsed from bytes the
// function controls: anything goes in, a bounded, well-formed value comes out.
// Pure functions, safe from any thread. Fuzzed by runtime_api_fuzz.
#pragma once

#include <string>
#include <string_view>

namespace aifn::runtime {

struct ErrorReport {
  std::string type;     // errorType from the body, else the header's, else ""
  std::string message;  // errorMessage, else ""
};

// A JSON body {"errorType": ..., "errorMessage": ...}; anything else keeps
// the header's type and no message.
ErrorReport parse_error_report(std::string_view body, std::string_view header_type);

// The Error-Body trailer of a streamed response: base64 of the JSON error
// (aws-lambda-ric sends it so); plain JSON or undecodable text is kept as is.
std::string decode_error_trailer(std::string_view value);

}  // namespace aifn::runtime
