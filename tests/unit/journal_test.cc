// Unit tests for journal/: the superblock, metadata batches, the device log
// and the Volume's crash story (commit, sync, checkpoint, recovery).
#include <cstring>

#include <catch2/catch.hpp>

#include <array>
#include <cerrno>
#include <filesystem>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "base/crc32c.h"
#include "base/encoding.h"
#include "journal/log.h"
#include "journal/meta_batch.h"
#include "journal/schema.h"
#include "journal/superblock.h"
#include "journal/volume.h"
#include "tests/harness/volume_fixture.h"

namespace nosyncfs::test {
namespace {

constexpr uint64_t kMiB = uint64_t{1} << 20;
using Runs = std::vector<BlockRun>;

// ---- superblock helpers --------------------------------------------------------

Superblock SampleSuperblock() {
  auto sb = Superblock::Plan(64 * kMiB, 4096);
  REQUIRE(sb.ok());
  for (int i = 0; i < 16; ++i) sb->uuid[i] = static_cast<uint8_t>(i + 1);
  sb->meta_dir = "/var/lib/nosyncfs/sample.meta";
  return *sb;
}

// Rewrites the checksum so that only the field changed before is "wrong".
void Reseal(std::string* block) {
  std::string crc;
  PutFixed32(&crc, Crc32c(block->data(), Superblock::kCrcOffset));
  block->replace(Superblock::kCrcOffset, 4, crc);
}

}  // namespace

TEST_CASE("superblock: Plan checks the block size and the device size", "[journal]") {
  for (uint32_t bs : {0u, 512u, 1000u, 3000u, 4097u, 131072u}) {
    auto sb = Superblock::Plan(64 * kMiB, bs);
    INFO("block size " << bs);
    REQUIRE_FALSE(sb.ok());
    CHECK(sb.status().code() == EINVAL);
  }
  auto small = Superblock::Plan(Superblock::kMinDeviceSize - 1, 4096);
  REQUIRE_FALSE(small.ok());
  CHECK(small.status().code() == ENOSPC);
  CHECK(Superblock::Plan(Superblock::kMinDeviceSize, 4096).ok());

  auto sb = Superblock::Plan(64 * kMiB, 4096);
  REQUIRE(sb.ok());
  CHECK(sb->version == Superblock::kVersion);
  CHECK(sb->block_size == 4096);
  CHECK(sb->device_size == 64 * kMiB);
  CHECK(sb->log_offset == 4096);
  CHECK(sb->log_length == 2 * kMiB);  // 1/64 of the device, at least 2 MiB
  CHECK(sb->data_offset == 4096 + 2 * kMiB);
  CHECK(sb->data_blocks == (64 * kMiB - 4096 - 2 * kMiB) / 4096);
  CHECK(sb->BlockOffset(3) == sb->data_offset + 3 * 4096);

  // A 64 KiB block: the log starts block-aligned after the superblock.
  auto big = Superblock::Plan(64 * kMiB, 65536);
  REQUIRE(big.ok());
  CHECK(big->log_offset == 65536);
  CHECK(big->data_offset == 65536 + 2 * kMiB);
  CHECK(big->data_blocks == (64 * kMiB - 65536 - 2 * kMiB) / 65536);

  // The log is capped at 64 MiB.
  auto huge = Superblock::Plan(uint64_t{8} << 30, 1024);
  REQUIRE(huge.ok());
  CHECK(huge->log_length == 64 * kMiB);
}

TEST_CASE("superblock: Encode and Decode round trip", "[journal]") {
  Superblock sb = SampleSuperblock();
  std::string block = sb.Encode();
  REQUIRE(block.size() == Superblock::kSize);
  CHECK(block.substr(0, 8) == "NOSYNCFS");

  auto back = Superblock::Decode(block.data(), block.size(), 64 * kMiB);
  INFO(back.status().ToString());
  REQUIRE(back.ok());
  CHECK(back->version == sb.version);
  CHECK(back->block_size == sb.block_size);
  CHECK(back->uuid == sb.uuid);
  CHECK(back->device_size == sb.device_size);
  CHECK(back->log_offset == sb.log_offset);
  CHECK(back->log_length == sb.log_length);
  CHECK(back->data_offset == sb.data_offset);
  CHECK(back->data_blocks == sb.data_blocks);
  CHECK(back->meta_dir == sb.meta_dir);
  CHECK(back->UuidString() == "01020304-0506-0708-090a-0b0c0d0e0f10");
  // A device that grew still carries the file system.
  CHECK(Superblock::Decode(block.data(), block.size(), 128 * kMiB).ok());
}

TEST_CASE("superblock: Decode names what is wrong", "[journal]") {
  std::string block = SampleSuperblock().Encode();

  SECTION("bad magic") {
    block[0] = 'X';
    auto r = Superblock::Decode(block.data(), block.size(), 64 * kMiB);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == EINVAL);
    CHECK_THAT(r.status().message(), Catch::Contains("not a nosyncfs device"));
  }
  SECTION("an all-zero device") {
    std::string zeros(Superblock::kSize, '\0');
    auto r = Superblock::Decode(zeros.data(), zeros.size(), 64 * kMiB);
    CHECK(r.status().code() == EINVAL);
    CHECK_THAT(r.status().message(), Catch::Contains("not a nosyncfs device"));
  }
  SECTION("a corrupted byte fails the checksum") {
    for (size_t off : {size_t{9}, size_t{40}, size_t{100}, size_t{4000}, Superblock::kCrcOffset}) {
      std::string bad = block;
      bad[off] = static_cast<char>(bad[off] ^ 0x10);
      auto r = Superblock::Decode(bad.data(), bad.size(), 64 * kMiB);
      INFO("corrupted byte at " << off);
      REQUIRE_FALSE(r.ok());
      CHECK(r.status().code() == EUCLEAN);
      CHECK_THAT(r.status().message(), Catch::Contains("checksum"));
    }
  }
  SECTION("a version from the future, correctly checksummed") {
    std::string v;
    PutFixed32(&v, 2);
    block.replace(8, 4, v);  // right after the magic
    Reseal(&block);
    auto r = Superblock::Decode(block.data(), block.size(), 64 * kMiB);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == EINVAL);
    CHECK_THAT(r.status().message(), Catch::Contains("unsupported format version 2"));
  }
  SECTION("magic is checked before the checksum, the checksum before the version") {
    std::string v;
    PutFixed32(&v, 9);
    block.replace(8, 4, v);  // version wrong and checksum now wrong too
    auto r = Superblock::Decode(block.data(), block.size(), 64 * kMiB);
    CHECK_THAT(r.status().message(), Catch::Contains("checksum"));
    block[1] = 'Z';
    r = Superblock::Decode(block.data(), block.size(), 64 * kMiB);
    CHECK_THAT(r.status().message(), Catch::Contains("not a nosyncfs device"));
  }
  SECTION("inconsistent geometry") {
    Superblock sb = SampleSuperblock();
    sb.data_blocks += 1;  // one block past the end of the device
    std::string bad = sb.Encode();
    auto r = Superblock::Decode(bad.data(), bad.size(), 64 * kMiB);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == EUCLEAN);
    CHECK_THAT(r.status().message(), Catch::Contains("geometry"));
  }
  SECTION("a device smaller than the file system") {
    auto r = Superblock::Decode(block.data(), block.size(), 32 * kMiB);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == EINVAL);
    CHECK_THAT(r.status().message(), Catch::Contains("smaller"));
  }
  SECTION("fewer bytes than a superblock") {
    auto r = Superblock::Decode(block.data(), Superblock::kSize - 1, 64 * kMiB);
    CHECK(r.status().code() == EINVAL);
  }
}

