#include "models/prompt.h"

#include <boost/json.hpp>
#include <gtest/gtest.h>

namespace aifn::models {
namespace {

boost::json::value input() { return boost::json::parse(R"({"text": "the cat sat", "n": 3, "opts": {"lang": "fr"}})"); }

TEST(Prompt, FillsFieldsAndJson) {
  auto r = render_prompt("Summarize:\n{{text}} ({{ n }} words, {{opts.lang}})", input());
  ASSERT_TRUE(r);
  EXPECT_EQ(*r, "Summarize:\nthe cat sat (3 words, fr)");
  auto all = render_prompt("{{json .}}|{{json text}}|{{opts}}", input());
  ASSERT_TRUE(all);
  EXPECT_EQ(*all, R"({"text":"the cat sat","n":3,"opts":{"lang":"fr"}}|"the cat sat"|{"lang":"fr"})");
  EXPECT_EQ(*render_prompt("no fields", input()), "no fields");
}

TEST(Prompt, MissingFieldsAndBadTemplatesAreErrors) {
  auto r = render_prompt("{{opts.missing}}", input());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().type, ErrorType::invalid_input);
  ASSERT_EQ(r.error().details.size(), 1u);
  EXPECT_EQ(r.error().details[0].path, "/opts/missing");
  EXPECT_EQ(render_prompt("{{text", input()).error().type, ErrorType::bad_request);
  EXPECT_EQ(render_prompt("{{ }}", input()).error().type, ErrorType::bad_request);
}

TEST(Prompt, ExtractsJsonFromAnswers) {
  EXPECT_EQ(*extract_json(R"( {"a": 1} )"), boost::json::parse(R"({"a":1})"));
  EXPECT_EQ(*extract_json("Here you go:\n```json\n[1, 2]\n```\nanything else?"), boost::json::parse("[1,2]"));
  EXPECT_EQ(*extract_json(R"(Sure! {"summary": "x"} Hope that helps.)"), boost::json::parse(R"({"summary":"x"})"));
  EXPECT_EQ(extract_json("no json here").error().type, ErrorType::upstream_error);
  EXPECT_EQ(extract_json("{broken").error().type, ErrorType::upstream_error);
}

}  // namespace
}  // namespace aifn::models
