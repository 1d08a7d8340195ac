// `aifn keys create|list|revoke` and `aifn secrets set|list|rm` (DESIGN.md
// §10): thin clients of /admin/keys and /admin/secrets. Each verb runs in its
// CLI11 callback and leaves its exit code in *exit_code.
#pragma once

#include <CLI/CLI.hpp>

#include "cli/client.h"

namespace aifn::cli {

void add_security_commands(CLI::App& app, const ClientOptions& client, int* exit_code);

}  // namespace aifn::cli
