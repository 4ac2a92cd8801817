#include "tests/lib/http_server.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace meshlet::testing {
namespace {

struct Conn {
  int fd;
  std::string buf;

  // Reads more bytes into buf; false on EOF or error.
  bool more() {
    char tmp[16384];
    ssize_t n = recv(fd, tmp, sizeof(tmp), 0);
    if (n <= 0) return false;
    buf.append(tmp, static_cast<size_t>(n));
    return true;
  }
  bool readUntil(const std::string& delim, size_t* pos) {
    while ((*pos = buf.find(delim)) == std::string::npos) {
      if (!more()) return false;
    }
    return true;
  }
  bool readN(size_t n, std::string* out) {
    while (buf.size() < n) {
      if (!more()) return false;
    }
    *out = buf.substr(0, n);
    buf.erase(0, n);
    return true;
  }
  void sendAll(const std::string& s) {
    size_t off = 0;
    while (off < s.size()) {
      ssize_t n = send(fd, s.data() + off, s.size() - off, MSG_NOSIGNAL);
      if (n <= 0) return;
      off += static_cast<size_t>(n);
    }
  }
};

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

void serveConn(int fd, std::string name, int fixed_status, std::string log_path) {
  Conn c{fd, {}};
  while (true) {
    size_t end;
    if (!c.readUntil("\r\n\r\n", &end)) break;
    std::string head = c.buf.substr(0, end);
    c.buf.erase(0, end + 4);
    size_t line_end = head.find("\r\n");
    std::string request_line = head.substr(0, line_end);
    std::vector<std::pair<std::string, std::string>> headers;
    size_t pos = line_end == std::string::npos ? head.size() : line_end + 2;
    while (pos < head.size()) {
      size_t e = head.find("\r\n", pos);
      if (e == std::string::npos) e = head.size();
      std::string line = head.substr(pos, e - pos);
      size_t colon = line.find(':');
      if (colon != std::string::npos) {
        std::string v = line.substr(colon + 1);
        v.erase(0, v.find_first_not_of(' '));
        headers.emplace_back(lower(line.substr(0, colon)), v);
      }
      pos = e + 2;
    }
    auto header = [&](const std::string& n) -> std::string {
      for (auto& [k, v] : headers) {
        if (k == n) return v;
      }
      return "";
    };
    size_t sp1 = request_line.find(' '), sp2 = request_line.rfind(' ');
    std::string method = request_line.substr(0, sp1);
    std::string target = request_line.substr(sp1 + 1, sp2 - sp1 - 1);
    // Body.
    size_t body_bytes = 0;
    if (lower(header("transfer-encoding")).find("chunked") != std::string::npos) {
      while (true) {
        size_t e;
        if (!c.readUntil("\r\n", &e)) return (void)close(fd);
        size_t n = std::stoul(c.buf.substr(0, e), nullptr, 16);
        c.buf.erase(0, e + 2);
        std::string chunk;
        if (!c.readN(n + 2, &chunk)) return (void)close(fd);
        body_bytes += n;
        if (n == 0) break;
      }
    } else if (!header("content-length").empty()) {
      std::string body;
      if (!c.readN(std::stoul(header("content-length")), &body)) return (void)close(fd);
      body_bytes = body.size();
    }
    if (!log_path.empty()) {
      sockaddr_storage peer{};
      socklen_t plen = sizeof(peer);
      getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &plen);
      int port =
          ntohs(peer.ss_family == AF_INET6 ? reinterpret_cast<const sockaddr_in6*>(&peer)->sin6_port
                                           : reinterpret_cast<const sockaddr_in*>(&peer)->sin_port);
      std::string line = method + " " + target + " " + header("host") + " " +
                         std::to_string(body_bytes) + " " + std::to_string(port) + "\n";
      int lf = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
      if (lf >= 0) {
        if (write(lf, line.data(), line.size()) < 0) perror("serveHttp log");
        close(lf);
      }
    }
    if (lower(header("upgrade")) == "meshlet-echo") {
      c.sendAll(
          "HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: "
          "meshlet-echo\r\n\r\n");
      if (!c.buf.empty()) c.sendAll(c.buf);
      char tmp[16384];
      ssize_t n;
      while ((n = recv(fd, tmp, sizeof(tmp), 0)) > 0) {
        c.sendAll(std::string(tmp, static_cast<size_t>(n)));
      }
      break;
    }
    int status = fixed_status ? fixed_status : 200;
    if (target.rfind("/status/", 0) == 0) status = std::atoi(target.c_str() + 8);
    if (target.rfind("/delay/", 0) == 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(std::atoi(target.c_str() + 7)));
    }
    std::string body = "pod=" + name + "\nmethod=" + method + "\ntarget=" + target +
                       "\nbody-bytes=" + std::to_string(body_bytes) + "\n";
    for (auto& [k, v] : headers) body += "h:" + k + ": " + v + "\n";
    bool close_after = lower(header("connection")) == "close";
    std::string resp = "HTTP/1.1 " + std::to_string(status) + " X\r\ncontent-type: text/plain\r\n" +
                       "x-pod: " + name + "\r\ncontent-length: " +
                       (method == "HEAD" ? std::string("0") : std::to_string(body.size())) +
                       "\r\n" + (close_after ? "connection: close\r\n" : "") + "\r\n" +
                       (method == "HEAD" ? "" : body);
    c.sendAll(resp);
    if (close_after) break;
  }
  close(fd);
}

}  // namespace

int serveHttp(int port, const std::string& name, int fixed_status, const std::string& log_path) {
  int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (lfd < 0) return -1;
  int one = 1;
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  if (bind(lfd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 || listen(lfd, 128) != 0) {
    close(lfd);
    return -1;
  }
  while (true) {
    int fd = accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    std::thread(serveConn, fd, name, fixed_status, log_path).detach();
  }
}

}  // namespace meshlet::testing
