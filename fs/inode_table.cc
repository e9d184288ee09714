#include "fs/inode_table.h"

#include <cassert>

namespace nosyncfs {
namespace {

constexpr size_t kInitialBuckets = 64;

// Inode numbers are sequential; mix them so that both the shard (top bits)
// and the bucket within it (bottom bits) spread evenly.
uint64_t Mix(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ULL;
  x ^= x >> 33;
  return x;
}

}  // namespace

size_t InodeTable::Hash::operator()(uint64_t ino) const { return static_cast<size_t>(Mix(ino)); }

InodeTable::Shard::Shard()
    : buckets(new Set::bucket_type[kInitialBuckets]),
      bucket_count(kInitialBuckets),
      set(Set::bucket_traits(buckets.get(), kInitialBuckets)) {}

InodeTable::InodeTable() = default;

InodeTable::~InodeTable() {
  for (Shard& s : shards_) {
    s.set.clear_and_dispose([](Inode* inode) { delete inode; });
  }
}

InodeTable::Shard& InodeTable::ShardOf(uint64_t ino) {
  return shards_[Mix(ino) >> 58];  // the top 6 bits: 64 shards
}

bool InodeTable::Idle(const Inode& inode) {
  return inode.ino != kRootIno && inode.nlookup.load() == 0 && inode.open_count.load() == 0;
}

void InodeTable::MaybeGrow(Shard& s) {
  if (s.set.size() <= s.bucket_count) return;
  size_t n = s.bucket_count * 2;
  std::unique_ptr<Set::bucket_type[]> bigger(new Set::bucket_type[n]);
  s.set.rehash(Set::bucket_traits(bigger.get(), n));
  s.buckets = std::move(bigger);
  s.bucket_count = n;
}

Inode* InodeTable::FindAndPin(uint64_t ino) {
  Shard& s = ShardOf(ino);
  std::lock_guard lock(s.mu);
  auto it = s.set.find(ino);
  if (it == s.set.end()) return nullptr;
  ++it->pins;
  return &*it;
}

InodeTable::Found InodeTable::FindOrCreate(uint64_t ino) {
  Shard& s = ShardOf(ino);
  std::lock_guard lock(s.mu);
  auto it = s.set.find(ino);
  if (it != s.set.end()) {
    ++it->pins;
    return {&*it, false};
  }
  Inode* inode = new Inode(ino);
  inode->pins = 1;
  s.set.insert(*inode);
  MaybeGrow(s);
  return {inode, true};
}

Inode* InodeTable::InsertAndPin(std::unique_ptr<Inode> fresh) {
  Shard& s = ShardOf(fresh->ino);
  std::lock_guard lock(s.mu);
  auto it = s.set.find(fresh->ino);
  if (it != s.set.end()) {
    ++it->pins;
    return &*it;  // someone cached it first; `fresh` is dropped
  }
  Inode* inode = fresh.release();
  inode->pins = 1;
  s.set.insert(*inode);
  MaybeGrow(s);
  return inode;
}

InodeTable::Unpinned InodeTable::Unpin(Inode* inode) {
  Shard& s = ShardOf(inode->ino);
  std::unique_lock lock(s.mu);
  assert(inode->pins > 0);
  if (inode->pins > 1) {
    --inode->pins;
    return Unpinned::kKept;
  }
  // The last pin. Nobody else can reach the inode without this lock, so
  // `destroyed` (set under the inode's mu by a pin holder) is stable here.
  // A destroyed inode the kernel still refers to stays (it answers
  // getattr with its last attributes, as a deleted file does) until
  // forgotten.
  if (inode->destroyed && Idle(*inode)) {
    s.set.erase(s.set.iterator_to(*inode));
    lock.unlock();
    delete inode;
    return Unpinned::kFreed;
  }
  if (!inode->destroyed && Idle(*inode)) return Unpinned::kIdle;
  --inode->pins;
  return Unpinned::kKept;
}

std::unique_ptr<Inode> InodeTable::UnpinAndRemove(Inode* inode) {
  Shard& s = ShardOf(inode->ino);
  std::lock_guard lock(s.mu);
  assert(inode->pins > 0);
  if (--inode->pins > 0) return nullptr;
  s.set.erase(s.set.iterator_to(*inode));
  return std::unique_ptr<Inode>(inode);
}

std::vector<Inode*> InodeTable::PinAll() {
  std::vector<Inode*> out;
  for (Shard& s : shards_) {
    std::lock_guard lock(s.mu);
    for (Inode& inode : s.set) {
      ++inode.pins;
      out.push_back(&inode);
    }
  }
  return out;
}

size_t InodeTable::size() const {
  size_t n = 0;
  for (const Shard& s : shards_) {
    std::lock_guard lock(s.mu);
    n += s.set.size();
  }
  return n;
}

size_t InodeTable::overhead_bytes() const {
  size_t n = sizeof(*this);
  for (const Shard& s : shards_) {
    std::lock_guard lock(s.mu);
    n += s.bucket_count * sizeof(Set::bucket_type);
  }
  return n;
}

}  // namespace nosyncfs
