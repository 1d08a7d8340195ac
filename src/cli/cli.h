// aifn's command line (DESIGN.md §10): `serve` runs the server; the client
// verbs (deploy, invoke, logs, usage, ...) talk to a server at --server /
// AIFN_SERVER (default http://127.0.0.1:8080) with AIFN_KEY; `models run`
// and `models bench` use the engine locally. Called once from main().
#pragma once

namespace aifn::cli {

int run(int argc, char** argv);

}  // namespace aifn::cli