// ---- MetaBatch -----------------------------------------------------------------

namespace {

void CheckSameOps(const MetaBatch& a, const MetaBatch& b) {
  REQUIRE(a.ops().size() == b.ops().size());
  for (size_t i = 0; i < a.ops().size(); ++i) {
    INFO("op " << i);
    CHECK(a.ops()[i].type == b.ops()[i].type);
    CHECK(a.ops()[i].key == b.ops()[i].key);
    CHECK(a.ops()[i].value == b.ops()[i].value);
  }
}

MetaBatch SampleBatch() {
  MetaBatch b;
  b.Put(std::string("i\0\0\x01", 4), "value one");
  b.Delete("gone");
  b.Put(std::string("k\0ey", 4), std::string("\0\xff\0", 3));  // binary key and value
  b.Put("empty value", "");
  b.Put("", "empty key");
  return b;
}

}  // namespace

TEST_CASE("meta batch: Encode and Decode round trip", "[journal]") {
  MetaBatch b = SampleBatch();
  auto back = MetaBatch::Decode(b.Encode());
  INFO(back.status().ToString());
  REQUIRE(back.ok());
  CheckSameOps(b, *back);
  CHECK(back->ops()[1].type == MetaBatch::OpType::kDelete);

  MetaBatch empty;
  CHECK(empty.Encode() == std::string(4, '\0'));
  auto e = MetaBatch::Decode(empty.Encode());
  REQUIRE(e.ok());
  CHECK(e->empty());

  // Append concatenates in order.
  MetaBatch both = b;
  both.Append(b);
  REQUIRE(both.ops().size() == 10);
  CHECK(both.ops()[5].key == b.ops()[0].key);
}

TEST_CASE("meta batch: malformed encodings are EUCLEAN", "[journal]") {
  std::string enc = SampleBatch().Encode();
  SECTION("every truncation") {
    for (size_t n = 0; n < enc.size(); ++n) {
      auto r = MetaBatch::Decode(std::string_view(enc).substr(0, n));
      INFO("first " << n << " of " << enc.size() << " bytes");
      REQUIRE_FALSE(r.ok());
      REQUIRE(r.status().code() == EUCLEAN);
    }
  }
  SECTION("trailing bytes") {
    auto r = MetaBatch::Decode(enc + "x");
    CHECK(r.status().code() == EUCLEAN);
    CHECK_THAT(r.status().message(), Catch::Contains("trailing"));
  }
  SECTION("an unknown operation type") {
    enc[4] = 7;  // the first op's type byte, after the count
    auto r = MetaBatch::Decode(enc);
    CHECK(r.status().code() == EUCLEAN);
    CHECK_THAT(r.status().message(), Catch::Contains("unknown"));
  }
  SECTION("a count larger than the operations") {
    std::string count;
    PutFixed32(&count, 6);
    enc.replace(0, 4, count);
    CHECK(MetaBatch::Decode(enc).status().code() == EUCLEAN);
  }
}

// ---- Log (on a strict-emulated Device, no Volume) ------------------------------

namespace {

constexpr uint64_t kLogOffset = 8192;
constexpr uint64_t kLogLength = 64 * 1024;
constexpr uint64_t kRecordHeader = 24;
constexpr uint64_t kSlotSize = 512;

uint64_t Align8(uint64_t v) { return (v + 7) & ~uint64_t{7}; }

// One log record as the scan reports it.
struct Rec {
  uint64_t seq;
  std::string payload;
  bool operator==(const Rec&) const = default;
};
using Records = std::vector<Rec>;

// Found by Catch through ADL, for readable failure messages.
std::ostream& operator<<(std::ostream& os, const Rec& r) {
  return os << "#" << r.seq << " \"" << r.payload.substr(0, 40) << "\"";
}

// A small image with a log region in it. Destroying the Device without
// persisting is a power failure (strict emulation).
class LogImage {
 public:
  LogImage() : path_(tmp_.path() + "/log.img") { MakeImageFile(path_, 1 * kMiB); }

