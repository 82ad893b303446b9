// Text that crosses a trust boundary (messages, spec files, worker ids, error texts): UTF-8
// validation at the edge, and quoting for messages that echo what a peer sent. Thread-safe.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace prunelab {

// True when `s` is well-formed UTF-8 (no overlong forms, surrogates or code points above
// U+10FFFF). On false, *bad_offset (if given) is the offset of the first bad byte.
bool IsValidUtf8(std::string_view s, size_t* bad_offset = nullptr);

// At most `max_chars` bytes of `s` for an error message, in quotes: invalid UTF-8 and control
// characters escaped as \xNN, and "... (N bytes)" when cut. Never throws.
std::string Quoted(std::string_view s, size_t max_chars = 64);

// `s` with invalid UTF-8 sequences replaced by U+FFFD, for text that must be shown whatever it
// holds (a worker's error message, say).
std::string ToValidUtf8(std::string_view s);

// `s` as one word of a POSIX shell command line: in single quotes, each ' written '\''.
std::string ShellQuoted(const std::string& s);

// A Prometheus label value escaped for the text exposition format (backslash, quote, newline).
std::string PrometheusLabelValue(const std::string& v);

}  // namespace prunelab
