// MetaStore: the embedded key-value store (RocksDB) that holds all metadata.
// The only file set that includes <rocksdb/...>.
//
// Writes skip RocksDB's own write-ahead log: the device log (journal/log.h)
// is the write-ahead log, and Flush() is the checkpoint that makes the
// store durable on its own.
//
// Thread-safety: all methods may be called concurrently.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "base/status.h"
#include "journal/meta_batch.h"

namespace nosyncfs {

class MetaStore {
 public:
  virtual ~MetaStore() = default;

  // Opens the store in `dir`. With `create`, makes a new one and fails with
  // EEXIST if one exists; without, fails with ENOENT if there is none.
  static Result<std::unique_ptr<MetaStore>> Open(const std::string& dir, bool create);
  // Opens the store in `dir` for reading only (RocksDB's OpenForReadOnly):
  // nothing in `dir` is created, changed or locked, not even an info log.
  // Apply and Flush then fail with EROFS. ENOENT if there is no store.
  static Result<std::unique_ptr<MetaStore>> OpenReadOnly(const std::string& dir);

  // nullopt when the key is absent.
  virtual Result<std::optional<std::string>> Get(std::string_view key) = 0;

  // Applies atomically; not durable until Flush(). EROFS if read-only.
  virtual Status Apply(const MetaBatch& batch) = 0;

  // Calls fn(key, value) for keys with `prefix`, in order, from the first key
  // >= `start` (which must begin with `prefix`, or be empty), until fn
  // returns false.
  using ScanFn = std::function<bool(std::string_view key, std::string_view value)>;
  virtual Status Scan(std::string_view prefix, std::string_view start, const ScanFn& fn) = 0;

  // Makes everything applied so far durable. EROFS if read-only.
  virtual Status Flush() = 0;
};

}  // namespace nosyncfs
