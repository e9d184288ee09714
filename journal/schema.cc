#include "journal/schema.h"

#include "base/encoding.h"

namespace nosyncfs {
namespace {

void PutTime(std::string* out, const Timespec& t) {
  PutFixed64(out, static_cast<uint64_t>(t.sec));
  PutFixed32(out, t.nsec);
}

bool GetTime(Decoder* d, Timespec* t) {
  uint64_t sec;
  if (!d->GetFixed64(&sec) || !d->GetFixed32(&t->nsec)) return false;
  t->sec = static_cast<int64_t>(sec);
  return true;
}

std::string PrefixU64(char prefix, uint64_t v) {
  std::string k(1, prefix);
  PutFixed64(&k, v);
  return k;
}

}  // namespace

std::string InodeRecord::Encode() const {
  std::string out;
  PutFixed32(&out, mode);
  PutFixed32(&out, uid);
  PutFixed32(&out, gid);
  PutFixed32(&out, nlink);
  PutFixed64(&out, rdev);
  PutFixed64(&out, size);
  PutTime(&out, atime);
  PutTime(&out, mtime);
  PutTime(&out, ctime);
  PutFixed64(&out, next_cookie);
  PutFixed64(&out, parent);
  if (nf_grow_blocks != 0) PutFixed32(&out, nf_grow_blocks);
  return out;
}

Result<InodeRecord> InodeRecord::Decode(uint64_t ino, std::string_view value) {
  InodeRecord r;
  r.ino = ino;
  Decoder d(value);
  bool ok = d.GetFixed32(&r.mode) && d.GetFixed32(&r.uid) && d.GetFixed32(&r.gid) &&
            d.GetFixed32(&r.nlink) && d.GetFixed64(&r.rdev) && d.GetFixed64(&r.size) &&
            GetTime(&d, &r.atime) && GetTime(&d, &r.mtime) && GetTime(&d, &r.ctime) &&
            d.GetFixed64(&r.next_cookie) && d.GetFixed64(&r.parent) &&
            (d.done() || (d.GetFixed32(&r.nf_grow_blocks) && r.nf_grow_blocks != 0 && d.done()));
  if (!ok) return Status::Error(EUCLEAN, "inode " + std::to_string(ino) + ": bad record");
  return r;
}

std::string DirentRecord::Encode(bool with_name) const {
  std::string out;
  PutFixed64(&out, ino);
  PutFixed32(&out, type);
  PutFixed64(&out, cookie);
  if (with_name) out.append(name);
  return out;
}

Result<DirentRecord> DirentRecord::Decode(std::string_view value) {
  DirentRecord r;
  Decoder d(value);
  if (!(d.GetFixed64(&r.ino) && d.GetFixed32(&r.type) && d.GetFixed64(&r.cookie))) {
    return Status::Error(EUCLEAN, "bad directory entry record");
  }
  r.name.assign(d.rest());
  return r;
}

std::string AppliedRecord::Encode() const {
  std::string out;
  PutFixed64(&out, seq);
  PutFixed64(&out, next_ino);
  PutFixed64(&out, inode_count);
  return out;
}

Result<AppliedRecord> AppliedRecord::Decode(std::string_view value) {
  AppliedRecord r;
  Decoder d(value);
  if (value.size() == 8 && d.GetFixed64(&r.seq)) {
    r.legacy = true;
    return r;
  }
  if (!(d.GetFixed64(&r.seq) && d.GetFixed64(&r.next_ino) && d.GetFixed64(&r.inode_count) &&
        d.done())) {
    return Status::Error(EUCLEAN, "bad applied-transaction record");
  }
  return r;
}

namespace keys {

std::string Inode(uint64_t ino) { return PrefixU64('i', ino); }
std::string DirentPrefix(uint64_t dir) { return PrefixU64('d', dir); }
std::string Dirent(uint64_t dir, std::string_view name) {
  return DirentPrefix(dir).append(name);
}
std::string CookiePrefix(uint64_t dir) { return PrefixU64('c', dir); }
std::string Cookie(uint64_t dir, uint64_t cookie) {
  std::string k = CookiePrefix(dir);
  PutFixed64(&k, cookie);
  return k;
}
std::string ExtentPrefix(uint64_t ino) { return PrefixU64('e', ino); }
std::string Extent(uint64_t ino, uint64_t lblk) {
  std::string k = ExtentPrefix(ino);
  PutFixed64(&k, lblk);
  return k;
}
std::string XattrPrefix(uint64_t ino) { return PrefixU64('x', ino); }
std::string Xattr(uint64_t ino, std::string_view name) { return XattrPrefix(ino).append(name); }
std::string Orphan(uint64_t ino) { return PrefixU64('o', ino); }
std::string Intent(uint64_t id) { return PrefixU64('w', id); }
std::string Refcount(uint64_t block) { return PrefixU64('r', block); }
std::string SymlinkTarget(uint64_t ino) { return PrefixU64('l', ino); }

uint64_t TrailingU64(std::string_view key) {
  return key.size() < 8 ? 0 : DecodeFixed64(key.data() + key.size() - 8);
}
uint64_t InoOf(std::string_view key) { return key.size() < 9 ? 0 : DecodeFixed64(key.data() + 1); }

}  // namespace keys

std::string EncodeExtentValue(const Extent& e) {
  std::string out;
  PutFixed64(&out, e.len);
  PutFixed64(&out, e.pblk);
  PutFixed32(&out, e.flags);
  return out;
}

Result<Extent> DecodeExtent(std::string_view key, std::string_view value) {
  Extent e;
  Decoder d(value);
  if (key.size() != 17 || !(d.GetFixed64(&e.len) && d.GetFixed64(&e.pblk) &&
                            d.GetFixed32(&e.flags) && d.done()) ||
      e.len == 0) {
    return Status::Error(EUCLEAN, "bad extent record");
  }
  e.lblk = keys::TrailingU64(key);
  return e;
}

std::string EncodeRefcountValue(const RefcountMap::Record& r) {
  std::string out;
  PutFixed64(&out, r.run.len);
  PutFixed32(&out, r.refs);
  return out;
}

Result<RefcountMap::Record> DecodeRefcount(std::string_view key, std::string_view value) {
  RefcountMap::Record r;
  Decoder d(value);
  if (key.size() != 9 || !(d.GetFixed64(&r.run.len) && d.GetFixed32(&r.refs) && d.done()) ||
      r.run.len == 0 || r.refs < 2) {
    return Status::Error(EUCLEAN, "bad reference count record");
  }
  r.run.start = keys::TrailingU64(key);
  return r;
}

std::string EncodeU64(uint64_t v) {
  std::string out;
  PutFixed64(&out, v);
  return out;
}

Result<uint64_t> DecodeU64(std::string_view value) {
  if (value.size() != 8) return Status::Error(EUCLEAN, "bad counter record");
  return DecodeFixed64(value.data());
}

}  // namespace nosyncfs
