// InodeTable: the cached inodes, by inode number, with their pins.
//
// Sharded by a hash of the inode number, each shard an intrusive hash table
// (the hook lives in the Inode, so caching an inode allocates nothing
// besides the Inode itself) under its own mutex, held only for a few
// pointer operations. Requests on different inodes therefore do not wait
// for each other here.
//
// Pins: an operation pins every inode it uses; an inode leaves the table
// only when its last pin goes. Whether it then leaves (it is idle: no kernel
// reference, not open) is decided under the shard lock, so a pin taken at
// the same moment either keeps it cached or finds it gone, never half-gone.
//
// Thread-safety: every method may be called from any thread. The shard
// mutexes are leaves of the lock order (fs/vfs.h).
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include <boost/intrusive/unordered_set.hpp>

#include "fs/inode.h"

namespace nosyncfs {

class InodeTable {
 public:
  InodeTable();
  ~InodeTable();  // deletes every inode still cached
  InodeTable(const InodeTable&) = delete;
  InodeTable& operator=(const InodeTable&) = delete;

  // The cached inode, pinned; nullptr if it is not cached.
  Inode* FindAndPin(uint64_t ino);
  // The cached inode, pinned; or, if it is not cached, a new placeholder
  // (Inode(ino)), pinned, for the caller to load (`created` true). Until it
  // sets `loaded`, everyone else who finds the placeholder waits for it.
  struct Found {
    Inode* inode;
    bool created;
  };
  Found FindOrCreate(uint64_t ino);
  // Caches `fresh` unless its number is cached already; returns whichever
  // is cached, pinned.
  Inode* InsertAndPin(std::unique_ptr<Inode> fresh);

  enum class Unpinned {
    kKept,    // other pins remain, or the inode is still referenced
    kIdle,    // it was the last pin and the inode is idle: the pin is NOT
              // dropped; the caller retires the inode (Vfs::Retire)
    kFreed,   // it was destroyed, and this was its last pin and reference:
              // deleted
  };
  // Drops a pin, unless it is the last one of an idle inode.
  Unpinned Unpin(Inode* inode);
  // Drops the caller's pin. If it was the last one, the inode leaves the
  // table and is returned for the caller to delete (after releasing its
  // mu, which the caller may hold). nullptr if other pins remain.
  std::unique_ptr<Inode> UnpinAndRemove(Inode* inode);

  // Pins and returns every cached inode (for shutdown).
  std::vector<Inode*> PinAll();
  // Number of cached inodes.
  size_t size() const;

  // Heap bytes the table itself uses beyond the Inodes (bucket arrays).
  size_t overhead_bytes() const;

 private:
  struct InoOf {
    using type = uint64_t;
    uint64_t operator()(const Inode& inode) const { return inode.ino; }
  };
  struct Hash {
    size_t operator()(uint64_t ino) const;
  };
  using Hook = boost::intrusive::member_hook<Inode, boost::intrusive::unordered_set_member_hook<>,
                                             &Inode::table_hook>;
  using Set = boost::intrusive::unordered_set<Inode, Hook, boost::intrusive::key_of_value<InoOf>,
                                              boost::intrusive::hash<Hash>,
                                              boost::intrusive::power_2_buckets<true>>;

  struct Shard {
    Shard();
    mutable std::mutex mu;
    std::unique_ptr<Set::bucket_type[]> buckets;
    size_t bucket_count;
    Set set;
  };
  static constexpr size_t kShards = 64;

  Shard& ShardOf(uint64_t ino);
  // Grows the shard's buckets when it holds more inodes than buckets.
  static void MaybeGrow(Shard& s);
  // Whether nothing outside the table refers to the inode.
  static bool Idle(const Inode& inode);

  std::array<Shard, kShards> shards_;
};

}  // namespace nosyncfs
