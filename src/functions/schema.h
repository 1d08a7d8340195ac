// Input checks that run before any instance starts (DESIGN.md §6): the body
// is parsed as JSON with a nesting-depth limit (400 invalid_json), then
// validated against the function's [input] schema with valijson (422
// invalid_input with one {path, message} per failure). A compiled
// InputSchema is immutable and safe to share between threads.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include <boost/json/value.hpp>

#include "base/error.h"

namespace aifn::functions {

constexpr std::size_t kMaxJsonDepth = 64;

// Parses outside JSON: invalid_json with the byte offset on failure.
Expected<boost::json::value> parse_json(std::string_view body, std::size_t max_depth = kMaxJsonDepth);

class InputSchema {
 public:
  // Reads and compiles a JSON Schema file; errors name the file.
  static Expected<std::shared_ptr<const InputSchema>> load(const std::string& path);
  static Expected<std::shared_ptr<const InputSchema>> from_json(const boost::json::value& schema,
                                                               const std::string& name);
  ~InputSchema();
  // invalid_input with details when `doc` does not match.
  Expected<void> validate(const boost::json::value& doc) const;

 private:
  struct Impl;
  explicit InputSchema(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace aifn::functions
