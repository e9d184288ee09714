// MetaBatch: the metadata changes of one transaction, applied atomically.
//
// A batch is what the log records on the device and what the metadata store
// applies, so its encoding (journal/FORMAT.md) is part of the on-media
// format.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace nosyncfs {

class MetaBatch {
 public:
  enum class OpType : uint8_t { kPut = 1, kDelete = 2 };
  struct Op {
    OpType type;
    std::string key;
    std::string value;  // empty for kDelete
  };

  void Put(std::string key, std::string value) {
    ops_.push_back({OpType::kPut, std::move(key), std::move(value)});
  }
  void Delete(std::string key) { ops_.push_back({OpType::kDelete, std::move(key), {}}); }
  void Append(const MetaBatch& other) { ops_.insert(ops_.end(), other.ops_.begin(), other.ops_.end()); }

  const std::vector<Op>& ops() const { return ops_; }
  bool empty() const { return ops_.empty(); }
  size_t size() const { return ops_.size(); }
  // Drops the operations past the first `n` (to undo appended ones).
  void Truncate(size_t n) {
    if (n < ops_.size()) ops_.resize(n);
  }
  void clear() { ops_.clear(); }

  std::string Encode() const;
  // EUCLEAN for a malformed encoding.
  static Result<MetaBatch> Decode(std::string_view data);

 private:
  std::vector<Op> ops_;
};

}  // namespace nosyncfs
