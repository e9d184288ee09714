// The user.nosync xattr interface of the Vfs (SEMANTICS.md section 2).
//
// The NF set is not stored as an xattr: it is the set of extents carrying
// kExtentNoFsync, so the flag and the mapping can never disagree. Setting
// it is declarative: the new set replaces the old one in one durable
// transaction.
#include <sys/xattr.h>

#include <cinttypes>
#include <cstdio>

#include "base/crash_point.h"
#include "fs/nosync_policy.h"
#include "fs/nosync_ranges.h"
#include "fs/vfs.h"
#include "fs/vfs_internal.h"

namespace nosyncfs {
using namespace vfs_internal;

namespace {

constexpr char kNosync[] = "user.nosync";
constexpr char kNosyncExtents[] = "user.nosync.extents";
// user.nosync.extents@OFFSET: the page of the listing from file offset
// OFFSET (docs/semantics.md, "Listing the extent map").
constexpr std::string_view kNosyncExtentsPage = "user.nosync.extents@";
constexpr size_t kMaxXattrReply = 65536;  // the kernel's XATTR_SIZE_MAX
// A page of the extent listing is at most this long, continuation line
// included: half of what one xattr value can be, so that a reader with a
// 64 KiB buffer never meets ERANGE, even if a page grows between its size
// query and its read.
constexpr size_t kExtentsPageBytes = 32768;
// Room kept for the continuation line: "more " + 20 digits + "\n".
constexpr size_t kMoreLineBytes = 26;

// The file offset a user.nosync.extents name asks for: 0 for the plain
// name, OFFSET for user.nosync.extents@OFFSET (decimal digits only, at most
// the largest file size). EINVAL for anything else after the '@'.
Result<uint64_t> ExtentsPageOffset(std::string_view name) {
  if (name == kNosyncExtents) return uint64_t{0};
  std::string_view digits = name.substr(kNosyncExtentsPage.size());
  if (digits.empty() || digits.size() > 19) {
    return Status::Error(EINVAL, "user.nosync.extents@OFFSET needs a decimal byte offset");
  }
  uint64_t off = 0;
  for (char c : digits) {
    if (c < '0' || c > '9') {
      return Status::Error(EINVAL, "user.nosync.extents@OFFSET needs a decimal byte offset");
    }
    off = off * 10 + static_cast<uint64_t>(c - '0');  // 19 digits cannot overflow
  }
  if (off > kMaxFileSize) return Status::Error(EINVAL, "extent listing offset past any file");
  return off;
}

}  // namespace

bool Vfs::IsNosyncXattr(std::string_view name) {
  return name == kNosync || name == kNosyncExtents ||
         name.substr(0, kNosyncExtentsPage.size()) == kNosyncExtentsPage;
}

Vfs::BlockRanges Vfs::NosyncBlocks(const Inode& inode) const {
  BlockRanges out;
  for (const auto& [lblk, e] : inode.extents().extents()) {
    if (!(e.flags & kExtentNoFsync)) continue;
    if (!out.empty() && out.back().first + out.back().second == e.lblk) {
      out.back().second += e.len;
    } else {
      out.emplace_back(e.lblk, e.len);
    }
  }
  return out;
}

bool Vfs::HasNosyncBlocks(const Inode& inode, uint64_t first, uint64_t count) {
  for (uint64_t pos = first; pos < first + count;) {
    auto seg = inode.extents().Find(pos, first + count - pos);
    if (seg.mapped && (seg.flags & kExtentNoFsync)) return true;
    pos += seg.len;
  }
  return false;
}

Status Vfs::ApplyNosyncSet(Inode* inode, const BlockRanges& target) {
  // Data already written under the range becomes NF data: make it durable
  // now, since fsync will have nothing left to do for it (D3).
  NSF_RETURN_IF_ERROR(PersistDirtyData(inode));
  // NF blocks are never shared (D1): shared blocks in the range get private
  // copies first. That changes which device blocks hold the bytes, not the
  // bytes, so it commits ahead of the flags without being seen.
  for (auto [first, count] : target) NSF_RETURN_IF_ERROR(UnshareLocked(inode, first, count));
  // The only step that can fail (ENOSPC) is all-or-nothing, so a failure
  // leaves the file's bytes, mapping and flags exactly as they were.
  NSF_RETURN_IF_ERROR(FillHoles(inode, target, kExtentNoFsync));
  CrashPoint("vfs.nosync.filled");
  inode->mutable_extents().SetFlags(0, kMaxFileOffset / bs_ + 1, kExtentNoFsync, 0);
  for (auto [first, count] : target) {
    inode->mutable_extents().SetFlags(first, count, kExtentNoFsync, kExtentNoFsync);
  }
  Transaction txn;
  txn.PutExtentChanges(inode->rec.ino, inode->mutable_extents());
  inode->rec.ctime = Now();
  // Cleared: a policy the file was created under ends too (the user's
  // word is the last); setting ranges keeps it, so growth stays NF.
  if (target.empty()) inode->rec.nf_grow_blocks = 0;
  // Mapping and flags are durable before setxattr returns (D1).
  return Commit(std::move(txn), {inode}, /*durable=*/true);
}

Status Vfs::SetNosyncPolicyLocked(Inode* inode, uint32_t grow_blocks) {
  inode->rec.nf_grow_blocks = grow_blocks;
  inode->rec.ctime = Now();
  // Durable on return, as the flags of a file are: a file created in the
  // directory afterwards is created under it.
  return Commit(Transaction{}, {inode}, /*durable=*/true);
}

Status Vfs::SetNosyncLocked(Inode* inode, std::string_view value, int flags) {
  if (inode->is_dir()) {
    const bool has_policy = inode->rec.nf_grow_blocks != 0;
    if ((flags & XATTR_CREATE) && has_policy) return Status::Error(EEXIST, "user.nosync is set");
    if ((flags & XATTR_REPLACE) && !has_policy) {
      return Status::Error(ENODATA, "user.nosync is not set");
    }
    NSF_ASSIGN_OR_RETURN(uint32_t grow_blocks, ParseNosyncPolicy(value, bs_));
    return SetNosyncPolicyLocked(inode, grow_blocks);
  }
  if (!inode->is_reg()) {
    return Status::Error(EINVAL, "user.nosync applies to regular files and directories only");
  }
  bool has_nf = !NosyncBlocks(*inode).empty();
  if ((flags & XATTR_CREATE) && has_nf) return Status::Error(EEXIST, "user.nosync is set");
  if ((flags & XATTR_REPLACE) && !has_nf) return Status::Error(ENODATA, "user.nosync is not set");
  NSF_ASSIGN_OR_RETURN(std::vector<ByteRange> ranges,
                       ParseNosyncRanges(value, inode->rec.size, bs_));
  BlockRanges target;
  for (const ByteRange& r : ranges) target.emplace_back(r.start / bs_, (r.end - r.start) / bs_);
  return ApplyNosyncSet(inode, target);
}

Status Vfs::ClearNosyncLocked(Inode* inode) {
  if (inode->is_dir() && inode->rec.nf_grow_blocks != 0) return SetNosyncPolicyLocked(inode, 0);
  if (!inode->is_reg()) return Status::Error(ENODATA, "user.nosync is not set");
  if (NosyncBlocks(*inode).empty()) return Status::Error(ENODATA, "user.nosync is not set");
  return ApplyNosyncSet(inode, {});
}

Result<std::string> Vfs::GetNosyncLocked(Inode* inode, std::string_view name) {
  if (name != kNosync) {
    // A malformed page name is EINVAL whatever the file is.
    NSF_ASSIGN_OR_RETURN(uint64_t off, ExtentsPageOffset(name));
    if (!inode->is_reg()) return Status::Error(ENODATA, "no such xattr");
    return ExtentsPageLocked(*inode, off);
  }
  if (inode->is_dir() && inode->rec.nf_grow_blocks != 0) {
    return FormatNosyncPolicy(inode->rec.nf_grow_blocks, bs_);
  }
  if (!inode->is_reg()) return Status::Error(ENODATA, "no such xattr");
  std::vector<ByteRange> ranges;
  for (auto [first, count] : NosyncBlocks(*inode)) {
    ranges.push_back({first * bs_, (first + count) * bs_});
  }
  if (ranges.empty()) return Status::Error(ENODATA, "user.nosync is not set");
  std::string text = FormatNosyncRanges(ranges);
  if (text.size() > kMaxXattrReply) {
    return Status::Error(E2BIG, "user.nosync is longer than an xattr value can be");
  }
  return text;
}

std::string Vfs::ExtentsPageLocked(const Inode& inode, uint64_t off) const {
  // One line per extent: logical offset, length, device offset (bytes),
  // flags; from the extent that holds `off`, or the first after it.
  const Superblock& sb = volume_->superblock();
  const auto& extents = inode.extents().extents();
  const uint64_t lblk = off / bs_;
  auto it = extents.upper_bound(lblk);
  if (it != extents.begin() && std::prev(it)->second.lend() > lblk) --it;
  std::string text;
  for (; it != extents.end(); ++it) {
    const Extent& e = it->second;
    char line[96];
    int n = std::snprintf(line, sizeof(line), "%" PRIu64 " %" PRIu64 " %" PRIu64 " %s\n",
                          e.lblk * bs_, e.len * bs_, sb.BlockOffset(e.pblk),
                          (e.flags & kExtentNoFsync) ? "nf" : "-");
    if (text.size() + static_cast<size_t>(n) + kMoreLineBytes > kExtentsPageBytes) {
      // The rest is another page's, from this extent on.
      text += "more " + std::to_string(e.lblk * bs_) + "\n";
      break;
    }
    text.append(line, static_cast<size_t>(n));
  }
  return text;
}

}  // namespace nosyncfs
