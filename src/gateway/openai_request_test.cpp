#include "gateway/openai_request.h"

#include <boost/json.hpp>
#include <gtest/gtest.h>

namespace aifn::gateway {
namespace {

boost::json::value J(const char* s) { return boost::json::parse(s); }

TEST(OpenAiRequest, ParsesAChatRequest) {
  auto r = parse_completion(J(R"({"model": "default", "messages": [{"role": "developer", "content": "be brief"},
      {"role": "user", "content": [{"type": "text", "text": "hi "}, {"type": "text", "text": "there"}]},
      {"role": "assistant", "content": null}],
      "max_completion_tokens": 5, "temperature": 0, "stop": "x", "seed": 3, "stream": true,
      "stream_options": {"include_usage": true}, "user": "u1", "top_p": null})"),
                            true);
  ASSERT_TRUE(r) << r.error().error.message;
  EXPECT_EQ(r->model, "default");
  ASSERT_EQ(r->req.messages.size(), 3u);
  EXPECT_EQ(r->req.messages[0].role, "system");
  EXPECT_EQ(r->req.messages[1].content, "hi there");
  EXPECT_EQ(r->req.messages[2].content, "");
  EXPECT_EQ(r->req.sampling.max_tokens, 5);
  EXPECT_EQ(r->req.sampling.temperature, 0.0);
  EXPECT_FALSE(r->req.sampling.top_p);  // null = unset
  EXPECT_EQ(r->req.sampling.stop, std::vector<std::string>{"x"});
  EXPECT_EQ(r->req.sampling.seed, 3u);
  EXPECT_TRUE(r->stream);
  EXPECT_TRUE(r->include_usage);
  EXPECT_TRUE(r->req.extra.contains("user"));  // relayed to upstreams
}

TEST(OpenAiRequest, NamesTheFieldAtFault) {
  auto param = [](const char* body, bool chat = true) {
    auto r = parse_completion(J(body), chat);
    EXPECT_FALSE(r) << body;
    return r ? std::string("(accepted)") : r.error().param;
  };
  EXPECT_EQ(param(R"({"messages": [{"role": "user", "content": "x"}]})"), "model");
  EXPECT_EQ(param(R"({"model": "", "messages": [{"role": "user", "content": "x"}]})"), "model");
  EXPECT_EQ(param(R"({"model": "m", "messages": []})"), "messages");
  EXPECT_EQ(param(R"({"model": "m", "messages": [{"role": "tool", "content": "x"}]})"), "messages[0].role");
  EXPECT_EQ(param(R"({"model": "m", "messages": [{"role": "user", "content": [{"type": "image_url"}]}]})"),
            "messages[0].content[0]");
  EXPECT_EQ(param(R"({"model": "m", "messages": [{"role": "user", "content": "x"}], "temperature": 2.5})"),
            "temperature");
  EXPECT_EQ(param(R"({"model": "m", "messages": [{"role": "user", "content": "x"}], "max_tokens": 0})"),
            "max_tokens");
  EXPECT_EQ(param(R"({"model": "m", "messages": [{"role": "user", "content": "x"}], "max_tokens": 1.5})"),
            "max_tokens");
  EXPECT_EQ(param(R"({"model": "m", "messages": [{"role": "user", "content": "x"}], "n": 2})"), "n");
  EXPECT_EQ(param(R"({"model": "m", "messages": [{"role": "user", "content": "x"}], "stop": ["a","b","c","d","e"]})"),
            "stop");
  EXPECT_EQ(param(R"({"model": "m", "messages": [{"role": "user", "content": "x"}], "stream_options": {}})"),
            "stream_options");
  EXPECT_EQ(param(R"({"model": "m", "prompt": ["a", "b"]})", false), "prompt");
  EXPECT_EQ(param(R"({"model": "m", "prompt": [1, 2]})", false), "prompt");
  EXPECT_FALSE(parse_completion(J("[]"), true));
}

TEST(OpenAiRequest, Embeddings) {
  auto r = parse_embeddings(J(R"({"model": "m", "input": ["a", "b"], "encoding_format": "base64"})"));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->inputs.size(), 2u);
  EXPECT_TRUE(r->base64);
  EXPECT_EQ(parse_embeddings(J(R"({"model": "m", "input": [[1, 2]]})")).error().param, "input");
  EXPECT_EQ(parse_embeddings(J(R"({"model": "m", "input": ""})")).error().param, "input");
  EXPECT_EQ(parse_embeddings(J(R"({"model": "m", "input": "a", "dimensions": 8})")).error().param, "dimensions");
  // 1.0f, -2.0f little-endian: 00 00 80 3f, 00 00 00 c0.
  EXPECT_EQ(floats_base64({1.0f, -2.0f}), "AACAPwAAAMA=");
}

TEST(OpenAiRequest, ErrorBodyHasOpenAisFields) {
  auto body = J(v1_error_body({Error(ErrorType::bad_request, "nope"), "temperature", ""}).c_str());
  auto& e = body.at("error");
  EXPECT_EQ(e.at("message"), "nope");
  EXPECT_EQ(e.at("type"), "bad_request");
  EXPECT_EQ(e.at("param"), "temperature");
  EXPECT_EQ(e.at("code"), "bad_request");
  auto none = J(v1_error_body({Error(ErrorType::unavailable, "x"), "", "c"}).c_str());
  EXPECT_TRUE(none.at("error").at("param").is_null());
  EXPECT_EQ(none.at("error").at("code"), "c");
}

}  // namespace
}  // namespace aifn::gateway
