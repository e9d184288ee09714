// Damaged input never crashes a decoder. Each one is fed seeded mutations of
// a valid encoding (bytes changed, cut short, grown, length fields made
// huge) and must answer with a value or an error. In the AddressSanitizer
// build (CI) a read past the input is a failure too. NSF_TEST_SEED replays.
#include <catch2/catch.hpp>

#include <random>
#include <string>
#include <vector>

#include "base/crc32c.h"
#include "journal/in_place_work.h"
#include "journal/meta_batch.h"
#include "journal/schema.h"
#include "journal/superblock.h"
#include "tests/harness/volume_fixture.h"

namespace nosyncfs::test {
namespace {

constexpr int kRounds = 40000;

class Mutator {
 public:
  explicit Mutator(uint64_t seed) : rng_(seed) {}

  std::string Mutate(std::string s) {
    int edits = 1 + static_cast<int>(Below(4));
    for (int i = 0; i < edits; ++i) {
      switch (Below(6)) {
        case 0:  // a random byte
          if (!s.empty()) s[Below(s.size())] = static_cast<char>(Below(256));
          break;
        case 1:  // one bit
          if (!s.empty()) s[Below(s.size())] ^= static_cast<char>(1 << Below(8));
          break;
        case 2:  // cut short
          s.resize(Below(s.size() + 1));
          break;
        case 3:  // grown
          for (uint64_t n = 1 + Below(16); n > 0; --n) s.push_back(static_cast<char>(Below(256)));
          break;
        case 4:  // a 4-byte field (lengths, counts) made huge or zero
          if (s.size() >= 4) {
            size_t at = Below(s.size() - 3);
            char v = Below(2) == 0 ? '\xff' : '\0';
            for (size_t j = 0; j < 4; ++j) s[at + j] = v;
          }
          break;
        default:  // a slice repeated
          if (!s.empty()) {
            size_t at = Below(s.size());
            size_t len = 1 + Below(std::min<size_t>(16, s.size() - at));
            s.insert(at, s.substr(at, len));
          }
          break;
      }
    }
    return s;
  }
  uint64_t Below(uint64_t n) { return n == 0 ? 0 : rng_() % n; }

 private:
  std::mt19937_64 rng_;
};

InodeRecord SampleInode() {
  InodeRecord r;
  r.ino = 42;
  r.mode = 0100644;
  r.uid = 1000;
  r.gid = 100;
  r.nlink = 2;
  r.size = 123456789;
  r.atime = {1700000000, 5};
  r.mtime = {1700000001, 6};
  r.ctime = {1700000002, 7};
  return r;
}

}  // namespace

TEST_CASE("corrupt input: metadata record decoders answer, never crash", "[corrupt]") {
  const uint64_t seed = TestSeed();
  INFO("seed " << seed);
  Mutator m(seed);

  const std::string inode = SampleInode().Encode();
  DirentRecord d;
  d.ino = 7;
  d.type = 0040000;
  d.cookie = 99;
  d.name = "a name";
  const std::string dirent = d.Encode(false);
  const std::string dirent_named = d.Encode(true);
  AppliedRecord a;
  a.seq = 77;
  a.next_ino = 1000;
  a.inode_count = 12;
  const std::string applied = a.Encode();
  Extent e{16, 8, 4096, kExtentNoFsync};
  const std::string extent_key = keys::Extent(42, e.lblk);
  const std::string extent_value = EncodeExtentValue(e);
  MetaBatch batch;
  batch.Put(keys::Inode(42), inode);
  batch.Put(extent_key, extent_value);
  batch.Delete(keys::Dirent(1, "gone"));
  const std::string encoded_batch = batch.Encode();
  InPlaceWork work;
  work.zero = {{1 << 20, 3000}, {5 << 20, 100}};
  const std::string intent = work.Encode();

  int accepted = 0;
  for (int i = 0; i < kRounds; ++i) {
    accepted += InodeRecord::Decode(42, m.Mutate(inode)).ok();
    accepted += DirentRecord::Decode(m.Mutate(dirent)).ok();
    accepted += DirentRecord::Decode(m.Mutate(dirent_named)).ok();
    accepted += AppliedRecord::Decode(m.Mutate(applied)).ok();
    accepted += DecodeExtent(m.Mutate(extent_key), extent_value).ok();
    accepted += DecodeExtent(extent_key, m.Mutate(extent_value)).ok();
    accepted += DecodeU64(m.Mutate(EncodeU64(5))).ok();
    accepted += InPlaceWork::Decode(m.Mutate(intent)).ok();
    auto decoded = MetaBatch::Decode(m.Mutate(encoded_batch));
    if (decoded.ok()) {
      ++accepted;
      // Whatever was accepted re-encodes to a batch that decodes the same.
      auto again = MetaBatch::Decode(decoded->Encode());
      REQUIRE(again.ok());
      CHECK(again->size() == decoded->size());
    }
  }
  // Changed bytes inside fixed-size fields still decode: the mutator does
  // reach the decoders' success paths, not only their length checks.
  CHECK(accepted > 0);
  // The valid encodings themselves decode.
  CHECK(InodeRecord::Decode(42, inode).ok());
  CHECK(MetaBatch::Decode(encoded_batch).ok());
  auto decoded_work = InPlaceWork::Decode(intent);
  REQUIRE(decoded_work.ok());
  CHECK(decoded_work->zero.size() == 2);
}

TEST_CASE("corrupt input: a superblock decodes to sane geometry or an error", "[corrupt]") {
  const uint64_t seed = TestSeed();
  INFO("seed " << seed);
  Mutator m(seed);
  constexpr uint64_t kDevice = 64ull << 20;
  auto planned = Superblock::Plan(kDevice, 4096);
  REQUIRE(planned.ok());
  const std::string good = planned->Encode();
  REQUIRE(good.size() == Superblock::kSize);

  int checksum_fixed = 0, accepted = 0;
  for (int i = 0; i < kRounds; ++i) {
    std::string s = m.Mutate(good);
    // Half the time the checksum is made to match, so that the checks
    // behind it (version, geometry, metadata path) meet the damage too.
    if (m.Below(2) == 0 && s.size() >= Superblock::kSize) {
      uint32_t crc = Crc32c(s.data(), Superblock::kCrcOffset);
      for (int b = 0; b < 4; ++b) {  // big-endian, as every field
        s[Superblock::kCrcOffset + b] = static_cast<char>(crc >> (24 - 8 * b));
      }
      ++checksum_fixed;
    }
    auto sb = Superblock::Decode(s.data(), s.size(), kDevice);
    if (!sb.ok()) continue;
    ++accepted;
    // Accepted: the regions it describes lie inside the device, in order.
    INFO("round " << i);
    CHECK(sb->log_offset >= Superblock::kSize);
    CHECK(sb->log_length <= kDevice);
    CHECK(sb->log_offset + sb->log_length <= sb->data_offset);
    REQUIRE(sb->data_offset <= kDevice);
    REQUIRE(sb->block_size > 0);
    CHECK(sb->data_blocks <= (kDevice - sb->data_offset) / sb->block_size);
    CHECK(sb->meta_dir.size() <= Superblock::kMaxMetaDir);
  }
  CHECK(checksum_fixed > 0);
  CHECK(accepted > 0);  // e.g. a changed metadata path
}

}  // namespace nosyncfs::test