  const std::string& path() const { return path_; }

  // Opens the device and a Log over the region (not Log::Open).
  void Attach() {
    log_.reset();
    device_.reset();
    DeviceOptions o;
    o.strict_emulation = true;
    auto d = Device::Open(path_, o);
    INFO(d.status().ToString());
    REQUIRE(d.ok());
    device_ = std::move(d).value();
    log_ = std::make_unique<Log>(device_.get(), kLogOffset, kLogLength);
  }
  // Drops everything not persisted.
  void Crash() {
    log_.reset();
    device_.reset();
  }
  // Crash, then reopen and scan: the records recovery would see.
  Records Reopen() {
    Crash();
    Attach();
    Records out;
    Status st = log_->Open([&](uint64_t seq, std::string_view payload) {
      out.push_back({seq, std::string(payload)});
      return Status::Ok();
    });
    INFO(st.ToString());
    REQUIRE(st.ok());
    return out;
  }

  Log& log() { return *log_; }

  uint64_t MustAppend(std::string_view payload) {
    auto seq = log_->Append(payload);
    INFO(seq.status().ToString());
    REQUIRE(seq.ok());
    return *seq;
  }

 private:
  TempDir tmp_;
  std::string path_;
  std::unique_ptr<Device> device_;
  std::unique_ptr<Log> log_;
};

// Image offset of record `index` (0-based) given the payload sizes before it.
uint64_t RecordOffset(const std::vector<std::string>& payloads, size_t index) {
  uint64_t pos = kLogOffset + Log::kRecordsOffset;
  for (size_t i = 0; i < index; ++i) pos += Align8(kRecordHeader + payloads[i].size());
  return pos;
}

}  // namespace

TEST_CASE("log: synced records are found again after a reopen", "[journal]") {
  LogImage img;
  img.Attach();
  REQUIRE(img.log().Format(1, /*salt=*/7).ok());
  CHECK(img.MustAppend("one") == 1);
  CHECK(img.MustAppend(std::string(1000, 'b')) == 2);
  CHECK(img.MustAppend("three") == 3);
  CHECK(img.log().has_unsynced());
  CHECK(img.log().durable_seq() == 0);
  REQUIRE(img.log().Sync().ok());
  CHECK_FALSE(img.log().has_unsynced());
  CHECK(img.log().durable_seq() == 3);

  CHECK(img.Reopen() == Records{{1, "one"}, {2, std::string(1000, 'b')}, {3, "three"}});
  CHECK(img.log().start_seq() == 1);
  CHECK(img.log().next_seq() == 4);
  CHECK(img.log().durable_seq() == 3);

  // Appending continues after the last valid record.
  CHECK(img.MustAppend("four") == 4);
  REQUIRE(img.log().Sync().ok());
  CHECK(img.Reopen() ==
        Records{{1, "one"}, {2, std::string(1000, 'b')}, {3, "three"}, {4, "four"}});
}

TEST_CASE("log: records that were not synced are lost in a crash", "[journal]") {
  LogImage img;
  img.Attach();
  REQUIRE(img.log().Format(1, /*salt=*/7).ok());
  img.MustAppend("a");
  img.MustAppend("b");
  REQUIRE(img.log().Sync().ok());
  img.MustAppend("c");
  img.MustAppend("d");
  CHECK(img.log().durable_seq() == 2);

  CHECK(img.Reopen() == Records{{1, "a"}, {2, "b"}});
  CHECK(img.log().next_seq() == 3);
  // The lost sequence numbers are handed out again, to new records.
  CHECK(img.MustAppend("e") == 3);
  REQUIRE(img.log().Sync().ok());
  CHECK(img.Reopen() == Records{{1, "a"}, {2, "b"}, {3, "e"}});
}

TEST_CASE("log: a torn record ends the scan", "[journal]") {
  const std::vector<std::string> payloads = {"first", std::string(100, 'x'), "third", "fourth"};
  LogImage img;
  img.Attach();
  REQUIRE(img.log().Format(1, /*salt=*/7).ok());
  for (const auto& p : payloads) img.MustAppend(p);
  REQUIRE(img.log().Sync().ok());
  img.Crash();

  uint64_t second = RecordOffset(payloads, 1);
  uint64_t flip = 0;
  SECTION("a byte of the payload") { flip = second + kRecordHeader + 30; }
  SECTION("the length field") { flip = second + 7; }
  SECTION("the sequence number") { flip = second + 15; }
  SECTION("the checksum") { flip = second + 16; }
  SECTION("the magic") { flip = second; }
  FlipFileByte(img.path(), flip);

  CHECK(img.Reopen() == Records{{1, "first"}});
  CHECK(img.log().next_seq() == 2);
  CHECK(img.log().durable_seq() == 1);

  // New records overwrite the torn one; the old ones after it never come
  // back.
  CHECK(img.MustAppend("new second") == 2);
  REQUIRE(img.log().Sync().ok());
  CHECK(img.Reopen() == Records{{1, "first"}, {2, "new second"}});
}

