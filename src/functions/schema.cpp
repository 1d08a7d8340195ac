#include "functions/schema.h"

#include <fstream>
#include <sstream>

#include <boost/json.hpp>
#include <fmt/format.h>
#include <valijson/adapters/boost_json_adapter.hpp>
#include <valijson/schema.hpp>
#include <valijson/schema_parser.hpp>
#include <valijson/validation_results.hpp>
#include <valijson/validator.hpp>

namespace aifn::functions {

Expected<boost::json::value> parse_json(std::string_view body, std::size_t max_depth) {
  boost::json::parse_options opts;
  opts.max_depth = max_depth;
  boost::system::error_code ec;
  boost::json::stream_parser p({}, opts);
  p.write(body.data(), body.size(), ec);
  if (!ec) p.finish(ec);
  if (ec) {
    if (ec == boost::json::error::too_deep)
      return fail(ErrorType::invalid_json, fmt::format("JSON nesting is deeper than the limit of {}", max_depth));
    return fail(ErrorType::invalid_json, fmt::format("body is not valid JSON: {}", ec.message()));
  }
  return p.release();
}

struct InputSchema::Impl {
  valijson::Schema schema;
};

InputSchema::InputSchema(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
InputSchema::~InputSchema() = default;

Expected<std::shared_ptr<const InputSchema>> InputSchema::from_json(const boost::json::value& doc,
                                                                  const std::string& name) {
  auto impl = std::make_unique<Impl>();
  try {
    valijson::SchemaParser parser;
    valijson::adapters::BoostJsonAdapter adapter(doc);
    parser.populateSchema(adapter, impl->schema);
  } catch (const std::exception& e) {
    return fail(ErrorType::bad_request, fmt::format("{}: not a usable JSON Schema: {}", name, e.what()));
  }
  return std::shared_ptr<const InputSchema>(new InputSchema(std::move(impl)));
}

Expected<std::shared_ptr<const InputSchema>> InputSchema::load(const std::string& path) {
  std::ifstream f(path);
  if (!f) return fail(ErrorType::bad_request, fmt::format("{}: cannot read the schema file", path));
  std::stringstream ss;
  ss << f.rdbuf();
  auto doc = parse_json(ss.str());
  if (!doc) return fail(ErrorType::bad_request, fmt::format("{}: {}", path, doc.error().message));
  return from_json(*doc, path);
}

Expected<void> InputSchema::validate(const boost::json::value& doc) const {
  valijson::Validator validator;
  valijson::ValidationResults results;
  valijson::adapters::BoostJsonAdapter adapter(doc);
  if (validator.validate(impl_->schema, adapter, &results)) return {};
  Error e(ErrorType::invalid_input, "input does not match the function's schema");
  valijson::ValidationResults::Error err;
  std::vector<ErrorDetail> details, wrappers;
  while (results.popError(err)) {
    // valijson names each step "[name]" or "[3]": print $.name and $[3].
    std::string path = "$";
    for (auto& c : err.context) {
      if (c == "<root>") continue;
      std::string inner = c.size() > 2 && c.front() == '[' && c.back() == ']' ? c.substr(1, c.size() - 2) : c;
      bool index = !inner.empty() && inner.find_first_not_of("0123456789") == std::string::npos;
      path += index ? "[" + inner + "]" : "." + inner;
    }
    // "Failed to validate against schema associated with property ..." only
    // wraps the specific failures below it; keep it only when alone.
    bool wrapper = err.description.rfind("Failed to validate against", 0) == 0;
    (wrapper ? wrappers : details).push_back({path, err.description});
  }
  if (details.empty()) details = std::move(wrappers);
  if (details.size() > 20) details.resize(20);
  e.details = std::move(details);
  return tl::unexpected(std::move(e));
}

}  // namespace aifn::functions
