#include "common/base/log.h"

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

namespace prunelab::log {
namespace {

spdlog::level::level_enum ToSpd(Level l) {
  switch (l) {
    case Level::kDebug: return spdlog::level::debug;
    case Level::kInfo: return spdlog::level::info;
    case Level::kWarn: return spdlog::level::warn;
    case Level::kError: return spdlog::level::err;
  }
  return spdlog::level::info;
}

// One logger per process, made on first use (thread-safe static); it writes to whatever
// stderr is at the time of the write, so a test's captured stderr sees its lines. Every line
// is flushed: a daemon killed with SIGKILL has logged everything up to its last event.
spdlog::logger& Logger() {
  static spdlog::logger* logger = [] {
    auto l = new spdlog::logger("prunelab", std::make_shared<spdlog::sinks::stderr_sink_mt>());
    l->set_pattern("%Y-%m-%dT%H:%M:%S.%eZ %l %v", spdlog::pattern_time_type::utc);
    l->set_level(spdlog::level::info);
    l->flush_on(spdlog::level::debug);
    return l;  // never destroyed: threads may log while the process exits
  }();
  return *logger;
}

}  // namespace

void Write(Level level, const std::string& text) { Logger().log(ToSpd(level), "{}", text); }

void SetLevel(Level level) { Logger().set_level(ToSpd(level)); }

}  // namespace prunelab::log
