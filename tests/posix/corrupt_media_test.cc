// Damaged media never crash the daemon or fsck, nor make them hang. A volume
// is left with a log to replay (kill -9 after a sync), then, round after
// round, a copy of it gets random bytes changed in one place: the
// superblock, the log's header slots, its records, or a file of the
// metadata store. Each round must end in a mount (and a walk of every file
// that finishes) or a one-line error; fsck must end with an exit status.
// NSF_TEST_SEED replays the rounds; NSF_CORRUPT_ROUNDS sets their number.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "journal/log.h"
#include "journal/superblock.h"
#include "tests/harness/mount_fixture.h"
#include "tests/harness/posix_util.h"
#include "tests/harness/volume_fixture.h"

namespace nosyncfs::test {
namespace {

namespace fs = std::filesystem;

// Changes `count` random bytes of `path` in [begin, end) (clamped to the
// file). Returns a description for the failure message.
std::string CorruptBytes(const std::string& path, uint64_t begin, uint64_t end, int count,
                         std::mt19937_64& rng) {
  uint64_t size = fs::file_size(path);
  end = std::min(end, size);
  if (begin >= end) return path + ": nothing to corrupt";
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  REQUIRE(f);
  std::string what = path + " bytes";
  for (int i = 0; i < count; ++i) {
    uint64_t at = begin + rng() % (end - begin);
    f.seekg(static_cast<std::streamoff>(at));
    char c = 0;
    f.read(&c, 1);
    char changed = static_cast<char>(c ^ static_cast<char>(1 + rng() % 255));
    f.seekp(static_cast<std::streamoff>(at));
    f.write(&changed, 1);
    what += " " + std::to_string(at);
  }
  REQUIRE(f);
  return what;
}

void CopyTree(const std::string& from, const std::string& to) {
  fs::remove_all(to);
  fs::copy(from, to, fs::copy_options::recursive);
}

Superblock ReadSuperblock(const std::string& image) {
  std::ifstream in(image, std::ios::binary);
  std::string block(Superblock::kSize, '\0');
  in.read(block.data(), static_cast<std::streamsize>(block.size()));
  auto sb = Superblock::Decode(block.data(), block.size(), fs::file_size(image));
  REQUIRE(sb.ok());
  return *sb;
}

}  // namespace

TEST_CASE("corrupt media: every round mounts and reads, or fails in one line",
          "[posix][corrupt]") {
  const uint64_t seed = TestSeed();
  int rounds = 24;
  if (const char* r = std::getenv("NSF_CORRUPT_ROUNDS")) rounds = std::atoi(r);
  INFO("seed " << seed);

  TestVolume vol;
  vol.Mount();
  // Something of every kind of record: directories, files with data,
  // an NF range, xattrs, a hard link, a symlink, an unlinked open file.
  REQUIRE(ErrnoOf(::mkdir(vol.Path("d").c_str(), 0755)) == 0);
  for (int i = 0; i < 20; ++i) {
    WriteFile(vol.Path("d/f" + std::to_string(i)), Pattern(40 + i, 1000 * i + 1, 0));
  }
  WriteFile(vol.Path("nf"), Pattern(60, 300000, 0));
  REQUIRE(ErrnoOf(::setxattr(vol.Path("nf").c_str(), "user.nosync", "all", 3, 0)) == 0);
  REQUIRE(ErrnoOf(::setxattr(vol.Path("d").c_str(), "user.note", "v", 1, 0)) == 0);
  REQUIRE(ErrnoOf(::link(vol.Path("d/f1").c_str(), vol.Path("link").c_str())) == 0);
  REQUIRE(ErrnoOf(::symlink("d/f2", vol.Path("sym").c_str())) == 0);
  Fd open_unlinked = MustOpen(vol.Path("gone"), O_CREAT | O_RDWR, 0644);
  MustPwrite(open_unlinked.get(), "x", 0);
  REQUIRE(ErrnoOf(::unlink(vol.Path("gone").c_str())) == 0);
  SyncWholeFs(vol.mountpoint());
  vol.SigkillDaemon();  // the log keeps what the store has not applied
  open_unlinked = Fd();
  vol.ClearDeadMount();

  const Superblock sb = ReadSuperblock(vol.image());
  const std::string pristine_image = vol.TempPath("pristine.img");
  const std::string pristine_meta = vol.TempPath("pristine.meta");
  fs::copy_file(vol.image(), pristine_image);
  CopyTree(vol.meta_dir(), pristine_meta);

  std::mt19937_64 rng(seed);
  int mounted = 0, refused = 0;
  for (int round = 0; round < rounds; ++round) {
    fs::copy_file(pristine_image, vol.image(), fs::copy_options::overwrite_existing);
    CopyTree(pristine_meta, vol.meta_dir());
    const int where = round % 4;
    const int count = 1 + static_cast<int>(rng() % 8);
    std::string what;
    if (where == 0) {
      what = "superblock: " + CorruptBytes(vol.image(), 0, Superblock::kSize, count, rng);
    } else if (where == 1) {
      what = "log header: " +
             CorruptBytes(vol.image(), sb.log_offset, sb.log_offset + 1024, count, rng);
    } else if (where == 2) {
      uint64_t records = sb.log_offset + Log::kRecordsOffset;
      what = "log records: " + CorruptBytes(vol.image(), records, records + 64 * 1024, count, rng);
    } else {
      std::vector<std::string> files;
      for (const auto& e : fs::directory_iterator(vol.meta_dir())) {
        std::string name = e.path().filename();
        if (e.is_regular_file() && name.rfind("LOG", 0) != 0) files.push_back(e.path());
      }
      REQUIRE(!files.empty());
      const std::string& victim = files[rng() % files.size()];
      what = "store: " + CorruptBytes(victim, 0, UINT64_MAX, count, rng);
    }
    INFO("round " << round << ", " << what);

    CommandResult r = TestVolume::RunDaemon({vol.image(), vol.mountpoint()});
    INFO("mount: " << r.Describe());
    REQUIRE_FALSE(r.timed_out);
    CHECK(r.err.find("Sanitizer") == std::string::npos);
    CHECK(r.err.find("exited during startup") == std::string::npos);  // a crash
    if (r.exit_status == 0) {
      ++mounted;
      // Every name and every byte, bounded: errors are allowed, a hang
      // or a dead daemon is not.
      CommandResult walk = RunCommand(
          {"sh", "-c",
           "find \"$0\" -exec stat {} + >/dev/null 2>&1; "
           "find \"$0\" -type f -exec cat {} + >/dev/null 2>&1; "
           "find \"$0\" -exec getfattr -d {} + >/dev/null 2>&1; exit 0",
           vol.mountpoint()},
          std::chrono::seconds(60));
      INFO("walk: " << walk.Describe());
      CHECK_FALSE(walk.timed_out);
      struct stat st;
      CHECK(ErrnoOf(::stat(vol.mountpoint().c_str(), &st)) == 0);  // still served
      REQUIRE(RunCommand({"fusermount3", "-u", vol.mountpoint()}).exit_status == 0);
      REQUIRE(vol.WaitUntilReleased());
    } else {
      ++refused;
      CHECK(r.exit_status == 1);
      CHECK(r.err.rfind("nosyncfs: ", 0) == 0);
      CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
      CHECK_FALSE(IsMounted(vol.mountpoint()));
      // A damaged superblock is always refused: it is checksummed.
    }
    if (where == 0) CHECK(r.exit_status == 1);

    CommandResult fsck = RunCommand({BinPath("fsck.nosyncfs"), vol.image()}, std::chrono::seconds(60));
    INFO("fsck: " << fsck.Describe());
    CHECK_FALSE(fsck.timed_out);
    CHECK(fsck.exit_status >= 0);  // an exit, not a signal
    CHECK(fsck.err.find("Sanitizer") == std::string::npos);
    if (fsck.exit_status != 0) CHECK(!(fsck.out + fsck.err).empty());
  }
  INFO("mounted " << mounted << ", refused " << refused);
  CHECK(refused > 0);
}

}  // namespace nosyncfs::test