TEST_CASE("log: Reset starts a new epoch and stale records are not replayed", "[journal]") {
  LogImage img;
  img.Attach();
  REQUIRE(img.log().Format(1, /*salt=*/7).ok());
  img.MustAppend("aaaa");
  img.MustAppend("bbbb");
  img.MustAppend("cccc");
  REQUIRE(img.log().Sync().ok());
  REQUIRE(img.log().Reset(4).ok());
  CHECK(img.log().start_seq() == 4);
  CHECK(img.log().next_seq() == 4);
  CHECK(img.log().durable_seq() == 3);
  CHECK(img.log().used_bytes() == 0);

  // The old records are still on the device but belong to the old epoch.
  CHECK(img.Reopen().empty());
  CHECK(img.log().start_seq() == 4);
  CHECK(img.log().next_seq() == 4);

  // A new record of the same size lands exactly on the old first one, so a
  // valid old record ("bbbb", seq 2) directly follows it: its sequence
  // number ends the scan.
  CHECK(img.MustAppend("dddd") == 4);
  REQUIRE(img.log().Sync().ok());
  CHECK(img.Reopen() == Records{{4, "dddd"}});
  CHECK(img.log().next_seq() == 5);
}

TEST_CASE("log: header slots", "[journal]") {
  LogImage img;
  img.Attach();
  REQUIRE(img.log().Format(1, /*salt=*/7).ok());
  img.MustAppend("a");
  img.MustAppend("b");
  REQUIRE(img.log().Sync().ok());

  SECTION("the newest valid generation wins") {
    REQUIRE(img.log().Reset(3).ok());
    img.MustAppend("c");
    REQUIRE(img.log().Sync().ok());
    CHECK(img.Reopen() == Records{{3, "c"}});
    CHECK(img.log().start_seq() == 3);
  }
  SECTION("a torn header write falls back to the other slot") {
    // Reset writes the inactive slot (1); if that write is torn, the old
    // header in slot 0 and its records are still valid.
    REQUIRE(img.log().Reset(3).ok());
    img.Crash();
    FlipFileByte(img.path(), kLogOffset + kSlotSize + 12);  // inside slot 1's generation
    CHECK(img.Reopen() == Records{{1, "a"}, {2, "b"}});
    CHECK(img.log().start_seq() == 1);
    CHECK(img.log().next_seq() == 3);
  }
  SECTION("no valid slot is EUCLEAN") {
    img.Crash();
    FlipFileByte(img.path(), kLogOffset + 3);  // slot 0's magic; slot 1 was never written
    img.Attach();
    Status st = img.log().Open([](uint64_t, std::string_view) { return Status::Ok(); });
    CHECK(st.code() == EUCLEAN);
    CHECK_THAT(st.message(), Catch::Contains("no valid header slot"));
  }
}

TEST_CASE("log: Format discards the records of an earlier log", "[journal]") {
  // mkfs -f over a used device formats a fresh log whose numbering starts
  // at 1 again: the old log's records must not pass for the new log's.
  LogImage img;
  img.Attach();
  REQUIRE(img.log().Format(1, /*salt=*/0x1111).ok());
  img.MustAppend("one-old");
  img.MustAppend("two-old");
  img.MustAppend("three-old");
  REQUIRE(img.log().Sync().ok());

  // Every format has its own salt (Volume::Format takes it from the uuid).
  REQUIRE(img.log().Format(1, /*salt=*/0x2222).ok());
  CHECK(img.Reopen().empty());
  // A first record of the same size lands exactly on the old first record,
  // so the old second record (sequence number 2) directly follows it.
  CHECK(img.MustAppend("one-new") == 1);
  REQUIRE(img.log().Sync().ok());
  CHECK(img.Reopen() == Records{{1, "one-new"}});
  CHECK(img.log().next_seq() == 2);
}

TEST_CASE("log: full log and record callback errors", "[journal]") {
  LogImage img;
  img.Attach();
  REQUIRE(img.log().Format(1, /*salt=*/7).ok());
  const uint64_t capacity = kLogLength - Log::kRecordsOffset;
  CHECK(img.log().capacity_bytes() == capacity);
  CHECK(img.log().Fits(capacity - kRecordHeader));
  CHECK_FALSE(img.log().Fits(capacity - kRecordHeader + 1));

  SECTION("Append says ENOSPC when the record does not fit") {
    const std::string payload(1000, 'p');  // 1024 bytes with its header
    const uint64_t fit = capacity / 1024;
    for (uint64_t i = 0; i < fit; ++i) img.MustAppend(payload);
    CHECK(img.log().used_bytes() == fit * 1024);
    auto r = img.log().Append(payload);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == ENOSPC);
    CHECK(img.log().next_seq() == fit + 1);  // a failed append takes no number
    REQUIRE(img.log().Sync().ok());
    CHECK(img.Reopen().size() == fit);
  }
  SECTION("the callback's error stops Open and is returned") {
    for (const char* p : {"1", "2", "3"}) img.MustAppend(p);
    REQUIRE(img.log().Sync().ok());
    img.Crash();
    img.Attach();
    std::vector<uint64_t> seen;
    Status st = img.log().Open([&](uint64_t seq, std::string_view) {
      seen.push_back(seq);
      return seq == 2 ? Status::Error(EIO, "apply failed") : Status::Ok();
    });
    CHECK(st.code() == EIO);
    CHECK(st.message() == "apply failed");
    CHECK(seen == std::vector<uint64_t>{1, 2});
  }
}

// ---- Volume --------------------------------------------------------------------

