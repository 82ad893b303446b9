#include "common/flags/flags.h"

#include <CLI/CLI.hpp>

#include <algorithm>
#include <cstdio>
#include <vector>

namespace prunelab::flags {
namespace {

size_t EditDistance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

// The innermost subcommand the user selected (the app itself when none).
const CLI::App& Selected(const CLI::App& app) {
  const CLI::App* cur = &app;
  for (;;) {
    auto subs = cur->get_subcommands();
    if (subs.empty()) return *cur;
    cur = subs.front();
  }
}

std::string ProgramPath(const CLI::App& app) {
  std::string path;
  for (const CLI::App* a = &Selected(app); a != nullptr; a = a->get_parent())
    path = a->get_name() + (path.empty() ? "" : " " + path);
  return path;
}

}  // namespace

std::string ClosestFlag(const CLI::App& app, const std::string& unknown) {
  std::string flag = unknown.substr(0, unknown.find('='));
  std::string stripped = flag;
  while (!stripped.empty() && stripped.front() == '-') stripped.erase(0, 1);
  std::string best;
  size_t best_distance = std::max<size_t>(2, stripped.size() / 3) + 1;  // a likely typo, not any flag
  for (const CLI::App* a = &Selected(app); a != nullptr; a = a->get_parent()) {
    for (const CLI::Option* opt : a->get_options()) {
      for (const std::string& name : opt->get_lnames()) {
        size_t d = EditDistance(stripped, name);
        if (d < best_distance) {
          best_distance = d;
          best = "--" + name;
        }
      }
    }
  }
  return best;
}

std::optional<int> Parse(CLI::App& app, int argc, char** argv) {
  try {
    app.parse(argc, argv);
    return std::nullopt;
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    const std::string program = ProgramPath(app);
    std::vector<std::string> extras = Selected(app).remaining();
    for (const std::string& s : app.remaining()) extras.push_back(s);
    std::string unknown_flag;
    for (const std::string& s : extras)
      if (s.size() > 1 && s[0] == '-') { unknown_flag = s; break; }
    if (!unknown_flag.empty()) {
      std::string hint = ClosestFlag(app, unknown_flag);
      std::fprintf(stderr, "%s: unknown flag '%s'%s (see %s --help)\n", program.c_str(), unknown_flag.c_str(),
                   hint.empty() ? "" : ("; did you mean " + hint + "?").c_str(), program.c_str());
    } else {
      std::fprintf(stderr, "%s: %s (see %s --help)\n", program.c_str(), e.what(), program.c_str());
    }
    return e.get_exit_code() == 0 ? 0 : 2;
  }
}

}  // namespace prunelab::flags
