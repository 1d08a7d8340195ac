// libFuzzer target for event input: JSON parsed with the depth limit, then
// validated against a schema with the common keywords (DESIGN.md §6).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "functions/schema.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace aifn::functions;
  static auto schema = [] {
    auto doc = parse_json(R"({"type":"object","required":["name"],"properties":{
      "name":{"type":"string","maxLength":20,"pattern":"^[a-z]+$"},
      "tags":{"type":"array","items":{"type":"string"},"maxItems":5},
      "n":{"type":"integer","minimum":0},"o":{"type":"object","additionalProperties":false}}})");
    return *InputSchema::from_json(*doc, "fuzz");
  }();
  auto doc = parse_json(std::string_view(reinterpret_cast<const char*>(data), size));
  if (doc) (void)schema->validate(*doc);
  return 0;
}