namespace {

// The stored value, or "<absent>" (readable in failure messages).
std::string ValueOf(Volume& vol, std::string_view key) {
  auto v = vol.store().Get(key);
  INFO("get " << key << ": " << v.status().ToString());
  REQUIRE(v.ok());
  return v->value_or("<absent>");
}

// The last transaction applied to the store (its "a" record).
uint64_t AppliedSeq(Volume& vol) {
  std::string v = ValueOf(vol, keys::kApplied);
  auto applied = AppliedRecord::Decode(v);
  INFO("applied record: " << v.size() << " bytes");
  REQUIRE(applied.ok());
  return applied->seq;
}

uint64_t MustCommit(Volume& vol, Transaction&& txn, bool durable) {
  auto seq = vol.Commit(std::move(txn), durable);
  INFO("commit: " << seq.status().ToString());
  REQUIRE(seq.ok());
  return *seq;
}

uint64_t PutOne(Volume& vol, const std::string& key, const std::string& value, bool durable) {
  Transaction t;
  t.batch.Put(key, value);
  return MustCommit(vol, std::move(t), durable);
}

Runs MustAllocate(Volume& vol, uint64_t count, uint64_t goal) {
  auto r = vol.Allocate(count, goal);
  INFO("allocate " << count << " near " << goal << ": " << r.status().ToString());
  REQUIRE(r.ok());
  return *r;
}

void PutExtent(Transaction* t, uint64_t ino, const Extent& e) {
  t->batch.Put(keys::Extent(ino, e.lblk), EncodeExtentValue(e));
}

}  // namespace

TEST_CASE("volume: Format then Open", "[journal]") {
  VolumeFixture fx;
  auto vol = fx.Open();
  const Superblock& sb = vol->superblock();
  CHECK(sb.block_size == 4096);
  CHECK(sb.device_size == 64 * kMiB);
  CHECK(sb.meta_dir == fx.meta_dir());
  CHECK(vol->meta_dir() == fx.meta_dir());
  CHECK(vol->block_size() == 4096);
  CHECK(vol->total_blocks() == sb.data_blocks);
  CHECK(vol->total_blocks() == (64 * kMiB - 4096 - 2 * kMiB) / 4096);
  CHECK(vol->free_blocks() == vol->total_blocks());
  CHECK(vol->device().granularity() == PersistGranularity::kStrictEmulation);
  CHECK(vol->durable_seq() == 0);

  std::string root = ValueOf(*vol, keys::Inode(kRootIno));
  auto rec = InodeRecord::Decode(kRootIno, root);
  REQUIRE(rec.ok());
  CHECK(S_ISDIR(rec->mode));
  CHECK((rec->mode & 07777) == 0755);
  CHECK(rec->nlink == 2);
  CHECK(rec->parent == kRootIno);

  Transaction t;
  CHECK(vol->NextInodeNumber(&t) == 2);
  CHECK(vol->NextInodeNumber(&t) == 3);
  CHECK(ReadFileBytes(fx.image(), 0, 8) == "NOSYNCFS");
}

TEST_CASE("volume: Format refuses bad geometry and existing file systems", "[journal]") {
  SECTION("formatting twice needs force") {
    VolumeFixture fx;
    std::array<uint8_t, 16> first_uuid;
    {
      auto vol = fx.Open();
      first_uuid = vol->superblock().uuid;
      // Not while it is open either.
      CHECK(fx.Format(/*force=*/true).status().code() == EBUSY);
    }
    auto again = fx.Format();
    REQUIRE_FALSE(again.ok());
    CHECK(again.status().code() == EEXIST);
    CHECK_THAT(again.status().message(), Catch::Contains("already holds a nosyncfs"));

    auto forced = fx.Format(/*force=*/true);
    INFO(forced.status().ToString());
    REQUIRE(forced.ok());
    CHECK(forced->uuid != first_uuid);
    // The old store was replaced by one that matches the new superblock.
    auto vol = fx.Open();
    CHECK(vol->superblock().uuid == forced->uuid);
  }
  SECTION("too small") {
    VolumeFixture::Options o;
    o.format = false;
    o.image_bytes = 8 * kMiB;
    VolumeFixture fx(o);
    CHECK(fx.Format().status().code() == ENOSPC);
    CHECK(fx.TryOpen().status().code() == EINVAL);  // still unformatted
  }
  SECTION("bad block size") {
    VolumeFixture::Options o;
    o.format = false;
    o.block_size = 3000;
    VolumeFixture fx(o);
    CHECK(fx.Format().status().code() == EINVAL);
    CHECK(fx.TryOpen().status().code() == EINVAL);
  }
}

TEST_CASE("volume: Open names what is wrong", "[journal]") {
  VolumeFixture fx;
  SECTION("not formatted") {
    VolumeFixture::Options o;
    o.format = false;
    VolumeFixture blank(o);
    auto r = blank.TryOpen();
    CHECK(r.status().code() == EINVAL);
    CHECK_THAT(r.status().message(), Catch::Contains("not a nosyncfs device"));
  }
  SECTION("metadata store missing") {
    std::filesystem::remove_all(fx.meta_dir());
    auto r = fx.TryOpen();
    CHECK(r.status().code() == ENOENT);
    CHECK_THAT(r.status().message(), Catch::Contains("missing"));
  }
  SECTION("metadata store of another device") {
    VolumeFixture other;
    VolumeOptions o = fx.volume_options();
    o.meta_dir = other.meta_dir();
    auto r = Volume::Open(fx.image(), o);
    CHECK(r.status().code() == EXDEV);
    CHECK_THAT(r.status().message(), Catch::Contains("belongs to another device"));
    // Both are fine with their own stores.
    CHECK(fx.TryOpen().ok());
    CHECK(other.TryOpen().ok());
  }
  SECTION("already open") {
    auto first = fx.Open();
    auto r = fx.TryOpen();
    CHECK(r.status().code() == EBUSY);
    CHECK_THAT(r.status().message(), Catch::Contains("in use"));
  }
  SECTION("corrupted superblock") {
    FlipFileByte(fx.image(), 200);
    auto r = fx.TryOpen();
    CHECK(r.status().code() == EUCLEAN);
    CHECK_THAT(r.status().message(), Catch::Contains("checksum"));
  }
}

