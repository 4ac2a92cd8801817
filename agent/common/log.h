#pragma once
// Structured log lines on stderr: "2026-11-27T21:00:00.000Z level=info msg=...".
#include <cstdint>
#include <string>

namespace meshlet {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };

void setLogLevel(LogLevel level);
void logLine(LogLevel level, const std::string& message);
inline void logInfo(const std::string& m) { logLine(LogLevel::kInfo, m); }
inline void logWarn(const std::string& m) { logLine(LogLevel::kWarn, m); }
inline void logError(const std::string& m) { logLine(LogLevel::kError, m); }

// RFC 3339 UTC timestamp with milliseconds, for logs and the admin API.
std::string nowRfc3339();
// Seconds since the epoch, now.
int64_t nowUnix();
// The same format for a unix time in seconds ("2026-11-27T21:00:00Z").
std::string unixToRfc3339(int64_t unix_seconds);

}  // namespace meshlet
