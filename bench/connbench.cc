// connbench: the connection-cost load generator of bench/run.sh (built by the script with g++).
//
//   connbench serve IP PORT           accept and close, forever (until killed)
//   connbench connect IP PORT SECONDS  short-lived connections for SECONDS: socket, connect,
//                                      close (SO_LINGER 0: an RST, no TIME_WAIT, so the
//                                      ephemeral ports never run out), one after the other
//
//   connbench echo IP PORT            accept; on every connection echo what arrives; close at
//                                      the peer's end or reset (epoll, one thread, forever)
//   connbench rtt IP PORT SECONDS [GAP_US]
//                                      new connections one after the other for SECONDS:
//                                      socket, connect, write 1 byte, read 1 byte back, close
//                                      with an RST; measures connect() start -> byte back;
//                                      GAP_US: a pause after each (the path goes idle)
//
// `connect` prints one line: "connects=N cps=X connect_p50_us=Y connect_p99_us=Z failed=F",
// where the latency is the time spent in the blocking connect() call alone (socket() and
// close() are outside it) and cps counts the whole socket+connect+close loop.
// `rtt` prints "conns=N rtt_p50_us=Y rtt_p99_us=Z failed=F": the new connection's cost as an
// application sees it, connect plus the first request/response round trip (through a proxy
// that accepts locally, connect() alone says nothing: the work happens before the byte
// comes back).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <vector>

namespace {

double nowUs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

sockaddr_in address(const char* ip, const char* port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(atoi(port)));
  if (inet_pton(AF_INET, ip, &a.sin_addr) != 1) {
    fprintf(stderr, "connbench: bad IPv4 address %s\n", ip);
    exit(2);
  }
  return a;
}

int serve(const sockaddr_in& a) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (bind(fd, reinterpret_cast<const sockaddr*>(&a), sizeof(a)) != 0 || listen(fd, 4096) != 0) {
    perror("connbench serve: bind/listen");
    return 1;
  }
  for (;;) {
    int c = accept(fd, nullptr, nullptr);
    if (c >= 0) close(c);
  }
}

int connectLoop(const sockaddr_in& a, double seconds) {
  std::vector<float> lat;
  lat.reserve(1 << 20);
  long failed = 0;
  linger lg{1, 0};
  double start = nowUs(), end = start + seconds * 1e6, t = start;
  while (t < end) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) {
      perror("connbench: socket");
      return 1;
    }
    double t0 = nowUs();
    int rc = connect(fd, reinterpret_cast<const sockaddr*>(&a), sizeof(a));
    t = nowUs();
    if (rc == 0) {
      lat.push_back(static_cast<float>(t - t0));
    } else if (++failed > 1000 && lat.empty()) {
      fprintf(stderr, "connbench: connect: %s\n", strerror(errno));
      return 1;
    }
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    close(fd);
  }
  double elapsed = (nowUs() - start) / 1e6;
  if (lat.empty()) {
    fprintf(stderr, "connbench: no connection succeeded\n");
    return 1;
  }
  std::sort(lat.begin(), lat.end());
  auto pct = [&](double p) { return lat[static_cast<size_t>(p * (lat.size() - 1))]; };
  printf("connects=%zu cps=%.0f connect_p50_us=%.2f connect_p99_us=%.2f failed=%ld\n", lat.size(),
         lat.size() / elapsed, pct(0.50), pct(0.99), failed);
  return 0;
}

int echoServe(const sockaddr_in& a) {
  int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  int one = 1;
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (bind(lfd, reinterpret_cast<const sockaddr*>(&a), sizeof(a)) != 0 || listen(lfd, 4096) != 0) {
    perror("connbench echo: bind/listen");
    return 1;
  }
  int ep = epoll_create1(0);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = lfd;
  epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
  epoll_event evs[256];
  char buf[16384];
  for (;;) {
    int n = epoll_wait(ep, evs, 256, -1);
    for (int i = 0; i < n; ++i) {
      int fd = evs[i].data.fd;
      if (fd == lfd) {
        int c;
        while ((c = accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK)) >= 0) {
          setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
          epoll_event ce{};
          ce.events = EPOLLIN | EPOLLRDHUP;
          ce.data.fd = c;
          epoll_ctl(ep, EPOLL_CTL_ADD, c, &ce);
        }
        continue;
      }
      ssize_t r = read(fd, buf, sizeof(buf));
      if (r > 0) {
        if (write(fd, buf, static_cast<size_t>(r)) < 0 && errno != EAGAIN) r = 0;
      }
      if (r == 0 || (r < 0 && errno != EAGAIN)) close(fd);  // close() leaves the epoll set
    }
  }
}

int rttLoop(const sockaddr_in& a, double seconds, int gap_us) {
  std::vector<float> lat;
  lat.reserve(1 << 20);
  long failed = 0;
  linger lg{1, 0};
  int one = 1;
  double start = nowUs(), end = start + seconds * 1e6, t = start;
  while (t < end) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) {
      perror("connbench: socket");
      return 1;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    double t0 = nowUs();
    bool ok = connect(fd, reinterpret_cast<const sockaddr*>(&a), sizeof(a)) == 0;
    char c = 'x';
    ok = ok && write(fd, &c, 1) == 1;
    pollfd p{fd, POLLIN, 0};
    ok = ok && poll(&p, 1, 2000) == 1 && read(fd, &c, 1) == 1;
    t = nowUs();
    if (ok) {
      lat.push_back(static_cast<float>(t - t0));
    } else if (++failed > 100 && lat.empty()) {
      fprintf(stderr, "connbench rtt: no round trip: %s\n", strerror(errno));
      return 1;
    }
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    close(fd);
    if (gap_us > 0) usleep(static_cast<useconds_t>(gap_us));
  }
  if (lat.empty()) {
    fprintf(stderr, "connbench rtt: no round trip succeeded\n");
    return 1;
  }
  std::sort(lat.begin(), lat.end());
  auto pct = [&](double p) { return lat[static_cast<size_t>(p * (lat.size() - 1))]; };
  printf("conns=%zu rtt_p50_us=%.2f rtt_p99_us=%.2f failed=%ld\n", lat.size(), pct(0.50),
         pct(0.99), failed);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 4 && strcmp(argv[1], "serve") == 0) return serve(address(argv[2], argv[3]));
  if (argc >= 5 && strcmp(argv[1], "connect") == 0) {
    return connectLoop(address(argv[2], argv[3]), atof(argv[4]));
  }
  if (argc >= 4 && strcmp(argv[1], "echo") == 0) return echoServe(address(argv[2], argv[3]));
  if (argc >= 5 && strcmp(argv[1], "rtt") == 0) {
    return rttLoop(address(argv[2], argv[3]), atof(argv[4]), argc >= 6 ? atoi(argv[5]) : 0);
  }
  fprintf(stderr,
          "usage: connbench serve IP PORT | connbench connect IP PORT SECONDS |\n"
          "       connbench echo IP PORT | connbench rtt IP PORT SECONDS\n");
  return 2;
}
