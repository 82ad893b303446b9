// Model cards for exported variants (JSON and Markdown): what the model is, the input it
// expects, how it was pruned and fine-tuned, what it scored, where it was measured.
#pragma once

#include <nlohmann/json.hpp>

#include <string>

#include "common/base/types.h"
#include "common/base/version.h"

namespace prunelab::coordinator {

// `baseline` may be null (then baseline figures come from the result's own fields).
nlohmann::json ModelCard(const TrialResult& r, const TrialResult* baseline);
std::string ModelCardMarkdown(const nlohmann::json& card);

}  // namespace prunelab::coordinator