TEST_CASE("volume: freed blocks stay pending until the freeing commit is durable",
          "[journal]") {
  VolumeFixture fx;
  auto vol = fx.Open();
  const uint64_t total = vol->total_blocks();

  SECTION("a goal on pending blocks gets other blocks until a sync") {
    CHECK(MustAllocate(*vol, 8, 100) == Runs{{100, 8}});
    Transaction map;
    PutExtent(&map, 77, {0, 8, 100, 0});
    MustCommit(*vol, std::move(map), /*durable=*/true);

    Transaction unmap;
    unmap.batch.Delete(keys::Extent(77, 0));
    unmap.Free({{100, 8}});
    uint64_t seq = MustCommit(*vol, std::move(unmap), /*durable=*/false);
    CHECK(vol->durable_seq() < seq);
    // statfs counts them as free, but they are not allocatable yet.
    CHECK(vol->free_blocks() == total);
    Runs other = MustAllocate(*vol, 8, 100);
    CHECK(other == Runs{{108, 8}});
    vol->Unallocate(other);

    REQUIRE(vol->Sync().ok());
    CHECK(vol->durable_seq() >= seq);
    CHECK(MustAllocate(*vol, 8, 100) == Runs{{100, 8}});
  }
  SECTION("when only pending blocks are left, Allocate makes them durable first") {
    CHECK(MustAllocate(*vol, total, 0) == Runs{{0, total}});
    Transaction t;
    t.Free({{40, 8}});
    uint64_t seq = MustCommit(*vol, std::move(t), /*durable=*/false);
    CHECK(vol->durable_seq() < seq);
    CHECK(MustAllocate(*vol, 8, 0) == Runs{{40, 8}});
    CHECK(vol->durable_seq() >= seq);
    CHECK(vol->Allocate(1, 0).status().code() == ENOSPC);
  }
}

TEST_CASE("volume: Open rebuilds the allocator from the extents", "[journal]") {
  VolumeFixture fx;
  uint64_t total;
  {
    auto vol = fx.Open();
    total = vol->total_blocks();
    Transaction t;
    PutExtent(&t, 5, {0, 8, 100, 0});
    PutExtent(&t, 6, {3, 4, 200, kExtentNoFsync});
    MustCommit(*vol, std::move(t), true);
  }
  {
    auto vol = fx.Open();
    CHECK(vol->free_blocks() == total - 12);
    CHECK(MustAllocate(*vol, 2, 99) == Runs{{99, 1}, {108, 1}});
    // A block mapped by two files is corruption, found at the next open.
    Transaction t;
    PutExtent(&t, 7, {0, 2, 203, 0});
    MustCommit(*vol, std::move(t), true);
  }
  auto r = fx.TryOpen();
  CHECK(r.status().code() == EUCLEAN);
  CHECK_THAT(r.status().message(), Catch::Contains("mapped twice"));
}

TEST_CASE("volume: a transaction larger than the log is EFBIG", "[journal]") {
  VolumeFixture::Options o;
  o.image_bytes = 16 * kMiB;  // a 2 MiB log
  VolumeFixture fx(o);
  auto vol = fx.Open();
  Transaction t;
  t.batch.Put("t/huge", std::string(3 * kMiB, 'h'));
  auto r = vol->Commit(std::move(t), true);
  CHECK(r.status().code() == EFBIG);
  CHECK(ValueOf(*vol, "t/huge") == "<absent>");
  // The volume goes on working.
  PutOne(*vol, "t/small", "s", true);
  CHECK(ValueOf(*vol, "t/small") == "s");
}

// ---- Volume crashes ------------------------------------------------------------

NSF_CRASH_WORKLOAD(SyncedAndUnsynced, "journal.synced-and-unsynced") {
  Volume& vol = child.OpenVolume();
  auto put = [&](const std::string& k, const std::string& v, bool durable) {
    Transaction t;
    t.batch.Put(k, v);
    return child.Must(vol.Commit(std::move(t), durable), "commit " + k);
  };
  put("t/1", "one", false);
  put("t/2", "two", false);
  child.Check(vol.Sync(), "sync");
  child.Report("durable_after_sync", vol.durable_seq());
  put("t/3", "three", /*durable=*/true);
  put("t/4", "four", false);
  Transaction t;
  t.batch.Put("t/1", "one, changed");
  t.batch.Delete("t/2");
  child.Must(vol.Commit(std::move(t), false), "commit change");
  child.Report("durable_at_crash", vol.durable_seq());
  // The store does see the unsynced commits before the crash.
  auto v = child.Must(vol.store().Get("t/1"), "get t/1");
  child.Expect(v == "one, changed", "the store does not see its own commit");
}

TEST_CASE("volume crash: synced commits survive and unsynced ones vanish", "[journal][crash]") {
  VolumeFixture fx;
  CrashResult r = fx.RunAndCrash("journal.synced-and-unsynced");
  CHECK(r.GetU64("durable_after_sync") == 2);
  CHECK(r.GetU64("durable_at_crash") == 3);

  auto vol = fx.Open();
  CHECK(ValueOf(*vol, "t/1") == "one");
  CHECK(ValueOf(*vol, "t/2") == "two");
  CHECK(ValueOf(*vol, "t/3") == "three");
  CHECK(ValueOf(*vol, "t/4") == "<absent>");
  CHECK(AppliedSeq(*vol) == 3);
  CHECK(vol->durable_seq() == 3);
}

