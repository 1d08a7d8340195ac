#include "jobs/webhooks.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <optional>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>

#include <boost/json.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "models/upstream_client.h"
#include "jobs/job_db.h"
#include "jobs/jobs.h"

namespace aifn::jobs {

namespace {

std::string base64(const unsigned char* p, std::size_t n) {
  std::string out(4 * ((n + 2) / 3), '\0');
  int len = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), p, static_cast<int>(n));
  out.resize(static_cast<std::size_t>(len));
  return out;
}

std::optional<std::string> unbase64(std::string_view s) {
  if (s.empty() || s.size() % 4 != 0) return std::nullopt;
  std::string out(3 * s.size() / 4, '\0');
  int len = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                            reinterpret_cast<const unsigned char*>(s.data()), static_cast<int>(s.size()));
  if (len < 0) return std::nullopt;
  // EVP_DecodeBlock counts '=' padding as zero bytes.
  std::size_t pad = s.ends_with("==") ? 2 : s.ends_with("=") ? 1 : 0;
  out.resize(static_cast<std::size_t>(len) - pad);
  return out;
}

std::int64_t epoch_s() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace

std::string sign_webhook(const std::string& secret, const std::string& id, std::int64_t timestamp,
                         const std::string& body) {
  std::string_view s = secret;
  if (!s.starts_with("whsec_")) return {};
  auto key = unbase64(s.substr(6));
  if (!key || key->empty()) return {};
  std::string content = fmt::format("{}.{}.{}", id, timestamp, body);
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int mac_len = 0;
  if (!HMAC(EVP_sha256(), key->data(), static_cast<int>(key->size()),
            reinterpret_cast<const unsigned char*>(content.data()), content.size(), mac, &mac_len))
    return {};
  return "v1," + base64(mac, mac_len);
}

Webhooks::Webhooks(JobDb& db, WebhookOptions opts) : db_(db), opts_(std::move(opts)), thread_([this] { run(); }) {}

Webhooks::~Webhooks() {
  {
    std::lock_guard lk(mu_);
    stop_ = true;
  }
  cv_.notify_one();
  thread_.join();
}

void Webhooks::deliver(const store::JobRecord& job) {
  boost::json::object payload{{"type", "job." + job.status}, {"data", job_json(job)}};
  payload["timestamp"] = job.finished_ms;
  Delivery d;
  d.job_id = job.id;
  d.url = job.callback_url;
  // The same message id on every retry, so a receiver can drop duplicates.
  d.msg_id = fmt::format("msg_{}_{}", job.id, job.finished_ms);
  d.body = boost::json::serialize(payload);
  d.attempts = job.callback_attempts;
  d.due = std::chrono::steady_clock::now();
  {
    std::lock_guard lk(mu_);
    queue_.push_back(std::move(d));
  }
  cv_.notify_one();
}

bool Webhooks::post(const Delivery& d) {
  if (!client_) {
    models::UpstreamOptions o;
    o.connect_timeout = o.first_byte_timeout = o.idle_timeout = opts_.timeout;
    o.max_attempts = 1;  // retries are ours, with the backoff above, and recorded on the job
    o.ca_file = opts_.ca_file;
    o.max_body = 64 * 1024;
    auto c = models::UpstreamClient::create(io_.get_executor(), o);
    if (!c) {
      spdlog::error("event=callback_failed job={} reason=\"{}\"", d.job_id, c.error().message);
      return false;
    }
    client_ = *c;
  }
  auto ts = epoch_s();
  models::UpstreamRequest req;
  req.method = "POST";
  req.url = d.url;
  req.body = d.body;  // sent as application/json
  req.headers = {{"webhook-id", d.msg_id},
                 {"webhook-timestamp", std::to_string(ts)},
                 {"webhook-signature", sign_webhook(opts_.secret, d.msg_id, ts, d.body)}};
  std::optional<Expected<models::UpstreamResponse>> r;
  boost::asio::co_spawn(
      io_, [&]() -> boost::asio::awaitable<void> { r = co_await client_->fetch(req); }, boost::asio::detached);
  io_.restart();
  io_.run();  // this thread's own loop: one delivery at a time
  if (r && *r && (*r)->status >= 200 && (*r)->status < 300) return true;
  if (!r) return false;
  auto& res = *r;
  spdlog::warn("event=callback_failed job={} attempt={} reason=\"{}\"", d.job_id, d.attempts,
               res ? fmt::format("HTTP {}", res->status) : res.error().message);
  return false;
}

void Webhooks::run() {
  std::unique_lock lk(mu_);
  while (!stop_) {
    if (queue_.empty()) {
      cv_.wait(lk);
      continue;
    }
    auto it = std::min_element(queue_.begin(), queue_.end(), [](auto& a, auto& b) { return a.due < b.due; });
    if (it->due > std::chrono::steady_clock::now()) {
      cv_.wait_until(lk, it->due);
      continue;
    }
    Delivery d = std::move(*it);
    queue_.erase(it);
    lk.unlock();
    ++d.attempts;
    bool ok = post(d);
    store::JobUpdate u;
    u.kind = store::JobUpdate::Kind::callback;
    u.id = d.job_id;
    u.callback_attempts = d.attempts;
    u.callback_state = ok ? "delivered" : d.attempts >= opts_.max_attempts ? "failed" : "pending";
    db_.update(std::move(u));
    lk.lock();
    if (!ok && d.attempts < opts_.max_attempts) {
      auto delay = opts_.backoff * (1 << std::min(d.attempts - 1, 10));
      d.due = std::chrono::steady_clock::now() + delay;
      queue_.push_back(std::move(d));
    }
  }
}

}  // namespace aifn::jobs
