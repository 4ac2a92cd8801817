// httpload: the open-loop HTTP/1.1 load generator of bench/run.sh (built by the script with g++).
//
//   httpload IP PORT RATE SECONDS CONNS [PATH]
//
// Opens CONNS keep-alive connections to IP:PORT, then for SECONDS sends `GET PATH` (default /)
// on a fixed schedule: request i is due at start + i / RATE, whatever happened to the ones
// before it (open loop). A due request goes out on a free connection (the free ones are taken
// in turn, so the load is spread over all of them); when none is free it waits for one. Each
// latency is measured from the request's *scheduled* time to the end of its response, so a
// slow answer is charged to every request it held back (no coordinated omission). One request
// at a time per connection (no pipelining). One thread, epoll; the schedule is kept with an
// absolute timerfd and a 1 ns timer slack.
//
// Prints one line of key=value:
//   sent=N ok=N non2xx=N errors=N rate=R p50_us= p90_us= p99_us= max_us= mean_us= reconnects=N
// ok: 2xx responses (their latencies make the percentiles); non2xx: other statuses; errors:
// requests that got no complete response (connection reset or closed, malformed response, or
// still unanswered 2 s after the last one was due); rate: responses per second over the time
// from the first due request to the last response. Exit status 0 when the run completed (even
// with errors: the caller decides), 1 when the connections could not be opened.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <deque>
#include <string>
#include <vector>

namespace {

int64_t nowNs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

enum class State { kConnecting, kFree, kBusy, kClosed };

struct Conn {
  int fd = -1;
  State state = State::kClosed;
  int64_t sched = 0;     // the scheduled time of the request in flight
  int64_t retry_at = 0;  // kClosed: when to dial again
  std::string in;
};

// What a buffer holds of one HTTP/1.1 response: 0 incomplete, -1 malformed, else its length.
// `status` is set once the head is complete. Responses to GET: Content-Length, chunked, or (no
// framing at all) not supported here, since the connection has to stay open.
long responseLength(const std::string& b, int* status) {
  size_t end = b.find("\r\n\r\n");
  if (end == std::string::npos) return b.size() > 65536 ? -1 : 0;
  if (b.compare(0, 7, "HTTP/1.") != 0 || b.size() < 12) return -1;
  *status = atoi(b.c_str() + 9);
  size_t head = end + 4;
  // Header fields, case-insensitively.
  long content_length = -1;
  bool chunked = false;
  size_t pos = b.find("\r\n") + 2;
  while (pos < end) {
    size_t eol = b.find("\r\n", pos);
    std::string line = b.substr(pos, eol - pos);
    pos = eol + 2;
    size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string name = line.substr(0, colon);
    for (char& c : name) c = static_cast<char>(tolower(static_cast<unsigned char>(c)));
    std::string value = line.substr(colon + 1);
    value.erase(0, value.find_first_not_of(" \t"));
    if (name == "content-length") {
      content_length = atol(value.c_str());
    } else if (name == "transfer-encoding") {
      for (char& c : value) c = static_cast<char>(tolower(static_cast<unsigned char>(c)));
      chunked = value.find("chunked") != std::string::npos;
    }
  }
  if (*status == 204 || *status == 304 || (*status >= 100 && *status < 200)) return long(head);
  if (chunked) {
    size_t p = head;
    for (;;) {
      size_t eol = b.find("\r\n", p);
      if (eol == std::string::npos) return 0;
      long size = strtol(b.c_str() + p, nullptr, 16);
      if (size < 0) return -1;
      p = eol + 2;
      if (size == 0) {
        // Trailers (none expected) end with an empty line.
        for (;;) {
          size_t e = b.find("\r\n", p);
          if (e == std::string::npos) return 0;
          if (e == p) return long(e + 2);
          p = e + 2;
        }
      }
      if (b.size() < p + size_t(size) + 2) return 0;
      p += size_t(size) + 2;
    }
  }
  if (content_length < 0) return -1;
  return b.size() >= head + size_t(content_length) ? long(head + size_t(content_length)) : 0;
}

int run(const sockaddr_in& addr, double rate, double seconds, int nconns, const std::string& path,
        const std::string& host) {
  prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
  const std::string request = "GET " + path + " HTTP/1.1\r\nHost: " + host +
                              "\r\nUser-Agent: mlt-bench-httpload\r\nAccept: */*\r\n\r\n";
  int ep = epoll_create1(EPOLL_CLOEXEC);
  int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  epoll_event tev{};
  tev.events = EPOLLIN;
  tev.data.u64 = UINT64_MAX;
  epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &tev);

