// Assertions on errors that say which error: its code and a fragment of its message (the
// field, the limit, the reason), not only that something failed.
//   EXPECT_TRUE(IsError(ParseCriterion("hessian"), Status::Code::kInvalidArgument, "criterion 'hessian'"));
#pragma once

#include <gtest/gtest.h>

#include <string>

#include "common/base/status.h"

namespace prunelab::testing {

inline ::testing::AssertionResult IsError(const Status& s, Status::Code code, const std::string& fragment) {
  if (s.ok()) return ::testing::AssertionFailure() << "succeeded; wanted an error containing '" << fragment << "'";
  if (s.code() != code)
    return ::testing::AssertionFailure() << "wrong code: " << s.ToString() << " (wanted code " << static_cast<int>(code)
                                         << " containing '" << fragment << "')";
  if (s.message().find(fragment) == std::string::npos)
    return ::testing::AssertionFailure() << "the error does not say '" << fragment << "': " << s.ToString();
  return ::testing::AssertionSuccess() << s.ToString();
}

template <typename T>
::testing::AssertionResult IsError(const StatusOr<T>& s, Status::Code code, const std::string& fragment) {
  return IsError(s.ok() ? Status::Ok() : s.status(), code, fragment);
}

}  // namespace prunelab::testing
