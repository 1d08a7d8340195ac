// Internal to aifn_jobs: completion callbacks. One thread POSTs each final
// job to its Aifn-Callback-Url with Standard Webhooks headers
// (https://www.standardwebhooks.com: webhook-id, webhook-timestamp,
// webhook-signature), retries a failed delivery with exponential backoff,
// and records the delivery state on the job (pending -> delivered | failed).
// http and https (verified against the system trust store, or ca_file),
// over kept-alive connections of the upstream client.
// deliver() is safe from any thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/io_context.hpp>

#include "base/units.h"
#include "store/store.h"

namespace aifn::models {
class UpstreamClient;
}

namespace aifn::jobs {

class JobDb;

struct WebhookOptions {
  std::string secret;  // whsec_<base64>
  Millis backoff{1'000};
  int max_attempts = 6;
  Millis timeout{10'000};
  std::string ca_file;  // PEM bundle for https receivers; empty = the system trust store
};

class Webhooks {
 public:
  Webhooks(JobDb& db, WebhookOptions opts);
  ~Webhooks();  // deliveries not yet made stay pending in the store
  Webhooks(const Webhooks&) = delete;
  Webhooks& operator=(const Webhooks&) = delete;

  void deliver(const store::JobRecord& job);

 private:
  struct Delivery {
    std::string job_id;
    std::string url;
    std::string msg_id;
    std::string body;
    int attempts = 0;
    std::chrono::steady_clock::time_point due;
  };
  void run();
  bool post(const Delivery& d);

  JobDb& db_;
  const WebhookOptions opts_;
  boost::asio::io_context io_;                          // the delivery thread's own
  std::shared_ptr<models::UpstreamClient> client_;      // used on the delivery thread only
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Delivery> queue_;  // guarded by mu_
  bool stop_ = false;            // guarded by mu_
  std::thread thread_;
};

}  // namespace aifn::jobs
