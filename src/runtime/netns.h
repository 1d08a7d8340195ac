// Network isolation for `network = "gateway-only"` functions: the instance
// runs in a network namespace of its own whose only interface is its own
// loopback. aifn opens two listeners inside that namespace before the
// instance starts — its Runtime API endpoint, and a relay on the model
// gateway's port number that pipes each connection to the real gateway on
// the host's loopback — so those are all the instance can reach.
// Needs CAP_SYS_ADMIN (root). io thread only, except make_gateway_only_net.
#pragma once

#include <cstdint>
#include <memory>

#include <boost/asio/io_context.hpp>

#include "base/error.h"

namespace aifn::runtime {

struct GatewayOnlyNet {
  int ns_fd = -1;     // the namespace, for setns() in the instance's child
  int api_fd = -1;    // listening on 127.0.0.1:0 inside
  int relay_fd = -1;  // listening on 127.0.0.1:<gateway port> inside
};

// Creates the namespace on a short-lived thread (a network namespace is per
// thread), brings its loopback up and opens the two listeners in it. The
// caller owns the three descriptors.
Expected<GatewayOnlyNet> make_gateway_only_net(std::uint16_t gateway_port);

// Accepts on `listen_fd` (inside the namespace) and pipes every connection
// to 127.0.0.1:`target_port` as seen from the server (the host).
class GatewayRelay {
 public:
  GatewayRelay(boost::asio::io_context& io, int listen_fd, std::uint16_t target_port);
  ~GatewayRelay();  // stops accepting and closes every relayed connection
  GatewayRelay(const GatewayRelay&) = delete;
  GatewayRelay& operator=(const GatewayRelay&) = delete;

  struct State;

 private:
  std::shared_ptr<State> state_;
};

}  // namespace aifn::runtime