  std::vector<Conn> conns(static_cast<size_t>(nconns));
  long reconnects = 0;
  auto open = [&](size_t i) {
    Conn& c = conns[i];
    c.in.clear();
    c.fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    int r = connect(c.fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr));
    if (r != 0 && errno != EINPROGRESS) {
      close(c.fd);
      c.fd = -1;
      c.state = State::kClosed;
      return;
    }
    c.state = r == 0 ? State::kFree : State::kConnecting;
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP;
    ev.data.u64 = i;
    epoll_ctl(ep, EPOLL_CTL_ADD, c.fd, &ev);
  };
  auto drop = [&](size_t i) {
    Conn& c = conns[i];
    if (c.fd >= 0) {
      epoll_ctl(ep, EPOLL_CTL_DEL, c.fd, nullptr);
      close(c.fd);
    }
    c.fd = -1;
    c.state = State::kClosed;
  };
  for (size_t i = 0; i < conns.size(); ++i) open(i);

  // Wait (up to 3 s) for every connection to be up before the schedule starts.
  epoll_event evs[256];
  int64_t deadline = nowNs() + 3000000000LL;
  for (;;) {
    bool all = true;
    for (auto& c : conns) all = all && c.state == State::kFree;
    if (all) break;
    if (nowNs() > deadline) {
      fprintf(stderr, "httpload: connections not established within 3 s\n");
      return 1;
    }
    int n = epoll_wait(ep, evs, 256, 100);
    for (int k = 0; k < n; ++k) {
      if (evs[k].data.u64 == UINT64_MAX) continue;
      size_t i = evs[k].data.u64;
      Conn& c = conns[i];
      if (c.state != State::kConnecting) continue;
      int err = 0;
      socklen_t len = sizeof(err);
      getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len);
      if (err != 0 || (evs[k].events & (EPOLLERR | EPOLLHUP))) {
        fprintf(stderr, "httpload: connect: %s\n", strerror(err ? err : ECONNREFUSED));
        return 1;
      }
      c.state = State::kFree;
    }
  }
  for (size_t i = 0; i < conns.size(); ++i) {
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLRDHUP;
    ev.data.u64 = i;
    epoll_ctl(ep, EPOLL_CTL_MOD, conns[i].fd, &ev);
  }

  const int64_t interval = int64_t(1e9 / rate);
  const int64_t start = nowNs() + 10000000;  // 10 ms from now
  const int64_t total = int64_t(seconds * rate);
  const int64_t grace = 2000000000;
  int64_t next = 0;           // index of the next request to become due
  std::deque<int64_t> due;    // due, not sent yet: their scheduled times
  std::vector<uint32_t> lat;  // µs, 2xx only
  lat.reserve(size_t(total) + 16);
  long sent = 0, ok = 0, non2xx = 0, errors = 0;
  int64_t last_done = start;
  size_t rr = 0;
  auto finishOne = [&](size_t i, int status, int64_t t) {
    Conn& c = conns[i];
    int64_t us = (t - c.sched) / 1000;
    if (status >= 200 && status < 300) {
      ++ok;
      lat.push_back(uint32_t(std::min<int64_t>(us, UINT32_MAX)));
    } else {
      ++non2xx;
    }
    last_done = t;
    c.state = State::kFree;
  };
  // A broken connection: its request (if any) failed; dialled again 10 ms later.
  auto fail = [&](size_t i) {
    if (conns[i].state == State::kBusy) ++errors;
    drop(i);
    conns[i].retry_at = nowNs() + 10000000;
  };

  for (;;) {
    int64_t now = nowNs();
    int64_t retry = INT64_MAX;
    for (size_t i = 0; i < conns.size(); ++i) {
      if (conns[i].state != State::kClosed) continue;
      if (conns[i].retry_at <= now) {
        ++reconnects;
        open(i);  // kConnecting: EPOLLOUT tells when it is usable
      } else {
        retry = std::min(retry, conns[i].retry_at);
      }
    }
    while (next < total && start + next * interval <= now) due.push_back(start + interval * next++);
    // Send what is due on free connections, in turn.
    while (!due.empty()) {
      size_t found = conns.size();
      for (size_t k = 0; k < conns.size(); ++k) {
        size_t i = (rr + k) % conns.size();
        if (conns[i].state == State::kFree) {
          found = i;
          break;
        }
      }
      if (found == conns.size()) break;
      rr = found + 1;
      Conn& c = conns[found];
      ssize_t w = send(c.fd, request.data(), request.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      c.sched = due.front();
      due.pop_front();
      ++sent;
      if (w != ssize_t(request.size())) {
        c.state = State::kBusy;
        fail(found);
        continue;
      }
      c.state = State::kBusy;
    }
    bool busy = std::any_of(conns.begin(), conns.end(),
                            [](const Conn& c) { return c.state == State::kBusy; });
    if (next >= total && due.empty() && !busy) break;
    int64_t wake;
    if (next < total) {
      wake = start + next * interval;
    } else {
      wake = start + total * interval + grace;
      if (now >= wake) break;  // unanswered requests are counted below
    }
    wake = std::min(wake, retry);
    itimerspec its{};
    its.it_value.tv_sec = wake / 1000000000;
    its.it_value.tv_nsec = wake % 1000000000;
    timerfd_settime(tfd, TFD_TIMER_ABSTIME, &its, nullptr);
    int n = epoll_wait(ep, evs, 256, -1);
    int64_t t = nowNs();
    for (int k = 0; k < n; ++k) {
      if (evs[k].data.u64 == UINT64_MAX) {
        uint64_t x;
        while (read(tfd, &x, sizeof(x)) > 0) {
        }
        continue;
      }
      size_t i = evs[k].data.u64;
      Conn& c = conns[i];
      if (c.fd < 0) continue;
      if (c.state == State::kConnecting) {
        int err = 0;
        socklen_t len = sizeof(err);
        getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0 || (evs[k].events & (EPOLLERR | EPOLLHUP))) {
          fail(i);
          continue;
        }
        c.state = State::kFree;
        epoll_event ev{};
        ev.events = EPOLLIN | EPOLLRDHUP;
        ev.data.u64 = i;
        epoll_ctl(ep, EPOLL_CTL_MOD, c.fd, &ev);
        continue;
      }
      bool gone = false;
      for (;;) {
        char buf[16384];
        ssize_t r = recv(c.fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (r > 0) {
          c.in.append(buf, size_t(r));
          continue;
        }
        if (r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) gone = true;
        break;
      }
      if (!c.in.empty()) {
        int status = 0;
        long len = responseLength(c.in, &status);
        if (len < 0 || (len > 0 && c.state != State::kBusy)) {
          fail(i);  // malformed, or a response nobody asked for
          continue;
        }
        if (len > 0) {
          c.in.erase(0, size_t(len));
          finishOne(i, status, t);
          if (!c.in.empty()) {
            fail(i);
            continue;
          }
        }
      }
      if (gone) fail(i);
    }
  }
  for (auto& c : conns) {
    if (c.state == State::kBusy) ++errors;  // no answer within the grace period
  }
  errors += long(due.size());
  std::sort(lat.begin(), lat.end());
  auto pct = [&](double p) -> double {
    if (lat.empty()) return 0;
    size_t idx = size_t(p / 100.0 * double(lat.size() - 1) + 0.5);
    return lat[std::min(idx, lat.size() - 1)];
  };
  double mean = 0;
  for (uint32_t v : lat) mean += v;
  mean = lat.empty() ? 0 : mean / double(lat.size());
  double span = double(last_done - start) / 1e9;
  printf(
      "sent=%ld ok=%ld non2xx=%ld errors=%ld rate=%.1f p50_us=%.0f p90_us=%.0f p99_us=%.0f "
      "max_us=%.0f mean_us=%.1f reconnects=%ld\n",
      sent, ok, non2xx, errors, span > 0 ? double(ok + non2xx) / span : 0.0, pct(50), pct(90),
      pct(99), lat.empty() ? 0.0 : double(lat.back()), mean, reconnects);
  for (auto& c : conns) {
    if (c.fd >= 0) close(c.fd);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 6) {
    fprintf(stderr, "usage: httpload IP PORT RATE SECONDS CONNS [PATH]\n");
    return 2;
  }
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(atoi(argv[2])));
  if (inet_pton(AF_INET, argv[1], &a.sin_addr) != 1) {
    fprintf(stderr, "httpload: bad IPv4 address %s\n", argv[1]);
    return 2;
  }
  double rate = atof(argv[3]), seconds = atof(argv[4]);
  int conns = atoi(argv[5]);
  if (rate <= 0 || seconds <= 0 || conns <= 0 || conns > 200) {
    fprintf(stderr, "httpload: RATE and SECONDS > 0, 1 <= CONNS <= 200\n");
    return 2;
  }
  std::string path = argc > 6 ? argv[6] : "/";
  std::string host = std::string(argv[1]) + (atoi(argv[2]) == 80 ? "" : ":" + std::string(argv[2]));
  return run(a, rate, seconds, conns, path, host);
}
