// Runs the aifn server until SIGTERM/SIGINT: opens the store, loads the
// functions, listens, and on a signal stops accepting, lets calls in flight
// finish within shutdown_grace, stops every instance and returns 0.
#pragma once

#include "config/config.h"

namespace aifn::gateway {

int run_server(const config::Server& cfg);

// Folder with node/bootstrap.js and python/bootstrap.py: $AIFN_RUNTIMES_DIR,
// else found next to (or above) the aifn executable.
std::string find_runtimes_dir();

}  // namespace aifn::gateway
