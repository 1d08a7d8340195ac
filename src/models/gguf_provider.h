// aifn::models::GgufProvider — the built-in engine (src/engine) as a model
// provider (DESIGN.md §8, kind = "gguf"): one GGUF file, served as the model
// named after the file's stem ("models/tiny.gguf" -> "tiny").
//
// The file is memory-mapped and loaded once, in the background, as soon as
// the provider is constructed; it then stays resident and is shared by every
// request (Engine is thread-safe). A request that arrives during the load
// waits for it and reports the wait as Completion::model_load_ms.
// Generation runs on the provider's own worker threads, never on the io
// thread; text produced there is handed back to the io coroutine as it comes
// and passed to the TextSink. A sink that returns false sets the engine's
// stop flag, so no further token is computed for a reader who left.
//
// Thread-safety: the Provider methods are called on the io thread (the
// executor given at construction); worker threads only touch the engine and
// the mutex-guarded hand-over state.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>

#include "engine/engine.h"
#include "models/provider.h"

namespace aifn::models {

struct GgufOptions {
  std::string name;      // provider name ("local")
  std::string path;      // the .gguf file
  int threads = 0;       // engine threads; 0 = all cores
  int max_parallel = 4;  // requests generating at once; more wait their turn
  bool load_at_start = true;  // false: the first request starts the load (and waits for it)
};

class GgufProvider : public Provider {
 public:
  GgufProvider(boost::asio::any_io_executor io, GgufOptions options);
  ~GgufProvider() override;  // stops running generations and joins the workers
  GgufProvider(const GgufProvider&) = delete;
  GgufProvider& operator=(const GgufProvider&) = delete;

  const std::string& name() const override { return opt_.name; }
  const std::string& model_id() const { return model_id_; }
  boost::asio::awaitable<ProviderResult<std::vector<std::string>>> list_models() override;
  boost::asio::awaitable<ProviderResult<Completion>> complete(const CompletionRequest& req, TextSink* sink) override;
  boost::asio::awaitable<ProviderResult<Embeddings>> embed(const std::string& model,
                                                           const std::vector<std::string>& inputs) override;

  // Tokens of `text` by this model's tokenizer (no special tokens added);
  // nullopt until the model has loaded. Any thread.
  std::optional<int> count_tokens(std::string_view text);

  // Waits for the background load; `waited_ms` gets how long this call waited.
  boost::asio::awaitable<ProviderResult<std::shared_ptr<const engine::Engine>>> ready(double* waited_ms);

 private:
  void start_load();
  void finish_load(tl::expected<std::unique_ptr<engine::Engine>, std::string> loaded);

  boost::asio::any_io_executor io_;
  GgufOptions opt_;
  std::string model_id_;
  boost::asio::thread_pool workers_;
  std::atomic<bool> shutting_down_{false};
  // Load state: written once by the loading worker, read under mu_.
  std::mutex mu_;
  std::shared_ptr<const engine::Engine> engine_;
  std::string load_error_;
  // io thread only: set once the load's completion reached the io thread.
  bool load_started_ = false;
  bool loaded_io_ = false;
  std::vector<boost::asio::steady_timer*> load_waiters_;
  // Handlers posted to the io thread check this: the provider may be gone.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace aifn::models
