#include "agent/admin/server.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <nlohmann/json.hpp>

#include "agent/common/log.h"

namespace meshlet {
namespace {

std::string urlDecode(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && std::isxdigit(static_cast<unsigned char>(s[i + 1])) &&
        std::isxdigit(static_cast<unsigned char>(s[i + 2]))) {
      out += static_cast<char>(std::stoi(s.substr(i + 1, 2), nullptr, 16));
      i += 2;
    } else if (s[i] == '+') {
      out += ' ';
    } else {
      out += s[i];
    }
  }
  return out;
}

const char* reason(int code) {
  switch (code) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 503: return "Service Unavailable";
    default: return code >= 500 ? "Internal Server Error" : "Error";
  }
}

void writeAll(int fd, const std::string& data) {
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return;
    off += n;
  }
}

std::string errorBody(const std::string& message) {
  return nlohmann::json{{"error", message}}.dump();
}

}  // namespace

Result<AdminRequest> parseAdminRequest(const std::string& head) {
  auto eol = head.find("\r\n");
  std::string line = head.substr(0, eol == std::string::npos ? head.size() : eol);
  auto sp1 = line.find(' ');
  auto sp2 = line.find(' ', sp1 == std::string::npos ? 0 : sp1 + 1);
  if (sp1 == std::string::npos || sp2 == std::string::npos) {
    return Error("malformed request line \"" + line.substr(0, 80) + "\"");
  }
  AdminRequest r;
  r.method = line.substr(0, sp1);
  std::string target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  if (line.compare(sp2 + 1, 5, "HTTP/") != 0) return Error("not an HTTP request");
  if (target.empty() || target[0] != '/') return Error("request target must be a path");
  auto q = target.find('?');
  r.path = target.substr(0, q);
  if (q != std::string::npos) {
    std::string qs = target.substr(q + 1);
    size_t pos = 0;
    while (pos <= qs.size()) {
      auto amp = qs.find('&', pos);
      std::string kv = qs.substr(pos, amp == std::string::npos ? std::string::npos : amp - pos);
      if (!kv.empty()) {
        auto eq = kv.find('=');
        r.query[urlDecode(kv.substr(0, eq))] =
            eq == std::string::npos ? "" : urlDecode(kv.substr(eq + 1));
      }
      if (amp == std::string::npos) break;
      pos = amp + 1;
    }
  }
  return r;
}

void AdminServer::handleClient(int fd) {
  timeval tv{2, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  std::string head;
  char buf[1024];
  while (head.find("\r\n\r\n") == std::string::npos && head.size() < 8192) {
    ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) break;
    head.append(buf, n);
  }
  AdminResponse resp;
  auto req = parseAdminRequest(head);
  if (!req.ok()) {
    resp = {400, errorBody(req.error().message())};
  } else if (req->method != "GET") {
    resp = {405, errorBody("only GET is supported")};
  } else {
    try {
      resp = handler_(*req);
    } catch (const std::exception& e) {
      resp = {500, errorBody(std::string("internal error: ") + e.what())};
    }
  }
  std::string out = "HTTP/1.0 " + std::to_string(resp.code) + " " + reason(resp.code) +
                    "\r\nContent-Type: application/json\r\nContent-Length: " +
                    std::to_string(resp.body.size()) + "\r\n\r\n" + resp.body;
  writeAll(fd, out);
}

}  // namespace meshlet
