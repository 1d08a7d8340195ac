// Prompt functions (DESIGN.md §4, runtime = "prompt"): the pure parts. The
// template language is deliberately tiny: `{{field}}` or `{{a.b}}` inserts a
// field of the (validated) input, strings as they are and anything else as
// JSON; `{{json .}}` inserts the whole input as JSON and `{{json field}}` one
// field as JSON. extract_json finds the JSON value in a model's answer (the
// whole answer, a ```json fenced block, or the outermost {...} / [...]).
// Pure functions: thread-safe.
#pragma once

#include <string>
#include <string_view>

#include <boost/json/value.hpp>

#include "base/error.h"

namespace aifn::models {

// invalid_input (with the missing field's path) when the template names a
// field the input lacks; bad_request for an unterminated or empty {{ }}.
Expected<std::string> render_prompt(std::string_view tmpl, const boost::json::value& input);

// upstream_error when the answer holds no JSON value.
Expected<boost::json::value> extract_json(std::string_view answer);

}  // namespace aifn::models