NSF_CRASH_WORKLOAD(PutSynced, "journal.put-synced") {
  Volume& vol = child.OpenVolume();
  const uint64_t n = child.ArgU64("n");
  const std::string tag = child.Arg("tag");
  for (uint64_t i = 0; i < n; ++i) {
    Transaction t;
    t.batch.Put("t/" + std::to_string(i), tag + std::to_string(i));
    child.Must(vol.Commit(std::move(t), /*durable=*/true), "commit " + std::to_string(i));
  }
}

NSF_CRASH_WORKLOAD(TryOpen, "journal.try-open") {
  auto r = Volume::Open(child.image(), child.volume_options());
  child.Report("code", r.ok() ? 0 : r.status().code());
  child.Report("message", r.status().message());
  // Keep an opened volume alive: its destructor would checkpoint.
  static std::unique_ptr<Volume> keep;
  if (r.ok()) keep = std::move(r).value();
}

TEST_CASE("volume crash: records of an earlier file system on the device are not replayed",
          "[journal][crash]") {
  VolumeFixture fx;
  fx.RunAndCrash("journal.put-synced", {{"n", "3"}, {"tag", "old"}});
  // mkfs -f, then the same kind of workload: its first record has the same
  // size as the old first record, so old record 2 directly follows it.
  {
    auto sb = fx.Format(/*force=*/true);
    INFO(sb.status().ToString());
    REQUIRE(sb.ok());
  }
  fx.RunAndCrash("journal.put-synced", {{"n", "1"}, {"tag", "new"}});

  auto vol = fx.Open();
  CHECK(ValueOf(*vol, "t/0") == "new0");
  CHECK(ValueOf(*vol, "t/1") == "<absent>");
  CHECK(ValueOf(*vol, "t/2") == "<absent>");
  CHECK(AppliedSeq(*vol) == 1);
}

TEST_CASE("volume crash: a durable record that cannot be replayed fails every open",
          "[journal][crash]") {
  VolumeFixture fx;
  fx.RunAndCrash("journal.put-synced", {{"n", "2"}, {"tag", "v"}});

  // Turn record 2 into one with a valid checksum but an undecodable batch
  // (as a bug or a format mismatch would): recovery must stop with EUCLEAN,
  // and keep stopping there, never skip it.
  std::string block = ReadFileBytes(fx.image(), 0, Superblock::kSize);
  auto sb = Superblock::Decode(block.data(), block.size(), 64 * kMiB);
  REQUIRE(sb.ok());
  const uint64_t rec1 = sb->log_offset + Log::kRecordsOffset;
  const std::string head1 = ReadFileBytes(fx.image(), rec1, kRecordHeader);
  const uint64_t rec2 = rec1 + Align8(kRecordHeader + DecodeFixed32(head1.data() + 4));
  const std::string head2 = ReadFileBytes(fx.image(), rec2, kRecordHeader);
  const uint32_t len2 = DecodeFixed32(head2.data() + 4);
  REQUIRE(DecodeFixed64(head2.data() + 8) == 2);
  const std::string payload(len2, '\xff');  // an operation count of 2^32-1
  // The record CRC covers the log's salt (the uuid's first 8 bytes, read as
  // a native integer) before length and sequence number.
  uint64_t salt;
  std::memcpy(&salt, sb->uuid.data(), sizeof(salt));
  std::string crc_input;
  PutFixed64(&crc_input, salt);
  PutFixed32(&crc_input, len2);
  PutFixed64(&crc_input, 2);
  std::string crc;
  PutFixed32(&crc, Crc32c(payload.data(), payload.size(),
                          Crc32c(crc_input.data(), crc_input.size())));
  WriteFileBytes(fx.image(), rec2 + 16, crc);
  WriteFileBytes(fx.image(), rec2 + kRecordHeader, payload);

  // Each open runs in a child process, so that a crash of Open itself fails
  // this test only.
  for (int attempt = 1; attempt <= 2; ++attempt) {
    CrashResult r = fx.RunInChild("journal.try-open");
    INFO("open attempt " << attempt << ": " << r.Describe());
    CHECK(r.crashed());  // Open returned (the child then crashed as planned)
    CHECK(r.GetU64("code") == EUCLEAN);
    CHECK_THAT(r.Get("message"), Catch::Contains("recovery"));
  }
}

NSF_CRASH_WORKLOAD(ReplaySource, "journal.replay-source") {
  Volume& vol = child.OpenVolume();
  auto commit = [&](Transaction&& t) {
    return child.Must(vol.Commit(std::move(t), /*durable=*/true), "commit");
  };
  Transaction t1;
  t1.batch.Put("t/k", "1");
  t1.batch.Put("t/j", "j");
  commit(std::move(t1));
  Transaction t2;
  t2.batch.Delete("t/k");
  commit(std::move(t2));
  // A background flush of the store, as RocksDB may do at any time: the
  // store is now durable up to transaction 2, the log still holds 1 and 2.
  child.Check(vol.store().Flush(), "flush store");
  Transaction t3;
  t3.batch.Put("t/k", "3");
  commit(std::move(t3));
  Transaction t4;
  t4.batch.Delete("t/j");
  t4.batch.Put("t/m", "4");
  child.Report("last_seq", commit(std::move(t4)));
}

NSF_CRASH_WORKLOAD(OpenAndCrash, "journal.open-and-crash") {
  Volume& vol = child.OpenVolume();
  child.Report("durable", vol.durable_seq());
  auto k = child.Must(vol.store().Get("t/k"), "get t/k");
  child.Report("k", k.value_or("<absent>"));
}

