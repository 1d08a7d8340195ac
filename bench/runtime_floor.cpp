// aifn-bench-floor: the least a server can do per call when each call goes
// through a Lambda Runtime API instance, as a same-run baseline for the exec
// hello's throughput (bench/platform_ceiling.py, "floor").
//
// One thread, one level-triggered epoll, no HTTP library: it reads a client's
// POST, hands its body to an instance that is waiting in GET /next, reads the
// instance's POST /response (with the next GET pipelined behind it, as
// hello-cpp sends them), and answers the client. The 202 for the response
// travels with the instance's next event when one is queued, as in aifn. So
// each call costs what aifn's path costs in sends, receives and wake-ups and
// nothing else: no validation, deadlines, metering, logs, limits or
// timeouts. It trusts its peers (well-formed, small messages from wrk and
// hello-cpp on loopback) and is not a server anyone should run.
//
// Usage: aifn-bench-floor PORT INSTANCES HANDLER
//   starts INSTANCES copies of HANDLER (under SCHED_BATCH, as aifn does) with
//   AWS_LAMBDA_RUNTIME_API pointing at its own Runtime API port, then serves
//   POSTs on 127.0.0.1:PORT.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <string>
#include <string_view>
#include <unordered_map>

namespace {

[[noreturn]] void die(char const* what) {
  std::perror(what);
  std::exit(1);
}

int listen_on(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || listen(fd, 512) != 0) die("listen");
  return fd;
}

int bound_port(int fd) {
  sockaddr_in addr{};
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  return ntohs(addr.sin_port);
}

// The length of the first whole HTTP message in `buf` (head and body), or 0
// while it is incomplete; `body` is set to its body.
size_t whole_message(std::string const& buf, std::string_view& body) {
  size_t head_end = buf.find("\r\n\r\n");
  if (head_end == std::string::npos) return 0;
  std::string_view head(buf.data(), head_end);
  size_t length = 0;
  for (char const* name : {"Content-Length: ", "content-length: "}) {
    if (size_t at = head.find(name); at != std::string_view::npos) {
      length = std::strtoul(head.data() + at + std::strlen(name), nullptr, 10);
      break;
    }
  }
  size_t total = head_end + 4 + length;
  if (buf.size() < total) return 0;
  body = std::string_view(buf.data() + head_end + 4, length);
  return total;
}

void send_all(int fd, std::string const& out) {
  // Small messages on loopback: a short send means the peer stopped reading.
  if (send(fd, out.data(), out.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(out.size())) die("send");
}

struct Conn {
  bool instance = false;
  std::string in;
  // instance: the client whose call it runs (-1: none) and whether it is
  // owed a 202 (sent with its next event).
  int client = -1;
  bool owes_ack = false;
};

class Floor {
 public:
  explicit Floor(int client_port) : epoll_(epoll_create1(EPOLL_CLOEXEC)), clients_(listen_on(client_port)), runtime_(listen_on(0)) {
    watch(clients_);
    watch(runtime_);
  }

  int runtime_port() const { return bound_port(runtime_); }

  [[noreturn]] void run() {
    epoll_event events[64];
    for (;;) {
      int n = epoll_wait(epoll_, events, 64, -1);
      for (int i = 0; i < n; ++i) on_readable(events[i].data.fd);
    }
  }

 private:
  void watch(int fd) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    epoll_ctl(epoll_, EPOLL_CTL_ADD, fd, &ev);
  }

  void on_readable(int fd) {
    if (fd == clients_ || fd == runtime_) {
      int c;
      while ((c = accept4(fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
        int one = 1;
        setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        conns_[c].instance = fd == runtime_;
        watch(c);
      }
      return;
    }
    Conn& conn = conns_[fd];
    char buf[16384];
    ssize_t got = recv(fd, buf, sizeof buf, 0);
    if (got <= 0) {
      if (conn.instance) die("an instance left");
      client_left(fd);
      return;
    }
    conn.in.append(buf, static_cast<size_t>(got));
    std::string_view body;
    while (size_t used = whole_message(conn.in, body)) {
      if (conn.instance)
        on_instance_message(fd, conn, body);
      else
        queued_.emplace_back(fd, std::string(body));
      conn.in.erase(0, used);
    }
    dispatch();
  }

  // Forgets a client that hung up (wrk does at the end of a run, with calls
  // in flight): its queued call and the answer of a call it has running.
  void client_left(int fd) {
    std::erase_if(queued_, [fd](auto const& q) { return q.first == fd; });
    for (auto& [_, c] : conns_)
      if (c.client == fd) c.client = -1;
    close(fd);
    conns_.erase(fd);
  }

  void on_instance_message(int fd, Conn& inst, std::string_view body) {
    if (inst.in.starts_with("GET ")) {
      idle_.push_back(fd);
      return;
    }
    // POST /runtime/invocation/{id}/response: answer the client now.
    std::string out = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Request-Id: ";
    out.append(std::to_string(++calls_)).append("\r\nContent-Length: ").append(std::to_string(body.size()));
    out.append("\r\n\r\n").append(body);
    if (inst.client >= 0) send(inst.client, out.data(), out.size(), MSG_NOSIGNAL);
    inst.client = -1;
    inst.owes_ack = true;
  }

  // Hands queued calls to waiting instances; a 202 still owed goes out alone
  // once no call is left for that instance.
  void dispatch() {
    while (!queued_.empty() && !idle_.empty()) {
      int fd = idle_.front();
      idle_.pop_front();
      Conn& inst = conns_[fd];
      auto [client, body] = std::move(queued_.front());
      queued_.pop_front();
      std::string out = inst.owes_ack ? kAck : "";
      out.append("HTTP/1.1 200 OK\r\nLambda-Runtime-Aws-Request-Id: ").append(std::to_string(++events_));
      out.append("\r\nLambda-Runtime-Deadline-Ms: 4102444800000\r\nContent-Type: application/json\r\n");
      out.append("Content-Length: ").append(std::to_string(body.size())).append("\r\n\r\n").append(body);
      send_all(fd, out);
      inst.client = client;
      inst.owes_ack = false;
    }
    for (int fd : idle_) {
      Conn& inst = conns_[fd];
      if (inst.owes_ack) send_all(fd, kAck);
      inst.owes_ack = false;
    }
  }

  static inline std::string const kAck = "HTTP/1.1 202 Accepted\r\nContent-Length: 16\r\n\r\n{\"status\":\"OK\"}\n";

  int epoll_;
  int clients_;
  int runtime_;
  std::unordered_map<int, Conn> conns_;
  std::deque<std::pair<int, std::string>> queued_;  // (client fd, event)
  std::deque<int> idle_;                            // instances in GET /next
  unsigned long calls_ = 0;
  unsigned long events_ = 0;
};

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: aifn-bench-floor PORT INSTANCES HANDLER\n");
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  Floor floor(std::atoi(argv[1]));
  std::string api = "127.0.0.1:" + std::to_string(floor.runtime_port());
  setenv("AWS_LAMBDA_RUNTIME_API", api.c_str(), 1);
  for (int i = 0, n = std::atoi(argv[2]); i < n; ++i) {
    if (fork() == 0) {
      // As aifn starts its instances (runtime/process.cpp): a woken instance
      // does not preempt the server.
      sched_param param{};
      sched_setscheduler(0, SCHED_BATCH, &param);
      execl(argv[3], argv[3], nullptr);
      die("exec");
    }
  }
  floor.run();
}
