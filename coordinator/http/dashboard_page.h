// The dashboard page served at / (self-contained: inline CSS and JS, no network beyond the
// coordinator's own JSON API).
#pragma once

namespace prunelab::coordinator {
extern const char* const kDashboardPage;
}  // namespace prunelab::coordinator
