#include "fs/mountinfo.h"

#include <limits.h>
#include <stdlib.h>

#include <fstream>
#include <sstream>

namespace nosyncfs {
namespace {

// "\040" and the like: mountinfo escapes space, tab, newline and backslash.
std::string Unescape(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    auto octal = [&](size_t j) { return j < s.size() && s[j] >= '0' && s[j] <= '7'; };
    if (s[i] == '\\' && octal(i + 1) && octal(i + 2) && octal(i + 3)) {
      out.push_back(static_cast<char>((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0')));
      i += 3;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

}  // namespace

std::vector<MountInfoEntry> ReadMountInfo() {
  std::vector<MountInfoEntry> out;
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    // ID PARENT DEV ROOT POINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER
    std::istringstream fields(line);
    std::string id, parent, root, point, word;
    MountInfoEntry e;
    fields >> id >> parent >> e.dev >> root >> point >> e.mount_options;
    while (fields >> word && word != "-") {
    }
    std::string source;
    fields >> e.fstype >> source >> e.super_options;
    if (e.fstype.empty()) continue;
    e.mount_point = Unescape(point);
    e.source = Unescape(source);
    out.push_back(std::move(e));
  }
  return out;
}

std::string RealPath(const std::string& path) {
  char buf[PATH_MAX];
  return ::realpath(path.c_str(), buf) != nullptr ? buf : path;
}

}  // namespace nosyncfs
