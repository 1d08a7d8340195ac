#include "base/units.h"

#include <charconv>
#include <cmath>
#include <limits>

#include <fmt/format.h>

namespace aifn {
namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Splits "12.5MiB" into 12.5 and "MiB".
bool split_number(std::string_view s, double& value, std::string_view& unit) {
  s = trim(s);
  size_t i = 0;
  while (i < s.size() && ((s[i] >= '0' && s[i] <= '9') || s[i] == '.')) ++i;
  if (i == 0) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + i, value);
  if (ec != std::errc() || p != s.data() + i || !std::isfinite(value) || value < 0) return false;
  unit = trim(s.substr(i));
  return true;
}

}  // namespace

Expected<Millis> parse_duration(std::string_view text) {
  double v = 0;
  std::string_view unit;
  if (!split_number(text, v, unit))
    return fail(ErrorType::bad_request, fmt::format("invalid duration \"{}\" (expected e.g. \"250ms\", \"30s\", \"5m\", \"2h\")", text));
  double ms = 0;
  if (unit == "ms") ms = v;
  else if (unit == "s") ms = v * 1000;
  else if (unit == "m") ms = v * 60'000;
  else if (unit == "h") ms = v * 3'600'000;
  else
    return fail(ErrorType::bad_request, fmt::format("invalid duration \"{}\": the unit must be ms, s, m or h", text));
  if (ms > 1e15) return fail(ErrorType::bad_request, fmt::format("duration \"{}\" is too large", text));
  return Millis(static_cast<std::int64_t>(std::llround(ms)));
}

Expected<std::uint64_t> parse_size(std::string_view text) {
  double v = 0;
  std::string_view unit;
  if (!split_number(text, v, unit))
    return fail(ErrorType::bad_request, fmt::format("invalid size \"{}\" (expected e.g. 1048576, \"512KiB\", \"6MiB\", \"1GB\")", text));
  double mult = 0;
  if (unit.empty() || unit == "B") mult = 1;
  else if (unit == "KB") mult = 1e3;
  else if (unit == "MB") mult = 1e6;
  else if (unit == "GB") mult = 1e9;
  else if (unit == "KiB" || unit == "Ki") mult = 1024.0;
  else if (unit == "MiB" || unit == "Mi") mult = 1024.0 * 1024;
  else if (unit == "GiB" || unit == "Gi") mult = 1024.0 * 1024 * 1024;
  else
    return fail(ErrorType::bad_request, fmt::format("invalid size \"{}\": the unit must be KB, MB, GB, KiB, MiB, GiB, Ki, Mi or Gi", text));
  double bytes = v * mult;
  if (bytes > 9.0e18) return fail(ErrorType::bad_request, fmt::format("size \"{}\" is too large", text));
  return static_cast<std::uint64_t>(std::llround(bytes));
}

std::string format_size(std::uint64_t b) {
  constexpr std::uint64_t KiB = 1024, MiB = KiB * 1024, GiB = MiB * 1024;
  if (b >= GiB && b % GiB == 0) return fmt::format("{} GiB", b / GiB);
  if (b >= MiB && b % MiB == 0) return fmt::format("{} MiB", b / MiB);
  if (b >= KiB && b % KiB == 0) return fmt::format("{} KiB", b / KiB);
  return fmt::format("{} bytes", b);
}

std::string format_duration(Millis d) {
  auto ms = d.count();
  if (ms % 3'600'000 == 0 && ms) return fmt::format("{}h", ms / 3'600'000);
  if (ms % 60'000 == 0 && ms) return fmt::format("{}m", ms / 60'000);
  if (ms % 1000 == 0 && ms) return fmt::format("{}s", ms / 1000);
  return fmt::format("{}ms", ms);
}

std::int64_t epoch_ms_now() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace aifn
