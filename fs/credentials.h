// What the daemon reads of a calling process's credentials, for the rules
// the kernel leaves to it (set-ID bits: Modifier, fs/vfs.h).
#pragma once

#include <sys/types.h>

#include <optional>
#include <vector>

#include "fs/vfs.h"

namespace nosyncfs {

// Whether process `pid` holds `capability` (e.g. CAP_FSETID) in its
// effective set, from /proc/PID/status. A process that is gone, or whose
// capabilities cannot be read, holds none.
bool ProcessHasCapability(pid_t pid, int capability);

// A Modifier answered from what is known of a process: its fsgid, its
// supplementary groups, and CAP_FSETID where the kernel said (otherwise
// read from /proc at the first question). Not thread-safe.
class ProcessModifier : public Modifier {
 public:
  ProcessModifier(pid_t pid, gid_t gid, std::optional<bool> has_fsetid)
      : pid_(pid), gid_(gid), has_fsetid_(has_fsetid) {}
  bool HasFsetid() const override;
  bool InGroup(gid_t gid) const override;

 protected:
  // The supplementary groups, asked for at most once, when first needed.
  virtual std::vector<gid_t> SupplementaryGroups() const = 0;

 private:
  const pid_t pid_;
  const gid_t gid_;
  mutable std::optional<bool> has_fsetid_;
  mutable std::optional<std::vector<gid_t>> groups_;
};

}  // namespace nosyncfs
