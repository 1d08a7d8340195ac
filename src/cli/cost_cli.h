// `aifn cost` (DESIGN.md §9, §10): the server's GET /admin/cost as a table:
// per function, what the recorded traffic cost serverless against always-on
// instances sized for its peak, which is cheaper and where the break-even lies.
#pragma once

#include "cli/client.h"

namespace aifn::cli {

// Returns the exit code (see report()).
int show_cost(const ClientOptions& client);

}  // namespace aifn::cli
