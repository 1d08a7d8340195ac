// aifn: the server and the command-line client in one binary.
#include "cli/cli.h"

int main(int argc, char** argv) { return aifn::cli::run(argc, argv); }
