#include "journal/meta_store.h"

#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/slice_transform.h>
#include <rocksdb/table.h>
#include <rocksdb/write_batch.h>
#include <sys/stat.h>

namespace nosyncfs {
namespace {

// The one translation point from RocksDB's status to ours.
Status FromRocks(const rocksdb::Status& s, const std::string& context) {
  if (s.ok()) return Status::Ok();
  int code = EIO;
  if (s.IsNotFound()) code = ENOENT;
  if (s.IsCorruption()) code = EUCLEAN;
  if (s.IsNoSpace()) code = ENOSPC;
  return Status::Error(code, context + ": " + s.ToString());
}

rocksdb::Slice ToSlice(std::string_view v) { return rocksdb::Slice(v.data(), v.size()); }

// Discards RocksDB's informational messages: a read-only open must not
// create (or rotate) the LOG file in the store's directory.
class NullLogger final : public rocksdb::Logger {
 public:
  using rocksdb::Logger::Logv;
  void Logv(const char*, va_list) override {}
};

class RocksMetaStore final : public MetaStore {
 public:
  RocksMetaStore(std::unique_ptr<rocksdb::DB> db, bool read_only)
      : db_(std::move(db)), read_only_(read_only) {
    write_options_.disableWAL = true;
  }
  ~RocksMetaStore() override { (void)db_->Close(); }

  Result<std::optional<std::string>> Get(std::string_view key) override {
    std::string value;
    rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), ToSlice(key), &value);
    if (s.IsNotFound()) return std::optional<std::string>();
    NSF_RETURN_IF_ERROR(FromRocks(s, "metadata get"));
    return std::optional<std::string>(std::move(value));
  }

  Status Apply(const MetaBatch& batch) override {
    if (read_only_) return Status::Error(EROFS, "metadata write: the store is open read-only");
    rocksdb::WriteBatch wb;
    for (const auto& op : batch.ops()) {
      if (op.type == MetaBatch::OpType::kPut) {
        wb.Put(op.key, op.value);
      } else {
        wb.Delete(op.key);
      }
    }
    return FromRocks(db_->Write(write_options_, &wb), "metadata write");
  }

  Status Scan(std::string_view prefix, std::string_view start, const ScanFn& fn) override {
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
    for (it->Seek(ToSlice(start.empty() ? prefix : start)); it->Valid(); it->Next()) {
      rocksdb::Slice k = it->key();
      if (!k.starts_with(ToSlice(prefix))) break;
      rocksdb::Slice v = it->value();
      if (!fn(std::string_view(k.data(), k.size()), std::string_view(v.data(), v.size()))) break;
    }
    return FromRocks(it->status(), "metadata scan");
  }

  Status Flush() override {
    if (read_only_) return Status::Error(EROFS, "metadata flush: the store is open read-only");
    rocksdb::FlushOptions fo;
    fo.wait = true;
    return FromRocks(db_->Flush(fo), "metadata flush");
  }

 private:
  std::unique_ptr<rocksdb::DB> db_;
  const bool read_only_;
  rocksdb::WriteOptions write_options_;
};

// The options every open uses.
rocksdb::Options StoreOptions() {
  rocksdb::Options options;
  options.paranoid_checks = true;
  options.keep_log_file_num = 2;
  options.max_log_file_size = 1 << 20;
  options.write_buffer_size = 16 << 20;
  // Nothing may be lost at close: the device log is truncated only after a
  // flush, and close flushes what the last checkpoint did not.
  options.avoid_flush_during_shutdown = false;
  // Point lookups (a name in a directory, an inode) dominate, and many miss
  // (every create looks its name up first): bloom filters in the tables
  // and in the memtable answer most misses without a search.
  rocksdb::BlockBasedTableOptions table;
  table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  options.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  options.memtable_prefix_bloom_size_ratio = 0.05;
  options.memtable_whole_key_filtering = true;
  // Inserts: commits are applied one at a time (the Volume orders them), so
  // RocksDB may keep a hint per key prefix (record type and inode or
  // directory number: 9 bytes) of where the last insert went; keys of one
  // directory or inode mostly land next to each other.
  options.allow_concurrent_memtable_write = false;
  options.memtable_insert_with_hint_prefix_extractor.reset(rocksdb::NewCappedPrefixTransform(9));
  return options;
}

Status CheckExists(const std::string& dir) {
  struct stat st;
  if (stat((dir + "/CURRENT").c_str(), &st) != 0) {
    return Status::Error(ENOENT, "metadata store " + dir + " is missing");
  }
  return Status::Ok();
}

}  // namespace

Result<std::unique_ptr<MetaStore>> MetaStore::Open(const std::string& dir, bool create) {
  if (!create) NSF_RETURN_IF_ERROR(CheckExists(dir));
  rocksdb::Options options = StoreOptions();
  options.create_if_missing = create;
  options.error_if_exists = create;
  rocksdb::DB* db = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(options, dir, &db);
  if (!s.ok()) {
    if (create && s.IsInvalidArgument()) {
      return Status::Error(EEXIST, "metadata store " + dir + " already exists");
    }
    return FromRocks(s, "metadata store " + dir);
  }
  return std::unique_ptr<MetaStore>(new RocksMetaStore(std::unique_ptr<rocksdb::DB>(db), false));
}

Result<std::unique_ptr<MetaStore>> MetaStore::OpenReadOnly(const std::string& dir) {
  NSF_RETURN_IF_ERROR(CheckExists(dir));
  rocksdb::Options options = StoreOptions();
  options.info_log = std::make_shared<NullLogger>();
  rocksdb::DB* db = nullptr;
  rocksdb::Status s = rocksdb::DB::OpenForReadOnly(options, dir, &db);
  if (!s.ok()) return FromRocks(s, "metadata store " + dir);
  return std::unique_ptr<MetaStore>(new RocksMetaStore(std::unique_ptr<rocksdb::DB>(db), true));
}

}  // namespace nosyncfs
