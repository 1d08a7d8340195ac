#include "runtime/netns.h"

#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <set>
#include <thread>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <fmt/format.h>

namespace aifn::runtime {
namespace net = boost::asio;
using net::ip::tcp;

namespace {

int listen_loopback(std::uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd, SOMAXCONN) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

bool loopback_up() {
  int s = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) return false;
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
  bool ok = ::ioctl(s, SIOCGIFFLAGS, &ifr) == 0;
  ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
  ok = ok && ::ioctl(s, SIOCSIFFLAGS, &ifr) == 0;
  ::close(s);
  return ok;
}

}  // namespace

Expected<GatewayOnlyNet> make_gateway_only_net(std::uint16_t gateway_port) {
  GatewayOnlyNet out;
  std::string problem;
  // unshare() moves only the calling thread, so a thread of its own does it
  // and the io thread stays in the host's namespace.
  std::thread([&] {
    if (::unshare(CLONE_NEWNET) != 0) {
      problem = fmt::format("cannot create a network namespace ({}); network = \"gateway-only\" needs root",
                            std::strerror(errno));
      return;
    }
    if (!loopback_up()) {
      problem = fmt::format("cannot bring up the namespace's loopback: {}", std::strerror(errno));
      return;
    }
    out.api_fd = listen_loopback(0);
    out.relay_fd = listen_loopback(gateway_port);
    out.ns_fd = ::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (out.api_fd < 0 || out.relay_fd < 0 || out.ns_fd < 0)
      problem = fmt::format("cannot open listeners in the network namespace: {}", std::strerror(errno));
  }).join();
  if (!problem.empty()) {
    for (int fd : {out.api_fd, out.relay_fd, out.ns_fd})
      if (fd >= 0) ::close(fd);
    return fail(ErrorType::unavailable, problem);
  }
  return out;
}

struct GatewayRelay::State {
  State(net::io_context& io) : io(io), acceptor(io) {}
  net::io_context& io;
  tcp::acceptor acceptor;
  std::uint16_t target = 0;
  bool stopped = false;
  std::set<std::shared_ptr<tcp::socket>> open;  // both ends of every relayed connection
};

namespace {

// Copies one direction until it ends, then passes the end of stream on.
// (Lambdas holding their state by capture: co_spawn keeps them alive, and
// g++ 12 mishandles class-type coroutine parameters passed by value.)
void pipe(const std::shared_ptr<GatewayRelay::State>& state, const std::shared_ptr<tcp::socket>& source,
          const std::shared_ptr<tcp::socket>& sink) {
  net::co_spawn(
      state->io,
      [st = state, from = source, to = sink]() -> net::awaitable<void> {
        char buf[16 * 1024];
        for (;;) {
          boost::system::error_code ec;
          std::size_t n = co_await from->async_read_some(net::buffer(buf), net::redirect_error(net::use_awaitable, ec));
          if (ec) break;
          co_await net::async_write(*to, net::buffer(buf, n), net::redirect_error(net::use_awaitable, ec));
          if (ec) break;
        }
        boost::system::error_code ignored;
        to->shutdown(tcp::socket::shutdown_send, ignored);
        from->shutdown(tcp::socket::shutdown_receive, ignored);
        st->open.erase(from);
      },
      net::detached);
}

void relay_one(const std::shared_ptr<GatewayRelay::State>& state, const std::shared_ptr<tcp::socket>& accepted) {
  net::co_spawn(
      state->io,
      [st = state, inside = accepted]() -> net::awaitable<void> {
        auto host = std::make_shared<tcp::socket>(st->io);
        boost::system::error_code ec;
        co_await host->async_connect({net::ip::address_v4::loopback(), st->target},
                                     net::redirect_error(net::use_awaitable, ec));
        if (ec || st->stopped) {
          st->open.erase(inside);
          co_return;
        }
        st->open.insert(host);
        pipe(st, inside, host);
        pipe(st, host, inside);
      },
      net::detached);
}

}  // namespace

GatewayRelay::GatewayRelay(net::io_context& io, int listen_fd, std::uint16_t target_port)
    : state_(std::make_shared<State>(io)) {
  state_->target = target_port;
  boost::system::error_code ec;
  state_->acceptor.assign(tcp::v4(), listen_fd, ec);
  if (ec) {
    ::close(listen_fd);
    return;
  }
  net::co_spawn(
      io,
      [st = state_]() -> net::awaitable<void> {
        while (!st->stopped) {
          auto s = std::make_shared<tcp::socket>(st->io);
          boost::system::error_code aec;
          co_await st->acceptor.async_accept(*s, net::redirect_error(net::use_awaitable, aec));
          if (aec || st->stopped) break;
          st->open.insert(s);
          relay_one(st, s);
        }
      },
      net::detached);
}

GatewayRelay::~GatewayRelay() {
  state_->stopped = true;
  boost::system::error_code ec;
  state_->acceptor.close(ec);
  for (auto& s : std::set(state_->open)) s->close(ec);
  state_->open.clear();
}

}  // namespace aifn::runtime
