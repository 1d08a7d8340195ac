#include "cli/cost_cli.h"

#include <iostream>
#include <string>

#include <boost/json.hpp>
#include <fmt/format.h>

namespace aifn::cli {
namespace {

// "12.5x" of the recorded traffic, or "-" when serverless cost nothing.
std::string break_even(const boost::json::object& o) {
  const auto& v = o.at("break_even_traffic");
  return v.is_null() ? std::string("-") : fmt::format("{:.3g}x", v.to_number<double>());
}

std::string row_line(std::string_view name, const boost::json::object& o, std::string_view peak,
                     std::string_view memory) {
  return fmt::format("{:<24} {:>8} {:>5} {:>7} {:>7.2f}% {:>14.8f} {:>14.8f} {:>11} {:>11}\n", name,
                     o.at("calls").to_number<std::int64_t>(), peak, memory,
                     100.0 * o.at("utilization").to_number<double>(), o.at("serverless_cost").to_number<double>(),
                     o.at("always_on_cost").to_number<double>(), std::string_view(o.at("cheaper").as_string()),
                     break_even(o));
}

}  // namespace

int show_cost(const ClientOptions& client) {
  auto res = http::fetch(request(client, "GET", "/admin/cost"));
  if (int rc = report(res)) return rc;
  const auto v = boost::json::parse(res->body).as_object();
  std::cout << fmt::format("{:<24} {:>8} {:>5} {:>7} {:>8} {:>14} {:>14} {:>11} {:>11}\n", "function", "calls", "peak",
                           "mem_mb", "busy", "serverless", "always_on", "cheaper", "break_even");
  for (const auto& r : v.at("rows").as_array()) {
    const auto& o = r.as_object();
    std::cout << row_line(std::string_view(o.at("function").as_string()), o,
                          std::to_string(o.at("peak_concurrency").to_number<std::int64_t>()),
                          std::to_string(o.at("memory_mb").to_number<std::int64_t>()));
  }
  const auto& t = v.at("total").as_object();
  std::cout << row_line("total", t, "", "");
  const double serverless = t.at("serverless_cost").to_number<double>();
  const double always_on = t.at("always_on_cost").to_number<double>();
  const double hours = v.at("hours").to_number<double>();
  if (v.at("rows").as_array().empty()) {
    std::cout << "no calls recorded yet\n";
  } else if (serverless <= always_on) {
    std::cout << fmt::format("over {:.2f} h serverless is cheaper; always-on capacity for the same peaks wins once "
                             "traffic grows {}\n",
                             hours, break_even(t));
  } else {
    std::cout << fmt::format("over {:.2f} h always-on capacity for the same peaks is cheaper; serverless would win "
                             "below {} of this traffic\n",
                             hours, break_even(t));
  }
  return 0;
}

}  // namespace aifn::cli
