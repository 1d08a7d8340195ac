#include "cli/security_cli.h"

#include <unistd.h>

#include <iostream>
#include <iterator>
#include <memory>

#include <boost/json.hpp>
#include <fmt/format.h>

namespace aifn::cli {
namespace {

std::string str(const boost::json::value& v) { return v.is_string() ? std::string(v.get_string()) : std::string(); }

struct KeyArgs {
  std::string name;
  std::vector<std::string> scopes;
  std::string rate, tokens, budget, id;
};

int create_key(const ClientOptions& c, const KeyArgs& a) {
  boost::json::array scopes;
  for (auto& s : a.scopes) scopes.push_back(boost::json::string(s));
  boost::json::object body{{"name", a.name}, {"scopes", scopes}};
  if (!a.rate.empty()) body["rate"] = a.rate;
  if (!a.tokens.empty()) body["tokens"] = a.tokens;
  if (!a.budget.empty()) body["budget"] = a.budget;
  auto r = request(c, "POST", "/admin/keys");
  r.headers["Content-Type"] = "application/json";
  r.body = boost::json::serialize(body);
  auto res = http::fetch(r);
  if (int rc = report(res)) return rc;
  auto v = boost::json::parse(res->body);
  // The key on stdout alone (scripts capture it); the rest for people.
  std::cout << str(v.at("key")) << "\n";
  std::cerr << fmt::format("created key {} ({}): shown once, store it now\n", str(v.at("id")), a.name);
  if (auto* f = v.as_object().if_contains("admin_key_file"))
    std::cerr << "auth is now required; the admin key is in " << str(*f) << "\n";
  return 0;
}

int list_keys(const ClientOptions& c) {
  auto res = http::fetch(request(c, "GET", "/admin/keys"));
  if (int rc = report(res)) return rc;
  auto v = boost::json::parse(res->body);
  std::cout << fmt::format("{:<14} {:<16} {:<8} {:<10} {:<12} {:<11} {}\n", "id", "name", "state", "rate", "tokens",
                           "budget", "scopes");
  for (auto& k : v.at("keys").as_array()) {
    std::string scopes;
    for (auto& s : k.at("scopes").as_array()) scopes += (scopes.empty() ? "" : ",") + str(s);
    std::cout << fmt::format("{:<14} {:<16} {:<8} {:<10} {:<12} {:<11} {}\n", str(k.at("id")), str(k.at("name")),
                             k.at("revoked").as_bool() ? "revoked" : "active", str(k.at("rate")), str(k.at("tokens")),
                             str(k.at("budget")), scopes);
  }
  return 0;
}

int simple(const ClientOptions& c, const std::string& method, const std::string& path, const std::string& done) {
  auto res = http::fetch(request(c, method, path));
  if (int rc = report(res)) return rc;
  std::cerr << done << "\n";
  return 0;
}

int set_secret(const ClientOptions& c, const std::string& name) {
  if (::isatty(STDIN_FILENO)) std::cerr << "value for " << name << " (end with Ctrl-D): " << std::flush;
  std::string value(std::istreambuf_iterator<char>(std::cin), {});
  // One trailing newline is what `echo` or a terminal adds, not the value.
  if (!value.empty() && value.back() == '\n') value.pop_back();
  auto r = request(c, "PUT", "/admin/secrets/" + name);
  r.headers["Content-Type"] = "application/octet-stream";
  r.body = std::move(value);
  auto res = http::fetch(r);
  if (int rc = report(res)) return rc;
  std::cerr << "secret " << name << " set\n";
  return 0;
}

int list_secrets(const ClientOptions& c) {
  auto res = http::fetch(request(c, "GET", "/admin/secrets"));
  if (int rc = report(res)) return rc;
  auto v = boost::json::parse(res->body);
  for (auto& s : v.at("secrets").as_array()) std::cout << str(s.at("name")) << "\n";
  return 0;
}

}  // namespace

void add_security_commands(CLI::App& app, const ClientOptions& client, int* exit_code) {
  auto args = std::make_shared<KeyArgs>();
  auto* keys = app.add_subcommand("keys", "API keys: create, list, revoke");
  keys->require_subcommand(1);
  auto* create = keys->add_subcommand("create", "create a key; prints it once");
  create->add_option("--name", args->name, "a label for the key");
  create->add_option("--scope", args->scopes, "invoke:NAME | invoke:* | models | admin (repeatable)")->required();
  create->add_option("--rate", args->rate, "requests, e.g. 20/s");
  create->add_option("--tokens", args->tokens, "model tokens, e.g. 50000/min");
  create->add_option("--budget", args->budget, "spend per day, e.g. 5.00/day");
  create->callback([&client, args, exit_code] { *exit_code = create_key(client, *args); });
  keys->add_subcommand("list", "list keys (never their secret)")->callback([&client, exit_code] {
    *exit_code = list_keys(client);
  });
  auto* revoke = keys->add_subcommand("revoke", "revoke a key for good");
  revoke->add_option("ID", args->id)->required();
  revoke->callback([&client, args, exit_code] {
    *exit_code = simple(client, "DELETE", "/admin/keys/" + args->id, "revoked " + args->id);
  });

  auto name = std::make_shared<std::string>();
  auto* secrets = app.add_subcommand("secrets", "secrets for functions and providers: set, list, rm");
  secrets->require_subcommand(1);
  auto* set = secrets->add_subcommand("set", "set NAME from stdin");
  set->add_option("NAME", *name)->required();
  set->callback([&client, name, exit_code] { *exit_code = set_secret(client, *name); });
  secrets->add_subcommand("list", "list secret names")->callback([&client, exit_code] {
    *exit_code = list_secrets(client);
  });
  auto* rm = secrets->add_subcommand("rm", "delete a secret");
  rm->add_option("NAME", *name)->required();
  rm->callback([&client, name, exit_code] {
    *exit_code = simple(client, "DELETE", "/admin/secrets/" + *name, "removed " + *name);
  });
}

}  // namespace aifn::cli
