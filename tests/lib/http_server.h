#pragma once
// A small HTTP/1.1 server for the L7 tests, independent of the agent's HTTP code: keep-alive,
// Content-Length and chunked request bodies, one thread per connection.
//   GET /status/<code>    answers with that status
//   GET /delay/<ms>       answers after that many milliseconds
//   anything else         200
// The body of every answer lists what the server saw, one item per line:
//   pod=<name>
//   method=<method>
//   target=<request target>
//   body-bytes=<n>
//   h:<lower-case name>: <value>      (each request header)
// A request with "Upgrade: meshlet-echo" gets 101 and then every byte echoed back.
#include <string>

namespace meshlet::testing {

// Listens on 0.0.0.0:port and serves until the process ends; returns only on error (-1).
// `fixed_status` (non-zero) answers every request with that status. With `log_path`, each
// request appends "<method> <target> <host> <body bytes> <client port>\n" to that file once it
// is read (the client port tells connections apart).
int serveHttp(int port, const std::string& name, int fixed_status = 0,
              const std::string& log_path = "");

}  // namespace meshlet::testing
