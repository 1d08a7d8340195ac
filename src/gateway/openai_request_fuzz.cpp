// libFuzzer target for the /v1 request bodies: JSON parsed with the depth
// limit, then read as a chat, a completion and an embeddings request; and the
// prompt-function template and JSON extraction on the same bytes.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "functions/schema.h"
#include "gateway/openai_request.h"
#include "models/prompt.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto doc = aifn::functions::parse_json(text);
  if (doc) {
    (void)aifn::gateway::parse_completion(*doc, true);
    (void)aifn::gateway::parse_completion(*doc, false);
    (void)aifn::gateway::parse_embeddings(*doc);
    (void)aifn::models::render_prompt(text, *doc);
  }
  (void)aifn::models::extract_json(text);
  return 0;
}
