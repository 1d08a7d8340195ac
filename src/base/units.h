// Durations and sizes as DESIGN.md §3 writes them in aifn.toml and
// function.toml: durations "250ms", "30s", "5m", "2h"; sizes as plain bytes,
// KB/MB/GB (decimal) or KiB/MiB/GiB and Ki/Mi/Gi (binary). Pure functions.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "base/error.h"

namespace aifn {

using Millis = std::chrono::milliseconds;

Expected<Millis> parse_duration(std::string_view text);
Expected<std::uint64_t> parse_size(std::string_view text);

// "1 MiB", "512 KiB", "123 bytes": for messages that name a limit.
std::string format_size(std::uint64_t bytes);
std::string format_duration(Millis d);
// Wall-clock time as epoch milliseconds (records, deadlines shown to clients).
std::int64_t epoch_ms_now();

}  // namespace aifn
