#include "fs/dentry_cache.h"

namespace nosyncfs {

std::optional<std::optional<DirentRecord>> DentryCache::Find(std::string_view name) const {
  for (const Slot& s : slots_) {
    if (s.used && s.name == name) return s.entry;
  }
  return std::nullopt;
}

void DentryCache::Put(std::string_view name, const std::optional<DirentRecord>& entry) {
  for (Slot& s : slots_) {
    if (s.used && s.name == name) {
      s.entry = entry;
      return;
    }
  }
  Slot& s = slots_[next_];
  next_ = (next_ + 1) % kSlots;
  s.used = true;
  s.name = std::string(name);
  s.entry = entry;
}

}  // namespace nosyncfs
