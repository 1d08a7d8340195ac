// aifn-gen-model: writes a deterministic random-weight llama GGUF (see testmodel.h).
//   aifn-gen-model --out FILE [--type q4_0] [--n-embd 64] [--layers 2] [--heads 4]
//                  [--kv-heads 4] [--ff 192] [--vocab 512] [--ctx 2048] [--tied] [--seed 1]
#include <cstdio>
#include <cstdlib>
#include <string>

#include "engine/testmodel.h"

int main(int argc, char** argv) {
  aifn::engine::TestModelConfig c;
  std::string out;
  auto usage = [] {
    std::fprintf(stderr,
                 "usage: aifn-gen-model --out FILE [--type f32|f16|bf16|q8_0|q4_0|q4_k|q5_k|q6_k] [--n-embd N]\n"
                 "       [--layers N] [--heads N] [--kv-heads N] [--ff N] [--vocab N] [--ctx N] [--tied]\n"
                 "       [--seed N] [--name NAME]\n");
    return 2;
  };
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--tied") {
      c.tied = true;
      continue;
    }
    if (a == "-h" || a == "--help") return usage();
    if (i + 1 >= argc) return usage();
    std::string v = argv[++i];
    auto num = [&](int* dst) { *dst = std::atoi(v.c_str()); };
    if (a == "--out") out = v;
    else if (a == "--type") {
      auto t = aifn::engine::parse_type_name(v);
      if (!t) {
        std::fprintf(stderr, "%s\n", t.error().c_str());
        return 2;
      }
      c.type = *t;
    } else if (a == "--n-embd") num(&c.n_embd);
    else if (a == "--layers") num(&c.n_layer);
    else if (a == "--heads") num(&c.n_head);
    else if (a == "--kv-heads") num(&c.n_head_kv);
    else if (a == "--ff") num(&c.n_ff);
    else if (a == "--vocab") num(&c.n_vocab);
    else if (a == "--ctx") num(&c.n_ctx);
    else if (a == "--seed") c.seed = std::strtoull(v.c_str(), nullptr, 10);
    else if (a == "--name") c.name = v;
    else return usage();
  }
  if (out.empty()) return usage();
  auto r = aifn::engine::write_test_model(c, out);
  if (!r) {
    std::fprintf(stderr, "aifn-gen-model: %s\n", r.error().c_str());
    return 1;
  }
  return 0;
}
