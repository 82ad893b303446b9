// The log of every daemon (coordinator, worker): one line per event on stderr, in one format
// ("2026-12-07T14:03:15.538Z info text": UTC, ms, so lines of
// several hosts sort together), with levels, and thread-safe (lines written from several
// threads never interleave). spdlog behind it, included only by log.cc.
#pragma once

#include <string>

namespace prunelab::log {

enum class Level { kDebug, kInfo, kWarn, kError };

void Write(Level level, const std::string& text);
inline void Debug(const std::string& text) { Write(Level::kDebug, text); }
inline void Info(const std::string& text) { Write(Level::kInfo, text); }
inline void Warn(const std::string& text) { Write(Level::kWarn, text); }
inline void Error(const std::string& text) { Write(Level::kError, text); }

// Lines below `level` are dropped (default: info).
void SetLevel(Level level);

}  // namespace prunelab::log
