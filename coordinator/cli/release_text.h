// How the prunelab CLI shows releases and evaluations: the coordinator's JSON documents
// (coordinator/release) as text for a terminal.
#pragma once

#include <string>

#include <nlohmann/json_fwd.hpp>

namespace prunelab::coordinator {

// One release as `prunelab release` prints it (version, variant, gates, changelog).
std::string FormatRelease(const nlohmann::json& release);
// Every target's history: releases (newest first), events, latest evaluations.
std::string FormatReleaseHistory(const nlohmann::json& history);
// One evaluation record: each metric with its value, bands and level, the worst slice, the action.
std::string FormatEvaluation(const nlohmann::json& evaluation);

}  // namespace prunelab::coordinator
