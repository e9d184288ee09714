#include "fs/credentials.h"

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <string>

namespace nosyncfs {

bool ProcessHasCapability(pid_t pid, int capability) {
  if (pid <= 0) return false;
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("CapEff:", 0) != 0) continue;
    const unsigned long long caps = std::strtoull(line.c_str() + 7, nullptr, 16);
    return (caps >> capability) & 1;
  }
  return false;
}

bool ProcessModifier::HasFsetid() const {
  constexpr int kCapFsetid = 4;  // CAP_FSETID, <linux/capability.h>
  if (!has_fsetid_) has_fsetid_ = ProcessHasCapability(pid_, kCapFsetid);
  return *has_fsetid_;
}

bool ProcessModifier::InGroup(gid_t gid) const {
  if (gid == gid_) return true;
  if (!groups_) groups_ = SupplementaryGroups();
  return std::find(groups_->begin(), groups_->end(), gid) != groups_->end();
}

}  // namespace nosyncfs
