#include "journal/volume.h"

#include "base/crash_point.h"

#include <spdlog/spdlog.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <ctime>
#include <filesystem>

namespace nosyncfs {
namespace {

namespace fs = std::filesystem;

Timespec Now() {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return {ts.tv_sec, static_cast<uint32_t>(ts.tv_nsec)};
}

// An existing metadata directory may only be replaced if it is empty or is
// a metadata store (has RocksDB's CURRENT file): never wipe a user's folder.
Status ClearMetaDir(const std::string& dir, bool force) {
  std::error_code ec;
  if (!fs::exists(dir, ec)) return Status::Ok();
  if (fs::is_directory(dir, ec) && fs::is_empty(dir, ec)) return Status::Ok();
  if (!fs::exists(dir + "/CURRENT", ec)) {
    return Status::Error(EEXIST, "metadata directory " + dir +
                                     " exists and is not a nosyncfs metadata store");
  }
  if (!force) {
    return Status::Error(EEXIST, "metadata store " + dir + " already exists; use -f to replace it");
  }
  fs::remove_all(dir, ec);
  if (ec) return Status::Error(EIO, "cannot remove " + dir + ": " + ec.message());
  return Status::Ok();
}

}  // namespace

std::string Volume::DefaultMetaDir(const std::string& device_path, const std::string& uuid) {
  struct stat st;
  if (stat(device_path.c_str(), &st) == 0 && S_ISREG(st.st_mode)) {
    std::error_code ec;
    fs::path abs = fs::absolute(device_path, ec);
    return (ec ? device_path : abs.string()) + ".meta";
  }
  return "/var/lib/nosyncfs/" + uuid;
}

Result<Superblock> Volume::Format(const std::string& device_path, const FormatOptions& options) {
  NSF_ASSIGN_OR_RETURN(auto device, Device::Open(device_path, DeviceOptions{}));
  auto existing = Superblock::Decode(device->data(), std::min<uint64_t>(device->size(), 4096),
                                     device->size());
  if (existing.ok() && !options.force) {
    return Status::Error(EEXIST, device_path + " already holds a nosyncfs file system (uuid " +
                                     existing->UuidString() + "); use -f to overwrite it");
  }
  NSF_ASSIGN_OR_RETURN(Superblock sb, Superblock::Plan(device->size(), options.block_size));
  if (getrandom(sb.uuid.data(), sb.uuid.size(), 0) != static_cast<ssize_t>(sb.uuid.size())) {
    return ErrnoStatus("getrandom");
  }
  sb.uuid[6] = (sb.uuid[6] & 0x0f) | 0x40;  // RFC 4122 version 4
  sb.uuid[8] = (sb.uuid[8] & 0x3f) | 0x80;
  sb.meta_dir = options.meta_dir.empty() ? DefaultMetaDir(device_path, sb.UuidString())
                                         : fs::absolute(options.meta_dir).string();
  if (sb.meta_dir.size() > Superblock::kMaxMetaDir) {
    return Status::Error(ENAMETOOLONG, "metadata directory path is too long");
  }

  // Invalidate the old superblock first: a crash during mkfs leaves a device
  // that is plainly unformatted, never a new superblock over a stale store.
  device->Zero(0, Superblock::kSize);
  NSF_RETURN_IF_ERROR(device->Persist(0, Superblock::kSize));

  NSF_RETURN_IF_ERROR(ClearMetaDir(sb.meta_dir, options.force));
  std::error_code ec;
  fs::create_directories(fs::path(sb.meta_dir).parent_path(), ec);
  NSF_ASSIGN_OR_RETURN(auto store, MetaStore::Open(sb.meta_dir, /*create=*/true));
  MetaBatch init;
  init.Put(keys::kUuid, std::string(reinterpret_cast<const char*>(sb.uuid.data()), 16));
  init.Put(keys::kApplied, AppliedRecord{}.Encode());  // nothing applied; the root
  InodeRecord root;
  root.ino = kRootIno;
  root.mode = S_IFDIR | 0755;
  root.uid = getuid();
  root.gid = getgid();
  root.nlink = 2;
  root.parent = kRootIno;
  root.atime = root.mtime = root.ctime = Now();
  init.Put(keys::Inode(kRootIno), root.Encode());
  NSF_RETURN_IF_ERROR(store->Apply(init));
  NSF_RETURN_IF_ERROR(store->Flush());

  Log log(device.get(), sb.log_offset, sb.log_length);
  // The salt ties log records to this format: records a previous file
  // system left on the device can never pass the CRC check.
  NSF_RETURN_IF_ERROR(log.Format(/*start_seq=*/1, sb.LogSalt()));

  std::string block = sb.Encode();
  device->Write(0, block.data(), block.size());
  NSF_RETURN_IF_ERROR(device->Persist(0, block.size()));
  return sb;
}

Result<std::unique_ptr<Volume>> Volume::Open(const std::string& device_path,
                                             const VolumeOptions& options) {
  std::unique_ptr<Volume> v(new Volume());
  v->read_only_ = options.read_only;
  v->tolerate_double_mapping_ = options.tolerate_double_mapping;
  v->tolerate_bad_records_ = options.tolerate_bad_records;
  DeviceOptions dopts;
  dopts.strict_emulation = options.strict_emulation;
  dopts.evict_seed = options.evict_seed;
  dopts.read_only = options.read_only;
  auto device = Device::Open(device_path, dopts);
  if (!device.ok()) {
    if (device.status().code() == EBUSY) {
      return Status::Error(EBUSY, device_path + " is in use (already mounted by another nosyncfs, "
                                                "or being formatted)");
    }
    return device.status();
  }
  v->device_ = std::move(device).value();
  if (options.wrap_device) v->device_ = options.wrap_device(std::move(v->device_));
  if (v->device_->size() < Superblock::kSize) {
    return Status::Error(EINVAL, device_path + ": not a nosyncfs device (too small to hold one)");
  }
  auto sb = Superblock::Decode(v->device_->data(), Superblock::kSize, v->device_->size());
  if (!sb.ok()) return sb.status().WithContext(device_path);
  v->sb_ = std::move(sb).value();
  v->meta_dir_ = options.meta_dir.empty() ? v->sb_.meta_dir : options.meta_dir;

  auto store = options.read_only ? MetaStore::OpenReadOnly(v->meta_dir_)
                                 : MetaStore::Open(v->meta_dir_, /*create=*/false);
  if (!store.ok()) return store.status();
  v->store_ = std::move(store).value();
  NSF_ASSIGN_OR_RETURN(auto uuid, v->store_->Get(keys::kUuid));
  if (!uuid || uuid->size() != 16 ||
      std::memcmp(uuid->data(), v->sb_.uuid.data(), 16) != 0) {
    return Status::Error(EXDEV, "metadata store " + v->meta_dir_ +
                                    " belongs to another device (uuid mismatch with " +
                                    device_path + ", uuid " + v->sb_.UuidString() + ")");
  }
  v->log_ = std::make_unique<Log>(v->device_.get(), v->sb_.log_offset, v->sb_.log_length);
  v->size_slots_ = std::make_unique<SizeSlots>(v->device_.get(), v->sb_.log_offset, v->sb_.LogSalt());
  if (options.read_only) {
    // Exactly the state a recovery would start from, and nothing for it to
    // do: otherwise the open fails before anything else is read.
    NSF_RETURN_IF_ERROR(v->CheckNothingToRecover(device_path, options.tolerate_orphans));
    NSF_RETURN_IF_ERROR(v->RebuildAllocator());
    NSF_RETURN_IF_ERROR(v->LoadCounters());
    v->durable_seq_.store(v->log_->durable_seq());
    v->open_complete_ = true;
    return v;
  }
  NSF_RETURN_IF_ERROR(v->Recover(options.progress));
  NSF_RETURN_IF_ERROR(v->RebuildAllocator());
  NSF_RETURN_IF_ERROR(v->LoadCounters());
  v->durable_seq_.store(v->log_->durable_seq());
  NSF_RETURN_IF_ERROR(v->FinishIntents());
  NSF_RETURN_IF_ERROR(v->FoldSizeSlots());
  v->open_complete_ = true;
  return v;
}

namespace {

std::string Counted(uint64_t n, const std::string& one, const std::string& many) {
  return std::to_string(n) + " " + (n == 1 ? one : many);
}

}  // namespace

Status Volume::CheckNothingToRecover(const std::string& device_path, bool tolerate_orphans) {
  NSF_ASSIGN_OR_RETURN(AppliedRecord applied, ReadApplied());
  // Log::Open only reads; the records the store has not applied are
  // counted, not replayed.
  uint64_t to_replay = 0;
  NSF_RETURN_IF_ERROR(log_->Open([&](uint64_t seq, std::string_view) {
                            if (seq > applied.seq) ++to_replay;
                            return Status::Ok();
                          }).WithContext("recovery"));
  NSF_RETURN_IF_ERROR(CheckStoreNotOlder(applied.seq));
  std::vector<std::string> pending;
  if (to_replay > 0) {
    // What the store holds is older than the log: anything else found in
    // it now could be changed by the replay, so this is all there is to say.
    pending.push_back("log replay of " + Counted(to_replay, "transaction", "transactions"));
  } else {
    uint64_t intents = 0, orphans = 0;
    NSF_RETURN_IF_ERROR(store_->Scan(keys::kIntentPrefix, "", [&](std::string_view,
                                                                  std::string_view) {
      ++intents;
      return true;
    }));
    if (!tolerate_orphans) {
      NSF_RETURN_IF_ERROR(store_->Scan(keys::kOrphanPrefix, "", [&](std::string_view,
                                                                    std::string_view) {
        ++orphans;
        return true;
      }));
    }
    if (intents > 0) {
      pending.push_back(Counted(intents, "interrupted in-place operation", "interrupted in-place operations") +
                        " to finish");
    }
    if (orphans > 0) {
      pending.push_back(Counted(orphans, "orphan inode", "orphan inodes") + " to free");
    }
    if (applied.legacy) pending.push_back("an upgrade of its inode counters");
    NSF_ASSIGN_OR_RETURN(uint64_t unfolded, CountUnfoldedSizes());
    if (unfolded > 0) {
      pending.push_back(Counted(unfolded, "appended size", "appended sizes") + " to fold in");
    }
  }
  if (pending.empty()) return Status::Ok();
  std::string what;
  for (const std::string& p : pending) what += (what.empty() ? "" : ", ") + p;
  return Status::Error(EROFS, device_path + " needs recovery (" + what +
                                  "), which a read-only open cannot do; mount it read-write "
                                  "once, or run fsck.nosyncfs -p " + device_path);
}

Status Volume::CheckStoreNotOlder(uint64_t applied) const {
  if (applied + 1 < log_->start_seq()) {
    return Status::Error(EUCLEAN, "metadata store " + meta_dir_ + " is older than the device log "
                                  "(applied " + std::to_string(applied) + ", log starts at " +
                                  std::to_string(log_->start_seq()) + ")");
  }
  return Status::Ok();
}

Status Volume::CheckWritable() const {
  if (read_only_) return Status::Error(EROFS, "the volume is open read-only");
  if (frozen()) return Status::Error(EROFS, "the file system is remounted read-only");
  return Status::Ok();
}

Status Volume::CheckWork(const InPlaceWork& work) const {
  for (const auto& r : work.zero) {
    if (r.dev < sb_.data_offset || r.dev > sb_.device_size || r.len > sb_.device_size - r.dev) {
      return Status::Error(EUCLEAN, "intent names bytes outside the data area (offset " +
                                        std::to_string(r.dev) + ", " + std::to_string(r.len) +
                                        " bytes): run fsck.nosyncfs");
    }
  }
  return Status::Ok();
}

Status Volume::DoWork(const InPlaceWork& work) {
  for (const auto& r : work.zero) {
    device_->Zero(r.dev, r.len);
    NSF_RETURN_IF_ERROR(device_->Persist(r.dev, r.len));
  }
  return Status::Ok();
}

Result<uint64_t> Volume::CommitInPlace(Transaction&& txn, const InPlaceWork& work) {
  NSF_RETURN_IF_ERROR(CheckWritable());
  if (work.empty()) return Commit(std::move(txn), /*durable=*/true);
  NSF_RETURN_IF_ERROR(CheckWork(work));
  const std::string key = keys::Intent(next_intent_.fetch_add(1));
  txn.batch.Put(key, work.Encode());
  NSF_ASSIGN_OR_RETURN(uint64_t seq, Commit(std::move(txn), /*durable=*/true));
  CrashPoint("volume.intent.durable");
  NSF_RETURN_IF_ERROR(DoWork(work));
  CrashPoint("volume.intent.done");
  Transaction retire;
  retire.batch.Delete(key);
  NSF_RETURN_IF_ERROR(Commit(std::move(retire), /*durable=*/true).status());
  return seq;
}

Status Volume::FinishIntents() {
  std::vector<std::pair<std::string, InPlaceWork>> intents;
  Status inner;
  NSF_RETURN_IF_ERROR(store_->Scan(keys::kIntentPrefix, "", [&](std::string_view k,
                                                                std::string_view v) {
    auto work = InPlaceWork::Decode(v);
    Status st = work.ok() ? CheckWork(*work) : work.status();
    if (!st.ok()) {
      inner = st.WithContext("intent record");
      return false;
    }
    intents.emplace_back(std::string(k), std::move(work).value());
    return true;
  }));
  NSF_RETURN_IF_ERROR(inner);
  if (intents.empty()) return Status::Ok();
  Transaction retire;
  for (const auto& [key, work] : intents) {
    NSF_RETURN_IF_ERROR(DoWork(work));
    retire.batch.Delete(key);
  }
  NSF_RETURN_IF_ERROR(Commit(std::move(retire), /*durable=*/true).status());
  spdlog::info("recovery: finished {} interrupted in-place operations", intents.size());
  return Status::Ok();
}

namespace {

// The inode record a slot names, if it is a regular file whose record says
// less than the slot.
Result<std::optional<InodeRecord>> RecordToGrow(MetaStore& store, const SizeSlots::Recorded& r) {
  NSF_ASSIGN_OR_RETURN(auto value, store.Get(keys::Inode(r.ino)));
  if (!value) return std::optional<InodeRecord>();  // removed since: nothing to grow
  NSF_ASSIGN_OR_RETURN(InodeRecord rec, InodeRecord::Decode(r.ino, *value));
  if ((rec.mode & S_IFMT) != S_IFREG || r.size <= rec.size) return std::optional<InodeRecord>();
  return std::optional<InodeRecord>(rec);
}

}  // namespace

Status Volume::FoldSizeSlots() {
  const std::vector<SizeSlots::Recorded> named = size_slots_->Valid();
  if (named.empty()) return Status::Ok();
  Transaction txn;
  uint64_t grown = 0;
  for (const SizeSlots::Recorded& r : named) {
    NSF_ASSIGN_OR_RETURN(auto rec, RecordToGrow(*store_, r));
    if (!rec) continue;
    // The appender persisted its data before the size, in blocks the file
    // held when its lease was granted: the size covers written bytes only.
    rec->size = std::min<uint64_t>(r.size, INT64_MAX);
    txn.PutInode(*rec);
    ++grown;
  }
  if (grown > 0) NSF_RETURN_IF_ERROR(Commit(std::move(txn), /*durable=*/true).status());
  NSF_RETURN_IF_ERROR(size_slots_->ClearAll());
  if (grown > 0) spdlog::info("recovery: {} files took the sizes their appenders published", grown);
  return Status::Ok();
}

Result<uint64_t> Volume::CountUnfoldedSizes() {
  uint64_t n = 0;
  for (const SizeSlots::Recorded& r : size_slots_->Valid()) {
    NSF_ASSIGN_OR_RETURN(auto rec, RecordToGrow(*store_, r));
    n += rec.has_value();
  }
  return n;
}

Result<AppliedRecord> Volume::ReadApplied() {
  NSF_ASSIGN_OR_RETURN(auto value, store_->Get(keys::kApplied));
  if (!value) return Status::Error(EUCLEAN, "metadata store has no applied sequence");
  return AppliedRecord::Decode(*value);
}

Status Volume::LoadCounters() {
  NSF_ASSIGN_OR_RETURN(AppliedRecord applied, ReadApplied());
  if (applied.legacy) {
    NSF_RETURN_IF_ERROR(CheckWritable());
    // A store from before the counters were kept in "a": take the inode
    // counter from its old key, count the inodes once, and keep both in
    // "a" from now on (made durable by the flush, like a checkpoint).
    NSF_ASSIGN_OR_RETURN(auto next_ino, store_->Get(keys::kLegacyNextIno));
    if (!next_ino) return Status::Error(EUCLEAN, "metadata store has no inode counter");
    NSF_ASSIGN_OR_RETURN(applied.next_ino, DecodeU64(*next_ino));
    applied.inode_count = 0;
    NSF_RETURN_IF_ERROR(store_->Scan(keys::kInodePrefix, "",
                                     [&](std::string_view, std::string_view) {
                                       ++applied.inode_count;
                                       return true;
                                     }));
    MetaBatch b;
    b.Put(keys::kApplied, applied.Encode());
    b.Delete(keys::kLegacyNextIno);
    NSF_RETURN_IF_ERROR(store_->Apply(b));
    NSF_RETURN_IF_ERROR(store_->Flush());
    spdlog::info("counted {} inodes (kept from now on)", applied.inode_count);
  }
  next_ino_.store(applied.next_ino);
  inode_count_.store(applied.inode_count);
  return Status::Ok();
}

Status Volume::Recover(Progress* progress) {
  NSF_ASSIGN_OR_RETURN(AppliedRecord applied_record, ReadApplied());
  const uint64_t applied = applied_record.seq;
  if (progress != nullptr) {
    // The replay's length, for its progress: a first scan only reads the
    // log (checksums at memory speed); applying each record is the work.
    uint64_t to_replay = 0;
    NSF_RETURN_IF_ERROR(log_->Open([&](uint64_t seq, std::string_view) {
                              if (seq > applied) ++to_replay;
                              return Status::Ok();
                            }).WithContext("recovery"));
    progress->Begin(to_replay, 1, "replaying the log");
  }
  uint64_t replayed = 0, first = 0;
  Status st = log_->Open([&](uint64_t seq, std::string_view payload) -> Status {
    if (seq <= applied) return Status::Ok();
    NSF_ASSIGN_OR_RETURN(MetaBatch batch, MetaBatch::Decode(payload));
    NSF_RETURN_IF_ERROR(store_->Apply(batch).WithContext("replay of transaction " +
                                                         std::to_string(seq)));
    if (replayed++ == 0) first = seq;
    if (progress != nullptr) progress->Update(replayed);
    return Status::Ok();
  });
  if (progress != nullptr) progress->Finish();
  NSF_RETURN_IF_ERROR(st.WithContext("recovery"));
  NSF_RETURN_IF_ERROR(CheckStoreNotOlder(applied));
  if (replayed > 0) {
    spdlog::info("recovery: replayed {} transactions ({}..{})", replayed, first,
                 first + replayed - 1);
  }
  // The store may also hold transactions that never reached the durable log
  // (a background flush ran before a crash); a new epoch past both keeps
  // sequence numbers unique.
  NSF_RETURN_IF_ERROR(store_->Flush());
  uint64_t next = std::max(log_->next_seq(), applied + 1);
  return log_->Reset(next);
}

Status Volume::RebuildAllocator() {
  allocator_ = std::make_unique<Allocator>(sb_.data_blocks);
  refs_ = RefcountMap();
  Status inner;
  // Shared runs first: each is used once, however many extents map it.
  uint64_t prev_end = 0;
  NSF_RETURN_IF_ERROR(store_->Scan(keys::kRefcountPrefix, "", [&](std::string_view k,
                                                                  std::string_view v) {
    auto r = DecodeRefcount(k, v);
    inner = r.ok() ? Status::Ok() : r.status();
    if (inner.ok() && r->run.start < prev_end) {
      inner = Status::Error(EUCLEAN, "overlapping reference count records");
    }
    if (inner.ok()) inner = allocator_->MarkUsed(r->run);
    if (!inner.ok() && tolerate_bad_records_) {
      inner = Status::Ok();  // left out; the checker names it
      return true;
    }
    if (!inner.ok()) {
      inner = inner.WithContext("reference count of block " + std::to_string(keys::TrailingU64(k)) +
                                ": run fsck.nosyncfs");
      return false;
    }
    prev_end = r->run.end();
    refs_.Load(*r);
    return true;
  }));
  NSF_RETURN_IF_ERROR(inner);
  uint64_t nf_blocks = 0;
  NSF_RETURN_IF_ERROR(store_->Scan(keys::kExtentPrefixAll, "", [&](std::string_view k,
                                                                   std::string_view v) {
    auto e = DecodeExtent(k, v);
    if (!e.ok()) {
      if (tolerate_bad_records_) return true;  // the checker names it
      inner = e.status().WithContext("inode " + std::to_string(keys::InoOf(k)) +
                                     ": run fsck.nosyncfs");
      return false;
    }
    if (tolerate_bad_records_ &&
        (e->pblk >= sb_.data_blocks || e->len > sb_.data_blocks - e->pblk)) {
      return true;  // outside the data area: the checker names it
    }
    // The private parts: what the shared runs above do not cover.
    uint64_t pos = e->pblk;
    const uint64_t end = e->pblk + e->len;
    auto mark = [&](uint64_t from, uint64_t to) {
      if (to <= from) return true;
      inner = allocator_->MarkUsed({from, to - from});
      if (!inner.ok() && tolerate_double_mapping_) inner = Status::Ok();
      if (!inner.ok()) {
        inner = inner.WithContext("inode " + std::to_string(keys::InoOf(k)) + ": run fsck.nosyncfs");
      }
      return inner.ok();
    };
    if (e->flags & kExtentNoFsync) nf_blocks += e->len;
    for (const BlockRun& shared : refs_.Shared({e->pblk, e->len}, UINT64_MAX)) {
      if (!mark(pos, shared.start)) return false;
      pos = shared.end();
    }
    return mark(pos, end);
  }));
  any_shared_.store(!refs_.empty(), std::memory_order_release);
  nf_blocks_.store(nf_blocks, std::memory_order_relaxed);
  return inner;
}

std::vector<BlockRun> Volume::CountReferences(Transaction* txn, uint64_t seq) {
  // Without a shared block anywhere, every freed block loses its only
  // reference.
  if (txn->shared.empty() && refs_.empty()) return txn->freed;
  std::vector<BlockRun> freed;
  for (const BlockRun& r : txn->shared) refs_.AddRef(r);
  for (const BlockRun& r : txn->freed) {
    auto gone = refs_.DropRef(r, seq);
    freed.insert(freed.end(), gone.begin(), gone.end());
  }
  for (const auto& [block, record] : refs_.Changes()) {
    if (record) {
      txn->batch.Put(keys::Refcount(block), EncodeRefcountValue(*record));
    } else {
      txn->batch.Delete(keys::Refcount(block));
    }
  }
  return freed;
}

std::vector<BlockRun> Volume::SharedParts(BlockRun run) const {
  if (!any_shared_.load(std::memory_order_acquire)) return {};
  std::lock_guard lock(mu_);
  return refs_.Shared(run, durable_seq());
}

std::vector<RefcountMap::Record> Volume::RefcountRecords() const {
  std::lock_guard lock(mu_);
  return refs_.Records();
}

Volume::~Volume() {
  if (open_complete_ && !read_only_ && !frozen()) {
    Status st = Checkpoint();
    if (!st.ok()) spdlog::error("checkpoint at close failed: {}", st.ToString());
  }
}

void Volume::Quarantine(uint64_t holder, const std::vector<BlockRun>& runs) {
  std::lock_guard lock(mu_);
  allocator_->Quarantine(holder, runs);
}

void Volume::LiftQuarantine(uint64_t holder) {
  std::lock_guard lock(mu_);
  allocator_->LiftQuarantine(holder);
}

uint64_t Volume::quarantined_blocks() const {
  std::lock_guard lock(mu_);
  return allocator_->held_blocks();
}

uint64_t Volume::free_blocks() const {
  std::lock_guard lock(mu_);
  return allocator_->free_blocks() + allocator_->pending_blocks();
}

uint64_t Volume::committed_seq() const {
  std::lock_guard lock(mu_);
  return log_->next_seq() - 1;
}

Result<std::vector<BlockRun>> Volume::Allocate(uint64_t count, uint64_t goal) {
  NSF_RETURN_IF_ERROR(CheckWritable());
  {
    std::lock_guard lock(mu_);
    auto runs = allocator_->Allocate(count, goal);
    if (runs.ok() || allocator_->pending_blocks() == 0) return runs;
  }
  // Only frees still waiting for their transaction stand in the way.
  NSF_RETURN_IF_ERROR(Sync());
  std::lock_guard lock(mu_);
  return allocator_->Allocate(count, goal);
}

void Volume::Unallocate(const std::vector<BlockRun>& runs) {
  std::lock_guard lock(mu_);
  for (const BlockRun& r : runs) allocator_->Unallocate(r);
}

void Volume::SealBatch(Transaction* txn, uint64_t seq) {
  AppliedRecord applied;
  applied.seq = seq;
  applied.next_ino = next_ino_.load();
  applied.inode_count = inode_count_.load() + txn->created_inodes - txn->deleted_inodes;
  txn->batch.Put(keys::kApplied, applied.Encode());
}

Result<uint64_t> Volume::Commit(Transaction&& txn, bool durable) {
  // The one way metadata reaches the log and the store (CommitInPlace,
  // FinishIntents, SetCounters and every caller come through here).
  NSF_RETURN_IF_ERROR(CheckWritable());
  const size_t own_ops = txn.batch.size();
  uint64_t seq = 0;
  for (;;) {
    std::unique_lock lock(mu_);
    seq = log_->next_seq();
    std::vector<BlockRun> to_free = CountReferences(&txn, seq);
    SealBatch(&txn, seq);
    std::string payload = txn.batch.Encode();
    if (!log_->Fits(payload.size())) {
      refs_.Revert();
      return Status::Error(EFBIG, "transaction too large for the log");
    }
    if (log_->Append(payload).ok()) {
      refs_.Accept();
      any_shared_.store(!refs_.empty(), std::memory_order_release);
      CrashPoint("volume.commit.appended");
      NSF_RETURN_IF_ERROR(store_->Apply(txn.batch));
      CrashPoint("volume.commit.applied");
      inode_count_.fetch_add(txn.created_inodes);
      inode_count_.fetch_sub(txn.deleted_inodes);
      nf_blocks_.fetch_add(static_cast<uint64_t>(txn.nf_blocks_delta), std::memory_order_relaxed);
      for (const BlockRun& r : to_free) allocator_->FreeAfter(seq, r);
      break;
    }
    refs_.Revert();
    // The log is full: checkpoint (which needs the sync side first, so
    // not under mu_), then seal again with the new sequence number.
    txn.batch.Truncate(own_ops);
    lock.unlock();
    NSF_RETURN_IF_ERROR(Checkpoint());
  }
  if (durable) NSF_RETURN_IF_ERROR(WaitDurable(seq));
  return seq;
}

Status Volume::WaitDurable(uint64_t seq) {
  std::unique_lock sync_lock(sync_mu_);
  while (durable_seq() < seq) {
    if (sync_running_) {
      // Another thread persists the log; its persist may cover us.
      sync_cv_.wait(sync_lock);
      continue;
    }
    sync_running_ = true;
    Log::Pending pending;
    {
      std::lock_guard lock(mu_);
      pending = log_->pending();
    }
    sync_lock.unlock();
    // The group commit: one persist for every record appended so far.
    Status st = Status::Ok();
    if (pending.len > 0) {
      st = device_->Persist(pending.offset, pending.len);
      log_persists_.fetch_add(1, std::memory_order_relaxed);
    }
    sync_lock.lock();
    if (st.ok()) {
      std::lock_guard lock(mu_);
      if (pending.len > 0) {
        uint64_t before = log_->durable_seq();
        log_->MarkPersisted(pending);
        log_transactions_.fetch_add(log_->durable_seq() - before, std::memory_order_relaxed);
      }
      allocator_->ReleaseUpTo(log_->durable_seq());
      durable_seq_.store(log_->durable_seq(), std::memory_order_release);
    }
    sync_running_ = false;
    sync_cv_.notify_all();
    NSF_RETURN_IF_ERROR(st);
    if (pending.len == 0 && durable_seq() < seq) {
      return Status::Error(EINVAL, "wait for transaction " + std::to_string(seq) +
                                       ", which was never committed");
    }
  }
  return Status::Ok();
}

Status Volume::Sync() { return WaitDurable(committed_seq()); }

Status Volume::Checkpoint() {
  NSF_RETURN_IF_ERROR(CheckWritable());
  std::unique_lock sync_lock(sync_mu_);
  sync_cv_.wait(sync_lock, [&] { return !sync_running_; });
  sync_running_ = true;  // no log persist while the log is reset
  sync_lock.unlock();
  Status st = [&] {
    std::lock_guard lock(mu_);
    NSF_RETURN_IF_ERROR(store_->Flush());
    CrashPoint("volume.checkpoint.flushed");
    uint64_t last = log_->next_seq() - 1;
    NSF_RETURN_IF_ERROR(log_->Reset(log_->next_seq()));
    allocator_->ReleaseUpTo(last);
    refs_.Prune(last);
    any_shared_.store(!refs_.empty(), std::memory_order_release);
    durable_seq_.store(last, std::memory_order_release);
    return Status::Ok();
  }();
  sync_lock.lock();
  sync_running_ = false;
  sync_cv_.notify_all();
  return st;
}

Status Volume::SetCounters(uint64_t next_ino, uint64_t inode_count) {
  NSF_RETURN_IF_ERROR(CheckWritable());
  next_ino_.store(next_ino);
  inode_count_.store(inode_count);
  // An empty transaction: its "a" record carries the counters.
  return Commit(Transaction(), /*durable=*/true).status();
}

Status Volume::Reload() {
  NSF_RETURN_IF_ERROR(CheckWritable());
  // Every free durable first: the rebuilt allocator has no pending frees.
  NSF_RETURN_IF_ERROR(Sync());
  std::lock_guard lock(mu_);
  return RebuildAllocator();
}

uint64_t Volume::NextInodeNumber(Transaction* txn) {
  ++txn->created_inodes;
  return next_ino_.fetch_add(1);
}

}  // namespace nosyncfs