TEST_CASE("volume crash: replay is idempotent across repeated crashes", "[journal][crash]") {
  VolumeFixture fx;
  CrashResult src = fx.RunAndCrash("journal.replay-source");
  CHECK(src.GetU64("last_seq") == 4);
  // Recover and crash again at once, twice: every recovery must end in the
  // same state.
  for (int i = 0; i < 2; ++i) {
    CrashResult again = fx.RunAndCrash("journal.open-and-crash");
    INFO("recovery " << i);
    CHECK(again.GetU64("durable") == 4);
    CHECK(again.Get("k") == "3");
  }
  auto vol = fx.Open();
  CHECK(ValueOf(*vol, "t/k") == "3");
  CHECK(ValueOf(*vol, "t/j") == "<absent>");
  CHECK(ValueOf(*vol, "t/m") == "4");
  CHECK(AppliedSeq(*vol) == 4);
  // And the next commit gets a fresh sequence number.
  CHECK(PutOne(*vol, "t/n", "5", true) == 5);
}

NSF_CRASH_WORKLOAD(StoreAhead, "journal.store-ahead-of-log") {
  Volume& vol = child.OpenVolume();
  Transaction t1;
  t1.batch.Put("t/a", "1");
  child.Must(vol.Commit(std::move(t1), true), "commit a");
  Transaction t2;
  t2.batch.Put("t/b", "2");
  child.Must(vol.Commit(std::move(t2), false), "commit b");
  // The store got flushed with transaction 2 that the log never persisted.
  child.Check(vol.store().Flush(), "flush store");
}

NSF_CRASH_WORKLOAD(CommitAfterRecovery, "journal.commit-after-recovery") {
  Volume& vol = child.OpenVolume();
  Transaction t;
  t.batch.Put("t/c", "3");
  child.Report("seq", child.Must(vol.Commit(std::move(t), true), "commit c"));
}

TEST_CASE("volume crash: a store ahead of the log keeps sequence numbers unique",
          "[journal][crash]") {
  VolumeFixture fx;
  fx.RunAndCrash("journal.store-ahead-of-log");
  // Recovery must start the new epoch past transaction 2: if the next commit
  // reused number 2, the next replay would skip it as already applied.
  CrashResult r = fx.RunAndCrash("journal.commit-after-recovery");
  CHECK(r.GetU64("seq") > 2);
  auto vol = fx.Open();
  CHECK(ValueOf(*vol, "t/a") == "1");
  CHECK(ValueOf(*vol, "t/b") == "2");  // flushed, so kept (it was committed)
  CHECK(ValueOf(*vol, "t/c") == "3");
}

NSF_CRASH_WORKLOAD(FillLog, "journal.fill-log") {
  Volume& vol = child.OpenVolume();
  const uint64_t count = child.ArgU64("count");
  uint64_t checkpoints = 0, durable = vol.durable_seq();
  for (uint64_t i = 0; i < count; ++i) {
    Transaction t;
    t.batch.Put("t/big/" + std::to_string(i), DataPattern(i, 60000));
    child.Must(vol.Commit(std::move(t), /*durable=*/false), "commit " + std::to_string(i));
    // Nothing here syncs: a durable_seq that moves is a checkpoint made
    // inside Commit because the log was full.
    if (vol.durable_seq() != durable) {
      ++checkpoints;
      durable = vol.durable_seq();
    }
  }
  Transaction last;
  last.batch.Put("t/final", "done");
  child.Must(vol.Commit(std::move(last), /*durable=*/true), "commit final");
  child.Report("checkpoints", checkpoints);
}

TEST_CASE("volume crash: a full log checkpoints inside Commit and loses nothing synced",
          "[journal][crash]") {
  VolumeFixture::Options o;
  o.image_bytes = 16 * kMiB;  // the smallest log: 2 MiB, about 34 of these records
  VolumeFixture fx(o);
  CrashResult r = fx.RunAndCrash("journal.fill-log", {{"count", "100"}});
  CHECK(r.GetU64("checkpoints") >= 2);

  auto vol = fx.Open();
  for (uint64_t i = 0; i < 100; ++i) {
    INFO("record " << i);
    REQUIRE(ValueOf(*vol, "t/big/" + std::to_string(i)) == DataPattern(i, 60000));
  }
  CHECK(ValueOf(*vol, "t/final") == "done");
}

}  // namespace nosyncfs::test

namespace nosyncfs::test {

TEST_CASE("volume: a store with the older applied record is migrated at open", "[journal]") {
  VolumeFixture fx;
  uint64_t seq;
  {
    auto vol = fx.Open();
    Transaction t;
    uint64_t ino = vol->NextInodeNumber(&t);
    InodeRecord r;
    r.ino = ino;
    r.mode = S_IFREG | 0644;
    r.nlink = 1;
    t.PutInode(r);
    seq = MustCommit(*vol, std::move(t), true);
  }
  {
    // What an older nosyncfs left: an 8-byte "a" and the counter apart.
    auto store = MetaStore::Open(fx.meta_dir(), false);
    REQUIRE(store.ok());
    MetaBatch old;
    old.Put(keys::kApplied, EncodeU64(seq));
    old.Put(keys::kLegacyNextIno, EncodeU64(3));
    REQUIRE((*store)->Apply(old).ok());
    REQUIRE((*store)->Flush().ok());
  }
  auto vol = fx.Open();
  CHECK(vol->inode_count() == 2);  // counted: the root and the file
  auto applied = AppliedRecord::Decode(ValueOf(*vol, keys::kApplied));
  REQUIRE(applied.ok());
  CHECK_FALSE(applied->legacy);
  CHECK(applied->next_ino == 3);
  CHECK(applied->inode_count == 2);
  CHECK(ValueOf(*vol, keys::kLegacyNextIno) == "<absent>");
  Transaction t;
  CHECK(vol->NextInodeNumber(&t) == 3);
}

}  // namespace nosyncfs::test
