// `aifn models [list]` (DESIGN.md §10): the models a server routes, from its
// OpenAI-compatible GET /v1/models, one id per line on stdout.
#pragma once

#include "cli/client.h"

namespace aifn::cli {

// Returns the exit code (see report()).
int list_models(const ClientOptions& client);

}  // namespace aifn::cli
