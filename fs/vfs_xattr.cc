// The Vfs's extended attributes (user.nosync is in vfs_nosync.cc).
#include <sys/xattr.h>

#include "fs/vfs.h"
#include "fs/vfs_internal.h"

namespace nosyncfs {

using namespace vfs_internal;

namespace {

constexpr size_t kMaxXattrValue = 65536;

// Only these namespaces are stored; system.* (ACLs) is not supported.
Status CheckXattrName(std::string_view name) {
  if (name.empty() || name.size() > XATTR_NAME_MAX) return Status::Error(ERANGE, "bad xattr name");
  for (std::string_view ns : {"user.", "trusted.", "security."}) {
    if (name.substr(0, ns.size()) == ns && name.size() > ns.size()) return Status::Ok();
  }
  return Status::Error(EOPNOTSUPP, "xattr namespace not supported");
}

}  // namespace

Status Vfs::Setxattr(uint64_t ino, std::string_view name, std::string_view value, int flags) {
  NSF_RETURN_IF_ERROR(CheckXattrName(name));
  if (value.size() > kMaxXattrValue) return Status::Error(E2BIG, "xattr value too large");
  NSF_ASSIGN_OR_RETURN(InodeRef inode, Get(ino));
  std::unique_lock lock(inode->mu);
  NSF_RETURN_IF_ERROR(CheckAlive(*inode));
  // fsync(2) would make the change durable: no lease may skip it now.
  NSF_RETURN_IF_ERROR(SettleDirectWritesLocked(inode.get()));
  if (IsNosyncXattr(name)) {
    if (name != "user.nosync") return Status::Error(EPERM, "user.nosync.extents is read-only");
    return SetNosyncLocked(inode.get(), value, flags);
  }
  NSF_ASSIGN_OR_RETURN(auto existing, volume_->store().Get(keys::Xattr(ino, name)));
  if ((flags & XATTR_CREATE) && existing) return Status::Error(EEXIST, "xattr exists");
  if ((flags & XATTR_REPLACE) && !existing) return Status::Error(ENODATA, "no such xattr");
  Transaction txn;
  txn.batch.Put(keys::Xattr(ino, name), std::string(value));
  inode->maybe_xattrs = true;
  inode->rec.ctime = Now();
  return Commit(std::move(txn), {inode.get()}, false);
}

Result<std::string> Vfs::Getxattr(uint64_t ino, std::string_view name) {
  NSF_ASSIGN_OR_RETURN(InodeRef inode, Get(ino));
  std::shared_lock lock(inode->mu);
  if (name.substr(0, 7) == "system.") return Status::Error(EOPNOTSUPP, "not supported");
  if (IsNosyncXattr(name)) return GetNosyncLocked(inode.get(), name);
  NSF_ASSIGN_OR_RETURN(auto value, volume_->store().Get(keys::Xattr(ino, name)));
  if (!value) return Status::Error(ENODATA, "no such xattr");
  return *value;
}

Result<std::string> Vfs::Listxattr(uint64_t ino) {
  NSF_ASSIGN_OR_RETURN(InodeRef inode, Get(ino));
  std::shared_lock lock(inode->mu);
  std::string out;
  // Listed only when set, so cp -a and rsync -X copy exactly the NF set;
  // user.nosync.extents is never listed (it cannot be set on a copy).
  if ((inode->is_reg() && !NosyncBlocks(*inode).empty()) ||
      (inode->is_dir() && inode->rec.nf_grow_blocks != 0)) {
    out.append("user.nosync", sizeof("user.nosync"));
  }
  std::string prefix = keys::XattrPrefix(ino);
  NSF_RETURN_IF_ERROR(volume_->store().Scan(prefix, "", [&](std::string_view k, std::string_view) {
    out.append(k.substr(prefix.size()));
    out.push_back('\0');
    return true;
  }));
  return out;
}

Status Vfs::Removexattr(uint64_t ino, std::string_view name) {
  NSF_RETURN_IF_ERROR(CheckXattrName(name));
  NSF_ASSIGN_OR_RETURN(InodeRef inode, Get(ino));
  std::unique_lock lock(inode->mu);
  NSF_RETURN_IF_ERROR(CheckAlive(*inode));
  // fsync(2) would make the change durable: no lease may skip it now.
  NSF_RETURN_IF_ERROR(SettleDirectWritesLocked(inode.get()));
  if (IsNosyncXattr(name)) {
    if (name != "user.nosync") return Status::Error(EPERM, "user.nosync.extents is read-only");
    return ClearNosyncLocked(inode.get());
  }
  NSF_ASSIGN_OR_RETURN(auto existing, volume_->store().Get(keys::Xattr(ino, name)));
  if (!existing) return Status::Error(ENODATA, "no such xattr");
  Transaction txn;
  txn.batch.Delete(keys::Xattr(ino, name));
  inode->rec.ctime = Now();
  return Commit(std::move(txn), {inode.get()}, false);
}

}  // namespace nosyncfs
