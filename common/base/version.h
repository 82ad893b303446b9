// prunelab's version: one number, set by `project(prunelab VERSION ...)` in CMakeLists.txt.
#pragma once

#ifndef PRUNELAB_VERSION
#error "PRUNELAB_VERSION comes from CMake (target prunelab_base)"
#endif

namespace prunelab {
inline constexpr const char* kPrunelabVersion = PRUNELAB_VERSION;
}  // namespace prunelab
