// libFuzzer target for loading a model: a GGUF that the reader accepts must
// become a Model or an error (architecture, shapes, types and counts checked
// against the metadata), never a crash; and a model that loads must evaluate
// tokens. Seeded with a small generated model (scripts/fuzz.sh), so mutations
// reach the shape checks, the weight copy and interleaving, and the forward
// pass. Build with -DAIFN_FUZZ=ON and clang.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "engine/gguf.h"
#include "engine/model.h"
#include "engine/thread_pool.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace aifn::engine;
  auto f = GgufFile::from_memory(std::string_view(reinterpret_cast<const char*>(data), size));
  if (!f) return 0;
  auto m = Model::load(std::shared_ptr<const GgufFile>(std::move(*f)));
  if (!m) return 0;
  static ThreadPool pool(1);
  Session s(*m, pool, 8);
  std::vector<float> logits;
  const std::vector<int32_t> tokens{0, 1, 2};
  (void)s.eval(tokens, Logits::kAll, &logits);
  (void)s.eval(std::vector<int32_t>{3}, Logits::kLast, &logits);  // one more on the cache, as decode does
  return 0;
}
