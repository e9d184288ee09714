// DentryCache: a few recently used entries of one directory, found or not
// found, so that the lookup the kernel sends before a create, unlink or
// rename and the operation itself read the store once between them.
//
// Thread-safety: none; the directory's Inode guards it (fs/inode.h).
#pragma once

#include <array>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "journal/schema.h"

namespace nosyncfs {

class DentryCache {
 public:
  // nullopt if `name` is not cached; else what the directory holds under
  // it (an empty optional: no such entry).
  std::optional<std::optional<DirentRecord>> Find(std::string_view name) const;
  // Caches what the directory holds under `name` (nullopt: nothing),
  // replacing the oldest slot if `name` is not cached yet.
  void Put(std::string_view name, const std::optional<DirentRecord>& entry);

 private:
  static constexpr size_t kSlots = 8;
  struct Slot {
    bool used = false;
    std::optional<DirentRecord> entry;
    std::string name;
  };
  std::array<Slot, kSlots> slots_;
  size_t next_ = 0;  // the slot to replace next
};

}  // namespace nosyncfs
